"""AVA frame-level evaluation (the ActivityNet protocol), vectorised with numpy.

Readers for the official files (label map ``.pbtxt``, ground-truth / detection CSVs, excluded
timestamps) and the evaluation itself. The numbers are those of the official ActivityNet
evaluator (``PascalDetectionEvaluator``, as PySlowFast runs it), computed without per-detection
Python loops:

* a frame is ``"%s,%04d" % (video_id, int(timestamp))``; excluded frames are dropped from the
  ground truth and from the detections, and so are rows whose action is not in the label map;
* detections with ``x2 <= x1`` or ``y2 <= y1`` are dropped; box areas are continuous,
  ``(x2 - x1) * (y2 - y1)`` (no +1);
* within a frame and a class the detections are matched in the order they are given (file
  order, not score order): each one is compared with its highest-IoU ground-truth box of that
  class (the first such box on a tie); IoU >= 0.5 on a box not yet taken is a true positive,
  anything else (a second hit on a taken box included) a false positive;
* per class, the detections are concatenated frame by frame (frames in order of first
  appearance, rows in file order within a frame) and ranked with ``np.argsort(scores)[::-1]``,
  exactly the official call, so that tied scores are ordered as the official code orders them
  (this is not a stable sort: numpy's default sort reversed);
* AP is PASCAL VOC's all-point interpolated area under the precision/recall curve; a class with
  ground truth but no detection has AP 0; classes without ground truth are left out of the mean
  (``np.nanmean`` over classes 1..max id, as the official code does); there is no per-frame cap
  on the number of detections.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import pandas as pd
from iopath.common.file_io import g_pathmgr

logger = logging.getLogger(__name__)

__all__ = [
    "AVABoxes",
    "make_image_key",
    "read_labelmap",
    "read_csv",
    "read_exclusions",
    "evaluate_ava",
    "evaluate_ava_from_files",
    "detections_from_predictions",
    "write_detections_csv",
    "format_per_class_table",
]


def make_image_key(video_id: str, timestamp) -> str:
    """The official frame key: ``"<video id>,<timestamp as a 4-digit integer second>"``."""
    return f"{video_id},{int(timestamp):04d}"


def _split_key(key) -> Tuple[str, int]:
    if isinstance(key, tuple):
        return str(key[0]), int(key[1])
    video, _, ts = str(key).rpartition(",")
    if not video:
        raise ValueError(f"excluded frame key {key!r} is not 'video_id,timestamp'")
    return video, int(ts)


@dataclass
class AVABoxes:
    """Rows of an AVA CSV, in file order.

    ``boxes`` are ``[x1, y1, x2, y2]`` (normalised), ``labels`` action ids, ``scores`` the
    detection scores (1.0 for ground truth). ``source`` and ``lines`` (1-based line numbers)
    name where each row came from in error messages.
    """

    video_ids: np.ndarray
    timestamps: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    source: str = "<memory>"
    lines: Optional[np.ndarray] = field(default=None, repr=False)
    # (codes, names) with video_ids == names[codes], where a reader already has them
    video_codes: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.video_ids = np.asarray(self.video_ids, dtype=object).reshape(-1)
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64).reshape(-1)
        # column-major: the evaluation gathers whole coordinate columns
        self.boxes = np.asfortranarray(np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4))
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.video_ids)
        if self.scores is None:
            self.scores = np.ones(n, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        sizes = {len(self.timestamps), len(self.boxes), len(self.labels), len(self.scores), n}
        if self.lines is not None:
            self.lines = np.asarray(self.lines, dtype=np.int64).reshape(-1)
            sizes.add(len(self.lines))
        if len(sizes) != 1:
            raise ValueError(
                f"{self.source}: video_ids, timestamps, boxes, labels, scores (and lines) must "
                f"have one entry per row; got {n}, {len(self.timestamps)}, {len(self.boxes)}, "
                f"{len(self.labels)}, {len(self.scores)}"
            )

    def __len__(self) -> int:
        return len(self.video_ids)

    def select(self, mask_or_index: np.ndarray) -> AVABoxes:
        """The rows selected by a boolean mask or an index array (order kept)."""
        sel = mask_or_index
        return AVABoxes(
            self.video_ids[sel],
            self.timestamps[sel],
            self.boxes[sel],
            self.labels[sel],
            self.scores[sel],
            self.source,
            None if self.lines is None else self.lines[sel],
            None if self.video_codes is None else (self.video_codes[0][sel], self.video_codes[1]),
        )

    def keys(self) -> List[str]:
        """The frame key of every row."""
        return [make_image_key(v, t) for v, t in zip(self.video_ids, self.timestamps)]

    def where(self, row: int) -> str:
        """``"file:line"`` (or ``"source row i"``) of row ``row``."""
        if self.lines is not None:
            return f"{self.source}:{int(self.lines[row])}"
        return f"{self.source} row {row}"

    @staticmethod
    def empty(source: str = "<memory>") -> AVABoxes:
        return AVABoxes(
            np.empty(0, dtype=object),
            np.empty(0, dtype=np.int64),
            np.empty((0, 4)),
            np.empty(0, dtype=np.int64),
            np.empty(0),
            source,
            np.empty(0, dtype=np.int64),
        )


# --------------------------------------------------------------------------- label map

_PBTXT_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<field>[A-Za-z_]\w*)\s*:\s*(?P<value>"(?:[^"\\\n]|\\.)*"|[^\s{}"]+)
      | (?P<open>[A-Za-z_]\w*)\s*\{
      | (?P<close>\})
      | (?P<bad>\S+)""",
    re.VERBOSE,
)


