"""Saving and loading checkpoints in PySlowFast's layout and formats.

Layout: ``OUTPUT_DIR/checkpoints/checkpoint_epoch_%05d.pyth``, each a ``torch.save``-d dict with
``epoch`` (0-based epoch just finished), ``model_state`` (no ``module.`` prefix),
``optimizer_state`` and ``cfg`` (``cfg.dump()``). Writes are atomic (temporary file in the same
folder, then ``os.replace``), so a crash never leaves a half-written file under a checkpoint name;
reads use ``torch.load(weights_only=True)``, and the newest checkpoint that cannot be read is
skipped with a warning. Caffe2 model-zoo ``.pkl`` files are read through a restricted unpickler
and renamed by :mod:`slowfast.utils.c2_model_loading`.

Loading matches checkpoint keys to the model's state dict and logs a table of what was loaded,
inflated (2D -> 3D), missing, unexpected or of another shape. A classifier
(``head.projection.*``) with another class count keeps the model's fresh initialisation, and the
log says so. The PGT release's RegNet classifier (``fc.*``) is renamed to ``head.projection.*``
when the model has no ``fc``. ``strict=True`` raises, listing the offending keys, before the
model is touched.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
# PySlowFast's epoch files, and ours written in the middle of an epoch (on a stop signal):
# checkpoint_epoch_<epoch in progress, 1-based>_iter_<iterations done>.pyth
_CHECKPOINT_NAME = re.compile(r"^checkpoint_epoch_(\d+)(?:_iter_(\d+))?\.pyth$")
# Parameters of the classifier; a class-count change re-initialises them instead of failing.
HEAD_PREFIXES: Tuple[str, ...] = ("head.projection.",)
# Buffers that carry no learned state: not reported when missing or unexpected (frozen batch
# norms have no batch counter; Caffe2 files never have one).
_BOOKKEEPING_SUFFIXES: Tuple[str, ...] = ("num_batches_tracked",)
_DDP_PREFIX = "module."


class UnreadableCheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt, or holds objects that are refused."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. a full disk); nothing was replaced."""


# ---------------------------------------------------------------------------------------------
# Distributed helpers (lazy: no dependency on the process-group set-up code)
# ---------------------------------------------------------------------------------------------


