"""Synthetic AVA-format data: JPEG frame folders, frame lists, box CSVs, proposals, label map.

A "person" is a filled rectangle (12 x 24 pixels at 64 x 64) whose look and motion during each
second decide that second's actions (so a model can learn them from the frames):

=====  =====================  ==========================================================
 id     name                   what the frames show
=====  =====================  ==========================================================
 1      red                    the rectangle is red (one of 1..3 always holds: a "pose")
 2      green                  ... green
 3      blue                   ... blue
 4      move horizontally      it oscillates left-right (amplitude 5 px, period 1 s)
 5      move vertically        it oscillates up-down
 6      striped                a white horizontal band across its middle
=====  =====================  ==========================================================

The model predicts ``NUM_CLASSES = 6``; the label map (AVA's 60-of-80 evaluation map)
lists ``EVAL_CLASSES`` = 1, 2, 4, 5. A person's state (colour, motion, stripe) is drawn anew
every ``segment_secs`` seconds, so earlier seconds of a clip (PGT's steps) carry other labels
than the keyframe. The state of second ``s`` holds on the frames nearest to ``s``
(``frame_to_sec``); a box is the rectangle on the keyframe, exactly enclosing its pixels.

Time follows PySlowFast's AVA: 30 fps, frame 0 = second 900 (AVA's frames start at 15:00), so
second ``s`` is frame ``(s - 900) * 30``, and keyframes must lie in PySlowFast's 902..1798. The
annotated seconds are ``first_sec .. first_sec + num_secs - 1`` (default 902..909); the frames
run from second 900 to one second past the last annotated one, so clips near the ends are
clamped as on real AVA. No config override is needed.

Layout (the official file names, so ``configs/AVA`` paths resolve)::

    out/frames/<video>/<video>_000001.jpg ...            AVA.FRAME_DIR = out/frames
    out/frame_lists/train.csv, val.csv                   AVA.FRAME_LIST_DIR = out/frame_lists
    out/annotations/                                     AVA.ANNOTATION_DIR = out/annotations
        ava_train_v2.2.csv, ava_val_v2.2.csv             ground truth (person ids in column 8)
        ava_action_list_v2.2_for_activitynet_2019.pbtxt  the evaluation label map
        ava_val_excluded_timestamps_v2.2.csv             excluded val seconds
        person_box_67091280_iou90/ava_detection_train_boxes_and_labels_include_negative_v2.2.csv
        person_box_67091280_iou90/ava_detection_val_boxes_and_labels.csv
    out/synthetic_ava.json                               arguments and every person's states

Proposals are the ground-truth boxes jittered by up to a pixel with scores in [0.9, 1] (train:
with the ground truth's actions), plus background boxes: in train labelled ``-1`` (negatives),
half of them above ``DETECTION_SCORE_THRESH`` 0.9; in val all below it (dropped). Output is
deterministic for a seed.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from slowfast.datasets.ava_helper import AVA_VALID_SECS, FPS, START_SEC, frame_to_sec
from slowfast.datasets.frame_list import write_frame_list

ACTIONS = {
    1: "red",
    2: "green",
    3: "blue",
    4: "move horizontally",
    5: "move vertically",
    6: "striped",
}
NUM_CLASSES = len(ACTIONS)
EVAL_CLASSES = (1, 2, 4, 5)
COLORS = ((220, 40, 40), (40, 200, 60), (50, 90, 240))  # RGB of actions 1..3
FRAME_DIR = "frames"
FRAME_LIST_DIR = "frame_lists"
ANNOTATION_DIR = "annotations"
PROPOSAL_DIR = "person_box_67091280_iou90"
TRAIN_GT = "ava_train_v2.2.csv"
VAL_GT = "ava_val_v2.2.csv"
LABEL_MAP = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
EXCLUSIONS = "ava_val_excluded_timestamps_v2.2.csv"
TRAIN_PROPOSALS = f"{PROPOSAL_DIR}/ava_detection_train_boxes_and_labels_include_negative_v2.2.csv"
VAL_PROPOSALS = f"{PROPOSAL_DIR}/ava_detection_val_boxes_and_labels.csv"
SPLIT_SEEDS = {"train": 0, "val": 1}


def person_actions(state: Dict[str, int]) -> List[int]:
    """Action ids of a person state ``{"color": 0..2, "motion": 0..2, "stripe": 0/1}``."""
    out = [1 + state["color"]]
    if state["motion"] == 1:
        out.append(4)
    elif state["motion"] == 2:
        out.append(5)
    if state["stripe"]:
        out.append(6)
    return out


def _draw_states(rng: np.random.Generator, secs: Sequence[int], segment: int) -> Dict[int, dict]:
    states = {}
    current = None
    for i, sec in enumerate(secs):
        if current is None or i % segment == 0:
            current = {
                "color": int(rng.integers(3)),
                "motion": int(rng.integers(3)),
                "stripe": int(rng.random() < 0.4),
            }
        states[sec] = dict(current)
    return states


def person_rect(person: dict, frame: int) -> Tuple[int, int, int, int]:
    """Integer pixel rectangle ``(x1, y1, x2, y2)`` (exclusive ends) of ``person`` on ``frame``."""
    state = person["states"][frame_to_sec(frame)]
    phase = 2 * np.pi * frame / FPS
    dx = dy = 0.0
    if state["motion"] == 1:
        dx = person["amplitude"] * np.sin(phase)
    elif state["motion"] == 2:
        dy = person["amplitude"] * np.sin(phase)
    x1 = int(round(person["cx"] + dx - person["w"] / 2))
    y1 = int(round(person["cy"] + dy - person["h"] / 2))
    return x1, y1, x1 + person["w"], y1 + person["h"]


def render_frame(persons: Sequence[dict], frame: int, height: int, width: int, bg) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB frame ``frame`` of a video."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[...] = bg
    for person in persons:
        state = person["states"][frame_to_sec(frame)]
        x1, y1, x2, y2 = person_rect(person, frame)
        img[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = COLORS[state["color"]]
        if state["stripe"]:
            mid = (y1 + y2) // 2
            band = max(2, (y2 - y1) // 6)
            img[max(mid - band // 2, 0) : max(mid - band // 2 + band, 0), max(x1, 0) : x2] = 255
    return img


def _video_persons(rng, secs_all, segment, width, height) -> List[dict]:
    n = 1 if rng.random() < 0.4 else 2
    w, h = max(4, round(width * 12 / 64)), max(8, round(height * 24 / 64))
    amp = max(2.0, width * 5 / 64)
    slots = [width * 0.5] if n == 1 else [width * 0.28, width * 0.72]
    persons = []
    for pid, cx in enumerate(slots):
        cx = float(cx + rng.uniform(-1.5, 1.5))
        cy = float(height / 2 + rng.uniform(-height * 0.12, height * 0.12))
        persons.append(
            {
                "person_id": pid,
                "cx": cx,
                "cy": cy,
                "w": int(w),
                "h": int(h),
                "amplitude": float(amp),
                "states": _draw_states(rng, secs_all, segment),
            }
        )
    return persons


def _norm(rect, width, height) -> List[float]:
    x1, y1, x2, y2 = rect
    return [
        min(max(x1 / width, 0.0), 1.0),
        min(max(y1 / height, 0.0), 1.0),
        min(max(x2 / width, 0.0), 1.0),
        min(max(y2 / height, 0.0), 1.0),
    ]


def _fmt(box: Sequence[float]) -> str:
    return ",".join(f"{v:.6f}" for v in box)


def write_label_map(path: str, classes: Sequence[int]) -> None:
    """A ``.pbtxt`` label map of ``classes`` (AVA's layout)."""
    with open(path, "w") as f:
        for c in classes:
            f.write(f'item {{\n  name: "{ACTIONS[c]}"\n  id: {c}\n}}\n')


def make_ava_dataset(
    out_dir: str,
    train_videos: int = 4,
    val_videos: int = 2,
    first_sec: int = 902,
    num_secs: int = 8,
    segment_secs: int = 2,
    width: int = 64,
    height: int = 64,
    seed: int = 0,
    jpeg_quality: int = 90,
) -> dict:
    """Write the synthetic AVA dataset to ``out_dir`` (see the module docstring).

    Returns a summary: ``videos``, ``frames``, ``keyframes`` per split, ``num_classes``,
    ``eval_classes`` and the config ``overrides`` (AVA.* folders) to use it.
    """
    last_sec = first_sec + num_secs - 1
    if first_sec < AVA_VALID_SECS[0] or last_sec > AVA_VALID_SECS[-1] or num_secs < 1:
        raise ValueError(
            f"annotated seconds {first_sec}..{last_sec} must lie in PySlowFast's AVA range "
            f"{AVA_VALID_SECS[0]}..{AVA_VALID_SECS[-1]} (keyframes outside it are not used)"
        )
    num_frames = (last_sec + 1 - START_SEC) * FPS + FPS // 2
    secs_all = list(range(START_SEC, frame_to_sec(num_frames - 1) + 1))
    annotated = list(range(first_sec, last_sec + 1))
    ann_dir = os.path.join(out_dir, ANNOTATION_DIR)
    for d in (
        FRAME_DIR,
        FRAME_LIST_DIR,
        ANNOTATION_DIR,
        os.path.join(ANNOTATION_DIR, PROPOSAL_DIR),
    ):
        os.makedirs(os.path.join(out_dir, d), exist_ok=True)
    summary: dict = {
        "args": {
            "train_videos": train_videos,
            "val_videos": val_videos,
            "first_sec": first_sec,
            "num_secs": num_secs,
            "segment_secs": segment_secs,
            "width": width,
            "height": height,
            "seed": seed,
        },
        "num_classes": NUM_CLASSES,
        "eval_classes": list(EVAL_CLASSES),
        "videos": 0,
        "frames": 0,
        "keyframes": {},
        "persons": {},
    }
    excluded: List[Tuple[str, int]] = []
    for split, count in (("train", train_videos), ("val", val_videos)):
        gt_rows: List[str] = []
        prop_rows: List[str] = []
        list_rows = []
        for v in range(count):
            rng = np.random.default_rng([seed, SPLIT_SEEDS[split], v])
            name = f"syn_{split}_{v:02d}"
            persons = _video_persons(rng, secs_all, segment_secs, width, height)
            bg = np.asarray(rng.integers(20, 60, size=3), dtype=np.uint8)
            folder = os.path.join(out_dir, FRAME_DIR, name)
            os.makedirs(folder, exist_ok=True)
            for f in range(num_frames):
                rel = f"{name}/{name}_{f + 1:06d}.jpg"
                img = render_frame(persons, f, height, width, bg)
                ok = cv2.imwrite(
                    os.path.join(out_dir, FRAME_DIR, rel),
                    img[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
                )
                if not ok:
                    raise OSError(f"could not write {rel} under {out_dir}/{FRAME_DIR}")
                list_rows.append((name, v, f, rel, []))
            for sec in annotated:
                frame = (sec - START_SEC) * FPS
                for person in persons:
                    box = _norm(person_rect(person, frame), width, height)
                    acts = person_actions(person["states"][sec])
                    for a in acts:
                        gt_rows.append(f"{name},{sec:04d},{_fmt(box)},{a},{person['person_id']}")
                    jit = np.asarray(box) + rng.uniform(-1, 1, 4) * np.asarray(
                        [1 / width, 1 / height] * 2
                    )
                    jit = np.clip(jit, 0.0, 1.0)
                    score = float(rng.uniform(0.9, 1.0))
                    if split == "train":
                        for a in acts:
                            prop_rows.append(f"{name},{sec:04d},{_fmt(jit)},{a},{score:.6f}")
                    else:
                        prop_rows.append(f"{name},{sec:04d},{_fmt(jit)},,{score:.6f}")
                # a background box: a negative proposal
                bw, bh = rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.2)
                bx, by = rng.uniform(0, 1 - bw), rng.uniform(0, 0.1)
                neg = [bx, by, bx + bw, by + bh]
                if split == "train":
                    score = 0.95 if rng.random() < 0.5 else 0.5
                    prop_rows.append(f"{name},{sec:04d},{_fmt(neg)},-1,{score:.6f}")
                else:
                    prop_rows.append(f"{name},{sec:04d},{_fmt(neg)},,{0.3:.6f}")
            if split == "val" and v == 0:
                excluded.append((name, annotated[-1]))
            summary["persons"][name] = [
                {
                    **{k: p[k] for k in ("person_id", "cx", "cy", "w", "h", "amplitude")},
                    "actions": {str(s): person_actions(p["states"][s]) for s in annotated},
                }
                for p in persons
            ]
            summary["videos"] += 1
            summary["frames"] += num_frames
        write_frame_list(
            os.path.join(out_dir, FRAME_LIST_DIR, f"{split}.csv"), list_rows, quote_empty=True
        )
        gt_name = TRAIN_GT if split == "train" else VAL_GT
        prop_name = TRAIN_PROPOSALS if split == "train" else VAL_PROPOSALS
        with open(os.path.join(ann_dir, gt_name), "w") as f:
            f.write("\n".join(gt_rows) + "\n")
        with open(os.path.join(ann_dir, prop_name), "w") as f:
            f.write("\n".join(prop_rows) + "\n")
        summary["keyframes"][split] = count * len(annotated)
    write_label_map(os.path.join(ann_dir, LABEL_MAP), EVAL_CLASSES)
    with open(os.path.join(ann_dir, EXCLUSIONS), "w") as f:
        f.write("".join(f"{name},{sec:04d}\n" for name, sec in excluded))
    summary["overrides"] = [
        "AVA.FRAME_DIR",
        os.path.join(out_dir, FRAME_DIR),
        "AVA.FRAME_LIST_DIR",
        os.path.join(out_dir, FRAME_LIST_DIR),
        "AVA.ANNOTATION_DIR",
        ann_dir,
    ]
    with open(os.path.join(out_dir, "synthetic_ava.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
