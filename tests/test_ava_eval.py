"""AVA frame mAP (the official ActivityNet protocol): hand-computed cases, readers, CLI, meter."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slowfast.config.defaults import get_cfg
from slowfast.utils import ava_eval_helper as ava
from slowfast.utils.ava_eval_helper import AVABoxes, evaluate_ava
from slowfast.utils.meters import AVAMeter

REPO = Path(__file__).resolve().parents[1]
FULL = (0.1, 0.1, 0.5, 0.9)  # a person box
OTHER = (0.6, 0.1, 0.9, 0.9)  # another person, disjoint from FULL


def rows_to_boxes(rows, source="<test>"):
    """(video, ts, box, action[, score]) tuples -> AVABoxes."""
    if not rows:
        return AVABoxes.empty(source)
    return AVABoxes(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] if len(r) > 4 else 1.0 for r in rows],
        source,
    )


def ap_of(gt, det, classes=(1,), excluded=()):
    return evaluate_ava(rows_to_boxes(gt), rows_to_boxes(det), set(classes), excluded)


def official_rank_ap(scores, is_tp, num_gt):
    """AP for the official ranking (numpy's default argsort, reversed), by hand."""
    order = np.argsort(np.asarray(scores, dtype=float))[::-1]
    tp = np.asarray(is_tp)[order]
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    recall = np.cumsum(tp) / num_gt
    ap, prev_r = 0.0, 0.0
    for i in range(len(tp)):
        if recall[i] != prev_r:
            ap += (recall[i] - prev_r) * precision[i:].max()
            prev_r = recall[i]
    return ap


# --------------------------------------------------------------------------- protocol


def test_perfect_and_interpolated_ap():
    assert ap_of([("v", 1, FULL, 1)], [("v", 1, FULL, 1, 0.3)])["mAP"] == 1.0
    # ranked TP, FP, TP over 3 ground truths: P = 1, 1/2, 2/3 at R = 1/3, 1/3, 2/3
    gt = [("v", 1, FULL, 1), ("v", 1, OTHER, 1), ("v", 2, FULL, 1)]
    det = [
        ("v", 1, FULL, 1, 0.9),
        ("v", 2, OTHER, 1, 0.8),  # no ground truth there: FP
        ("v", 1, OTHER, 1, 0.7),
    ]
    assert ap_of(gt, det)["mAP"] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3, abs=1e-15)


def test_second_hit_on_a_taken_box_is_a_false_positive():
    gt = [("v", 1, FULL, 1), ("v", 1, OTHER, 1)]
    det = [("v", 1, FULL, 1, 0.9), ("v", 1, FULL, 1, 0.8), ("v", 1, OTHER, 1, 0.7)]
    # TP, FP, TP: R = 1/2, 1/2, 1 with interpolated P = 1, 2/3, 2/3
    assert ap_of(gt, det)["mAP"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-15)


def test_no_fallback_to_a_free_box_after_the_best_one_is_taken():
    # two identical ground truths: both detections pick the first (np.argmax's tie rule);
    # the second is a false positive although the other box is free
    gt = [("v", 1, FULL, 1), ("v", 1, FULL, 1)]
    det = [("v", 1, FULL, 1, 0.9), ("v", 1, FULL, 1, 0.8)]
    assert ap_of(gt, det)["mAP"] == pytest.approx(0.5)
    # an IoU tie (0.6 with both boxes) goes to the first box, which the second detection
    # (IoU 1 with that box) then finds taken
    gt = [("v", 1, (0.0, 0.0, 0.5, 1.0), 1), ("v", 1, (0.25, 0.0, 0.75, 1.0), 1)]
    det = [("v", 1, (0.125, 0.0, 0.625, 1.0), 1, 0.9), ("v", 1, (0.0, 0.0, 0.5, 1.0), 1, 0.8)]
    assert ap_of(gt, det)["mAP"] == pytest.approx(0.5)
    # highest IoU, not the first above 0.5: the detection takes the box it overlaps best
    near = (0.1, 0.1, 0.5, 0.85)
    gt = [("v", 1, near, 1), ("v", 1, FULL, 1)]
    det = [("v", 1, FULL, 1, 0.9), ("v", 1, FULL, 1, 0.8)]
    assert ap_of(gt, det)["mAP"] == pytest.approx(0.5)


