"""Synthetic Charades-format data: JPEG frame folders and frame lists, multi-label per frame.

Each class is a coloured shape (class ``c``: colour ``PALETTE[c % 6]``, shape ``SHAPES[(c // 6)
% 4]`` of :mod:`slowfast.datasets.synthetic`) that is visible on the frames of some intervals
of a video; a frame's labels are the classes whose shape it shows, so what a model sees decides
the labels. In each video a class is present with probability ``present_prob``, in one interval
(two with probability ``second_interval_prob``) of ``interval_frac`` of the video's length; a
present shape drifts slowly inside its own cell of a grid over the central part of the frame
(shapes never overlap, and training crops keep them).
The background is a random dark grey with mild noise.

Layout (as the official Charades release and PySlowFast's frame lists)::

    out_dir/train.csv, out_dir/val.csv          frame lists (header + one line per frame)
    out_dir/Charades_v1_rgb/<video>/<video>-000001.jpg ...
    out_dir/synthetic.json                      arguments, and each video's class intervals

Use ``DATA.PATH_TO_DATA_DIR out_dir DATA.PATH_PREFIX out_dir/Charades_v1_rgb``. Output is
deterministic for a seed (each video has its own generator seeded by (seed, split, video)).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from slowfast.datasets.frame_list import write_frame_list
from slowfast.datasets.synthetic import (
    PALETTE,
    SHAPES,
    SPLIT_IDS,
    MovingShape,
    VideoSpec,
    render_video,
)

FRAME_DIR = "Charades_v1_rgb"
MAX_CLASSES = len(PALETTE) * len(SHAPES)

Interval = Tuple[int, int]  # first, last frame (inclusive)


def class_look(class_id: int) -> Tuple[str, Tuple[int, int, int]]:
    """(shape, colour) of class ``class_id``."""
    if not 0 <= class_id < MAX_CLASSES:
        raise ValueError(f"class_id must be in [0, {MAX_CLASSES}), got {class_id}")
    return SHAPES[(class_id // len(PALETTE)) % len(SHAPES)], PALETTE[class_id % len(PALETTE)]


def charades_video_spec(
    num_classes: int,
    rng: np.random.Generator,
    num_frames: int,
    width: int = 64,
    height: int = 64,
    fps: float = 24.0,
    present_prob: float = 0.5,
    interval_frac: Tuple[float, float] = (0.15, 0.35),
    second_interval_prob: float = 0.25,
    noise: float = 3.0,
) -> Tuple[VideoSpec, Dict[int, List[Interval]]]:
    """A random video and, per present class, its visible intervals ``(first, last)``."""
    side = min(width, height)
    objects = []
    intervals: Dict[int, List[Interval]] = {}
    # each class gets its own cell of a grid over the central 70 % of the frame, so shapes never
    # hide each other and training crops keep them
    grid = int(np.ceil(np.sqrt(num_classes)))
    cell_w, cell_h = 0.7 * width / grid, 0.7 * height / grid
    cells = rng.permutation(grid * grid)
    for c in range(num_classes):
        if rng.random() >= present_prob:
            continue
        spans: List[Interval] = []
        for _ in range(2 if rng.random() < second_interval_prob else 1):
            length = max(1, int(round(rng.uniform(*interval_frac) * num_frames)))
            first = int(rng.integers(0, num_frames - length + 1))
            spans.append((first, first + length - 1))
        spans = _merge(spans)
        intervals[c] = spans
        shape, color = class_look(c)
        row, col = divmod(int(cells[c]), grid)
        size = float(min(rng.uniform(0.09, 0.12) * side, 0.38 * min(cell_w, cell_h)))
        # the shape drifts in a straight line inside its cell
        room_x, room_y = max(cell_w / 2 - size - 1, 0.0), max(cell_h / 2 - size - 1, 0.0)
        x0 = 0.15 * width + (col + 0.5) * cell_w
        y0 = 0.15 * height + (row + 0.5) * cell_h
        start = (x0 + rng.uniform(-room_x, room_x), y0 + rng.uniform(-room_y, room_y))
        end = (x0 + rng.uniform(-room_x, room_x), y0 + rng.uniform(-room_y, room_y))
        steps = max(num_frames - 1, 1)
        velocity = ((end[0] - start[0]) / steps, (end[1] - start[1]) / steps)
        cx, cy = float(start[0]), float(start[1])
        for first, last in spans:
            objects.append(MovingShape(shape, color, size, (cx, cy), velocity, first, last))
    grey = int(rng.integers(20, 70))
    spec = VideoSpec(
        width,
        height,
        num_frames,
        fps,
        (grey, grey, grey),
        tuple(objects),
        noise,
        int(rng.integers(2**31)),
    )
    return spec, intervals


def _merge(spans: List[Interval]) -> List[Interval]:
    out: List[Interval] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def frame_labels(intervals: Dict[int, List[Interval]], num_frames: int) -> List[List[int]]:
    """Per frame, the sorted classes visible on it."""
    labels: List[List[int]] = [[] for _ in range(num_frames)]
    for c in sorted(intervals):
        for first, last in intervals[c]:
            for t in range(first, last + 1):
                labels[t].append(c)
    return labels


def make_charades_dataset(
    out_dir: str,
    num_classes: int = 4,
    train_videos: int = 32,
    val_videos: int = 16,
    min_frames: int = 60,
    max_frames: int = 80,
    width: int = 64,
    height: int = 64,
    fps: float = 24.0,
    present_prob: float = 0.5,
    interval_frac: Tuple[float, float] = (0.15, 0.35),
    jpeg_quality: int = 90,
    seed: int = 0,
    splits: Sequence[str] = ("train", "val"),
) -> Dict[str, object]:
    """Write a synthetic Charades-format dataset into ``out_dir`` (layout: module docstring).

    Videos have between ``min_frames`` and ``max_frames`` frames. Val doubles as test
    (PySlowFast's Charades tests on ``val.csv``).

    Returns:
        The summary written to ``synthetic.json``: arguments, videos per split, the mean
        fraction of positive (video, class) pairs per split, and ``intervals`` (split -> video
        -> class -> list of ``[first, last]`` frames).
    """
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    os.makedirs(os.path.join(out_dir, FRAME_DIR), exist_ok=True)
    counts: Dict[str, int] = {}
    positive_rate: Dict[str, float] = {}
    all_intervals: Dict[str, Dict[str, Dict[str, List[List[int]]]]] = {}
    video_id = 0
    for split in splits:
        if split not in ("train", "val"):
            raise ValueError(f"Charades splits are 'train' and 'val', got {split!r}")
        n = train_videos if split == "train" else val_videos
        rows = []
        split_intervals: Dict[str, Dict[str, List[List[int]]]] = {}
        positives = 0
        for index in range(n):
            rng = np.random.default_rng([seed, SPLIT_IDS[split], index, 11])
            length = int(rng.integers(min_frames, max_frames + 1))
            spec, intervals = charades_video_spec(
                num_classes, rng, length, width, height, fps, present_prob, interval_frac
            )
            name = f"{split[:2].upper()}{index:04d}"
            frames = render_video(spec)
            folder = os.path.join(out_dir, FRAME_DIR, name)
            os.makedirs(folder, exist_ok=True)
            per_frame = frame_labels(intervals, length)
            for t in range(length):
                rel = f"{name}/{name}-{t + 1:06d}.jpg"
                bgr = np.ascontiguousarray(frames[t][..., ::-1])
                ok = cv2.imwrite(
                    os.path.join(out_dir, FRAME_DIR, rel),
                    bgr,
                    [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
                )
                if not ok:
                    raise OSError(f"OpenCV could not write {os.path.join(out_dir, FRAME_DIR, rel)}")
                rows.append((name, video_id, t, rel, per_frame[t]))
            split_intervals[name] = {
                str(c): [list(s) for s in spans] for c, spans in sorted(intervals.items())
            }
            positives += len(intervals)
            video_id += 1
        write_frame_list(os.path.join(out_dir, f"{split}.csv"), rows)
        counts[split] = n
        positive_rate[split] = positives / max(n * num_classes, 1)
        all_intervals[split] = split_intervals
    summary = {
        "format": "charades",
        "num_classes": num_classes,
        "classes": {str(c): "{1} {0}".format(*class_look(c)) for c in range(num_classes)},
        "videos": counts,
        "video_positive_rate": positive_rate,
        "min_frames": min_frames,
        "max_frames": max_frames,
        "width": width,
        "height": height,
        "fps": fps,
        "present_prob": present_prob,
        "interval_frac": list(interval_frac),
        "seed": seed,
        "path_note": (
            f"set DATA.PATH_TO_DATA_DIR to this folder and DATA.PATH_PREFIX to "
            f"this folder/{FRAME_DIR}"
        ),
        "intervals": all_intervals,
    }
    with open(os.path.join(out_dir, "synthetic.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def read_summary(out_dir: str) -> Optional[dict]:
    """The ``synthetic.json`` of a dataset folder, or None."""
    path = os.path.join(out_dir, "synthetic.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


__all__ = [
    "FRAME_DIR",
    "MAX_CLASSES",
    "charades_video_spec",
    "class_look",
    "frame_labels",
    "make_charades_dataset",
    "read_summary",
]
