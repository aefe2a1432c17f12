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


def check_ava_split(cfg, split: str, dataset=None) -> List[Tuple[str, str]]:
    """AVA: ``(path, reason)`` of every problem of ``split``.

    Building the dataset parses the frame lists, the box CSVs and the label map (errors there
    name the file and line, and an action id above ``MODEL.NUM_CLASSES`` names the files); then
    every listed frame must exist, the first, middle and last frame of each video must decode,
    each keyframe must be inside its video's frames, and in val / test the
    ``AVA.GROUNDTRUTH_FILE`` and ``AVA.EXCLUSION_FILE`` must parse.
    """
    import os

    from iopath.common.file_io import g_pathmgr

    from slowfast.datasets import ava_helper
    from slowfast.datasets.frame_list import load_frames

    dataset = dataset if dataset is not None else build_dataset("ava", cfg, split)
    bad: List[Tuple[str, str]] = []
    for name, paths in zip(dataset.video_names, dataset._image_paths):
        missing = [p for p in paths if not g_pathmgr.isfile(p)]
        bad.extend((p, f"frame of video {name} listed but missing") for p in missing[:20])
        if len(missing) > 20:
            bad.append((missing[20], f"and {len(missing) - 21} more missing frames of {name}"))
        for p in dict.fromkeys([paths[0], paths[len(paths) // 2], paths[-1]]):
            if p in missing:
                continue
            try:
                load_frames([p], retries=1)
            except (OSError, ValueError) as err:
                bad.append((p, str(err)))
    for video_idx, _, sec, frame in dataset._keyframe_indices:
        n = len(dataset._image_paths[video_idx])
        if frame >= n:
            bad.append(
                (
                    dataset.video_names[video_idx],
                    f"keyframe second {sec} is frame {frame}, but the video lists {n} frames",
                )
            )
    if split != "train":
        ann = cfg.AVA.ANNOTATION_DIR
        gt = os.path.join(ann, cfg.AVA.GROUNDTRUTH_FILE)
        exclusions = os.path.join(ann, cfg.AVA.EXCLUSION_FILE)
        for path, read in (
            (gt, lambda p: ava_helper.parse_bboxes_file([p], [True], 0.0, 1, dataset._num_classes)),
            (exclusions, ava_helper.read_exclusions),
        ):
            try:
                read(path)
            except (FileNotFoundError, ValueError) as err:
                bad.append((path, str(err)))
    return bad


def check_charades_split(cfg, split: str, dataset=None) -> List[Tuple[str, str]]:
    """Charades: ``(frame path, reason)`` of every listed frame that is missing or does not
    decode; the reason names the frame list and line. Building the dataset parses the frame list
    (errors name file and line; a class id >= ``MODEL.NUM_CLASSES`` too)."""
    from slowfast.datasets.frame_list import probe_frame

    dataset = dataset if dataset is not None else build_dataset("charades", cfg, split)
    bad = []
    seen = set()
    for path, where in dataset.listed_frames():
        if path in seen:
            continue
        seen.add(path)
        reason = probe_frame(path)
        if reason is not None:
            bad.append((path, f"{reason} (listed at {where})"))
    return bad


def check_split(cfg, split: str) -> List[Tuple[str, str]]:
    """``(path, reason)`` of every unreadable video of ``split`` of the configured dataset."""
    name = cfg.TEST.DATASET if split == "test" else cfg.TRAIN.DATASET
    if name.lower() == "ava":
        return check_ava_split(cfg, split)
    if name.lower() == "charades":
        return check_charades_split(cfg, split)
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