def read_labelmap(path: str) -> Tuple[List[Dict], Set[int]]:
    """Read an ActivityNet label map: ``item { name: "..." id: N [label_type: ...] }``.

    ``label_id`` is accepted for ``id`` (as the official reader does) and ``display_name``
    for ``name``; other fields (``label_type``) are ignored.

    Returns:
        (categories, class_ids): ``[{"id": int, "name": str}, ...]`` in file order and the set
        of ids.

    Raises:
        ValueError naming the file and line of a malformed item (no id, a non-integer or
        repeated id, an id < 1, a nested block, text outside an item, an unclosed item).
    """
    with g_pathmgr.open(path, "r") as f:
        text = f.read()
    categories: List[Dict] = []
    seen: Dict[int, int] = {}
    item: Optional[Dict] = None
    item_line = 0
    line, pos = 1, 0
    for match in _PBTXT_TOKEN.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        kind = next(k for k in ("comment", "field", "open", "close", "bad") if match.group(k))
        if kind == "comment":
            continue
        where = f"{path}:{line}"
        if kind == "bad":
            raise ValueError(f"{where}: unexpected text {match.group(0)!r} in the label map")
        if kind == "open":
            if item is not None or match.group("open") != "item":
                raise ValueError(
                    f"{where}: unexpected block {match.group('open')!r} "
                    "(the label map is a list of top-level 'item { ... }')"
                )
            item, item_line = {}, line
        elif kind == "close":
            if item is None:
                raise ValueError(f"{where}: '}}' without an open item")
            if "id" not in item:
                raise ValueError(f"{path}:{item_line}: item without an 'id'")
            class_id = item["id"]
            if class_id in seen:
                raise ValueError(
                    f"{path}:{item_line}: id {class_id} repeats the item of line {seen[class_id]}"
                )
            seen[class_id] = item_line
            categories.append({"id": class_id, "name": item.get("name", "")})
            item = None
        else:  # a field
            if item is None:
                raise ValueError(f"{where}: field {match.group('field')!r} outside an item")
            key, value = match.group("field"), match.group("value")
            if key in ("id", "label_id"):
                try:
                    class_id = int(value)
                except ValueError:
                    raise ValueError(f"{where}: id {value!r} is not an integer") from None
                if class_id < 1:
                    raise ValueError(f"{where}: id {class_id} < 1 (AVA ids are 1-based)")
                item["id"] = class_id
            elif key in ("name", "display_name"):
                if not (value.startswith('"') and value.endswith('"') and len(value) >= 2):
                    raise ValueError(f"{where}: {key} {value!r} is not a quoted string")
                if key == "name" or "name" not in item:
                    item["name"] = value[1:-1]
    if item is not None:
        raise ValueError(f"{path}:{item_line}: item is not closed with '}}'")
    return categories, set(seen)


