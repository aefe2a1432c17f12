"""PySlowFast's frame lists (Charades, AVA) and the frames they name.

A frame list is a text file with one header line (PySlowFast's reads
``original_vido_id video_id frame_id path labels``) and then one line per frame, five
space-separated fields::

    original_vido_id video_id frame_id path labels

``labels`` is a comma-separated list of integer class ids of that frame (Charades), and may be
empty (a line of 4 fields) or ``""`` (AVA writes ``""``); double quotes around it are ignored.
Frames are grouped by ``original_vido_id`` in the order the ids are first seen; within a video
the lines keep their order. :func:`read_frame_list` reads one, :func:`write_frame_list` writes
one (the synthetic generators use it), :func:`load_frames` reads the JPEGs of a clip with
OpenCV. Bad input raises ``slowfast.datasets.build.DataError`` (a ``ValueError``) naming the
file and line.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from iopath.common.file_io import g_pathmgr

from slowfast.datasets.build import DataError

logger = logging.getLogger(__name__)

HEADER = "original_vido_id video_id frame_id path labels"
HEADER_START = "original_vido_id"


class FrameReadError(OSError):
    """A frame that cannot be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str, message: Optional[str] = None) -> None:
        super().__init__(message or f"cannot read frame {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class FrameList:
    """Frames of a frame list, grouped by video (first-seen order).

    ``frame_paths[v][i]`` is the path (joined to the prefix) of frame ``i`` of video
    ``video_names[v]`` and ``frame_labels[v][i]`` its class ids; ``line_numbers[v][i]`` is the
    1-based line of the file it came from (for error messages).
    """

    video_names: List[str] = field(default_factory=list)
    frame_paths: List[List[str]] = field(default_factory=list)
    frame_labels: List[List[List[int]]] = field(default_factory=list)
    line_numbers: List[List[int]] = field(default_factory=list)
    path: str = ""

    def __len__(self) -> int:
        return len(self.video_names)


def _parse_labels(text: str, path: str, line_no: int, line: str) -> List[int]:
    text = text.replace('"', "")
    if text == "":
        return []
    out = []
    for item in text.split(","):
        try:
            out.append(int(item))
        except ValueError:
            raise DataError(
                f"{path}:{line_no}: label {item!r} is not an integer (labels must be "
                f"comma-separated class ids), line {line!r}"
            ) from None
    return out


def read_frame_list(path: str, prefix: str = "", key: Optional[str] = None) -> FrameList:
    """Read the frame list ``path``; each frame path is ``os.path.join(prefix, path)``.

    Raises ``FileNotFoundError`` naming the file (and ``key``, the config key that points to it,
    when given) when it does not exist, and ``DataError`` (a ``ValueError``) naming the file and
    the line for a missing header, a line without 5 fields (or 4: empty labels) or a label that
    is not an integer.
    """
    if not g_pathmgr.exists(path):
        where = f" (set {key})" if key else ""
        raise FileNotFoundError(f"frame list {path} not found{where}")
    with g_pathmgr.open(path, "r") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].strip().startswith(HEADER_START):
        first = lines[0] if lines else ""
        raise DataError(f"{path}:1: expected the header line '{HEADER}', got {first!r}")
    out = FrameList(path=path)
    index: Dict[str, int] = {}
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        row = line.split()
        if len(row) not in (4, 5):
            raise DataError(
                f"{path}:{line_no}: expected 5 space-separated fields "
                f"'{HEADER}' (4 when labels are empty), got {len(row)}: {line!r}"
            )
        name = row[0]
        labels = _parse_labels(row[4], path, line_no, line) if len(row) == 5 else []
        v = index.get(name)
        if v is None:
            v = index[name] = len(out.video_names)
            out.video_names.append(name)
            out.frame_paths.append([])
            out.frame_labels.append([])
            out.line_numbers.append([])
        out.frame_paths[v].append(os.path.join(prefix, row[3]) if prefix else row[3])
        out.frame_labels[v].append(labels)
        out.line_numbers[v].append(line_no)
    return out


