"""Readers of AVA's inputs: frame lists, box CSVs, label maps, keyframes (PySlowFast's format).

Inputs (paths as PySlowFast joins them):

* frame lists ``AVA.FRAME_LIST_DIR/<f>`` for ``f`` in ``AVA.TRAIN_LISTS`` (train) or
  ``AVA.TEST_LISTS`` (val, test): the Charades frame-list format
  (:mod:`slowfast.datasets.frame_list`), frame paths relative to ``AVA.FRAME_DIR``. Frame ``i``
  of a video is its ``i``-th line (the ``frame_id`` column is not used); AVA's frames start at
  second 900 (15:00) at 30 fps, so second ``s`` is frame ``(s - 900) * 30``.
* box CSVs ``AVA.ANNOTATION_DIR/<f>``, no header, one line per (box, action)::

      video_id,sec,x1,y1,x2,y2,action_id,person_id_or_score

  coordinates normalised to [0, 1]; ``action_id`` empty or ``-1`` = a box without a label (a
  negative proposal). Train reads ``AVA.TRAIN_GT_BOX_LISTS`` (all boxes kept) and
  ``AVA.TRAIN_PREDICT_BOX_LISTS``; val and test read ``AVA.TEST_PREDICT_BOX_LISTS``. A box of a
  predicted list is kept when its score (the 8th column) is ``>= AVA.DETECTION_SCORE_THRESH``.
  Rows with the same video, second and coordinates are one box with the list of their actions.
* the label map ``AVA.ANNOTATION_DIR/AVA.LABEL_MAP_FILE`` (``.pbtxt``: ``item { name: "..."
  id: N }`` blocks), the classes the evaluator scores (AVA's 60 of the model's 80).

Keyframes are the seconds of ``AVA_VALID_SECS`` (902..1798, as PySlowFast) that have at least one
box; in val only every 4th second (``sec % 4 == 0``) unless ``AVA.FULL_TEST_ON_VAL``.
PySlowFast applies that subsampling while parsing; here it selects keyframes only, so that the
boxes of the other seconds remain available (PGT supervises earlier steps with them).

Bad input is an error naming the file and the line: a CSV line that does not parse, a label
map line that is not ``item {``, ``}`` or ``key: value``; an action id above
``MODEL.NUM_CLASSES`` in an annotation file or in the label map names the files and the key.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Set, Tuple

from iopath.common.file_io import g_pathmgr

from slowfast.datasets.frame_list import read_frame_list
from slowfast.utils.ava_eval_helper import read_exclusions as read_eval_exclusions
from slowfast.utils.ava_eval_helper import read_labelmap

logger = logging.getLogger(__name__)

FPS = 30
# The first second of AVA's extracted frames (frame 0); annotations cover 902..1798.
START_SEC = 900
AVA_VALID_SECS = range(902, 1799)
# PySlowFast's name for the same range.
AVA_VALID_FRAMES = AVA_VALID_SECS
# Val keeps every VAL_SEC_SAMPLE_RATE-th second unless AVA.FULL_TEST_ON_VAL.
VAL_SEC_SAMPLE_RATE = 4

Box = Tuple[float, float, float, float]
# video id -> second -> [[box (4 floats), [action ids]], ...] (PySlowFast's structure)
BoxTable = Dict[str, Dict[int, List[list]]]


def sec_to_frame(sec: int, start_sec: int = START_SEC, fps: int = FPS) -> int:
    """Index of the frame of second ``sec`` in a video's frame list: ``(sec - 900) * 30``."""
    return (int(sec) - start_sec) * fps


def frame_to_sec(frame: int, start_sec: int = START_SEC, fps: int = FPS) -> int:
    """The second nearest to frame ``frame`` (halves round up): ``900 + floor(f / 30 + 1/2)``."""
    return start_sec + int(math.floor(frame / fps + 0.5))


# --------------------------------------------------------------------------------------------
# Frame lists
# --------------------------------------------------------------------------------------------


def list_files(cfg, split: str) -> Tuple[List[str], str]:
    """The frame-list files of ``split`` and the config key naming them."""
    key = "AVA.TRAIN_LISTS" if split == "train" else "AVA.TEST_LISTS"
    names = cfg.AVA.TRAIN_LISTS if split == "train" else cfg.AVA.TEST_LISTS
    return [os.path.join(cfg.AVA.FRAME_LIST_DIR, f) for f in names], key


