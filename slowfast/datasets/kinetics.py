"""Kinetics-format video classification dataset (PySlowFast's ``kinetics``).

Split files ``DATA.PATH_TO_DATA_DIR/{train,val,test}.csv`` hold one ``path<SEP>label`` line per
video, ``SEP`` = ``DATA.PATH_LABEL_SEPARATOR``; each path is joined to ``DATA.PATH_PREFIX``.
A line is split at the LAST separator, so a path containing the separator (e.g. spaces) still
reads. Train and val draw one clip per video at a random time with random scale
(``DATA.TRAIN_JITTER_SCALES``), crop (``DATA.TRAIN_CROP_SIZE``) and flip, as PySlowFast does;
test reads ``TEST.NUM_ENSEMBLE_VIEWS`` evenly spaced clips x ``TEST.NUM_SPATIAL_CROPS`` crops
of ``DATA.TEST_CROP_SIZE``: with 3 crops the short side is scaled to ``DATA.TEST_CROP_SIZE``
and the crops are left/top, centre, right/bottom; with 1 crop the short side is scaled to
``DATA.TRAIN_JITTER_SCALES[0]`` and the centre is cropped (PySlowFast's rule). Item ``index`` of the test split is clip
``index % num_clips`` of video ``index // num_clips``: temporal view
``clip // NUM_SPATIAL_CROPS``, spatial crop ``clip % NUM_SPATIAL_CROPS``.

Decode failures: a video that cannot be opened or decoded is logged (once, with the file and
the reason) and counted per dataset object. In train/val the item is replaced by another random
video (at most ``DATA_LOADER.NUM_RETRIES`` attempts); in test the same clip is retried and then
an error names the file (another video's label must not stand in for it). The failures met while
producing an item are returned in ``meta["decode_failures"]`` as ``[path, reason]`` pairs, which
the loader of ``slowfast.datasets.loader`` gathers across DataLoader workers; more than
``DATA_LOADER.MAX_DECODE_FAILURES`` distinct bad files stop the run with their list.
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Tuple

import torch
import torch.utils.data
from iopath.common.file_io import g_pathmgr

from slowfast.datasets import utils
from slowfast.datasets.build import DATASET_REGISTRY, DataError
from slowfast.datasets.clip_dataset import ClipDataset
from slowfast.datasets.decoder import decode
from slowfast.datasets.video_container import DecodeError

logger = logging.getLogger(__name__)


def read_labelled_list(
    path_to_file: str, separator: str, prefix: str = "", num_classes: Optional[int] = None
) -> List[Tuple[str, int]]:
    """Read ``path<separator>label`` lines into ``(os.path.join(prefix, path), label)`` pairs.

    Blank lines are skipped. Each line is split at the last occurrence of ``separator`` (any
    whitespace when the separator is blank), so paths may contain the separator. A malformed
    line, or (with ``num_classes``) a label outside ``[0, num_classes)``, raises ``DataError``
    naming the file and the line number.
    """
    if not g_pathmgr.exists(path_to_file):
        raise FileNotFoundError(f"split file {path_to_file} not found (DATA.PATH_TO_DATA_DIR)")
    sep = None if separator.strip() == "" else separator
    items = []
    with g_pathmgr.open(path_to_file, "r") as f:
        for line_no, line in enumerate(f.read().splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.rsplit(sep, 1)
            if len(fields) != 2 or not fields[0].strip():
                raise DataError(
                    f"{path_to_file}:{line_no}: expected 'path{separator!r}label' "
                    f"(DATA.PATH_LABEL_SEPARATOR = {separator!r}), got {line!r}"
                )
            path, label = fields[0].strip(), fields[1].strip()
            try:
                label_id = int(label)
            except ValueError:
                raise DataError(
                    f"{path_to_file}:{line_no}: label {label!r} is not an integer "
                    f"(DATA.PATH_LABEL_SEPARATOR = {separator!r}), line {line!r}"
                ) from None
            if num_classes is not None and not 0 <= label_id < num_classes:
                raise DataError(
                    f"{path_to_file}:{line_no}: label {label_id} is outside [0, "
                    f"MODEL.NUM_CLASSES = {num_classes}), line {line!r}"
                )
            items.append((os.path.join(prefix, path), label_id))
    if not items:
        raise DataError(f"split file {path_to_file} lists no video")
    return items


@DATASET_REGISTRY.register()
class Kinetics(ClipDataset):
    """Kinetics video dataset; see the module docstring."""

    dataset_name = "Kinetics"
    failure_log = "decode failure"
    failure_text = "videos of the Kinetics {split} split failed to decode"

    def __init__(self, cfg, split: str, num_retries: int = None) -> None:
        super().__init__(cfg, split, num_retries)
        csv = os.path.join(cfg.DATA.PATH_TO_DATA_DIR, f"{split}.csv")
        videos = read_labelled_list(
            csv, cfg.DATA.PATH_LABEL_SEPARATOR, cfg.DATA.PATH_PREFIX, int(cfg.MODEL.NUM_CLASSES)
        )
        self._path_to_videos = [p for p, _ in videos]
        self._labels = [label for _, label in videos]
        logger.info(
            "Kinetics %s: %d videos x %d clips from %s", split, len(videos), self._num_clips, csv
        )

    @property
    def num_videos(self) -> int:
        return len(self._path_to_videos)

    @property
    def video_paths(self) -> List[str]:
        """The video files, one per video."""
        return list(self._path_to_videos)

    def video_path(self, index: int) -> str:
        """File of the clip ``index``."""
        return self._path_to_videos[index // self._num_clips]

    def _another_index(self) -> int:
        """A random clip index, avoiding the videos known to fail where possible."""
        good = [i for i, p in enumerate(self._path_to_videos) if p not in self.decode_failures]
        pool = good or list(range(self.num_videos))
        video = pool[int(torch.randint(0, len(pool), ()).item())]
        return video * self._num_clips

    def __getitem__(self, index: int):
        cfg = self.cfg
        failures: List[List[str]] = []
        attempts = max(1, self._num_retries)
        for _ in range(attempts):
            path = self.video_path(index)
            temporal, spatial, min_scale, max_scale, crop = self._view(index)
            num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS if self.split == "test" else 1
            try:
                frames, _ = decode(
                    path,
                    num_frames=cfg.DATA.NUM_FRAMES,
                    sampling_rate=cfg.DATA.SAMPLING_RATE,
                    clip_idx=temporal,
                    num_clips=num_clips,
                    target_fps=cfg.DATA.TARGET_FPS,
                    backend=cfg.DATA.DECODING_BACKEND,
                    multi_thread_decode=cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE,
                    use_offset=bool(cfg.DATA.USE_OFFSET_SAMPLING),
                )
            except DecodeError as err:
                failures.append([err.path, err.reason])
                self._record_failure(err.path, err.reason)
                if self.split != "test":
                    index = self._another_index()
                continue
            # (T, H, W, C) uint8 -> (C, T, H, W); scaling (if any) makes floats in [0, 255];
            # cropping before the conversion keeps the pixels converted to the ones kept.
            frames = frames.permute(3, 0, 1, 2)
            frames = utils.spatial_sampling(
                frames,
                spatial_idx=spatial,
                min_scale=min_scale,
                max_scale=max_scale,
                crop_size=crop,
                random_horizontal_flip=cfg.DATA.RANDOM_FLIP,
                inverse_uniform_sampling=cfg.DATA.INV_UNIFORM_SAMPLE,
            )
            if frames.is_floating_point():  # scaled: floats in [0, 255]
                frames = frames / 255.0
            frames = utils.tensor_normalize(frames, cfg.DATA.MEAN, cfg.DATA.STD, channel_dim=0)
            label = self._labels[index // self._num_clips]
            meta = {"decode_failures": failures}
            return utils.pack_pathway_output(cfg, frames), label, index, meta
        if self.split == "test":
            path, reason = failures[-1]
            raise RuntimeError(
                f"test clip {index} of {path} could not be decoded after {attempts} attempts "
                f"(DATA_LOADER.NUM_RETRIES): {reason}"
            )
        listing = "; ".join(f"{p}: {r}" for p, r in failures)
        raise RuntimeError(
            f"Kinetics {self.split}: no decodable video after {attempts} attempts "
            f"(DATA_LOADER.NUM_RETRIES); failures: {listing}"
        )