def _is_master_proc() -> bool:
    """Rank 0 of the process group, or True when no process group is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return True


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def get_checkpoint_dir(path_to_job: str) -> str:
    """``<path_to_job>/checkpoints``."""
    return os.path.join(path_to_job, CHECKPOINT_SUBDIR)


def make_checkpoint_dir(path_to_job: str) -> str:
    """Create the checkpoint folder (on the master process) and return its path."""
    checkpoint_dir = get_checkpoint_dir(path_to_job)
    if _is_master_proc():
        os.makedirs(checkpoint_dir, exist_ok=True)
    return checkpoint_dir


def get_path_to_checkpoint(path_to_job: str, epoch: int, iteration: Optional[int] = None) -> str:
    """Path of the checkpoint written after 1-based epoch ``epoch``; with ``iteration``, of the
    one written in epoch ``epoch`` after that many of its iterations."""
    name = f"checkpoint_epoch_{epoch:05d}"
    if iteration is not None:
        name += f"_iter_{int(iteration):06d}"
    return os.path.join(get_checkpoint_dir(path_to_job), name + ".pyth")


def _progress_of(name: str) -> Optional[Tuple[int, int]]:
    """(epochs completed, iterations of the next one) a checkpoint file name stands for."""
    match = _CHECKPOINT_NAME.match(name)
    if not match:
        return None
    epoch = int(match.group(1))
    if match.group(2) is None:
        return epoch, 0
    return epoch - 1, int(match.group(2))


def list_checkpoints(path_to_job: str) -> List[str]:
    """The checkpoint files of a job, oldest training progress first: ``checkpoint_epoch_N``
    after N epochs, ``checkpoint_epoch_N_iter_I`` after N - 1 epochs and I iterations."""
    checkpoint_dir = get_checkpoint_dir(path_to_job)
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        progress = _progress_of(name)
        if progress is not None:
            found.append((progress, os.path.join(checkpoint_dir, name)))
    return [path for _, path in sorted(found)]


def remove_stale_mid_epoch_checkpoints(path_to_job: str, epochs_done: int) -> List[str]:
    """Delete the mid-epoch checkpoints of epochs <= ``epochs_done`` (superseded by that
    epoch's file; PySlowFast's tools, which sort names, would otherwise pick them)."""
    removed = []
    for path in list_checkpoints(path_to_job):
        name = os.path.basename(path)
        match = _CHECKPOINT_NAME.match(name)
        if match and match.group(2) is not None and int(match.group(1)) <= epochs_done:
            os.remove(path)
            removed.append(path)
    return removed


def has_checkpoint(path_to_job: str) -> bool:
    """Whether the job folder holds any checkpoint file (readable or not)."""
    return bool(list_checkpoints(path_to_job))


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a PyTorch checkpoint, or None when it can.

    Zip-format files (``torch.save``'s default) are checked member by member against their
    CRCs without unpickling; legacy-format files are loaded.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad_member = archive.testzip()
                if bad_member is not None:
                    return f"member {bad_member} fails its CRC check"
                if not any(name.endswith("data.pkl") for name in archive.namelist()):
                    return "zip archive without data.pkl (not a torch.save file)"
            return None
        load_pytorch_checkpoint_file(path)
        return None
    except Exception as err:  # any failure means "not readable"; the reason is reported
        return f"{type(err).__name__}: {err}"


def get_last_checkpoint(path_to_job: str) -> Optional[str]:
    """The newest checkpoint of the job that can actually be read, or None.

    Newer files that are truncated or corrupt are skipped with a warning naming them.
    """
    for path in reversed(list_checkpoints(path_to_job)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("Skipping unreadable checkpoint %s: %s", path, problem)
    return None


def is_checkpoint_epoch(cfg: Any, cur_epoch: int) -> bool:
    """Whether to save after 0-based epoch ``cur_epoch`` (every CHECKPOINT_PERIOD, and last)."""
    if cur_epoch + 1 == cfg.SOLVER.MAX_EPOCH:
        return True
    period = cfg.TRAIN.CHECKPOINT_PERIOD
    return period > 0 and (cur_epoch + 1) % period == 0


# ---------------------------------------------------------------------------------------------
# State-dict helpers
# ---------------------------------------------------------------------------------------------


def unwrap_model(model: nn.Module, data_parallel: bool = False) -> nn.Module:
    """The module whose state dict is stored: the inner module of a (D)DP wrapper.

    Wrappers are detected by type; ``data_parallel=True`` also unwraps any module with a
    ``module`` submodule (PySlowFast passes ``NUM_GPUS > 1`` here).
    """
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    inner = getattr(model, "module", None)
    if isinstance(model, wrappers) or (data_parallel and isinstance(inner, nn.Module)):
        return inner
    return model


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> OrderedDict[str, Any]:
    return OrderedDict((k[len(prefix) :], v) for k, v in state.items())


def _align_ddp_prefix(
    state: Mapping[str, Any], model_keys: Sequence[str], source: str
) -> Mapping[str, Any]:
    """Remove or add ``module.`` so the checkpoint's keys follow the model's convention."""
    if not state or not model_keys:
        return state
    ckpt_prefixed = all(k.startswith(_DDP_PREFIX) for k in state)
    model_prefixed = all(k.startswith(_DDP_PREFIX) for k in model_keys)
    if ckpt_prefixed and not model_prefixed:
        logger.info(
            "%s: removing the '%s' prefix of its keys (saved from DDP)", source, _DDP_PREFIX
        )
        return _strip_prefix(state, _DDP_PREFIX)
    if model_prefixed and not ckpt_prefixed:
        logger.info("%s: adding the '%s' prefix to its keys", source, _DDP_PREFIX)
        return OrderedDict((_DDP_PREFIX + k, v) for k, v in state.items())
    return state


# The PGT release's RegNet names its classifier ``fc``; ours is ``head.projection``.
_RELEASE_CLASSIFIER = ("fc.", "head.projection.")


def map_release_classifier(
    state: Mapping[str, Any], model_keys: Sequence[str], source: str = "<state>"
) -> Mapping[str, Any]:
    """Rename the release's ``fc.*`` classifier keys to ``head.projection.*``.

    Applies only when the checkpoint has ``fc.*`` keys and no ``head.projection.*`` keys while
    the model has ``head.projection.*`` and no ``fc.*`` (a ``module.`` prefix on both sides is
    allowed); the name map is logged in one message.
    """
    old, new = _RELEASE_CLASSIFIER
    prefix = (
        _DDP_PREFIX if model_keys and all(k.startswith(_DDP_PREFIX) for k in model_keys) else ""
    )
    src, dst = prefix + old, prefix + new
    if not any(k.startswith(dst) for k in model_keys) or any(k.startswith(src) for k in model_keys):
        return state
    if not any(k.startswith(src) for k in state) or any(k.startswith(dst) for k in state):
        return state
    out: OrderedDict[str, Any] = OrderedDict()
    changes = []
    for key, value in state.items():
        if key.startswith(src):
            renamed = dst + key[len(src) :]
            changes.append(f"{key} -> {renamed}")
            key = renamed
        out[key] = value
    logger.info("%s: renaming the PGT release's classifier keys: %s", source, "; ".join(changes))
    return out


def clear_name_patterns(
    state: Mapping[str, Any], patterns: Iterable[str], source: str = "<state>"
) -> OrderedDict[str, Any]:
    """Remove the first occurrence of each pattern (a plain substring, as PySlowFast) from keys."""
    out = OrderedDict(state)
    for pattern in patterns:
        if not pattern:
            continue
        renamed = OrderedDict()
        changes = []
        for key, value in out.items():
            new_key = key.replace(pattern, "", 1)
            if new_key != key:
                changes.append(f"{key} -> {new_key}")
            renamed[new_key] = value
        out = renamed
        if changes:
            logger.info(
                "%s: cleared %r from %d keys (e.g. %s)",
                source,
                pattern,
                len(changes),
                "; ".join(changes[:3]),
            )
    return out


def _sub_bn_prefixes(keys: Iterable[str]) -> List[str]:
    """Modules stored as PySlowFast's SubBatchNorm3d (``<m>.bn.*`` and ``<m>.split_bn.*``)."""
    key_set = set(keys)
    suffix = ".split_bn.running_mean"
    return [
        k[: -len(suffix)]
        for k in key_set
        if k.endswith(suffix) and k[: -len(suffix)] + ".bn.running_mean" in key_set
    ]


