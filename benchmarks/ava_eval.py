"""AVA frame-mAP evaluation: ``slowfast.utils.ava_eval_helper`` against a plain loop.

Builds a large synthetic AVA-like case (videos x seconds x persons, a 60-of-80-class label map,
excluded frames, detections = jittered ground truth + false positives + a few degenerate boxes
and rows of classes outside the label map), writes the official CSVs, and evaluates it twice in
one run:

* ``vectorised``: ``evaluate_ava_from_files`` (pandas reader + numpy evaluation);
* ``loop``: ``loop_evaluate_from_files`` below, a straightforward frame-by-frame, class-by-class,
  detection-by-detection implementation of the same protocol written independently (``csv``
  reader, Python lists and floats).

It prints both times (reading + evaluation, and evaluation alone; best of 3, interleaved), the
speed-up and |dmAP|.

    python benchmarks/ava_eval.py [--videos 300 --seconds 30] [--all-classes] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from typing import Dict, List, Set, Tuple

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from slowfast.utils import ava_eval_helper as ava  # noqa: E402

# --------------------------------------------------------------------------- synthetic data

# AVA v2.x evaluates 60 of the 80 action ids.
EVAL_IDS = [i for i in range(1, 81) if i % 4 != 2][:60]


def make_case(
    videos: int, seconds: int, seed: int = 0, all_classes: bool = False
) -> Dict[str, list]:
    """Rows of a synthetic ground truth, detections and exclusions (lists of tuples).

    A detected person gets a score for its actions and 3 random others, or with
    ``all_classes`` for each of the 80 ids (what ``AVAMeter`` evaluates for an 80-class model).
    """
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, 81) ** 0.8  # long-tailed class frequencies
    freq /= freq.sum()
    gt, det, excluded = [], [], []
    for v in range(videos):
        video = f"vid{v:04d}_{rng.integers(1 << 30):08x}"
        for ts in range(902, 902 + seconds):
            if rng.random() < 0.01:
                excluded.append((video, ts))
            persons = int(rng.integers(1, 6))
            centres = rng.uniform(0.15, 0.85, (persons, 2))
            sizes = rng.uniform(0.1, 0.4, (persons, 2))
            boxes = np.clip(
                np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1), 0, 1
            )
            frame_dets = []
            for p in range(persons):
                box = boxes[p]
                actions = rng.choice(80, size=int(rng.integers(1, 4)), replace=False, p=freq) + 1
                for a in actions:
                    gt.append((video, ts, *box.tolist(), int(a), p))
                if rng.random() < 0.9:  # the person is detected
                    jitter = box + rng.normal(0, 0.03, 4)
                    if all_classes:
                        labels = range(1, 81)
                    else:
                        labels = set(actions.tolist()) | set(
                            (rng.choice(80, size=3, p=freq) + 1).tolist()
                        )
                    for a in labels:
                        score = rng.beta(4, 2) if a in actions else rng.beta(2, 4)
                        frame_dets.append((video, ts, *jitter.tolist(), int(a), float(score)))
                    if rng.random() < 0.05:  # a duplicate detection of the same person
                        dup = box + rng.normal(0, 0.02, 4)
                        a = int(actions[0])
                        frame_dets.append((video, ts, *dup.tolist(), a, float(rng.random())))
            for _ in range(int(rng.poisson(0.7))):  # false positives
                c = rng.uniform(0.1, 0.9, 2)
                s = rng.uniform(0.05, 0.3, 2)
                fp = np.concatenate([c - s / 2, c + s / 2])
                a = int(rng.choice(80, p=freq) + 1)
                frame_dets.append((video, ts, *fp.tolist(), a, float(rng.random() * 0.6)))
            if rng.random() < 0.01:  # a degenerate box
                x = float(rng.uniform(0.2, 0.8))
                frame_dets.append((video, ts, x, 0.2, x, 0.6, 1, 0.99))
            order = rng.permutation(len(frame_dets))  # detections not sorted by score
            det.extend(frame_dets[i] for i in order)
    return {"gt": gt, "det": det, "excluded": excluded}


def write_case(case: Dict[str, list], out_dir: str) -> Dict[str, str]:
    """Write the official files (boxes with 3 decimals, scores with 4: many tied scores)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"{k}.csv") for k in ("gt", "det", "excluded")}
    paths["labelmap"] = os.path.join(out_dir, "labelmap.pbtxt")
    with open(paths["labelmap"], "w") as f:
        for i in EVAL_IDS:
            f.write(f'item {{\n  name: "action {i}"\n  id: {i}\n}}\n')
    with open(paths["gt"], "w") as f:
        for v, t, x1, y1, x2, y2, a, p in case["gt"]:
            f.write(f"{v},{t:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{a},{p}\n")
    with open(paths["det"], "w") as f:
        for v, t, x1, y1, x2, y2, a, s in case["det"]:
            f.write(f"{v},{t:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{a},{s:.4f}\n")
    with open(paths["excluded"], "w") as f:
        for v, t in case["excluded"]:
            f.write(f"{v},{t:04d}\n")
    return paths


