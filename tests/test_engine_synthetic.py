"""tools/run_net.py end to end on real encoded videos (the synthetic generator), real model."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_run_net_trains_and_tests_on_synthetic_videos(tmp_path):
    from slowfast.datasets.synthetic import make_kinetics_dataset

    data = str(tmp_path / "data")
    make_kinetics_dataset(
        data,
        num_classes=2,
        videos_per_class=2,
        eval_videos_per_class=1,
        num_frames=24,
        width=40,
        height=40,
    )
    out = str(tmp_path / "out")
    overrides = {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": out,
        "MODEL.NUM_CLASSES": 2,
        "DATA.NUM_FRAMES": 4,
        "DATA.SAMPLING_RATE": 2,
        "DATA.TRAIN_JITTER_SCALES": "[32, 40]",
        "DATA.TRAIN_CROP_SIZE": 32,
        "DATA.TEST_CROP_SIZE": 32,
        "TRAIN.BATCH_SIZE": 2,
        "TEST.BATCH_SIZE": 2,
        "TEST.NUM_ENSEMBLE_VIEWS": 2,
        "TEST.NUM_SPATIAL_CROPS": 1,
        "TEST.SAVE_RESULTS_PATH": "preds.pyth",
        "SOLVER.MAX_EPOCH": 1,
        "SOLVER.WARMUP_EPOCHS": 0.5,
        "BN.NUM_BATCHES_PRECISE": 1,
        "DATA_LOADER.NUM_WORKERS": 0,
        "LOG_MODEL_INFO": False,
    }
    argv = [sys.executable, "tools/run_net.py", "--cfg", "configs/Synthetic/SLOW_8x8_R18.yaml"]
    for key, value in overrides.items():
        argv += [key, str(value)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "run summary" in proc.stdout
    log = open(os.path.join(out, "stdout.log")).read()
    assert '"_type": "train_epoch"' in log and '"_type": "val_epoch"' in log
    assert "precise BN: updated" in log
    summary = json.load(open(os.path.join(out, "run_summary.json")))
    assert summary["decode_failures"] == [0]
    with open(os.path.join(out, "preds.pyth"), "rb") as f:
        preds, labels = pickle.load(f)
    assert preds.shape == (2, 2) and sorted(labels.tolist()) == [0, 1]
    top1 = (preds.argmax(1) == labels).float().mean().item() * 100
    assert abs(summary["test_top1_acc"] - top1) < 1e-6
