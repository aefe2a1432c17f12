"""DataLoaders for the registered datasets: per-process batch size, samplers, collation, and the
run-wide bound on videos that fail to decode."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Sequence

import torch
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_collate
from torch.utils.data.distributed import DistributedSampler

from slowfast.datasets.build import build_dataset
from slowfast.datasets.sampler import EpochSampler, SeededItems

logger = logging.getLogger(__name__)


def _collate_meta(metas: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    keys = []
    for meta in metas:
        keys.extend(k for k in meta if k not in keys)
    for key in keys:
        values = [meta[key] for meta in metas if key in meta]
        if key == "decode_failures":
            out[key] = [pair for value in values for pair in value]
            continue
        try:
            out[key] = default_collate(values) if len(values) == len(metas) else values
        except (TypeError, RuntimeError):
            out[key] = values
    return out


def collate_clips(batch: Sequence[tuple]):
    """Collate ``(frames, label, index, meta)`` items.

    Returns ``(inputs, labels, indices, meta)``: ``inputs`` a list with one ``(N, C, T, H, W)``
    tensor per pathway, ``labels`` ``(N,)`` (or ``(N, K)`` multi-hot), ``indices`` ``(N,)``,
    ``meta`` a dict (``decode_failures``: the ``[path, reason]`` pairs of all items).
    """
    frames, labels, indices, metas = zip(*batch)
    num_pathways = len(frames[0])
    inputs = [torch.stack([item[p] for item in frames]) for p in range(num_pathways)]
    if isinstance(labels[0], torch.Tensor):
        label_t = torch.stack(list(labels))
    else:
        label_t = torch.as_tensor(labels)
    return inputs, label_t, torch.as_tensor(indices), _collate_meta(metas)


_BOX_KEYS = ("boxes", "ori_boxes", "metadata", "step_boxes", "step_ori_boxes", "step_metadata")


def _with_batch_index(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate per-item ``(n_i, 4)`` boxes into ``(K, 5)`` ``[item index, x1, y1, x2, y2]``."""
    rows = [
        torch.cat([torch.full((b.shape[0], 1), float(i)), torch.as_tensor(b).float()], dim=1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(rows, dim=0) if rows else torch.zeros(0, 5)


def detection_collate(batch: Sequence[tuple]):
    """Collate detection items ``(frames, labels (n_i, C), index, meta)`` (AVA).

    Returns ``(inputs, labels, indices, meta)``: ``inputs`` as :func:`collate_clips`, ``labels``
    ``(K, C)`` (the items' boxes concatenated, K = sum n_i), ``meta["boxes"]`` ``(K, 5)``
    ``[item index, x1, y1, x2, y2]``, ``meta["ori_boxes"]`` ``(K, 4)``, ``meta["metadata"]``
    ``(K, 2)``; with PGT ``step_boxes`` / ``step_ori_boxes`` / ``step_metadata`` /
    ``step_labels`` become lists of per-step batched tensors in the same formats. Other keys
    are collated as :func:`collate_clips` does (``decode_failures`` concatenated).
    """
    frames, labels, indices, metas = zip(*batch)
    num_pathways = len(frames[0])
    inputs = [torch.stack([item[p] for item in frames]) for p in range(num_pathways)]
    label_t = torch.cat([torch.as_tensor(lab).float() for lab in labels], dim=0)
    out: Dict[str, Any] = {
        "boxes": _with_batch_index([m["boxes"] for m in metas]),
        "ori_boxes": torch.cat([torch.as_tensor(m["ori_boxes"]).float() for m in metas]),
        "metadata": torch.cat([torch.as_tensor(m["metadata"]).long() for m in metas]),
    }
    if "step_boxes" in metas[0]:
        steps = len(metas[0]["step_boxes"])
        out["step_boxes"] = [
            _with_batch_index([m["step_boxes"][k] for m in metas]) for k in range(steps)
        ]
        for key, kind in (("step_ori_boxes", torch.float32), ("step_metadata", torch.long)):
            out[key] = [torch.cat([m[key][k] for m in metas]).to(kind) for k in range(steps)]
        out["step_labels"] = [
            torch.cat([m["step_labels"][k] for m in metas]).float() for k in range(steps)
        ]
    rest = [
        {k: v for k, v in m.items() if k not in _BOX_KEYS and k != "step_labels"} for m in metas
    ]
    out.update(_collate_meta(rest))
    return inputs, label_t, torch.as_tensor(indices), out


class ClipLoader(DataLoader):
    """A DataLoader that gathers the decode failures reported by items (``meta``) from every
    worker, logs each bad file once, and stops the run past ``max_decode_failures`` distinct
    files (``decode_failures`` maps path -> reason, across epochs). ``epoch_decode_failures``
    counts the failed decodes of the current (or last) pass over the loader, repeats of a
    known bad file included; it restarts at 0 with every pass."""

    def __init__(self, *args, max_decode_failures: int = 100, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_decode_failures = int(max_decode_failures)
        self.decode_failures: Dict[str, str] = {}
        self.epoch_decode_failures = 0

    def _note_failures(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            return
        for path, reason in meta.get("decode_failures", ()):
            self.epoch_decode_failures += 1
            if path in self.decode_failures:
                continue
            self.decode_failures[path] = reason
            if self.num_workers > 0:  # in-process datasets log it themselves
                logger.warning("decode failure: %s (%s)", path, reason)
        if len(self.decode_failures) > self.max_decode_failures:
            listing = "\n".join(f"  {p}: {r}" for p, r in sorted(self.decode_failures.items()))
            raise RuntimeError(
                f"{len(self.decode_failures)} videos failed to decode, more than "
                f"DATA_LOADER.MAX_DECODE_FAILURES = {self.max_decode_failures}:\n{listing}"
            )

    def __iter__(self) -> Iterator:
        self.epoch_decode_failures = 0
        for batch in super().__iter__():
            if isinstance(batch, (list, tuple)) and len(batch) == 4:
                self._note_failures(batch[3])
            yield batch


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def per_process_batch_size(total: int, num_gpus: int, world_size: int) -> int:
    """``total / max(1, num_gpus)``; on CPU (``num_gpus == 0``) ``total / world_size``."""
    divisor = num_gpus if num_gpus > 0 else world_size
    divisor = max(1, divisor)
    if total % divisor != 0 or total < divisor:
        raise ValueError(
            f"batch size {total} cannot be split evenly over {divisor} processes "
            "(TRAIN.BATCH_SIZE / TEST.BATCH_SIZE vs NUM_GPUS or the world size)"
        )
    return total // divisor


def construct_loader(cfg, split: str, is_precise_bn: bool = False) -> ClipLoader:
    """DataLoader of ``split`` ("train", "val", "test").

    train: ``TRAIN.DATASET``, ``TRAIN.BATCH_SIZE``, shuffled, last partial batch dropped;
    val: ``TRAIN.DATASET``, ``TRAIN.BATCH_SIZE``, in order; test: ``TEST.DATASET``,
    ``TEST.BATCH_SIZE``, in order. The batch size is per process (see
    :func:`per_process_batch_size`); with more than one process a ``DistributedSampler`` splits
    the data (shuffled in train; call :func:`shuffle_dataset` every epoch).
    ``is_precise_bn`` is accepted for PySlowFast's callers; it only changes multigrid
    sampling there, which is not supported here.
    """
    del is_precise_bn
    if split == "train":
        name, total, shuffle, drop_last = cfg.TRAIN.DATASET, cfg.TRAIN.BATCH_SIZE, True, True
    elif split == "val":
        name, total, shuffle, drop_last = cfg.TRAIN.DATASET, cfg.TRAIN.BATCH_SIZE, False, False
    elif split == "test":
        name, total, shuffle, drop_last = cfg.TEST.DATASET, cfg.TEST.BATCH_SIZE, False, False
    else:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    world = _world_size()
    batch_size = per_process_batch_size(int(total), int(cfg.NUM_GPUS), world)
    dataset = build_dataset(name, cfg, split)
    rank = torch.distributed.get_rank() if world > 1 else 0
    # The order is a function of (RNG_SEED, epoch) and each item's random draws of (RNG_SEED,
    # epoch, position): the data of a resumed run are those of an uninterrupted one.
    sampler = EpochSampler(len(dataset), shuffle, int(cfg.RNG_SEED), world, rank)
    # Workers' base seeds from a private generator: making an iterator draws nothing from the
    # global RNG (whose state checkpoints carry).
    generator = torch.Generator()
    generator.manual_seed(int(cfg.RNG_SEED))
    return ClipLoader(
        SeededItems(dataset),
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        generator=generator,
        num_workers=int(cfg.DATA_LOADER.NUM_WORKERS),
        pin_memory=bool(cfg.DATA_LOADER.PIN_MEMORY) and torch.cuda.is_available(),
        drop_last=drop_last,
        collate_fn=detection_collate if cfg.DETECTION.ENABLE else collate_clips,
        max_decode_failures=int(cfg.DATA_LOADER.MAX_DECODE_FAILURES),
    )


def shuffle_dataset(loader: DataLoader, cur_epoch: int) -> None:
    """Use epoch ``cur_epoch``'s order (``sampler.set_epoch``), from its start."""
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler) or hasattr(sampler, "set_epoch"):
        sampler.set_epoch(cur_epoch)


__all__: List[str] = [
    "ClipLoader",
    "collate_clips",
    "detection_collate",
    "construct_loader",
    "per_process_batch_size",
    "shuffle_dataset",
]