def _class_ids(categories) -> np.ndarray:
    """Sorted unique class ids of a category list (dicts with 'id'), or of a set of ints."""
    ids = [c["id"] if isinstance(c, dict) else c for c in categories]
    out = np.unique(np.asarray(ids, dtype=np.int64))
    if out.size == 0:
        raise ValueError("the label map has no class")
    if out[0] < 1:
        raise ValueError(f"class id {int(out[0])} < 1: AVA class ids are 1-based")
    return out


# --------------------------------------------------------------------------- CSV readers


def _int_field(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise ValueError(f"{text!r} is not an integer") from None
        return int(value)


def _read_csv_slow(path: str, load_score: bool, check_gt_boxes: bool) -> AVABoxes:
    """Line-by-line reader: the reference for the fast path and the source of the line numbers
    in error messages."""
    videos, stamps, boxes, labels, scores, lines = [], [], [], [], [], []
    ncols = (8,) if load_score else (7, 8)
    with g_pathmgr.open(path, "r") as f:
        reader = csv.reader(f)
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            where = f"{path}:{line}"
            if len(row) not in ncols:
                want = (
                    "8 (video_id,timestamp,x1,y1,x2,y2,action_id,score)"
                    if load_score
                    else ("7 or 8 (video_id,timestamp,x1,y1,x2,y2,action_id[,person_id])")
                )
                raise ValueError(f"{where}: {len(row)} columns, expected {want}: {row}")
            try:
                ts = _int_field(row[1])
            except ValueError:
                raise ValueError(
                    f"{where}: timestamp {row[1]!r} is not an integer second"
                ) from None
            try:
                coords = [float(v) for v in row[2:6]]
            except ValueError:
                raise ValueError(f"{where}: box {row[2:6]} is not 4 numbers") from None
            if not all(math.isfinite(v) for v in coords):
                raise ValueError(f"{where}: box {row[2:6]} is not finite")
            if check_gt_boxes and (coords[2] < coords[0] or coords[3] < coords[1]):
                raise ValueError(f"{where}: ground-truth box {row[2:6]} has x2 < x1 or y2 < y1")
            try:
                action = _int_field(row[6])
            except ValueError:
                raise ValueError(f"{where}: action id {row[6]!r} is not an integer") from None
            score = 1.0
            if load_score:
                try:
                    score = float(row[7])
                except ValueError:
                    raise ValueError(f"{where}: score {row[7]!r} is not a number") from None
                if not math.isfinite(score):
                    raise ValueError(f"{where}: score {row[7]!r} is not finite")
            videos.append(row[0])
            stamps.append(ts)
            boxes.append(coords)
            labels.append(action)
            scores.append(score)
            lines.append(line)
    if not videos:
        return AVABoxes.empty(path)
    return AVABoxes(videos, stamps, boxes, labels, scores, path, lines)


def _integral(column: pd.Series) -> Optional[np.ndarray]:
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if (
        values.dtype.kind == "f"
        and np.all(np.isfinite(values))
        and np.all(values == np.round(values))
    ):
        return values.astype(np.int64)
    return None


# pandas >= 3 parses floats correctly rounded (as Python's float()) by default and deprecates
# the option; older versions need "round_trip" for that.
_FLOAT_OPTIONS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _read_csv_fast(path: str, load_score: bool, check_gt_boxes: bool) -> Optional[AVABoxes]:
    """pandas' C reader; None where anything is off (the slow reader then says what)."""
    try:
        with g_pathmgr.open(path, "r") as f:
            df = pd.read_csv(
                f,
                header=None,
                dtype={0: "category"},
                na_filter=False,
                engine="c",
                **_FLOAT_OPTIONS,
            )
    except pd.errors.EmptyDataError:
        return AVABoxes.empty(path)
    except (pd.errors.ParserError, ValueError, TypeError):
        return None
    if df.shape[1] not in ((8,) if load_score else (7, 8)):
        return None
    ts = _integral(df[1])
    action = _integral(df[6])
    if ts is None or action is None:
        return None
    coords = df[[2, 3, 4, 5]]
    if not all(dt.kind in "iuf" for dt in coords.dtypes):
        return None
    boxes = np.empty((len(df), 4), dtype=np.float64, order="F")
    for j, column in enumerate((2, 3, 4, 5)):
        boxes[:, j] = df[column].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(boxes)):
        return None
    if check_gt_boxes and np.any((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])):
        return None
    if load_score:
        if df[7].dtype.kind not in "iuf":
            return None
        scores = df[7].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            return None
    else:
        scores = np.ones(len(df), dtype=np.float64)
    videos = df[0].cat
    names = np.asarray(videos.categories.astype(str), dtype=object)
    codes = videos.codes.to_numpy().astype(np.int64)
    if codes.size and codes.min() < 0:
        return None
    return AVABoxes(names[codes], ts, boxes, action, scores, path, None, (codes, names))


