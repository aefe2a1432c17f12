"""tools/run_net.py end to end on real encoded videos (the synthetic generator), real model."""

import json
import os
import pickle

from small_run import SMALL_RUN, make_small_kinetics, run_net


def test_run_net_trains_and_tests_on_synthetic_videos(tmp_path):

    data = make_small_kinetics(str(tmp_path / "data"), num_frames=24)
    out = str(tmp_path / "out")
    overrides = {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": out,
        "MODEL.NUM_CLASSES": 2,
        "DATA.NUM_FRAMES": 4,
        "TEST.SAVE_RESULTS_PATH": "preds.pyth",
        "BN.NUM_BATCHES_PRECISE": 1,
        **SMALL_RUN,
    }
    proc = run_net(overrides, timeout=120)
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
