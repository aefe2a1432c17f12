"""What the end-to-end tests share to run ``tools/run_net.py`` as a user would, small: a
synthetic Kinetics folder, the overrides of a 1-epoch run on 32 px crops of it, and the call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

REPO = Path(__file__).resolve().parents[1]

# 32 px crops of 40 px videos at sampling rate 2, batches of 2, 2 x 1 test views, one epoch
# (half of it warm-up), no data-loader workers, no model summary.
SMALL_RUN: Dict[str, Any] = {
    "DATA.SAMPLING_RATE": 2,
    "DATA.TRAIN_JITTER_SCALES": "[32, 40]",
    "DATA.TRAIN_CROP_SIZE": 32,
    "DATA.TEST_CROP_SIZE": 32,
    "TRAIN.BATCH_SIZE": 2,
    "TEST.BATCH_SIZE": 2,
    "TEST.NUM_ENSEMBLE_VIEWS": 2,
    "TEST.NUM_SPATIAL_CROPS": 1,
    "SOLVER.MAX_EPOCH": 1,
    "SOLVER.WARMUP_EPOCHS": 0.5,
    "DATA_LOADER.NUM_WORKERS": 0,
    "LOG_MODEL_INFO": False,
}


def make_small_kinetics(root: str, num_frames: int = 30) -> str:
    """A synthetic Kinetics folder at ``root``: 2 classes, 2 training videos and 1 val / test
    video per class, 40 x 40 pixels, ``num_frames`` frames each; returns ``root``."""
    from slowfast.datasets.synthetic import make_kinetics_dataset

    make_kinetics_dataset(
        root,
        num_classes=2,
        videos_per_class=2,
        eval_videos_per_class=1,
        num_frames=num_frames,
        width=40,
        height=40,
    )
    return root


def as_opts(overrides: Dict[str, Any]) -> list:
    """``KEY VALUE`` command-line pairs of ``overrides``."""
    return [str(x) for kv in overrides.items() for x in kv]


def run_net(
    overrides: Dict[str, Any], cfg: str = "configs/Synthetic/SLOW_8x8_R18.yaml", timeout=300
) -> subprocess.CompletedProcess:
    """``tools/run_net.py --cfg cfg`` with ``overrides`` from the repository root; asserts
    exit 0 (the output's tails in the message otherwise)."""
    argv = [sys.executable, "tools/run_net.py", "--cfg", cfg, *as_opts(overrides)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