def read_csv(
    path: str,
    class_whitelist: Optional[Iterable[int]] = None,
    load_score: bool = False,
    check_gt_boxes: Optional[bool] = None,
) -> AVABoxes:
    """Read a ground-truth or detection CSV in the official AVA format.

    Each line is ``video_id,timestamp,x1,y1,x2,y2,action_id[,extra]`` with normalised boxes; the
    8th column is a person id in ground truth (ignored) and the score in detections
    (``load_score=True``, then required). Rows whose action is not in ``class_whitelist`` are
    skipped. Ground-truth boxes (``check_gt_boxes``, default ``not load_score``) must have
    ``x1 <= x2`` and ``y1 <= y2``; inverted detection boxes are kept (the evaluation drops them).

    Raises:
        ValueError naming the file and the line of a row that does not parse.
    """
    if check_gt_boxes is None:
        check_gt_boxes = not load_score
    data = _read_csv_fast(path, load_score, check_gt_boxes)
    if data is None:
        data = _read_csv_slow(path, load_score, check_gt_boxes)
    if class_whitelist:
        data = data.select(np.isin(data.labels, np.fromiter(class_whitelist, dtype=np.int64)))
    return data


def read_exclusions(path: Optional[str]) -> Set[str]:
    """Read the excluded timestamps (``video_id,timestamp`` per line) as a set of frame keys
    (``make_image_key``); an empty set when ``path`` is None or empty."""
    excluded: Set[str] = set()
    if not path:
        return excluded
    with g_pathmgr.open(path, "r") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            where = f"{path}:{reader.line_num}"
            if len(row) != 2:
                raise ValueError(f"{where}: {len(row)} columns, expected 2 (video_id,timestamp)")
            try:
                excluded.add(make_image_key(row[0], _int_field(row[1])))
            except ValueError:
                raise ValueError(
                    f"{where}: timestamp {row[1]!r} is not an integer second"
                ) from None
    return excluded


# --------------------------------------------------------------------------- evaluation


def _video_codes(data: AVABoxes) -> Tuple[np.ndarray, np.ndarray]:
    if data.video_codes is not None:
        return data.video_codes
    codes, uniques = pd.factorize(data.video_ids)
    return codes, np.asarray(uniques, dtype=object)