def write_frame_list(
    path: str, rows: Iterable[Tuple[str, int, int, str, Sequence[int]]], quote_empty: bool = True
) -> None:
    """Write a frame list: the header, then one ``original_vido_id video_id frame_id path
    labels`` line per row of ``(video_name, video_id, frame_id, frame_path, labels)``.

    Labels are written comma-separated; an empty label list is written as ``""`` (what
    PySlowFast's reader, which needs 5 fields, accepts), or as nothing with ``quote_empty``
    False. Paths must not contain whitespace.
    """
    lines = [HEADER]
    for name, video_id, frame_id, frame_path, labels in rows:
        if any(c.isspace() for c in f"{name}{frame_path}"):
            raise ValueError(
                f"frame list fields cannot contain whitespace: {name!r} {frame_path!r}"
            )
        text = ",".join(str(int(x)) for x in labels)
        if not text and quote_empty:
            text = '""'
        lines.append(f"{name} {int(video_id)} {int(frame_id)} {frame_path} {text}")
    with g_pathmgr.open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _decode(path: str) -> Tuple[Optional[np.ndarray], str]:
    """``(BGR image, "")`` or ``(None, reason)``."""
    try:
        with g_pathmgr.open(path, "rb") as f:
            data = np.frombuffer(f.read(), np.uint8)
    except OSError as err:  # missing, permission, ...
        return None, f"cannot open: {err.__class__.__name__}: {err}"
    if data.size == 0:
        return None, "empty file"
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        return None, "OpenCV cannot decode it"
    return img, ""


def probe_frame(path: str) -> Optional[str]:
    """None when ``path`` opens and decodes as an image, else the reason it does not."""
    img, reason = _decode(path)
    return None if img is not None else reason


def load_frames(
    paths: Sequence[str], backend: str = "cv2", retries: int = 3, retry_wait: float = 0.1
) -> torch.Tensor:
    """Read the images ``paths`` into a uint8 ``(T, H, W, 3)`` RGB tensor with OpenCV.

    Like PySlowFast, reading is retried (``retries`` attempts in all, ``retry_wait`` seconds
    apart) when some image cannot be read, which rides out a flaky network file system; an image
    still unreadable after that raises :class:`FrameReadError` (an ``OSError``) naming the file
    and the reason. Images of different sizes raise ``DataError`` (a ``ValueError``) naming the
    two files. (PySlowFast's Charades loader keeps OpenCV's BGR order; here frames are RGB as
    the video decoders give them, and ``DATA.REVERSE_INPUT_CHANNEL`` flips them where a model
    wants BGR.)
    """
    if backend not in ("cv2", "opencv"):
        raise ValueError(f"load_frames backend must be 'cv2', got {backend!r}")
    if len(paths) == 0:
        raise ValueError("load_frames needs at least one path")
    cache: Dict[str, np.ndarray] = {}  # a clamped clip names the same frame many times
    bad: Dict[str, str] = {}
    for attempt in range(max(1, int(retries))):
        bad = {}
        for p in dict.fromkeys(paths):
            if p in cache:
                continue
            img, reason = _decode(p)
            if img is None:
                bad[p] = reason
            else:
                cache[p] = img
        if not bad:
            break
        if attempt < retries - 1:
            logger.warning("reading %d frame(s) failed (%s), retrying", len(bad), next(iter(bad)))
            time.sleep(retry_wait)
    if bad:
        first, reason = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise FrameReadError(
            first,
            reason,
            f"cannot read frame {first}: {reason}{more}, after {retries} attempts",
        )
    ref = paths[0]
    shape = cache[ref].shape
    for p in paths:
        if cache[p].shape != shape:
            raise DataError(
                f"frames of one clip differ in size: {ref} is {shape[1]}x{shape[0]}, "
                f"{p} is {cache[p].shape[1]}x{cache[p].shape[0]}"
            )
    stacked = np.stack([cache[p] for p in paths])[..., ::-1]  # BGR -> RGB
    return torch.from_numpy(np.ascontiguousarray(stacked))
