"""A Kinetics-format folder this project did not write: the eight real clips of ../shared
(H.264 and MPEG-4, mp4 and avi, 6 to 30 fps, 320x240 to 1920x1080), plus a corrupt file and a
missing one, trained and tested with a shipped config and only path/size overrides."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _write_split(path: Path, rows) -> None:
    # A separator other than a space, so the folder may have spaces in its name. Ten train
    # rows in batches of 2: none is dropped, so each bad file is read.
    path.write_text("".join(f"{video},{label}\n" for video, label in rows))


@pytest.mark.parametrize("config", ["configs/Kinetics/SLOW_8x8_R50.yaml"])
def test_shipped_config_trains_and_tests_on_real_clips(tmp_path, shared_dir, config):
    clips = sorted((shared_dir / "real_videos").glob("*.*[4i]"))
    assert len(clips) == 8, clips
    data = tmp_path / "my kinetics"
    data.mkdir()
    corrupt = data / "corrupt clip.mp4"
    corrupt.write_bytes(clips[0].read_bytes()[:2000])  # a header and no frames
    missing = data / "missing.mp4"
    rows = [(str(c), i % 2) for i, c in enumerate(clips)]
    _write_split(data / "train.csv", rows + [(str(corrupt), 0), (str(missing), 1)])
    _write_split(data / "val.csv", rows[:4] + [(str(missing), 1)])
    _write_split(data / "test.csv", rows[:4])
    out = tmp_path / "out"
    overrides = {
        "DATA.PATH_TO_DATA_DIR": str(data),
        "DATA.PATH_LABEL_SEPARATOR": ",",
        "OUTPUT_DIR": str(out),
        "NUM_GPUS": 0,
        "DIST_BACKEND": "gloo",
        "MODEL.NUM_CLASSES": 2,
        "DATA.NUM_FRAMES": 4,
        "DATA.TRAIN_JITTER_SCALES": "[64, 72]",
        "DATA.TRAIN_CROP_SIZE": 64,
        "DATA.TEST_CROP_SIZE": 64,
        "TRAIN.BATCH_SIZE": 2,
        "TEST.BATCH_SIZE": 4,
        "TEST.NUM_ENSEMBLE_VIEWS": 2,
        "TEST.NUM_SPATIAL_CROPS": 3,
        "SOLVER.MAX_EPOCH": 1,
        "TRAIN.EVAL_PERIOD": 1,
        "DATA_LOADER.NUM_WORKERS": 0,
        "LOG_MODEL_INFO": False,
    }
    argv = [sys.executable, "tools/run_net.py", "--cfg", config]
    for key, value in overrides.items():
        argv += [key, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "stdout.log").read_text()
    # Both bad files are named in the log, with a reason, and counted.
    assert str(corrupt) in log and str(missing) in log
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["decode_failures"][0] >= 1
    assert summary["test_views"] == 6
    assert 0.0 <= summary["test_top1_acc"] <= 100.0
    assert (out / "checkpoints" / "checkpoint_epoch_00001.pyth").is_file()