def _frame_ids(
    gt: AVABoxes, det: AVABoxes, excluded: Sequence[Tuple[str, int]]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Dense int64 frame ids (one per (video, second)) shared by ground truth, detections and
    exclusions, and the number of frames."""
    ex_codes, ex_uniques = pd.factorize(np.asarray([v for v, _ in excluded], dtype=object))
    parts = [_video_codes(gt), _video_codes(det), (ex_codes, np.asarray(ex_uniques, dtype=object))]
    names = pd.Index(np.concatenate([u for _, u in parts])).unique()
    vcodes = [names.get_indexer(u)[c] if len(c) else c.astype(np.int64) for c, u in parts]
    stamps = [gt.timestamps, det.timestamps, np.asarray([t for _, t in excluded], dtype=np.int64)]
    all_ts = np.concatenate(stamps)
    if all_ts.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, 0
    lo, span = int(all_ts.min()), int(all_ts.max()) - int(all_ts.min()) + 1
    if len(names) * span < 2**62:
        raw = [v.astype(np.int64) * span + (t - lo) for v, t in zip(vcodes, stamps)]
    else:  # absurd timestamps: number the pairs instead
        pairs = pd.MultiIndex.from_arrays([np.concatenate(vcodes), all_ts])
        flat = pd.factorize(pairs)[0].astype(np.int64)
        sizes = np.cumsum([len(t) for t in stamps])
        raw = np.split(flat, sizes[:-1])
    raw = np.concatenate(raw)
    top = int(raw.max()) + 1
    if top <= 50_000_000:  # renumber densely through a table
        present = np.zeros(top, dtype=bool)
        present[raw] = True
        number = np.cumsum(present) - 1
        dense, n_frames = number[raw], int(number[-1]) + 1
    else:
        dense, uniques = pd.factorize(raw)
        dense, n_frames = dense.astype(np.int64), len(uniques)
    n_gt, n_det = len(gt), len(det)
    return dense[:n_gt], dense[n_gt : n_gt + n_det], dense[n_gt + n_det :], n_frames


def _box_iou_pairs(
    det_cols: np.ndarray, det_idx: np.ndarray, gt_cols: np.ndarray, gt_idx: np.ndarray
) -> np.ndarray:
    """IoU of the pairs (det_idx[i], gt_idx[i]) of boxes given as (4, N) columns
    ``x1, y1, x2, y2``; continuous areas, with the same floating-point operations as the official
    ``np_box_ops.iou`` (so that an IoU of exactly 0.5 is the same number)."""
    dx1, dy1, dx2, dy2 = (col[det_idx] for col in det_cols)
    gx1, gy1, gx2, gy2 = (col[gt_idx] for col in gt_cols)
    heights = np.maximum(0.0, np.minimum(dy2, gy2) - np.maximum(dy1, gy1))
    widths = np.maximum(0.0, np.minimum(dx2, gx2) - np.maximum(dx1, gx1))
    inter = heights * widths
    area_det = (dy2 - dy1) * (dx2 - dx1)
    area_gt = (gy2 - gy1) * (gx2 - gx1)
    return inter / (area_det + area_gt - inter)


def _voc_ap(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP of one class; ranking exactly as the official evaluator."""
    if scores.size == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    tp = is_tp.astype(int)[order]
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum(1 - tp)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _as_boxes(data, name: str) -> AVABoxes:
    if isinstance(data, AVABoxes):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 3 and isinstance(data[0], dict):
        return _from_pyslowfast_dicts(data, name)
    raise TypeError(
        f"{name}: expected AVABoxes (see read_csv) or PySlowFast's (boxes, labels, "
        f"scores) dicts, got {type(data).__name__}"
    )


def _from_pyslowfast_dicts(data, name: str) -> AVABoxes:
    """PySlowFast's ``(boxes, labels, scores)`` dicts keyed by frame, boxes ``[y1, x1, y2, x2]``."""
    boxes_d, labels_d, scores_d = data
    videos, stamps, boxes, labels, scores = [], [], [], [], []
    for key, key_boxes in boxes_d.items():
        video, ts = _split_key(key)
        n = len(key_boxes)
        videos += [video] * n
        stamps += [ts] * n
        boxes += [[b[1], b[0], b[3], b[2]] for b in key_boxes]
        labels += list(labels_d[key])
        scores += list(scores_d[key]) if key in scores_d else [1.0] * n
    if not videos:
        return AVABoxes.empty(name)
    return AVABoxes(videos, stamps, boxes, labels, scores, name)


def evaluate_ava(
    groundtruth,
    detections,
    categories,
    excluded_keys: Optional[Iterable] = None,
    iou_threshold: float = 0.5,
) -> Dict:
    """Frame-level AVA mAP (the official protocol, see the module docstring).

    Args:
        groundtruth, detections: ``AVABoxes`` (``read_csv``) in file order, or PySlowFast's
            ``(boxes, labels, scores)`` dicts keyed by frame key.
        categories: the label map's ``[{"id": .., "name": ..}]`` or a set of class ids; rows of
            other actions are dropped.
        excluded_keys: frame keys ``"video,%04d"`` (``read_exclusions``) or (video, second) tuples.

    Returns:
        ``{"mAP": float, "per_class_AP": {class_id: AP}}``; ``per_class_AP`` holds the classes
        that have ground truth (those averaged); mAP is NaN when no class has any.
    """
    gt = _as_boxes(groundtruth, "groundtruth")
    det = _as_boxes(detections, "detections")
    class_ids = _class_ids(categories)
    n_cls = len(class_ids)
    lut = np.full(int(class_ids[-1]) + 2, -1, dtype=np.int64)
    lut[class_ids] = np.arange(n_cls)

    def class_index(labels: np.ndarray) -> np.ndarray:
        inside = (labels >= 0) & (labels <= class_ids[-1])
        return np.where(inside, lut[np.where(inside, labels, -1)], -1)

    excluded = [_split_key(k) for k in (excluded_keys or ())]
    gt_frame, det_frame, ex_frame, n_frames = _frame_ids(gt, det, excluded)
    gt_cls, det_cls = class_index(gt.labels), class_index(det.labels)
    gt_keep, det_keep = gt_cls >= 0, det_cls >= 0
    if ex_frame.size:
        is_excluded = np.zeros(n_frames, dtype=bool)
        is_excluded[ex_frame] = True
        gt_keep &= ~is_excluded[gt_frame]
        det_keep &= ~is_excluded[det_frame]

    gt_rows = np.flatnonzero(gt_keep)
    gt_cls, gt_frame = gt_cls[gt_rows], gt_frame[gt_rows]
    gb = gt.boxes
    inverted = gt_keep & ((gb[:, 2] < gb[:, 0]) | (gb[:, 3] < gb[:, 1]))
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise ValueError(
            f"{gt.where(row)}: ground-truth box {gb[row].tolist()} has x2 < x1 or y2 < y1"
        )

    # Frames in the order the official evaluator visits them: first appearance among the
    # detection rows of label-map actions (before the invalid boxes are dropped).
    det_rank = np.zeros(n_frames, dtype=np.int64)
    first_frames = pd.unique(det_frame[det_keep])
    det_rank[first_frames] = np.arange(len(first_frames))
    db = det.boxes
    det_rows = np.flatnonzero(det_keep & (db[:, 0] < db[:, 2]) & (db[:, 1] < db[:, 3]))
    det_cls, det_frame, det_scores = det_cls[det_rows], det_frame[det_rows], det.scores[det_rows]
    det_rank = det_rank[det_frame]
    det_cols = db.T.take(det_rows, axis=1)  # (4, n): the x1, y1, x2, y2 columns
    num_gt = np.bincount(gt_cls, minlength=n_cls)

    # Ground truth grouped by (frame, class), file order kept within a group.
    gt_group = gt_frame * n_cls + gt_cls
    det_group = det_frame * n_cls + det_cls
    gt_order = np.argsort(gt_group, kind="stable")
    gt_group_sorted = gt_group[gt_order]
    gt_cols = gb.T.take(gt_rows[gt_order], axis=1)
    n_groups = n_frames * n_cls
    if n_groups <= 50_000_000:  # dense tables of the groups' starts and sizes
        heads = np.flatnonzero(np.diff(gt_group_sorted, prepend=-1) != 0)
        sizes = np.diff(heads, append=len(gt_group_sorted))
        index_type = np.int32 if len(gt_group_sorted) < 2**31 else np.int64
        group_start = np.zeros(n_groups, dtype=index_type)
        group_count = np.zeros(n_groups, dtype=index_type)
        group_start[gt_group_sorted[heads]] = heads
        group_count[gt_group_sorted[heads]] = sizes
        start = group_start[det_group].astype(np.int64)
        count = group_count[det_group].astype(np.int64)
    else:
        start = np.searchsorted(gt_group_sorted, det_group, side="left")
        count = np.searchsorted(gt_group_sorted, det_group, side="right") - start

    # Every (detection, ground truth of its frame and class) pair, grouped by detection.
    is_tp = np.zeros(len(det_rows), dtype=bool)
    has_gt = np.flatnonzero(count > 0)
    if has_gt.size:
        cnt = count[has_gt]
        offsets = np.cumsum(cnt) - cnt
        pair_det = np.repeat(has_gt, cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(offsets, cnt)
        pair_gt = np.repeat(start[has_gt], cnt) + local
        iou = _box_iou_pairs(det_cols, pair_det, gt_cols, pair_gt)
        best = np.maximum.reduceat(iou, offsets)
        # first ground truth reaching the maximum (np.argmax's tie rule)
        first = np.where(iou == np.repeat(best, cnt), local, np.iinfo(np.int64).max)
        best_local = np.minimum.reduceat(first, offsets)
        target = start[has_gt] + best_local
        hit = best >= iou_threshold
        # a hit is a true positive when it is the first hit (in the given order) on its box
        hit_det, hit_target = has_gt[hit], target[hit]
        winner = np.full(len(gt_rows), len(det_rows), dtype=np.int64)
        np.minimum.at(winner, hit_target, hit_det)
        is_tp[hit_det] = winner[hit_target] == hit_det

    # Per class: detections frame by frame (first-appearance order), file order within a frame.
    if np.all(det_rank[1:] >= det_rank[:-1]):  # rows already grouped by frame in that order
        order = np.argsort(det_cls.astype(np.int16 if n_cls < 2**15 else np.int64), kind="stable")
    else:
        order = np.argsort(det_cls * max(n_frames, 1) + det_rank, kind="stable")
    per_cls = np.bincount(det_cls, minlength=n_cls)
    bounds = np.concatenate([[0], np.cumsum(per_cls)])
    scores_sorted, tp_sorted = det_scores[order], is_tp[order]

    ap_all = np.full(int(class_ids[-1]), np.nan)
    per_class: Dict[int, float] = {}
    for c, class_id in enumerate(class_ids.tolist()):
        if num_gt[c] == 0:
            continue
        seg = slice(bounds[c], bounds[c + 1])
        ap = _voc_ap(scores_sorted[seg], tp_sorted[seg], int(num_gt[c]))
        ap_all[class_id - 1] = ap
        per_class[class_id] = ap
    if per_class:
        mean_ap = float(np.nanmean(ap_all))
    else:
        logger.warning("no class of the label map has ground truth: mAP is NaN")
        mean_ap = float("nan")
    return {"mAP": mean_ap, "per_class_AP": per_class}


def evaluate_ava_from_files(
    labelmap: str,
    groundtruth: str,
    detections: str,
    exclusions: Optional[str] = None,
) -> Dict:
    """Read the official files and evaluate (see ``evaluate_ava``); the result also holds
    ``categories`` (the label map) for printing."""
    categories, class_ids = read_labelmap(labelmap)
    excluded = read_exclusions(exclusions)
    gt = read_csv(groundtruth, class_ids, load_score=False)
    det = read_csv(detections, class_ids, load_score=True)
    result = evaluate_ava(gt, det, categories, excluded)
    result["categories"] = categories
    return result


# --------------------------------------------------------------------------- meter helpers


def detections_from_predictions(
    preds: np.ndarray,
    boxes: np.ndarray,
    metadata: np.ndarray,
    video_names: Sequence[str],
    class_ids: Optional[Iterable[int]] = None,
) -> AVABoxes:
    """Per-box class scores -> detection rows, one per (box, class), box-major.

    Args:
        preds: (K, C) scores; column k is AVA action id k + 1.
        boxes: (K, 4) normalised ``[x1, y1, x2, y2]``.
        metadata: (K, 2) ``[video index, timestamp second]``.
        video_names: video index -> video id.
        class_ids: keep only these action ids (the label map's).
    """
    preds = np.asarray(preds, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    metadata = np.rint(np.asarray(metadata, dtype=np.float64)).astype(np.int64).reshape(-1, 2)
    if preds.ndim != 2 or not (len(preds) == len(boxes) == len(metadata)):
        raise ValueError(
            f"preds {preds.shape}, boxes {boxes.shape} and metadata {metadata.shape} must have "
            "one row per box"
        )
    num_videos = len(video_names)
    if len(metadata) and (metadata[:, 0].min() < 0 or metadata[:, 0].max() >= num_videos):
        raise ValueError(
            f"video index {int(metadata[:, 0].max())} outside the {num_videos} video names"
        )
    ids = np.arange(1, preds.shape[1] + 1)
    if class_ids is not None:
        keep = np.isin(ids, np.fromiter(class_ids, dtype=np.int64))
        ids, preds = ids[keep], preds[:, keep]
    k, c = preds.shape
    names = np.asarray(list(video_names), dtype=object)
    return AVABoxes(
        np.repeat(names[metadata[:, 0]], c),
        np.repeat(metadata[:, 1], c),
        np.repeat(boxes, c, axis=0),
        np.tile(ids, k),
        preds.reshape(-1),
        "predictions",
    )


def write_detections_csv(
    path: str, detections: AVABoxes, box_decimals: int = 3, score_decimals: int = 4
) -> None:
    """Write detections in the official CSV format,
    ``video_id,timestamp,x1,y1,x2,y2,action_id,score`` (PySlowFast's precision by default)."""
    fmt = (
        f"%s,%04d,%.{box_decimals}f,%.{box_decimals}f,%.{box_decimals}f,"
        f"%.{box_decimals}f,%d,%.{score_decimals}f\n"
    )
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        g_pathmgr.mkdirs(parent)
    with g_pathmgr.open(path, "w") as f:
        for v, t, b, a, s in zip(
            detections.video_ids,
            detections.timestamps.tolist(),
            detections.boxes.tolist(),
            detections.labels.tolist(),
            detections.scores.tolist(),
        ):
            f.write(fmt % (v, t, b[0], b[1], b[2], b[3], a, s))
    logger.info("wrote %d AVA detections to %s", len(detections), path)


def format_per_class_table(result: Dict, categories: Optional[Sequence[Dict]] = None) -> str:
    """A text table of the per-class APs (``-`` for classes without ground truth)."""
    per_class = result["per_class_AP"]
    rows = (
        categories if categories is not None else [{"id": i, "name": ""} for i in sorted(per_class)]
    )
    width = max([len(str(c.get("name", ""))) for c in rows] + [4])
    lines = [f"{'id':>4}  {'name':<{width}}  AP"]
    for c in rows:
        ap = per_class.get(c["id"])
        lines.append(
            f"{c['id']:>4}  {c.get('name', ''):<{width}}  " + ("-" if ap is None else f"{ap:.4f}")
        )
    n = len(per_class)
    lines.append(
        f"mAP@0.5IOU over {n} class{'es' if n != 1 else ''} with ground truth: "
        + f"{result['mAP']:.4f}"
    )
    return "\n".join(lines)