def test_order_given_within_a_frame_decides_the_match():
    gt = [("v", 1, FULL, 1)]
    low_first = [("v", 1, FULL, 1, 0.2), ("v", 1, FULL, 1, 0.9)]
    # the 0.2 detection comes first and takes the box; the 0.9 one, ranked first, is a FP
    assert ap_of(gt, low_first)["mAP"] == pytest.approx(0.5)
    # the same detections in score order: the 0.9 one matches
    assert ap_of(gt, low_first[::-1])["mAP"] == 1.0


def test_tied_scores_are_ranked_as_the_official_argsort():
    gt = [("v", 1, FULL, 1)]
    det = [("v", 1, FULL, 1, 0.5), ("v", 2, FULL, 1, 0.5)]  # TP then FP (no GT in frame 2)
    want = official_rank_ap([0.5, 0.5], [1, 0], 1)
    assert ap_of(gt, det)["mAP"] == want
    det_swapped = [det[1], det[0]]  # frame 2 first: FP then TP in the concatenation
    assert ap_of(gt, det_swapped)["mAP"] == official_rank_ap([0.5, 0.5], [0, 1], 1)


def test_classes_without_ground_truth_are_left_out_and_missing_detections_count_zero():
    gt = [("v", 1, FULL, 1), ("v", 1, OTHER, 2)]
    det = [("v", 1, FULL, 1, 0.9), ("v", 1, FULL, 3, 0.9)]  # class 3: no ground truth
    res = ap_of(gt, det, classes=(1, 2, 3))
    assert res["per_class_AP"] == {1: 1.0, 2: 0.0}
    assert res["mAP"] == 0.5


def test_excluded_frames_are_dropped_from_both_sides():
    gt = [("v", 902, FULL, 1), ("v", 903, FULL, 1)]
    det = [("v", 903, OTHER, 1, 0.9), ("v", 902, FULL, 1, 0.5)]
    assert ap_of(gt, det)["mAP"] == pytest.approx(0.25)  # FP first, 1 of 2 found
    assert ap_of(gt, det, excluded={"v,0903"})["mAP"] == 1.0
    assert ap_of(gt, det, excluded={("v", 903)})["mAP"] == 1.0


def test_degenerate_detections_and_foreign_actions_are_dropped():
    gt = [("v", 1, FULL, 1), ("v", 1, OTHER, 7)]
    det = [
        ("v", 1, (0.3, 0.1, 0.3, 0.9), 1, 0.99),  # x2 == x1
        ("v", 1, (0.1, 0.9, 0.5, 0.1), 1, 0.98),  # y2 < y1
        ("v", 1, FULL, 1, 0.5),
        ("v", 1, FULL, 7, 0.97),  # action 7 not in the label map
    ]
    res = ap_of(gt, det, classes=(1, 2))
    assert res == {"mAP": 1.0, "per_class_AP": {1: 1.0}}


def test_iou_of_exactly_half_counts():
    gt = [("v", 1, (0.0, 0.0, 0.5, 1.0), 1)]
    assert ap_of(gt, [("v", 1, (0.0, 0.0, 1.0, 1.0), 1, 0.5)])["mAP"] == 1.0
    just_below = (0.0, 0.0, 1.0, 1.0 + 2**-20)
    assert ap_of(gt, [("v", 1, just_below, 1, 0.5)])["mAP"] == 0.0


def test_pyslowfast_dicts_are_accepted():
    gt = ({"v,0001": [[0.1, 0.1, 0.9, 0.5]]}, {"v,0001": [1]}, {"v,0001": [1.0]})
    det = ({"v,0001": [[0.1, 0.1, 0.9, 0.5]]}, {"v,0001": [1]}, {"v,0001": [0.4]})
    assert evaluate_ava(gt, det, [{"id": 1, "name": "a"}])["mAP"] == 1.0


# --------------------------------------------------------------------------- readers


def _write(path, text):
    path.write_text(text)
    return str(path)


LABELMAP = """item {
  name: "bend/bow (at the waist)"
  id: 1
  label_type: PERSON_MOVEMENT
}
item { name: "talk to (e.g., self, a person, a group)" id: 79 }
# a comment
item {
  name: "watch (a person)"
  label_id: 80
}
"""


