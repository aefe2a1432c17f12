"""Reading Caffe2 model-zoo checkpoints (``.pkl``) safely and renaming their blobs.

PySlowFast's model zoo ships Caffe2 checkpoints as Python 2 pickles of a dict whose ``blobs``
entry maps Caffe2 blob names (``res2_0_branch2a_w``, ``t_pool1_subsample_bn_rm``, ``pred_b``...)
to numpy arrays. PySlowFast reads them with a plain ``pickle.load``, which runs whatever a file
asks for. Here the file goes through :class:`RestrictedUnpickler`, which only resolves the globals
needed to rebuild numpy arrays and plain containers; any other global is refused before anything
is called, with an error naming the file and the global.

Blob names are mapped to PySlowFast's PyTorch state-dict names by an ordered list of rewrite rules
(:func:`convert_caffe2_name`), following PySlowFast's conventions:

==============================================  =================================================
Caffe2 blob                                     PyTorch key
==============================================  =================================================
``conv1_w`` / ``t_conv1_w``                     ``s1.pathway{0,1}_stem.conv.weight``
``res_conv1_bn_s`` / ``t_res_conv1_bn_s``       ``s1.pathway{0,1}_stem.bn.weight``
``res3_1_branch2b_bn_riv``                      ``s3.pathway0_res1.branch2.b_bn.running_var``
``res2_0_branch1_w``                            ``s2.pathway0_res0.branch1.weight``
``t_pool1_subsample_w``                         ``s1_fuse.conv_f2s.weight``
``t_res2_2_branch2c_bn_subsample_bn_rm``        ``s2_fuse.bn.running_mean``
``nonlocal_conv3_1_theta_w``                    ``s3.pathway0_nonlocal1.conv_theta.weight``
``nonlocal_conv3_1_bn_s``                       ``s3.pathway0_nonlocal1.bn.weight``
``pred_w``                                      ``head.projection.weight``
==============================================  =================================================
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Blobs of the Caffe2 training state that have no PyTorch counterpart (solver state).
SOLVER_BLOB_MARKERS: Tuple[str, ...] = ("momentum", "lr", "model_iter")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowlist; nothing from it was executed."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for ``bytes``.

    Only the Latin-1 codec is accepted, so a pickle cannot reach other codecs through it.
    """
    if str(encoding).lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return text.encode("latin1")


def _multiarray_module() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _numeric_frombuffer() -> Optional[Callable[..., Any]]:
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        try:
            from numpy.core.numeric import _frombuffer
        except ImportError:
            return None
    return _frombuffer


def numpy_dtype_classes() -> List[type]:
    """The dtype classes of numpy's numeric, bool, bytes and str types (no object dtype)."""
    classes = []
    for code in np.typecodes["All"]:
        if code == "O":
            continue
        cls = type(np.dtype(code))
        if cls is not np.dtype and cls not in classes:
            classes.append(cls)
    return classes


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """(module, name) -> object: what a pickle of numpy arrays and plain containers needs."""
    multiarray = _multiarray_module()
    allowed: Dict[Tuple[str, str], Any] = {}
    # numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*; the objects are the same.
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
        frombuffer = _numeric_frombuffer()
        if frombuffer is not None:
            allowed[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for cls in numpy_dtype_classes():
        allowed[("numpy.dtypes", cls.__name__)] = cls
    for module in ("builtins", "__builtin__"):  # Python 3 / Python 2 names
        for name, obj in (
            ("dict", dict),
            ("list", list),
            ("tuple", tuple),
            ("set", set),
            ("frozenset", frozenset),
            ("bytearray", bytearray),
        ):
            allowed[(module, name)] = obj
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("codecs", "encode")] = _latin1_encode
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy-array and plain-container globals.

    Args:
        file: binary file object to read from.
        source: name of the file, used in error messages.
        encoding: how Python 2 ``str`` objects are decoded (``latin1`` for Caffe2 pickles).
    """

    def __init__(self, file: Any, source: str = "<stream>", encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refused to load global '{module}.{name}' from the pickle; "
                "only numpy arrays and plain containers are allowed in a Caffe2 checkpoint"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent id {pid!r} in the pickle is refused")


def restricted_load(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (Latin-1 for Python 2 strings)."""
    return RestrictedUnpickler(io.BytesIO(data), source=source).load()


def load_caffe2_blobs(path: str) -> Dict[str, np.ndarray]:
    """Read the ``blobs`` dict of a Caffe2 ``.pkl`` checkpoint without running its code.

    Args:
        path: the checkpoint file.
    Returns:
        Blob name -> numpy array (or numpy scalar).
    Raises:
        UnsafePickleError: the pickle references a global outside the allowlist.
        ValueError: the file is not a pickled dict with a ``blobs`` dict.
    """
    from iopath.common.file_io import g_pathmgr

    with g_pathmgr.open(path, "rb") as f:
        data = f.read()
    try:
        content = restricted_load(data, source=path)
    except UnsafePickleError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: not a readable Caffe2 checkpoint pickle ({err})") from err
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    if "blobs" in content:
        blobs = content["blobs"]
    elif content and all(isinstance(v, np.ndarray) for v in content.values()):
        logger.info("%s has no 'blobs' entry; reading its top-level arrays as blobs", path)
        blobs = content
    else:
        raise ValueError(
            f"{path}: a Caffe2 checkpoint needs a 'blobs' dict; found keys {sorted(content)[:10]}"
        )
    if not isinstance(blobs, dict):
        raise ValueError(f"{path}: 'blobs' is a {type(blobs).__name__}, expected a dict")
    return blobs


# ---------------------------------------------------------------------------------------------
# Name conversion
# ---------------------------------------------------------------------------------------------


