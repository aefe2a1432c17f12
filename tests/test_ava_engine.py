"""AVA end to end: ``tools/run_net.py`` trains and tests a small detector on the synthetic
AVA-format set, with and without PGT (PG long, orig long, all steps), and reports frame mAP
above what random scores of the same boxes get; ``tools/eval_ava.py`` on the written
detections gives the same mAP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slowfast.utils import ava_eval_helper as ava

REPO = Path(__file__).resolve().parents[1]
ANN = "annotations"
TINY = ["RESNET.WIDTH_PER_GROUP", "4", "DATA_LOADER.NUM_WORKERS", "0", "LOG_MODEL_INFO", "False"]
PGT_TINY = ["PGT.STEP_LEN", "[4]", "PGT.STEPS", "3", "DATA.NUM_FRAMES", "10"]


@pytest.fixture(scope="module")
def ava_set(tmp_path_factory):
    from slowfast.datasets.synthetic_ava import make_ava_dataset

    root = tmp_path_factory.mktemp("ava")
    make_ava_dataset(str(root))
    return root


def run_net(root: Path, cfg: str, out: Path, extra=()):
    argv = [sys.executable, "tools/run_net.py", "--cfg", f"configs/Synthetic/{cfg}.yaml"]
    argv += ["AVA.FRAME_DIR", str(root / "frames"), "AVA.FRAME_LIST_DIR", str(root / "frame_lists")]
    argv += ["AVA.ANNOTATION_DIR", str(root / ANN), "OUTPUT_DIR", str(out), *TINY, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.load(open(out / "run_summary.json"))
    return summary, (out / "stdout.log").read_text()


def official_files(root: Path):
    from slowfast.config.defaults import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Synthetic" / "AVA_SLOW.yaml"))
    a = root / ANN
    return (
        str(a / cfg.AVA.LABEL_MAP_FILE),
        str(a / cfg.AVA.GROUNDTRUTH_FILE),
        str(a / cfg.AVA.EXCLUSION_FILE),
    )


def random_score_map(root: Path, detections: Path, draws: int = 5) -> float:
    """mAP of the same boxes and classes with uniformly random scores (chance)."""
    labelmap, gt, excl = official_files(root)
    rows = list(csv.reader(open(detections)))
    values = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        shuffled = detections.with_name(f"random{seed}.csv")
        with open(shuffled, "w", newline="") as f:
            w = csv.writer(f)
            for row in rows:
                w.writerow(row[:7] + [f"{rng.random():.4f}"])
        values.append(ava.evaluate_ava_from_files(labelmap, gt, str(shuffled), excl)["mAP"])
    return float(np.mean(values))


def eval_ava_cli(root: Path, detections: Path) -> float:
    labelmap, gt, excl = official_files(root)
    argv = [sys.executable, "tools/eval_ava.py", "--labelmap", labelmap, "--groundtruth", gt]
    argv += ["--detections", str(detections), "--exclusions", excl]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["mAP"]


def test_clip_detector_learns_and_eval_ava_agrees(ava_set, tmp_path):
    out = tmp_path / "clip"
    summary, log = run_net(ava_set, "AVA_SLOW", out, ["SOLVER.MAX_EPOCH", "6"])
    assert '"_type": "train_epoch"' in log
    assert "label map" in log and "4 evaluated" in log  # 6 model classes, 4 in the label map
    detections = out / "detections_test.csv"
    chance = random_score_map(ava_set, detections)
    assert summary["test_map"] > chance + 0.2, (summary["test_map"], chance)
    assert abs(eval_ava_cli(ava_set, detections) - summary["test_map"]) < 1e-6


def test_pgt_detector_pg_long_orig_long_and_all_steps(ava_set, tmp_path):
    out = tmp_path / "pgt"
    summary, log = run_net(ava_set, "AVA_SLOW_PGT", out, ["SOLVER.MAX_EPOCH", "6", *PGT_TINY])
    assert "test cost per clip (PG long)" in log and summary["test_cost"]["steps"] == 3
    detections = out / "detections_test.csv"
    pg_rows = sum(1 for _ in open(detections))
    chance = random_score_map(ava_set, detections)
    assert summary["test_map"] > chance + 0.2, (summary["test_map"], chance)

    # the same weights, tested orig long (whole clip, the last step's window pooled)
    ckpt = sorted((out / "checkpoints").iterdir())[-1]
    test_only = ["TRAIN.ENABLE", "False", "TEST.CHECKPOINT_FILE_PATH", str(ckpt), *PGT_TINY]
    orig, log = run_net(
        ava_set, "AVA_SLOW_PGT", tmp_path / "orig", [*test_only, "PGT.PG_EVAL", "False"]
    )
    assert "test cost per clip (orig long)" in log and orig["test_cost"]["steps"] == 1
    assert orig["test_map"] > chance + 0.2, (orig["test_map"], chance)
    # and with every step's boxes scored (PGT.ALL_STEP_TEST): 3 steps' rows
    every, _ = run_net(
        ava_set, "AVA_SLOW_PGT", tmp_path / "all", [*test_only, "PGT.ALL_STEP_TEST", "True"]
    )
    assert sum(1 for _ in open(tmp_path / "all" / "detections_test.csv")) == 3 * pg_rows
    assert 0.0 <= every["test_map"] <= 1.0