def load_image_lists(cfg, is_train: bool) -> Tuple[List[List[str]], List[str]]:
    """Frame paths per video and the video ids, from the split's frame lists.

    Returns ``(image_paths, video_idx_to_name)``: ``image_paths[v]`` the frame paths
    (``AVA.FRAME_DIR`` joined) of video ``video_idx_to_name[v]``; videos in first-seen order over
    the lists, and the frames of a video listed in several files are appended in file order.
    """
    files, key = list_files(cfg, "train" if is_train else "test")
    if not files:
        raise ValueError(f"{key} is empty: no frame list to read")
    index: Dict[str, int] = {}
    names: List[str] = []
    paths: List[List[str]] = []
    for path in files:
        frames = read_frame_list(path, prefix=cfg.AVA.FRAME_DIR, key=key)
        for name, video_paths in zip(frames.video_names, frames.frame_paths):
            v = index.get(name)
            if v is None:
                v = index[name] = len(names)
                names.append(name)
                paths.append([])
            paths[v].extend(video_paths)
    logger.info("AVA frame lists %s: %d videos", ", ".join(files), len(names))
    return paths, names


# --------------------------------------------------------------------------------------------
# Box CSVs
# --------------------------------------------------------------------------------------------


def box_files(cfg, split: str) -> List[Tuple[str, bool]]:
    """``(path, is_ground_truth)`` of the box CSVs of ``split``."""
    if split == "train":
        gt, pred = list(cfg.AVA.TRAIN_GT_BOX_LISTS), list(cfg.AVA.TRAIN_PREDICT_BOX_LISTS)
    else:
        gt, pred = [], list(cfg.AVA.TEST_PREDICT_BOX_LISTS)
    out = [(os.path.join(cfg.AVA.ANNOTATION_DIR, f), True) for f in gt]
    out += [(os.path.join(cfg.AVA.ANNOTATION_DIR, f), False) for f in pred]
    return out