# --------------------------------------------------------------------------- the plain loop


def loop_read_labelmap(path: str) -> Set[int]:
    ids = set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("id:") or line.startswith("label_id:"):
                ids.add(int(line.split(":")[1]))
    return ids


def loop_read_rows(path: str, with_score: bool) -> List[Tuple]:
    rows = []
    with open(path) as f:
        for row in csv.reader(f):
            if not row:
                continue
            score = float(row[7]) if with_score else 1.0
            coords = [float(x) for x in row[2:6]]
            rows.append((row[0], int(row[1]), *coords, int(row[6]), score))
    return rows


def loop_read_exclusions(path: str) -> Set[str]:
    with open(path) as f:
        return {f"{r[0]},{int(r[1]):04d}" for r in csv.reader(f) if r}


def _pair_iou(a, b) -> float:
    """IoU of two [x1, y1, x2, y2] boxes, continuous areas."""
    h = min(a[3], b[3]) - max(a[1], b[1])
    w = min(a[2], b[2]) - max(a[0], b[0])
    inter = max(0.0, h) * max(0.0, w)
    area_a = (a[3] - a[1]) * (a[2] - a[0])
    area_b = (b[3] - b[1]) * (b[2] - b[0])
    return inter / (area_a + area_b - inter)


def loop_evaluate(class_ids: Set[int], gt_rows, det_rows, excluded: Set[str]) -> Dict:
    """The protocol spelled out one frame, one class, one detection at a time."""
    gt_by_frame: Dict[str, Dict[int, list]] = {}
    positives = {c: 0 for c in class_ids}
    for v, t, x1, y1, x2, y2, a, _ in gt_rows:
        key = f"{v},{t:04d}"
        if a not in class_ids or key in excluded:
            continue
        gt_by_frame.setdefault(key, {}).setdefault(a, []).append((x1, y1, x2, y2))
        positives[a] += 1
    det_by_frame: Dict[str, list] = {}  # frames in order of first appearance
    for v, t, x1, y1, x2, y2, a, s in det_rows:
        if a not in class_ids:
            continue
        det_by_frame.setdefault(f"{v},{t:04d}", []).append((x1, y1, x2, y2, a, s))
    scores = {c: [] for c in class_ids}
    hits = {c: [] for c in class_ids}
    for key, rows in det_by_frame.items():
        if key in excluded:
            continue
        by_class: Dict[int, list] = {}
        for x1, y1, x2, y2, a, s in rows:
            if x1 < x2 and y1 < y2:
                by_class.setdefault(a, []).append(((x1, y1, x2, y2), s))
        frame_gt = gt_by_frame.get(key, {})
        for c in sorted(by_class):
            truths = frame_gt.get(c, [])
            taken = [False] * len(truths)
            for box, s in by_class[c]:  # the order given, not the score order
                best, best_j = -1.0, -1
                for j, g in enumerate(truths):
                    iou = _pair_iou(box, g)
                    if iou > best:
                        best, best_j = iou, j
                hit = best >= 0.5 and not taken[best_j]
                if hit:
                    taken[best_j] = True
                scores[c].append(s)
                hits[c].append(hit)
    aps = {}
    for c in sorted(class_ids):
        if positives[c] == 0:
            continue
        if not scores[c]:
            aps[c] = 0.0
            continue
        # the official ranking: numpy's default argsort, reversed (ties included)
        ranked = np.argsort(np.array(scores[c], dtype=float))[::-1].tolist()
        tp = fp = 0
        precision, recall = [], []
        for i in ranked:
            if hits[c][i]:
                tp += 1
            else:
                fp += 1
            precision.append(tp / (tp + fp))
            recall.append(tp / positives[c])
        ap, best_p = 0.0, 0.0
        recall = [0.0] + recall
        precision = [0.0] + precision
        for i in range(len(precision) - 1, 0, -1):
            best_p = max(best_p, precision[i])
            if recall[i] != recall[i - 1]:
                ap += (recall[i] - recall[i - 1]) * best_p
        aps[c] = ap
    mean = sum(aps.values()) / len(aps) if aps else float("nan")
    return {"mAP": mean, "per_class_AP": aps}


