"""Charades-format multi-label frame dataset (PySlowFast's ``charades``).

Frame lists (:mod:`slowfast.datasets.frame_list`): ``DATA.PATH_TO_DATA_DIR/train.csv`` for
train, ``DATA.PATH_TO_DATA_DIR/val.csv`` for val and test (Charades has no labelled test set);
each frame path is joined to ``DATA.PATH_PREFIX`` (the ``Charades_v1_rgb`` folder). Every class
id must be in ``[0, MODEL.NUM_CLASSES)``.

Clips, as PySlowFast samples them: ``DATA.NUM_FRAMES`` frame indices ``start + i *
DATA.SAMPLING_RATE`` clamped to the video's frames. Train and val draw ``start`` at random (a
clip longer than the video may start before frame 0, its first frames then repeat frame 0);
test reads ``TEST.NUM_ENSEMBLE_VIEWS`` clips whose starts are spread evenly from 0 to ``frames -
clip span`` (``round(gap * view)``), each in ``TEST.NUM_SPATIAL_CROPS`` crops. Test item
``index`` is clip ``index % num_clips`` of video ``index // num_clips``: temporal view ``clip //
NUM_SPATIAL_CROPS``, crop ``clip % NUM_SPATIAL_CROPS``. Scale, crop, flip, normalisation and
the pathway packing are those of :mod:`slowfast.datasets.kinetics`.

Targets are multi-hot float tensors of ``MODEL.NUM_CLASSES``:

* train: the union of the labels of every frame from the clip's first sampled frame to its
  last (``seq[0] .. seq[-1]``, inclusive; PySlowFast's rule);
* val and test: the video's labels (the union over all its frames; PySlowFast's rule, and the
  test meter needs every view of a video to carry the same target);
* train with ``PGT.ENABLE``: a ``(PGT.STEPS, NUM_CLASSES)`` tensor whose row ``k`` is the union
  over the frames of step ``k``'s span including its carried frames, ``seq[k (T' - o)] ..
  seq[k (T' - o) + T' - 1]`` with ``T' = PGT.STEP_LEN[-1]``, ``o = PGT.OVERLAP[-1]`` (the Fast
  pathway's for SlowFast: ``DATA.NUM_FRAMES`` counts Fast frames). For o = 1 the last position
  is ``k (T' - o) + T' - o`` (DESIGN.md); for SlowFast's Fast o = ALPHA the span holds all o
  carried frames, so the last step ends at the clip's last frame and the rows' union is the
  clip's target. The progressive runner supervises step ``k`` with row ``k`` (``PGT.DPR``,
  which redraws the steps per iteration, is rejected for multi-label data by the config check).

Unreadable frames are handled as Kinetics handles unreadable videos: in train/val the item is
replaced by another random video (``DATA_LOADER.NUM_RETRIES`` attempts), in test the clip is
retried and then an error names the frame; failures go to ``meta["decode_failures"]`` and more
than ``DATA_LOADER.MAX_DECODE_FAILURES`` distinct bad frames stop the run with their list.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator, List, Sequence, Tuple

import torch
import torch.utils.data

from slowfast.datasets import utils
from slowfast.datasets.build import DATASET_REGISTRY, DataError
from slowfast.datasets.clip_dataset import ClipDataset
from slowfast.datasets.frame_list import FrameList, FrameReadError, load_frames, read_frame_list

logger = logging.getLogger(__name__)


def split_file(cfg, split: str) -> str:
    """The frame list of ``split``: ``train.csv``, or ``val.csv`` for val and test."""
    name = "train" if split == "train" else "val"
    return os.path.join(cfg.DATA.PATH_TO_DATA_DIR, f"{name}.csv")


def check_labels(frame_list: FrameList, num_classes: int) -> None:
    """Every class id of ``frame_list`` must be in ``[0, num_classes)``; else ``DataError``
    naming the file, the line and ``MODEL.NUM_CLASSES``."""
    for v, per_frame in enumerate(frame_list.frame_labels):
        for i, labels in enumerate(per_frame):
            for label in labels:
                if not 0 <= label < num_classes:
                    line = frame_list.line_numbers[v][i]
                    raise DataError(
                        f"{frame_list.path}:{line}: class id {label} of video "
                        f"{frame_list.video_names[v]!r} is outside [0, MODEL.NUM_CLASSES = "
                        f"{num_classes})"
                    )


def clip_frame_indices(
    video_length: int,
    num_frames: int,
    sampling_rate: int,
    temporal_index: int,
    num_views: int,
    generator: torch.Generator = None,
) -> List[int]:
    """The ``num_frames`` frame indices of a clip of a ``video_length``-frame video.

    ``temporal_index == -1``: a random start (train, val); else view ``temporal_index`` of
    ``num_views`` evenly spread views (test; one view starts at frame 0). Indices ``start + i *
    sampling_rate`` are clamped to ``[0, video_length - 1]``.
    """
    if video_length < 1:
        raise ValueError("a video needs at least one frame")
    span = (num_frames - 1) * sampling_rate + 1
    if temporal_index == -1:
        lo, hi = (video_length - span, 0) if span > video_length else (0, video_length - span)
        start = int(torch.randint(lo, hi + 1, (), generator=generator))
    else:
        gap = max(video_length - span, 0) / (num_views - 1) if num_views > 1 else 0.0
        start = int(round(gap * temporal_index))
    return [min(max(start + i * sampling_rate, 0), video_length - 1) for i in range(num_frames)]


def step_spans(step_len: int, overlap: int, steps: int) -> List[Tuple[int, int]]:
    """Positions ``(first, last)`` (inclusive) in the sampled index list of each PGT step's
    span including its carried frames: ``(k (T' - o), k (T' - o) + T' - 1)``, the T' frames
    step ``k`` sees (``o`` carried, ``T' - o`` new; ``k (T' - o) + T' - o`` for o = 1)."""
    stride = step_len - overlap
    return [(k * stride, k * stride + step_len - 1) for k in range(steps)]


def union_labels(per_frame: Sequence[Sequence[int]], first: int, last: int) -> List[int]:
    """Sorted union of the labels of frames ``first .. last`` (inclusive)."""
    out = set()
    for labels in per_frame[first : last + 1]:
        out.update(labels)
    return sorted(out)


def multi_hot(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    target = torch.zeros(num_classes)
    if len(labels):
        target[torch.as_tensor(list(labels), dtype=torch.long)] = 1.0
    return target


@DATASET_REGISTRY.register()
class Charades(ClipDataset):
    """Charades frame dataset; see the module docstring."""

    dataset_name = "Charades"
    failure_log = "unreadable frame"
    failure_text = "frames of the Charades {split} split cannot be read"

    def __init__(self, cfg, split: str, num_retries: int = None) -> None:
        super().__init__(cfg, split, num_retries)
        self.num_classes = int(cfg.MODEL.NUM_CLASSES)
        path = split_file(cfg, split)
        self.frame_list = read_frame_list(path, cfg.DATA.PATH_PREFIX, key="DATA.PATH_TO_DATA_DIR")
        if len(self.frame_list) == 0:
            raise DataError(f"frame list {path} lists no frame")
        check_labels(self.frame_list, self.num_classes)
        self._video_labels = [
            union_labels(per_frame, 0, len(per_frame) - 1)
            for per_frame in self.frame_list.frame_labels
        ]
        self._step_spans = None
        if cfg.PGT.ENABLE and split == "train":
            self._step_spans = step_spans(
                int(cfg.PGT.STEP_LEN[-1]), int(cfg.PGT.OVERLAP[-1]), int(cfg.PGT.STEPS)
            )
            if self._step_spans[-1][1] != cfg.DATA.NUM_FRAMES - 1:
                raise DataError(
                    f"PGT steps ({cfg.PGT.STEPS} x STEP_LEN {cfg.PGT.STEP_LEN[-1]}, OVERLAP "
                    f"{cfg.PGT.OVERLAP[-1]}) do not tile DATA.NUM_FRAMES = {cfg.DATA.NUM_FRAMES}"
                )
        self._bad_videos: set = set()
        logger.info(
            "Charades %s: %d videos (%d frames) x %d clips from %s",
            split,
            self.num_videos,
            sum(len(p) for p in self.frame_list.frame_paths),
            self._num_clips,
            path,
        )

    @property
    def num_videos(self) -> int:
        return len(self.frame_list.video_names)

    @property
    def video_names(self) -> List[str]:
        return list(self.frame_list.video_names)

    @property
    def frame_paths(self) -> List[List[str]]:
        """The frame files of each video, in order."""
        return self.frame_list.frame_paths

    @property
    def _path_to_videos(self) -> List[List[str]]:  # PySlowFast's attribute
        return self.frame_list.frame_paths

    def listed_frames(self) -> Iterator[Tuple[str, str]]:
        """``(frame path, "list file:line")`` of every frame listed (``tools/check_dataset.py``)."""
        fl = self.frame_list
        for paths, lines in zip(fl.frame_paths, fl.line_numbers):
            for path, line in zip(paths, lines):
                yield path, f"{fl.path}:{line}"

    def video_labels(self, video: int) -> List[int]:
        """The class ids of any frame of ``video``."""
        return list(self._video_labels[video])

    def frame_indices(self, index: int) -> List[int]:
        """The sampled frame indices of item ``index`` (random in train and val)."""
        temporal = self._view(index)[0]
        video = index // self._num_clips
        return clip_frame_indices(
            len(self.frame_list.frame_paths[video]),
            int(self.cfg.DATA.NUM_FRAMES),
            int(self.cfg.DATA.SAMPLING_RATE),
            temporal,
            int(self.cfg.TEST.NUM_ENSEMBLE_VIEWS),
        )

    def target(self, video: int, seq: Sequence[int]) -> torch.Tensor:
        """The target of a clip of ``video`` at frame indices ``seq`` (see the module
        docstring): ``(NUM_CLASSES,)``, or ``(PGT.STEPS, NUM_CLASSES)`` in PGT training."""
        per_frame = self.frame_list.frame_labels[video]
        if self.split != "train":
            return multi_hot(self._video_labels[video], self.num_classes)
        if self._step_spans is None:
            return multi_hot(union_labels(per_frame, seq[0], seq[-1]), self.num_classes)
        rows = [
            multi_hot(union_labels(per_frame, seq[a], seq[b]), self.num_classes)
            for a, b in self._step_spans
        ]
        return torch.stack(rows)

    def _another_index(self) -> int:
        """A random video's index, avoiding the videos known to fail where possible."""
        good = [v for v in range(self.num_videos) if v not in self._bad_videos]
        pool = good or list(range(self.num_videos))
        return pool[int(torch.randint(0, len(pool), ()).item())] * self._num_clips

    def __getitem__(self, index: int):
        cfg = self.cfg
        failures: List[List[str]] = []
        attempts = max(1, self._num_retries)
        for _ in range(attempts):
            video = index // self._num_clips
            _, spatial, min_scale, max_scale, crop = self._view(index)
            seq = self.frame_indices(index)
            paths = self.frame_list.frame_paths[video]
            try:
                frames = load_frames([paths[i] for i in seq])
            except FrameReadError as err:
                failures.append([err.path, err.reason])
                self._bad_videos.add(video)
                self._record_failure(err.path, err.reason)
                if self.split != "test":
                    index = self._another_index()
                continue
            frames = frames.permute(3, 0, 1, 2)  # (T, H, W, C) -> (C, T, H, W)
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
            meta = {"decode_failures": failures}
            return utils.pack_pathway_output(cfg, frames), self.target(video, seq), index, meta
        if self.split == "test":
            path, reason = failures[-1]
            name = self.frame_list.video_names[index // self._num_clips]
            raise RuntimeError(
                f"test clip {index} of video {name!r} could not be read after {attempts} "
                f"attempts (DATA_LOADER.NUM_RETRIES): {path}: {reason}"
            )
        listing = "; ".join(f"{p}: {r}" for p, r in failures)
        raise RuntimeError(
            f"Charades {self.split}: no readable clip after {attempts} attempts "
            f"(DATA_LOADER.NUM_RETRIES); failures: {listing}"
        )