def _float(text: str, what: str, where: str, line: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number, line {line!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not finite, line {line!r}")
    return value


def parse_box_line(row: Sequence[str], is_gt: bool, where: str) -> Tuple[str, int, Box, int, float]:
    """One CSV row -> ``(video_id, sec, (x1, y1, x2, y2), action_id, score)``.

    ``action_id`` is -1 for an empty action; ``score`` is the 8th column (the person id in a
    ground-truth file, 1.0 when a ground-truth row has only 7 columns). ``ValueError`` names
    ``where`` (``file:line``) when the row does not parse.
    """
    line = ",".join(row)
    need = 7 if is_gt else 8
    if len(row) < need or len(row) > 8:
        kind = "ground-truth" if is_gt else "predicted-box"
        raise ValueError(
            f"{where}: expected {need if is_gt else 8}{' or 8' if is_gt else ''} comma-separated "
            f"fields 'video_id,sec,x1,y1,x2,y2,action_id,person_id_or_score' in a {kind} file, "
            f"got {len(row)}: {line!r}"
        )
    video = row[0].strip()
    if not video:
        raise ValueError(f"{where}: empty video id, line {line!r}")
    try:
        sec = int(row[1])
    except ValueError:
        raise ValueError(f"{where}: second {row[1]!r} is not an integer, line {line!r}") from None
    box = tuple(_float(row[2 + i], "box coordinate", where, line) for i in range(4))
    if min(box) < -0.01 or max(box) > 1.01:
        raise ValueError(
            f"{where}: box {list(box)} is not normalised to [0, 1] (x1,y1,x2,y2 divided by the "
            f"frame's width and height), line {line!r}"
        )
    action_text = row[6].strip()
    if action_text == "":
        action = -1
    else:
        try:
            action = int(action_text)
        except ValueError:
            raise ValueError(
                f"{where}: action id {action_text!r} is not an integer, line {line!r}"
            ) from None
        if action < 1 and action != -1:
            raise ValueError(
                f"{where}: action id {action} is not a class id (ids start at 1; -1 or empty "
                f"means no label), line {line!r}"
            )
    if len(row) > 7 and row[7].strip() != "":
        score = _float(row[7], "score / person id", where, line)
    elif is_gt:
        score = 1.0
    else:
        raise ValueError(f"{where}: the score (8th field) is empty, line {line!r}")
    return video, sec, box, action, score


def parse_bboxes_file(
    ann_filenames: Sequence[str],
    ann_is_gt_box: Sequence[bool],
    detect_thresh: float,
    boxes_sample_rate: int = 1,
    num_classes: Optional[int] = None,
) -> Tuple[BoxTable, int, int]:
    """Read box CSVs into ``{video: {sec: [[box, [action ids]], ...]}}``.

    Predicted boxes (``ann_is_gt_box`` False) scoring below ``detect_thresh`` are dropped; rows of
    the same video, second and box are merged, their actions appended in file order (-1 = none).
    Only seconds with ``sec % boxes_sample_rate == 0`` are kept. With ``num_classes``, action ids
    above it raise ``ValueError`` naming every such file (first line, largest id) and
    ``MODEL.NUM_CLASSES``. Returns ``(table, labelled rows, unique boxes)``.
    """
    table: Dict[str, Dict[int, OrderedDict[Box, list]]] = {}
    count = 0
    unique = 0
    too_large: List[Tuple[str, int, int]] = []
    for path, is_gt in zip(ann_filenames, ann_is_gt_box):
        if not g_pathmgr.exists(path):
            raise FileNotFoundError(
                f"box file {path} not found (AVA.ANNOTATION_DIR + AVA.*_BOX_LISTS)"
            )
        first_bad, max_bad = 0, 0
        with g_pathmgr.open(path, "r") as f:
            reader = csv.reader(f)
            for row in reader:
                line_no = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                video, sec, box, action, score = parse_box_line(row, is_gt, f"{path}:{line_no}")
                if num_classes is not None and action > num_classes:
                    first_bad = first_bad or line_no
                    max_bad = max(max_bad, action)
                if not is_gt and score < detect_thresh:
                    continue
                if sec % boxes_sample_rate != 0:
                    continue
                secs = table.setdefault(video, {})
                boxes = secs.setdefault(sec, OrderedDict())
                entry = boxes.get(box)
                if entry is None:
                    entry = boxes[box] = [list(box), []]
                    unique += 1
                entry[1].append(action)
                if action != -1:
                    count += 1
        if first_bad:
            too_large.append((path, first_bad, max_bad))
    if too_large:
        listing = "; ".join(f"{p}:{ln} (largest action id {m})" for p, ln, m in too_large)
        raise ValueError(
            f"action ids above MODEL.NUM_CLASSES = {num_classes} in the annotation files: "
            f"{listing}. Set MODEL.NUM_CLASSES to the largest action id (80 for AVA)."
        )
    out: BoxTable = {
        video: {sec: list(boxes.values()) for sec, boxes in sorted(secs.items())}
        for video, secs in table.items()
    }
    return out, count, unique


def load_boxes_and_labels(cfg, mode: str, num_classes: Optional[int] = None) -> BoxTable:
    """The boxes of split ``mode`` (see the module docstring); every second of the files."""
    files = box_files(cfg, mode)
    if not files:
        key = (
            "AVA.TRAIN_GT_BOX_LISTS / TRAIN_PREDICT_BOX_LISTS"
            if mode == "train"
            else ("AVA.TEST_PREDICT_BOX_LISTS")
        )
        raise ValueError(f"no box file for the {mode} split: {key} is empty")
    thresh = float(cfg.AVA.DETECTION_SCORE_THRESH)
    table, count, unique = parse_bboxes_file(
        [p for p, _ in files], [g for _, g in files], thresh, 1, num_classes
    )
    logger.info(
        "AVA %s boxes from %s: %d unique boxes, %d labels (predicted boxes kept at score >= "
        "AVA.DETECTION_SCORE_THRESH = %s)",
        mode,
        ", ".join(p for p, _ in files),
        unique,
        count,
        thresh,
    )
    return table


def keyframe_sec_sample_rate(cfg, mode: str) -> int:
    """4 in val unless ``AVA.FULL_TEST_ON_VAL`` (PySlowFast), else 1."""
    return VAL_SEC_SAMPLE_RATE if mode == "val" and not cfg.AVA.FULL_TEST_ON_VAL else 1


def get_keyframe_data(
    boxes_and_labels: Sequence[Dict[int, List[list]]],
    valid_secs: Sequence[int] = AVA_VALID_SECS,
    sec_sample_rate: int = 1,
) -> Tuple[List[Tuple[int, int, int, int]], List[List[List[list]]]]:
    """Keyframes: per video (in order), the seconds of ``valid_secs`` with at least one box and
    ``sec % sec_sample_rate == 0``, ascending.

    Returns ``(keyframe_indices, keyframe_boxes_and_labels)``: ``(video_idx, sec_idx, sec,
    frame)`` tuples with ``frame = sec_to_frame(sec)``, and per video the box lists of its
    keyframes (``keyframe_boxes_and_labels[video_idx][sec_idx]``).
    """
    valid = set(valid_secs)
    indices: List[Tuple[int, int, int, int]] = []
    per_video: List[List[List[list]]] = []
    for video_idx, secs in enumerate(boxes_and_labels):
        per_video.append([])
        for sec in sorted(secs):
            if sec not in valid or sec % sec_sample_rate != 0 or not secs[sec]:
                continue
            indices.append((video_idx, len(per_video[-1]), sec, sec_to_frame(sec)))
            per_video[-1].append(secs[sec])
    return indices, per_video


def get_num_boxes_used(keyframe_indices, keyframe_boxes_and_labels) -> int:
    """Boxes over all keyframes."""
    return sum(len(keyframe_boxes_and_labels[v][s]) for v, s, _, _ in keyframe_indices)


# --------------------------------------------------------------------------------------------
# Label map
# --------------------------------------------------------------------------------------------


def read_label_map(path: str) -> OrderedDict[int, str]:
    """The ``.pbtxt`` label map as ``{class id: name}`` in file order, read by the evaluator's
    reader (:func:`slowfast.utils.ava_eval_helper.read_labelmap`, whose errors name the file and
    line); a missing file or one without an item raises naming ``AVA.LABEL_MAP_FILE``."""
    if not g_pathmgr.exists(path):
        raise FileNotFoundError(
            f"label map {path} not found (AVA.ANNOTATION_DIR + AVA.LABEL_MAP_FILE)"
        )
    categories, _ = read_labelmap(path)
    if not categories:
        raise ValueError(f"{path}: the label map has no item (AVA.LABEL_MAP_FILE)")
    return OrderedDict((c["id"], c["name"] or str(c["id"])) for c in categories)


def check_label_map(label_map: Dict[int, str], path: str, num_classes: int) -> None:
    """Class ids must lie in ``1..num_classes``; ``ValueError`` naming ``path`` and the key."""
    bad = sorted(c for c in label_map if c < 1 or c > num_classes)
    if bad:
        raise ValueError(
            f"label map {path} (AVA.LABEL_MAP_FILE) has class ids {bad[:10]} outside 1.."
            f"{num_classes} = MODEL.NUM_CLASSES; the model must predict every evaluated class"
        )


def log_label_map_use(label_map: Dict[int, str], path: str, num_classes: int) -> None:
    """Say which classes are trained and which are evaluated."""
    if len(label_map) == num_classes:
        logger.info(
            "AVA label map %s: %d classes = MODEL.NUM_CLASSES; all are trained and evaluated",
            path,
            num_classes,
        )
    else:
        logger.info(
            "AVA label map %s has %d classes (ids %d..%d); the model predicts MODEL.NUM_CLASSES "
            "= %d: training uses all %d, evaluation scores the %d of the label map",
            path,
            len(label_map),
            min(label_map),
            max(label_map),
            num_classes,
            num_classes,
            len(label_map),
        )


def label_map_path(cfg) -> str:
    """``AVA.ANNOTATION_DIR / AVA.LABEL_MAP_FILE`` (an absolute file name is kept)."""
    return os.path.join(cfg.AVA.ANNOTATION_DIR, cfg.AVA.LABEL_MAP_FILE)


def read_exclusions(path: str) -> Set[str]:
    """The excluded frame keys (``"video_id,%04d"``) of an exclusions CSV, read by the
    evaluator's reader (errors name the file and line); a missing file raises naming
    ``AVA.EXCLUSION_FILE``."""
    if not g_pathmgr.exists(path):
        raise FileNotFoundError(f"exclusions file {path} not found (AVA.EXCLUSION_FILE)")
    return read_eval_exclusions(path)