def test_read_labelmap(tmp_path):
    cats, ids = ava.read_labelmap(_write(tmp_path / "m.pbtxt", LABELMAP))
    assert cats == [
        {"id": 1, "name": "bend/bow (at the waist)"},
        {"id": 79, "name": "talk to (e.g., self, a person, a group)"},
        {"id": 80, "name": "watch (a person)"},
    ]
    assert ids == {1, 79, 80}


@pytest.mark.parametrize(
    "text, line, words",
    [
        ('item {\n  name: "a"\n}\n', 1, "without an 'id'"),
        ('item {\n  name: "a"\n  id: x\n}\n', 3, "not an integer"),
        ("item {\n  id: 1\n}\nitem {\n  id: 1\n}\n", 4, "repeats"),
        ("item {\n  id: 0\n}\n", 2, "1-based"),
        ("item {\n  id: 1\n", 1, "not closed"),
        ("item {\n  id: 1\n}\nid: 2\n", 4, "outside an item"),
    ],
)
def test_read_labelmap_errors_name_file_and_line(tmp_path, text, line, words):
    path = _write(tmp_path / "bad.pbtxt", text)
    with pytest.raises(ValueError, match=f"bad.pbtxt:{line}: .*{words}"):
        ava.read_labelmap(path)


def test_read_csv_and_whitelist(tmp_path):
    path = _write(
        tmp_path / "gt.csv",
        "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n"
        "-5KQ66BBWC4,902,0.077,0.151,0.283,0.811,2,1\n"
        "\n"
        "0f39OWEqJ24,1798,0.1,0.2,0.3,0.4,12\n",
    )
    data = ava.read_csv(path)
    assert data.keys() == ["-5KQ66BBWC4,0902", "-5KQ66BBWC4,0902", "0f39OWEqJ24,1798"]
    assert data.labels.tolist() == [80, 2, 12]
    assert data.boxes[0].tolist() == [0.077, 0.151, 0.283, 0.811]
    assert data.scores.tolist() == [1.0, 1.0, 1.0]
    assert ava.read_csv(path, class_whitelist={80, 12}).labels.tolist() == [80, 12]


@pytest.mark.parametrize(
    "text, line, load_score, words",
    [
        ("v,1,0.1,0.1,0.5,0.5,1,0.9\nv,1,0.1,zz,0.5,0.5,1,0.9\n", 2, True, "not 4 numbers"),
        ("v,1,0.1,0.1,0.5,0.5,1,0.9\nv,1,0.1,0.1,0.5,0.5,1\n", 2, True, "7 columns"),
        ("v,1,0.1,0.1,0.5,0.5,1\nv,1,0.1,0.1,0.5,0.5,1,3,4\n", 2, False, "9 columns"),
        ("v,1,0.1,0.1,0.5,0.5,1\n\nv,1.5,0.1,0.1,0.5,0.5,1\n", 3, False, "timestamp"),
        ("v,1,0.1,0.1,0.5,0.5,1\nv,1,0.1,0.1,0.5,0.5,a\n", 2, False, "action id"),
        ("v,1,0.1,0.1,0.5,0.5,1,0.5\nv,1,0.1,0.1,0.5,0.5,1,nan\n", 2, True, "score"),
        ("v,1,0.1,0.1,0.5,0.5,1\nv,2,0.6,0.1,0.5,0.5,1\n", 2, False, "x2 < x1"),
    ],
)
def test_read_csv_errors_name_file_and_line(tmp_path, text, line, load_score, words):
    path = _write(tmp_path / "rows.csv", text)
    with pytest.raises(ValueError, match=f"rows.csv:{line}: .*{words}"):
        ava.read_csv(path, load_score=load_score)


def test_read_exclusions(tmp_path):
    path = _write(tmp_path / "ex.csv", "-5KQ66BBWC4,0902\nabc,1798\n")
    assert ava.read_exclusions(path) == {"-5KQ66BBWC4,0902", "abc,1798"}
    assert ava.read_exclusions(None) == set()
    bad = _write(tmp_path / "bad.csv", "a,0902\nb\n")
    with pytest.raises(ValueError, match="bad.csv:2: 1 columns"):
        ava.read_exclusions(bad)