def loop_evaluate_from_files(labelmap: str, gt: str, det: str, excluded: str) -> Dict:
    return loop_evaluate(
        loop_read_labelmap(labelmap),
        loop_read_rows(gt, False),
        loop_read_rows(det, True),
        loop_read_exclusions(excluded),
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all-classes", action="store_true", help="score every class for every detected box"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--out", default="", help="keep the CSVs in this folder")
    args = parser.parse_args()

    tic = time.perf_counter()
    case = make_case(args.videos, args.seconds, args.seed, args.all_classes)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_case(case, args.out or tmp)
        print(
            f"{args.videos} videos x {args.seconds} s: {len(case['gt'])} ground-truth rows, "
            f"{len(case['det'])} detections, {len(case['excluded'])} excluded frames "
            f"(made in {time.perf_counter() - tic:.1f} s)"
        )
        files = (paths["labelmap"], paths["gt"], paths["det"], paths["excluded"])

        # evaluation alone, on data already read by each side's own reader
        categories, ids = ava.read_labelmap(paths["labelmap"])
        gt = ava.read_csv(paths["gt"], ids)
        det = ava.read_csv(paths["det"], ids, load_score=True)
        excl = ava.read_exclusions(paths["excluded"])
        rows = (
            loop_read_labelmap(paths["labelmap"]),
            loop_read_rows(paths["gt"], False),
            loop_read_rows(paths["det"], True),
            loop_read_exclusions(paths["excluded"]),
        )
        runs = {
            "fast": lambda: ava.evaluate_ava_from_files(*files),
            "slow": lambda: loop_evaluate_from_files(*files),
            "fast_eval": lambda: ava.evaluate_ava(gt, det, categories, excl),
            "slow_eval": lambda: loop_evaluate(*rows),
        }
        times = {k: float("inf") for k in runs}
        results = {}
        for _ in range(args.repeat):  # interleaved, best of --repeat
            for key, fn in runs.items():
                tic = time.perf_counter()
                results[key] = fn()
                times[key] = min(times[key], time.perf_counter() - tic)
    fast, slow, fast_mem, slow_mem = (
        results[k] for k in ("fast", "slow", "fast_eval", "slow_eval")
    )
    t_fast, t_slow = times["fast"], times["slow"]
    t_fast_eval, t_slow_eval = times["fast_eval"], times["slow_eval"]

    d_map = abs(fast["mAP"] - slow["mAP"])
    d_cls = max(
        abs(fast["per_class_AP"][c] - slow["per_class_AP"][c]) for c in slow["per_class_AP"]
    )
    assert fast["per_class_AP"].keys() == slow["per_class_AP"].keys()
    assert fast_mem["mAP"] == fast["mAP"] and slow_mem["mAP"] == slow["mAP"]
    print(
        f"mAP vectorised {fast['mAP']:.12f}  loop {slow['mAP']:.12f}  |dmAP| {d_map:.3g}  "
        f"max per-class |dAP| {d_cls:.3g}  ({len(slow['per_class_AP'])} classes)"
    )
    print(
        f"read + evaluate: vectorised {t_fast:.2f} s, loop {t_slow:.2f} s, "
        f"speed-up {t_slow / t_fast:.1f}x"
    )
    print(
        f"evaluate only:   vectorised {t_fast_eval:.2f} s, loop {t_slow_eval:.2f} s, "
        f"speed-up {t_slow_eval / t_fast_eval:.1f}x"
    )


if __name__ == "__main__":
    main()