def _pathway_rules(c2_prefix: str, pathway: int) -> List[Tuple[str, str]]:
    """Stem and residual-block rules of one pathway (Caffe2 prefix '' slow, 't_' fast)."""
    p, k = c2_prefix, pathway
    return [
        # res4_2_branch2b_bn_s -> s4.pathway0_res2.branch2.b_bn_s
        (rf"^{p}res(\d+)_(\d+)_branch(\d+)([a-z])_", rf"s\1.pathway{k}_res\2.branch\3.\4_"),
        # res_conv1_bn_rm -> s1.pathway0_stem.bn.rm
        (rf"^{p}res_conv1_bn_", f"s1.pathway{k}_stem.bn."),
        # conv1_w -> s1.pathway0_stem.conv.w
        (rf"^{p}conv1_", f"s1.pathway{k}_stem.conv."),
        # res3_0_branch1_bn_b -> s3.pathway0_res0.branch1_bn_b
        (rf"^{p}res(\d+)_(\d+)_branch(\d+)_", rf"s\1.pathway{k}_res\2.branch\3_"),
        # res_conv1_w -> s1.pathway0_stem.conv.w
        (rf"^{p}res_conv1_", f"s1.pathway{k}_stem.conv."),
    ]


def _build_rules() -> List[Tuple[re.Pattern, str]]:
    rules: List[Tuple[str, str]] = [
        # Non-local blocks: nonlocal_conv4_5_phi_w -> s4.pathway0_nonlocal5.conv_phi.w
        (r"^nonlocal_conv(\d+)_(\d+)_", r"s\1.pathway0_nonlocal\2_"),
        (r"_nonlocal(\d+)_(theta|g|phi|out)", r"_nonlocal\1.conv_\2"),
        (r"_nonlocal(\d+)_bn_", r"_nonlocal\1.bn."),
        # SlowFast lateral connections (fast -> slow), after the stem and after each stage.
        (r"^t_pool1_subsample_bn_", "s1_fuse.bn."),
        (r"^t_pool1_subsample_", "s1_fuse.conv_f2s."),
        (r"^t_res(\d+)_\d+_branch2c_bn_subsample_bn_", r"s\1_fuse.bn."),
        (r"^t_res(\d+)_\d+_branch2c_bn_subsample_", r"s\1_fuse.conv_f2s."),
    ]
    for c2_prefix, pathway in (("", 0), ("t_", 1)):
        rules.extend(_pathway_rules(c2_prefix, pathway))
    rules.extend(
        [
            (r"pred_", "head.projection."),
            # Batch-norm blobs: scale, shift, running mean, running inverse... variance.
            (r"bn.b\Z", "bn.bias"),
            (r"bn.s\Z", "bn.weight"),
            (r"bn.rm\Z", "bn.running_mean"),
            (r"bn.riv\Z", "bn.running_var"),
            # Convolution / linear parameters.
            (r"[._]b\Z", ".bias"),
            (r"[._]w\Z", ".weight"),
        ]
    )
    return [(re.compile(pattern), repl) for pattern, repl in rules]


_RULES = _build_rules()


def convert_caffe2_name(name: str) -> str:
    """Map one Caffe2 blob name to PySlowFast's PyTorch state-dict key.

    Each rule rewrites at most one occurrence, in order; a name no rule fully converts comes back
    partly rewritten (it then matches no model key and is reported as unexpected).
    """
    for pattern, repl in _RULES:
        name = pattern.sub(repl, name, count=1)
    return name


def get_name_convert_func() -> Callable[[str], str]:
    """PySlowFast's entry point: the function mapping Caffe2 names to PyTorch names."""
    return convert_caffe2_name


def is_solver_blob(name: str) -> bool:
    """Whether a Caffe2 blob is training-solver state (momentum, learning rate, iteration)."""
    return any(marker in name for marker in SOLVER_BLOB_MARKERS)


def convert_blobs(
    blobs: Dict[str, Any], model_keys: Iterable[str], source: str = "<blobs>"
) -> Tuple[Dict[str, torch.Tensor], Dict[str, str], List[str]]:
    """Rename Caffe2 blobs to PyTorch keys and turn them into tensors.

    Args:
        blobs: Caffe2 blob name -> numpy array.
        model_keys: the target model's state-dict keys (solver blobs that do not name one are
            skipped).
        source: file name for messages.
    Returns:
        (state dict, PyTorch key -> Caffe2 name, skipped solver blob names).
    """
    keys = set(model_keys)
    state: Dict[str, torch.Tensor] = {}
    origin: Dict[str, str] = {}
    skipped: List[str] = []
    for c2_name in sorted(blobs):
        key = convert_caffe2_name(c2_name)
        if key not in keys and is_solver_blob(c2_name):
            skipped.append(c2_name)
            continue
        value = blobs[c2_name]
        try:
            array = np.array(value)  # a writable copy
        except Exception as err:
            raise ValueError(f"{source}: blob {c2_name!r} is not an array ({err})") from err
        if array.dtype == object:
            raise ValueError(f"{source}: blob {c2_name!r} holds Python objects, not numbers")
        if key in state:
            raise ValueError(
                f"{source}: blobs {origin[key]!r} and {c2_name!r} both convert to {key!r}"
            )
        state[key] = torch.from_numpy(array)
        origin[key] = c2_name
    if skipped:
        logger.info(
            "%s: skipped %d Caffe2 solver blobs without a PyTorch counterpart: %s",
            source,
            len(skipped),
            ", ".join(skipped[:8]) + (" ..." if len(skipped) > 8 else ""),
        )
    return state, origin, skipped