def test_fast_reader_equals_line_reader(tmp_path):
    rng = np.random.default_rng(1)
    lines = []
    for i in range(500):
        b = np.sort(rng.random(4).reshape(2, 2), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        vals = ",".join(repr(float(x)) for x in b)
        lines.append(f"vid{i % 7},{900 + i % 30},{vals},{rng.integers(1, 81)},{rng.random()!r}")
    path = _write(tmp_path / "det.csv", "\n".join(lines) + "\n")
    fast = ava.read_csv(path, load_score=True)
    slow = ava._read_csv_slow(path, load_score=True, check_gt_boxes=False)
    assert fast.keys() == slow.keys()
    for name in ("boxes", "labels", "scores"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name


# --------------------------------------------------------------------------- independent loop


def _load_benchmark():
    path = REPO / "benchmarks" / "ava_eval.py"
    spec = importlib.util.spec_from_file_location("_ava_eval_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_independent_loop_on_random_files(tmp_path, seed):
    bench = _load_benchmark()
    case = bench.make_case(videos=6, seconds=12, seed=seed)
    rng = np.random.default_rng(seed)
    case["det"] = [case["det"][i] for i in rng.permutation(len(case["det"]))]  # frames interleaved
    case["excluded"] = case["excluded"] + [(case["gt"][0][0], case["gt"][0][1])]
    paths = bench.write_case(case, str(tmp_path))
    files = (paths["labelmap"], paths["gt"], paths["det"], paths["excluded"])
    ours = ava.evaluate_ava_from_files(*files)
    loop = bench.loop_evaluate_from_files(*files)
    assert ours["per_class_AP"].keys() == loop["per_class_AP"].keys()
    for c, ap in loop["per_class_AP"].items():
        assert ours["per_class_AP"][c] == pytest.approx(ap, abs=1e-12)
    assert ours["mAP"] == pytest.approx(loop["mAP"], abs=1e-12)
    assert 0.05 < ours["mAP"] < 0.95  # a case with both hits and misses


# --------------------------------------------------------------------------- CLI


def test_cli_last_line_is_the_json(tmp_path):
    bench = _load_benchmark()
    paths = bench.write_case(bench.make_case(videos=3, seconds=5, seed=3), str(tmp_path))
    cmd = [
        sys.executable,
        str(REPO / "tools" / "eval_ava.py"),
        "--labelmap",
        paths["labelmap"],
        "--groundtruth",
        paths["gt"],
        "--detections",
        paths["det"],
        "--exclusions",
        paths["excluded"],
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
    last = json.loads(out.stdout.strip().splitlines()[-1])
    want = ava.evaluate_ava_from_files(
        paths["labelmap"], paths["gt"], paths["det"], paths["excluded"]
    )
    assert last["mAP"] == want["mAP"]
    assert last["per_class_AP"] == {str(k): v for k, v in want["per_class_AP"].items()}
    assert "action 1" in out.stdout  # the per-class table

    bad = _write(tmp_path / "bad.csv", "v,1,0.1,0.1,0.5,0.5,1\n")
    cmd[cmd.index("--detections") + 1] = bad
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 2 and "bad.csv:1" in out.stderr


# --------------------------------------------------------------------------- meter


def _ava_cfg(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    # label map of ids 1 and 3 (a 3-class model: column 1 = id 2 is not evaluated)
    _write(
        ann / "labels.pbtxt", 'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "c"\n  id: 3\n}\n'
    )
    _write(
        ann / "gt.csv",
        "vidA,0902,0.1,0.1,0.5,0.9,1,0\n"
        "vidA,0902,0.6,0.1,0.9,0.9,3,1\n"
        "vidA,0903,0.1,0.1,0.5,0.9,1,0\n"
        "vidB,0902,0.2,0.2,0.6,0.6,3,0\n"
        "vidB,0904,0.2,0.2,0.6,0.6,1,0\n",
    )
    _write(ann / "excl.csv", "vidB,0904\n")
    cfg = get_cfg()
    cfg.AVA.ANNOTATION_DIR = str(ann)
    cfg.AVA.LABEL_MAP_FILE = "labels.pbtxt"
    cfg.AVA.GROUNDTRUTH_FILE = "gt.csv"
    cfg.AVA.EXCLUSION_FILE = "excl.csv"
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.LOG_PERIOD = 1
    return cfg


def test_ava_meter_end_to_end(tmp_path):
    cfg = _ava_cfg(tmp_path)
    boxes = torch.tensor(
        [[0.1, 0.1, 0.5, 0.9], [0.6, 0.1, 0.9, 0.9], [0.1, 0.1, 0.5, 0.9], [0.2, 0.2, 0.6, 0.6]]
    )
    preds = torch.tensor([[0.9, 0.99, 0.1], [0.2, 0.99, 0.8], [0.7, 0.99, 0.3], [0.6, 0.99, 0.25]])
    meta = torch.tensor([[0, 902], [0, 902], [0, 903], [1, 902]])
    meter = AVAMeter(2, cfg, "test", video_names=["vidA", "vidB"])
    meter.iter_tic()
    meter.data_toc()
    meter.update_stats(preds[:2], boxes[:2], meta[:2])
    meter.iter_toc()
    assert meter.log_iter_stats(0, 0)["mode"] == "test"
    meter.update_stats(preds[2:], torch.cat([torch.zeros(2, 1), boxes[2:]], 1), meta[2:])  # (K, 5)
    full_map = meter.finalize_metrics()

    # class 1: GT at A902 and A903 (B904 excluded); ranked 0.9 TP, 0.7 TP, 0.6 FP, 0.2 FP
    assert meter.per_class_ap[1] == 1.0
    # class 3: GT at A902 (second box) and B902; ranked 0.8 TP, 0.3 FP, 0.25 TP, 0.1 FP:
    # P = 1, 1/2, 2/3 at R = 1/2, 1/2, 1
    assert meter.per_class_ap[3] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-15)
    assert full_map == meter.full_map == pytest.approx((1 + 0.5 + 1 / 3) / 2, abs=1e-15)
    # model column 1 (id 2, not in the label map) is not evaluated
    assert set(meter.per_class_ap) == {1, 3}

    written = ava.read_csv(str(tmp_path / "out" / "detections_test.csv"), load_score=True)
    assert len(written) == 4 * 2 and set(written.labels.tolist()) == {1, 3}


def test_ava_meter_scores_only_label_map_classes_and_logs_training(tmp_path, caplog):
    cfg = _ava_cfg(tmp_path)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.9], [0.6, 0.1, 0.9, 0.9]])
    meta = torch.tensor([[0, 902], [0, 902]])
    meter = AVAMeter(1, cfg, "val")
    with pytest.raises(RuntimeError, match="video names"):
        meter.finalize_metrics()
    meter.set_video_names(["vidA", "vidB"])
    # the box on person 2 has a high score for class 1: an FP for class 1
    meter.update_stats(torch.tensor([[0.9, 0.0, 0.1], [0.95, 1.0, 0.9]]), boxes, meta)
    with caplog.at_level("INFO"):
        value = meter.finalize_metrics()
    assert "2 evaluated" in caplog.text and "labels.pbtxt" in caplog.text
    # class 1: 0.95 FP, 0.9 TP of 2 GT (A903 missed) -> P 0, 1/2 at R 0, 1/2 -> AP 0.25
    # class 3: 0.9 TP, 0.1 FP of 2 GT -> AP 0.5; mean 0.375
    assert meter.per_class_ap == {1: pytest.approx(0.25), 3: pytest.approx(0.5)}
    assert value == pytest.approx(0.375)
    assert not (tmp_path / "out" / "detections_val.csv").exists()

    train = AVAMeter(4, cfg, "train")
    train.iter_tic()
    train.data_toc()
    train.update_stats(None, None, None, loss=0.7, lr=0.1)
    train.iter_toc()
    stats = train.log_iter_stats(0, 0)
    assert stats["loss"] == pytest.approx(0.7) and stats["lr"] == 0.1
    assert {"dt", "dt_data", "dt_net", "eta"} <= set(stats)
    epoch = train.log_epoch_stats(0)
    assert epoch["_type"] == "train_epoch" and epoch["loss"] == pytest.approx(0.7)
    train.reset()
    assert train.loss.count == 0
