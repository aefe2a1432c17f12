"""Checking that every video of a dataset split opens and decodes (``tools/check_dataset.py``)."""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

from slowfast.datasets.build import build_dataset
from slowfast.datasets.decoder import (
    opencv_decode_frames,
    opencv_video_info,
    pyav_decode_all,
    pyav_decode_frames,
    pyav_video_info,
)
from slowfast.datasets.video_container import DecodeError, canonical_backend, get_video_container

logger = logging.getLogger(__name__)


def probe_video(path: str, backend: str = "pyav") -> Optional[str]:
    """Open ``path`` and decode its first, middle and last frames.

    Returns None when the video is fine, else the reason it is not (cannot open, no frame,
    fewer frames than its header says).
    """
    backend = canonical_backend(backend)
    try:
        opened = get_video_container(path, backend=backend)
    except DecodeError as err:
        return err.reason
    try:
        if backend == "pyav":
            info = pyav_video_info(opened)
            if not info.seekable:
                pyav_decode_all(opened, path)
                return None
            stats = {}
            n = info.num_frames
            pyav_decode_frames(opened, [0, n // 2, n - 1], info, path, stats)
            if stats.get("last_index", n - 1) < n - 1:
                return f"header says {n} frames but decoding stops at frame {stats['last_index']}"
            return None
        info = opencv_video_info(opened)
        n = max(info.num_frames, 1)
        opencv_decode_frames(opened, [0, n // 2, n - 1], path)
        return None
    except DecodeError as err:
        return err.reason
    finally:
        opened.close() if backend == "pyav" else opened.release()


def dataset_videos(dataset) -> List[str]:
    """The distinct video files of a dataset (``video_paths`` or PySlowFast's
    ``_path_to_videos``), in order."""
    paths = getattr(dataset, "video_paths", None)
    if paths is None:
        paths = dataset._path_to_videos
    return list(dict.fromkeys(paths))


def check_split(cfg, split: str) -> List[Tuple[str, str]]:
    """``(path, reason)`` of every unreadable video of ``split`` of the configured dataset."""
    name = cfg.TEST.DATASET if split == "test" else cfg.TRAIN.DATASET
    dataset = build_dataset(name, cfg, split)
    bad = []
    for path in dataset_videos(dataset):
        reason = probe_video(path, cfg.DATA.DECODING_BACKEND)
        if reason is not None:
            bad.append((path, reason))
    return bad


def check_splits(
    cfg, splits: Sequence[str] = ("train", "val", "test")
) -> List[Tuple[str, str, str]]:
    """``(split, path, reason)`` of the unreadable videos of ``splits``; a split whose list file
    is missing is reported as one entry."""
    out = []
    for split in splits:
        try:
            bad = check_split(cfg, split)
        except (FileNotFoundError, ValueError) as err:
            out.append((split, "", str(err)))
            continue
        out.extend((split, path, reason) for path, reason in bad)
    return out