def sub_to_normal_bn(state: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Store sub-batch-norm modules as plain batch norms (PySlowFast's saved form).

    ``<m>.bn.running_{mean,var}`` become ``<m>.running_{mean,var}``, ``<m>.split_bn``'s batch
    counter becomes ``<m>.num_batches_tracked``; the per-split statistics are dropped.
    """
    prefixes = _sub_bn_prefixes(state)
    if not prefixes:
        return OrderedDict(state)
    rename: Dict[str, Optional[str]] = {}
    for p in prefixes:
        for key in state:
            if key.startswith(p + ".bn.") or key.startswith(p + ".split_bn."):
                rename[key] = None
        rename[p + ".bn.running_mean"] = p + ".running_mean"
        rename[p + ".bn.running_var"] = p + ".running_var"
        counter = p + ".split_bn.num_batches_tracked"
        if counter not in state:
            counter = p + ".bn.num_batches_tracked"
        if counter in state:
            rename[counter] = p + ".num_batches_tracked"
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if key not in rename:
            out[key] = value
        elif rename[key] is not None:
            out[rename[key]] = value
    for p in prefixes:  # very old PySlowFast stored the affine parameters as (C, 1, 1, 1)
        for name in (p + ".weight", p + ".bias"):
            if name in out and out[name].dim() > 1:
                out[name] = out[name].reshape(-1)
    return out


def normal_to_sub_bn(
    state: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Expand plain batch-norm statistics of a checkpoint to the model's sub-batch-norms.

    The statistics go to ``<m>.bn`` and, repeated once per split, to ``<m>.split_bn``.
    """
    out = OrderedDict(state)
    converted = 0
    for p in _sub_bn_prefixes(model_state):
        if p + ".bn.running_mean" in out or p + ".running_mean" not in out:
            continue
        converted += 1
        for stat in ("running_mean", "running_var", "num_batches_tracked"):
            value = out.pop(f"{p}.{stat}", None)
            if value is None:
                continue
            out[f"{p}.bn.{stat}"] = value
            split = model_state.get(f"{p}.split_bn.{stat}")
            if split is not None and value.dim() == 1 and value.numel() > 0:
                if split.numel() % value.numel() == 0:
                    value = value.repeat(split.numel() // value.numel())
            out[f"{p}.split_bn.{stat}"] = value
    if converted:
        logger.info("Expanded %d batch norms of the checkpoint to sub-batch-norms", converted)
    return out


def inflate_weight(weight: torch.Tensor, target_shape: Sequence[int]) -> torch.Tensor:
    """Inflate a 2D kernel (O, I, H, W) or a T=1 3D kernel to ``target_shape`` (O, I, T, H, W).

    The kernel is repeated along time and divided by T, so a video of identical frames gives the
    2D network's response (I3D's inflation, as PySlowFast's ``inflate_weight``).
    """
    if weight.dim() == 4:
        weight = weight.unsqueeze(2)
    if weight.dim() != 5 or weight.shape[2] != 1 or len(target_shape) != 5:
        raise ValueError(f"cannot inflate a {tuple(weight.shape)} tensor to {tuple(target_shape)}")
    t = int(target_shape[2])
    return weight.repeat(1, 1, t, 1, 1) / t


def _adapt_shape(
    value: torch.Tensor, target_shape: torch.Size, inflation: bool
) -> Optional[Tuple[torch.Tensor, str]]:
    """A checkpoint tensor made to fit the model's shape, with how; None when it cannot."""
    shape = tuple(value.shape)
    target = tuple(target_shape)
    if len(shape) == 4 and len(target) == 5 and shape[:2] == target[:2] and shape[2:] == target[3:]:
        return inflate_weight(value, target), "inflated 2D->3D"
    if (
        inflation
        and len(shape) == 5
        and len(target) == 5
        and shape[2] == 1
        and shape[:2] == target[:2]
        and shape[3:] == target[3:]
    ):
        return inflate_weight(value, target), "inflated T=1->3D"
    if (
        len(shape) < len(target)
        and shape == target[: len(shape)]
        and all(d == 1 for d in target[len(shape) :])
    ):
        return value.reshape(target), "reshaped"
    return None


# ---------------------------------------------------------------------------------------------
# Matching a checkpoint's state dict to a model
# ---------------------------------------------------------------------------------------------


def _shape(t: Any) -> str:
    return "x".join(str(d) for d in t.shape) if hasattr(t, "shape") else "-"


@dataclass
class LoadReport:
    """What happened to each key when loading a checkpoint into a model."""

    loaded: List[str] = field(default_factory=list)
    adapted: List[Tuple[str, str]] = field(default_factory=list)  # (key, how)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    head_reinit: List[str] = field(default_factory=list)
    shapes: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # key -> (ckpt, model)

    def offending(self) -> Dict[str, List[str]]:
        """The keys that make a strict load fail, by kind."""
        return {
            "missing in checkpoint": self.missing,
            "unexpected in checkpoint": self.unexpected,
            "shape mismatch": self.mismatched,
        }

    def table(self) -> str:
        """A summary table and a table of every key not loaded as it was."""
        from tabulate import tabulate

        summary = [
            ["loaded", len(self.loaded)],
            ["loaded after inflation/reshape", len(self.adapted)],
            ["missing in checkpoint (model init kept)", len(self.missing)],
            ["unexpected in checkpoint (ignored)", len(self.unexpected)],
            ["shape mismatch (model init kept)", len(self.mismatched)],
            ["head re-initialised (class count differs)", len(self.head_reinit)],
        ]
        rows = [[k, how, *self.shapes.get(k, ("-", "-"))] for k, how in self.adapted]
        for status, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
            ("head re-initialised", self.head_reinit),
        ):
            rows.extend([k, status, *self.shapes.get(k, ("-", "-"))] for k in keys)
        text = tabulate(summary, headers=["keys", "count"], tablefmt="pipe")
        if rows:
            text += "\n\n" + tabulate(
                rows, headers=["key", "status", "checkpoint", "model"], tablefmt="pipe"
            )
        return text


def match_state_dict(
    ckpt_state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    inflation: bool = False,
) -> Tuple[OrderedDict[str, torch.Tensor], LoadReport]:
    """Select the checkpoint tensors that fit the model, adapting shapes where allowed.

    Args:
        ckpt_state: checkpoint key -> tensor (already renamed to the model's convention).
        model_state: the model's state dict.
        inflation: also inflate 3D kernels with one time step to the model's temporal size.
    Returns:
        (the tensors to load, the report).
    """
    report = LoadReport()
    to_load: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, target in model_state.items():
        if key not in ckpt_state:
            if not key.endswith(_BOOKKEEPING_SUFFIXES):
                report.missing.append(key)
                report.shapes[key] = ("-", _shape(target))
            continue
        value = ckpt_state[key]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor")
        if value.shape == target.shape:
            to_load[key] = value
            report.loaded.append(key)
            continue
        report.shapes[key] = (_shape(value), _shape(target))
        adapted = _adapt_shape(value, target.shape, inflation)
        if adapted is not None:
            to_load[key] = adapted[0]
            report.adapted.append((key, adapted[1]))
        elif key.startswith(HEAD_PREFIXES):
            report.head_reinit.append(key)
        else:
            report.mismatched.append(key)
    for key, value in ckpt_state.items():
        if key not in model_state and not key.endswith(_BOOKKEEPING_SUFFIXES):
            report.unexpected.append(key)
            report.shapes[key] = (_shape(value), "-")
    return to_load, report


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def _atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save_checkpoint(
    path_to_job: str,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    epoch: int,
    cfg: Any,
    scaler: Optional[Any] = None,
    iteration: Optional[int] = None,
) -> Optional[str]:
    """Write ``checkpoint_epoch_<epoch + 1>.pyth`` atomically (master process only).

    Args:
        path_to_job: the job's output folder (``cfg.OUTPUT_DIR``).
        model: the model, plain or wrapped in (D)DP; the wrapper's prefix is not stored.
        optimizer: its state is stored for resuming (omitted when None).
        epoch: the 0-based epoch just finished (with ``iteration``: the epoch in progress).
        cfg: the config, stored as its YAML dump.
        scaler: the AMP ``GradScaler`` (its state is stored as ``scaler_state``, PySlowFast's
            key).
        iteration: write the mid-epoch checkpoint ``checkpoint_epoch_<epoch + 1>_iter_<I>``
            after ``iteration`` iterations of epoch ``epoch``: its ``epoch`` field is the last
            completed epoch (so PySlowFast's loaders restart the epoch) and ``epoch_iter`` the
            position.
    The process's RNG states (``rng_state``) are stored too. After an epoch's file is written,
    the mid-epoch files it supersedes are deleted.
    Returns:
        The checkpoint path on the master process, None on the others.
    """
    from slowfast.utils.train_state import capture_rng_state

    if not _is_master_proc():
        return None
    os.makedirs(get_checkpoint_dir(path_to_job), exist_ok=True)
    state = unwrap_model(model, data_parallel=getattr(cfg, "NUM_GPUS", 1) > 1).state_dict()
    if state and all(k.startswith(_DDP_PREFIX) for k in state):
        state = _strip_prefix(state, _DDP_PREFIX)
    checkpoint: Dict[str, Any] = {
        "epoch": int(epoch) if iteration is None else int(epoch) - 1,
        "model_state": sub_to_normal_bn(state),
        "cfg": cfg.dump() if hasattr(cfg, "dump") else str(cfg),
        "rng_state": capture_rng_state(),
    }
    if iteration is not None:
        checkpoint["epoch_iter"] = int(iteration)
    if optimizer is not None:
        checkpoint["optimizer_state"] = optimizer.state_dict()
    if scaler is not None:
        checkpoint["scaler_state"] = scaler.state_dict()
    path = get_path_to_checkpoint(path_to_job, epoch + 1, iteration)
    try:
        _atomic_torch_save(checkpoint, path)
    except (OSError, RuntimeError) as err:
        # torch.save reports a full disk as the OSError, or as a RuntimeError of its zip
        # writer raised while handling it
        cause: BaseException = err
        while not isinstance(cause, OSError) and cause.__context__ is not None:
            cause = cause.__context__
        if not isinstance(cause, OSError):
            raise
        previous = get_last_checkpoint(path_to_job)
        kept = f"the newest checkpoint, {previous}, is intact" if previous else "no checkpoint"
        raise CheckpointWriteError(
            cause.errno, f"could not write checkpoint {path} ({cause.strerror or cause}); {kept}"
        ) from err
    logger.info("Saved checkpoint %s", path)
    if iteration is None:
        for stale in remove_stale_mid_epoch_checkpoints(path_to_job, epoch + 1):
            logger.info("Removed %s (superseded by %s)", stale, path)
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _numpy_safe_globals() -> List[Any]:
    """numpy array/scalar globals for ``torch.load(weights_only=True)``, under both the numpy 1
    (``numpy.core``) and numpy 2 (``numpy._core``) module names; no object dtype."""
    import numpy as np

    from slowfast.utils.c2_model_loading import numpy_dtype_classes

    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed: List[Any] = [np.ndarray, np.dtype, *numpy_dtype_classes()]
    for prefix in ("numpy.core", "numpy._core"):
        allowed.append((multiarray._reconstruct, f"{prefix}.multiarray._reconstruct"))
        allowed.append((multiarray.scalar, f"{prefix}.multiarray.scalar"))
    return allowed


def _weights_only_reason(text: str) -> str:
    """The line of torch's weights-only error that names the refused global."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported global" in line:
            return line
    return lines[-1] if lines else text


def load_pytorch_checkpoint_file(path: str) -> Any:
    """``torch.load`` on CPU with ``weights_only=True`` (numpy arrays and scalars admitted).

    Raises:
        UnreadableCheckpointError: the file is missing, truncated, corrupt, or refers to a
            global that is not allowed (the global is named; nothing was executed).
    """
    if not os.path.isfile(path):
        raise UnreadableCheckpointError(f"checkpoint file {path} does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _weights_only_reason(str(err))
        raise UnreadableCheckpointError(
            f"{path}: refused by the weights-only unpickler ({reason})"
        ) from err
    except Exception as err:
        raise UnreadableCheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from err


def _read_model_state(path: str, checkpoint: Any) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and "model_state" in checkpoint:
        state = checkpoint["model_state"]
    elif (
        isinstance(checkpoint, dict)
        and checkpoint
        and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
    ):
        logger.info("%s holds a bare state dict (no 'model_state'); loading it as one", path)
        state = checkpoint
    else:
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(f"{path}: no 'model_state' in the checkpoint (found {found})")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'model_state' is a {type(state).__name__}, not a dict")
    return state


def _key_list(keys: Sequence[str], limit: int = 30) -> str:
    more = f" (+{len(keys) - limit} more, see the table in the log)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_checkpoint(
    path_to_checkpoint: str,
    model: nn.Module,
    data_parallel: bool = True,
    optimizer: Optional[torch.optim.Optimizer] = None,
    inflation: bool = False,
    convert_from_caffe2: bool = False,
    epoch_reset: bool = False,
    clear_name_pattern: Iterable[str] = (),
    strict: bool = False,
    extra: Optional[Dict[str, Any]] = None,
) -> int:
    """Load a PySlowFast ``.pyth`` or Caffe2 ``.pkl`` checkpoint into ``model``.

    Args:
        path_to_checkpoint: the file.
        model: the model, plain or wrapped (``module.`` prefixes are handled both ways).
        data_parallel: ``model`` is wrapped (also detected from its type).
        optimizer: restored from ``optimizer_state`` when the checkpoint has an epoch and
            ``epoch_reset`` is False (i.e. when resuming).
        inflation: inflate kernels with one time step to the model's temporal size (4D kernels
            in a 5D model are always inflated).
        convert_from_caffe2: the file is a Caffe2 model-zoo pickle.
        epoch_reset: ignore the stored epoch and optimizer state (fine-tuning).
        clear_name_pattern: substrings removed (first occurrence) from checkpoint keys.
        strict: raise, before touching the model, if any key is missing, unexpected or of
            another shape (a class-count change of ``head.projection`` is allowed).
        extra: when given (and not ``epoch_reset``), receives the checkpoint's resume fields
            that are present: ``epoch_iter``, ``rng_state``, ``scaler_state``.
    Returns:
        The epoch stored in the checkpoint, or -1 (Caffe2 file, none stored, or reset).
    """
    logger.info("Loading checkpoint %s", path_to_checkpoint)
    target = unwrap_model(model, data_parallel)
    if data_parallel and target is model:
        logger.debug("data_parallel=True but the model is not wrapped; loading into it directly")
    model_state = target.state_dict()

    checkpoint: Any = None
    origin: Dict[str, str] = {}
    if convert_from_caffe2:
        from slowfast.utils.c2_model_loading import convert_blobs, load_caffe2_blobs

        blobs = load_caffe2_blobs(path_to_checkpoint)
        state, origin, _ = convert_blobs(blobs, model_state.keys(), source=path_to_checkpoint)
    else:
        checkpoint = load_pytorch_checkpoint_file(path_to_checkpoint)
        state = _read_model_state(path_to_checkpoint, checkpoint)
    state = clear_name_patterns(state, clear_name_pattern, source=path_to_checkpoint)
    state = _align_ddp_prefix(state, list(model_state.keys()), path_to_checkpoint)
    state = map_release_classifier(state, list(model_state.keys()), path_to_checkpoint)
    state = normal_to_sub_bn(state, model_state)

    to_load, report = match_state_dict(state, model_state, inflation=inflation)
    if origin:
        for key in report.unexpected:
            blob = origin.get(key, key)
            logger.warning("Caffe2 blob %s converts to %s, not a model key", blob, key)
    logger.info("Checkpoint %s:\n%s", path_to_checkpoint, report.table())
    if report.head_reinit:
        shapes = [
            f"{k}: {report.shapes[k][0]} vs model {report.shapes[k][1]}" for k in report.head_reinit
        ]
        logger.warning(
            "Re-initialised %s: the checkpoint's classifier has another number of classes "
            "(%s); the model's fresh initialisation is kept",
            ", ".join(report.head_reinit),
            "; ".join(shapes),
        )
    offending = {kind: keys for kind, keys in report.offending().items() if keys}
    if strict and offending:
        details = "; ".join(f"{kind}: {_key_list(keys)}" for kind, keys in offending.items())
        raise ValueError(
            f"Strict loading of {path_to_checkpoint} failed ({details}). Set "
            "TRAIN/TEST.CHECKPOINT_STRICT False to load the matching keys only."
        )
    if not report.loaded and not report.adapted:
        logger.warning("No parameter of %s matched the model", path_to_checkpoint)
    result = target.load_state_dict(to_load, strict=False)
    if result.unexpected_keys:  # cannot happen: to_load only holds model keys
        raise RuntimeError(f"unexpected keys after matching: {result.unexpected_keys}")

    if checkpoint is None:  # Caffe2: weights only
        return -1
    if epoch_reset:
        logger.info("Epoch reset: starting from epoch 0 without the optimizer state")
        return -1
    if not isinstance(checkpoint, dict) or "epoch" not in checkpoint:
        return -1
    epoch = int(checkpoint["epoch"])
    if optimizer is not None:
        _restore_optimizer(path_to_checkpoint, checkpoint, optimizer, report)
    if extra is not None:
        extra.update(
            {
                k: checkpoint[k]
                for k in ("epoch_iter", "rng_state", "scaler_state")
                if k in checkpoint
            }
        )
    return epoch


def _restore_optimizer(
    path: str, checkpoint: Dict[str, Any], optimizer: torch.optim.Optimizer, report: LoadReport
) -> None:
    opt_state = checkpoint.get("optimizer_state")
    if opt_state is None:
        logger.warning("%s has no optimizer state; the optimizer starts fresh", path)
        return
    if report.missing or report.mismatched or report.head_reinit:
        logger.warning(
            "%s does not match the model exactly; its optimizer state is not restored", path
        )
        return
    try:
        optimizer.load_state_dict(opt_state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"{path}: the optimizer state does not fit the optimizer ({err})") from err


def _checkpoint_of_epoch(cfg: Any, key: str, epoch: int) -> str:
    path = get_path_to_checkpoint(cfg.OUTPUT_DIR, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}.CHECKPOINT_FILE_EPOCH = {epoch}: {path} does not exist")
    return path


def load_train_checkpoint(
    cfg: Any,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    scaler: Optional[Any] = None,
    resume: Optional[Dict[str, Any]] = None,
) -> int:
    """Resume or initialise training; return the 0-based epoch to start from.

    Order: ``TRAIN.CHECKPOINT_FILE_EPOCH >= 1`` (that checkpoint of OUTPUT_DIR), else with
    ``TRAIN.AUTO_RESUME`` the newest readable checkpoint of OUTPUT_DIR (model + optimizer), else
    ``TRAIN.CHECKPOINT_FILE_PATH`` (honouring CHECKPOINT_TYPE/INFLATE/EPOCH_RESET/
    CLEAR_NAME_PATTERN/STRICT), else 0.

    Resuming from OUTPUT_DIR also restores the RNG states and the AMP ``scaler``'s state; a
    mid-epoch checkpoint makes the returned epoch the one in progress, and ``resume`` (when
    given) receives ``{"path": file, "iteration": iterations of that epoch already done}``.
    """
    from slowfast.utils.train_state import restore_rng_state

    if resume is not None:
        resume.update(path=None, iteration=0)
    data_parallel = cfg.NUM_GPUS > 1
    strict = bool(cfg.TRAIN.get("CHECKPOINT_STRICT", False))
    patterns = tuple(cfg.TRAIN.CHECKPOINT_CLEAR_NAME_PATTERN)
    file_epoch = int(cfg.TRAIN.get("CHECKPOINT_FILE_EPOCH", -1))
    path: Optional[str] = None
    if file_epoch >= 1:
        path = _checkpoint_of_epoch(cfg, "TRAIN", file_epoch)
    elif cfg.TRAIN.AUTO_RESUME:
        path = get_last_checkpoint(cfg.OUTPUT_DIR)
    if path is not None:
        logger.info("Resuming from %s", path)
        extra: Dict[str, Any] = {}
        epoch = load_checkpoint(
            path,
            model,
            data_parallel,
            optimizer,
            clear_name_pattern=patterns,
            strict=strict,
            extra=extra,
        )
        if restore_rng_state(extra.get("rng_state")):
            logger.info("Restored the RNG states of %s", path)
        if scaler is not None and "scaler_state" in extra:
            scaler.load_state_dict(extra["scaler_state"])
        iteration = int(extra.get("epoch_iter", 0))
        if iteration:
            logger.info(
                "%s was written in epoch %d after %d iterations", path, epoch + 2, iteration
            )
        if resume is not None:
            resume.update(path=path, iteration=iteration)
        return epoch + 1
    if cfg.TRAIN.CHECKPOINT_FILE_PATH:
        logger.info(
            "Initialising from TRAIN.CHECKPOINT_FILE_PATH %s", cfg.TRAIN.CHECKPOINT_FILE_PATH
        )
        epoch = load_checkpoint(
            cfg.TRAIN.CHECKPOINT_FILE_PATH,
            model,
            data_parallel,
            optimizer,
            inflation=cfg.TRAIN.CHECKPOINT_INFLATE,
            convert_from_caffe2=cfg.TRAIN.CHECKPOINT_TYPE == "caffe2",
            epoch_reset=cfg.TRAIN.CHECKPOINT_EPOCH_RESET,
            clear_name_pattern=patterns,
            strict=strict,
        )
        return epoch + 1
    logger.info("No checkpoint to resume from and no TRAIN.CHECKPOINT_FILE_PATH: starting at 0")
    return 0


def load_test_checkpoint(cfg: Any, model: nn.Module) -> Optional[str]:
    """Load the weights to test; return the file used (None: the model stays random).

    Order: ``TEST.CHECKPOINT_FILE_PATH``, else ``TEST.CHECKPOINT_FILE_EPOCH >= 1`` or the newest
    readable checkpoint of OUTPUT_DIR, else ``TRAIN.CHECKPOINT_FILE_PATH``.
    """
    data_parallel = cfg.NUM_GPUS > 1
    strict = bool(cfg.TEST.get("CHECKPOINT_STRICT", False))
    file_epoch = int(cfg.TEST.get("CHECKPOINT_FILE_EPOCH", -1))
    kwargs: Dict[str, Any] = {}
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        path = cfg.TEST.CHECKPOINT_FILE_PATH
        kwargs["convert_from_caffe2"] = cfg.TEST.CHECKPOINT_TYPE == "caffe2"
    elif file_epoch >= 1:
        path = _checkpoint_of_epoch(cfg, "TEST", file_epoch)
    else:
        path = get_last_checkpoint(cfg.OUTPUT_DIR)
        if path is None and cfg.TRAIN.CHECKPOINT_FILE_PATH:
            path = cfg.TRAIN.CHECKPOINT_FILE_PATH
            kwargs["convert_from_caffe2"] = cfg.TRAIN.CHECKPOINT_TYPE == "caffe2"
            kwargs["inflation"] = cfg.TRAIN.CHECKPOINT_INFLATE
            kwargs["clear_name_pattern"] = tuple(cfg.TRAIN.CHECKPOINT_CLEAR_NAME_PATTERN)
    if path is None:
        logger.warning(
            "No checkpoint to test (TEST.CHECKPOINT_FILE_PATH, OUTPUT_DIR/checkpoints and "
            "TRAIN.CHECKPOINT_FILE_PATH are all empty): testing a randomly initialised model"
        )
        return None
    load_checkpoint(path, model, data_parallel, None, strict=strict, **kwargs)
    return path
