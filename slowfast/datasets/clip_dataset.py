"""What the clip datasets (Kinetics videos, Charades frames) share: the split, the clips of a
video (1, or ``TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS`` in test), each clip's view
and scales (PySlowFast's rules), the retry budget, and the bounded record of unreadable files
(``DATA_LOADER.MAX_DECODE_FAILURES``)."""

from __future__ import annotations

import logging
from typing import Dict, Tuple

import torch
import torch.utils.data

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def check_scales(cfg, split: str) -> None:
    """The crop of ``split`` must fit in the scaled short side; ValueError naming the keys."""
    data = cfg.DATA
    lo, hi = data.TRAIN_JITTER_SCALES
    if split == "test":
        if cfg.TEST.NUM_SPATIAL_CROPS == 1 and lo < data.TEST_CROP_SIZE:
            raise ValueError(
                f"with TEST.NUM_SPATIAL_CROPS 1 the short side is scaled to "
                f"DATA.TRAIN_JITTER_SCALES[0] = {lo}, smaller than DATA.TEST_CROP_SIZE = "
                f"{data.TEST_CROP_SIZE}"
            )
        return
    if not lo <= hi:
        raise ValueError(f"DATA.TRAIN_JITTER_SCALES must be [min, max], got {[lo, hi]}")
    if lo < data.TRAIN_CROP_SIZE:
        raise ValueError(
            f"DATA.TRAIN_JITTER_SCALES[0] = {lo} is smaller than DATA.TRAIN_CROP_SIZE = "
            f"{data.TRAIN_CROP_SIZE}: the crop must fit in the scaled short side"
        )


def in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


class ClipDataset(torch.utils.data.Dataset):
    """Base of the clip datasets. A subclass sets ``dataset_name``, ``failure_log`` (the log
    line's start for an unreadable file) and ``failure_text`` (what too many of them are,
    with ``{split}``), calls ``super().__init__`` first and defines ``num_videos``."""

    dataset_name = "clip"
    failure_log = "unreadable file"
    failure_text = "files of the {split} split cannot be read"

    def __init__(self, cfg, split: str, num_retries: int = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"{self.dataset_name} split must be one of {SPLITS}, got {split!r}")
        self.cfg = cfg
        self.split = split
        self.mode = split  # PySlowFast's attribute name
        self._num_retries = int(cfg.DATA_LOADER.NUM_RETRIES if num_retries is None else num_retries)
        self._max_failures = int(cfg.DATA_LOADER.MAX_DECODE_FAILURES)
        if split == "test":
            self._num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
        else:
            self._num_clips = 1
        check_scales(cfg, split)
        self.decode_failures: Dict[str, str] = {}

    @property
    def num_videos(self) -> int:
        raise NotImplementedError

    @property
    def num_clips(self) -> int:
        """Clips per video: 1, or NUM_ENSEMBLE_VIEWS x NUM_SPATIAL_CROPS in test."""
        return self._num_clips

    def __len__(self) -> int:
        return self.num_videos * self._num_clips

    def _view(self, index: int) -> Tuple[int, int, int, int, int]:
        """``(temporal view, spatial idx, min scale, max scale, crop size)`` of clip ``index``:
        a random view, scale and crop in train and val; in test the temporal view and the
        spatial crop of the clip, the short side scaled to the crop size with several crops
        (along the long side), or to ``TRAIN_JITTER_SCALES[0]`` with one, then the centre
        crop (PySlowFast's rules)."""
        data = self.cfg.DATA
        if self.split in ("train", "val"):
            lo, hi = data.TRAIN_JITTER_SCALES
            return (-1, -1, lo, hi, data.TRAIN_CROP_SIZE)
        crops = self.cfg.TEST.NUM_SPATIAL_CROPS
        clip_idx = index % self._num_clips
        crop = data.TEST_CROP_SIZE
        if crops > 1:
            spatial, scale = clip_idx % crops, crop
        else:
            spatial, scale = 1, data.TRAIN_JITTER_SCALES[0]
        return (clip_idx // crops, spatial, scale, scale, crop)

    def _record_failure(self, path: str, reason: str) -> None:
        """Remember an unreadable file (logged once; inside a DataLoader worker at debug level,
        the loader logs it once across workers); RuntimeError listing them all once there are
        more than ``DATA_LOADER.MAX_DECODE_FAILURES``."""
        if path in self.decode_failures:
            return
        self.decode_failures[path] = reason
        (logger.debug if in_worker() else logger.warning)(
            "%s: %s (%s)", self.failure_log, path, reason
        )
        if len(self.decode_failures) > self._max_failures:
            listing = "\n".join(f"  {p}: {r}" for p, r in sorted(self.decode_failures.items()))
            what = self.failure_text.format(split=self.split)
            raise RuntimeError(
                f"{len(self.decode_failures)} {what}, more than "
                f"DATA_LOADER.MAX_DECODE_FAILURES = {self._max_failures}:\n{listing}"
            )
