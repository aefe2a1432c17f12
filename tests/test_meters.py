"""TestMeter on hand-made views; train/val meters' json_stats lines."""

import json
import logging

import pytest
import torch

from slowfast.config.defaults import get_cfg
from slowfast.utils.logging import format_json_stats
from slowfast.utils.meters import IncompleteViewsError, TestMeter, TrainMeter, ValMeter

# 3 videos x 2 views x 4 classes; clip id = video * 2 + view.
VIEW_PREDS = torch.tensor(
    [
        [0.1, 0.6, 0.2, 0.1],  # video 0 view 0
        [0.5, 0.1, 0.3, 0.1],  # video 0 view 1
        [0.3, 0.3, 0.0, 0.4],  # video 1 view 0
        [0.2, 0.0, 0.7, 0.1],  # video 1 view 1
        [0.9, 0.0, 0.1, 0.0],  # video 2 view 0
        [0.0, 0.2, 0.0, 0.8],  # video 2 view 1
    ]
)
VIEW_LABELS = torch.tensor([0, 0, 2, 2, 3, 3])


def _meter(method, order=range(6)):
    meter = TestMeter(3, 2, 4, overall_iters=3, ensemble_method=method)
    order = list(order)
    for i in range(0, 6, 2):  # two clips per batch, in the given order
        idx = torch.tensor(order[i : i + 2])
        meter.update_stats(VIEW_PREDS[idx], VIEW_LABELS[idx], idx)
    return meter


def test_sum_ensemble_and_topk():
    meter = _meter("sum", order=[5, 0, 3, 1, 2, 4])
    want = torch.stack([VIEW_PREDS[2 * v] + VIEW_PREDS[2 * v + 1] for v in range(3)])
    assert torch.allclose(meter.video_preds, want)
    assert meter.video_labels.tolist() == [0, 2, 3]
    assert meter.clip_count.tolist() == [2, 2, 2]
    stats = meter.finalize_metrics(ks=(1, 2))
    # sums: v0 [0.6, .7, .5, .2] -> top1 class 1 (wrong), top2 {1, 0} (right);
    # v1 [.5, .3, .7, .5] -> class 2 (right); v2 [.9, .2, .1, .8] -> class 0 (wrong), top2 has 3.
    assert stats["top1_acc"] == pytest.approx(100 / 3)
    assert stats["top2_acc"] == pytest.approx(100.0)


def test_max_ensemble_differs_from_sum():
    meter = _meter("max")
    want = torch.stack([torch.maximum(VIEW_PREDS[2 * v], VIEW_PREDS[2 * v + 1]) for v in range(3)])
    assert torch.allclose(meter.video_preds, want)
    stats = meter.finalize_metrics(ks=(1, 5))
    # max: v0 [.5, .6, .3, .1] -> 1 (wrong); v1 [.3, .3, .7, .4] -> 2 (right);
    # v2 [.9, .2, .1, .8] -> 0 (wrong). top-5 is skipped with 4 classes.
    assert stats["top1_acc"] == pytest.approx(100 / 3)
    assert "top5_acc" not in stats


def test_max_ensemble_with_negative_logits():
    meter = TestMeter(1, 2, 2, overall_iters=1, ensemble_method="max")
    meter.update_stats(
        torch.tensor([[-3.0, -1.0], [-2.0, -5.0]]), torch.tensor([0, 0]), torch.tensor([0, 1])
    )
    assert meter.video_preds.tolist() == [[-2.0, -1.0]]


def test_incomplete_views_name_the_videos():
    meter = TestMeter(3, 2, 4, overall_iters=1)
    idx = torch.tensor([0, 1, 3])
    meter.update_stats(VIEW_PREDS[idx], VIEW_LABELS[idx], idx)
    with pytest.raises(IncompleteViewsError, match=r"video indices 1 \(1 views\), 2 \(0 views\)"):
        meter.finalize_metrics()


def test_duplicate_clips_are_counted_once():
    meter = TestMeter(1, 2, 4, overall_iters=1)
    idx = torch.tensor([0, 1, 0])  # a distributed sampler pads with repeated clips
    meter.update_stats(VIEW_PREDS[idx], VIEW_LABELS[idx], idx)
    assert meter.clip_count.tolist() == [2] and meter.duplicate_clips == 1
    assert torch.allclose(meter.video_preds[0], VIEW_PREDS[0] + VIEW_PREDS[1])


def test_label_mismatch_and_out_of_range():
    meter = TestMeter(2, 2, 4, overall_iters=1)
    with pytest.raises(ValueError, match="different labels"):
        meter.update_stats(VIEW_PREDS[:2], torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside the 2 videos"):
        meter.update_stats(VIEW_PREDS[:1], torch.tensor([0]), torch.tensor([4]))


def test_multi_label_map():
    meter = TestMeter(2, 1, 3, overall_iters=1, multi_label=True)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    preds = torch.tensor([[0.9, 0.2, 0.3], [0.1, 0.8, 0.6]])
    meter.update_stats(preds, labels, torch.tensor([0, 1]))
    # every class ranks its positives first -> AP 1 for each
    assert meter.finalize_metrics()["map"] == pytest.approx(1.0)


def _json_lines(caplog):
    return [
        json.loads(r.getMessage()[len("json_stats: ") :])
        for r in caplog.records
        if r.getMessage().startswith("json_stats: ")
    ]


def test_train_and_val_meters_log_json_stats(caplog):
    cfg = get_cfg()
    cfg.LOG_PERIOD = 2
    cfg.SOLVER.MAX_EPOCH = 3
    meter = TrainMeter(epoch_iters=4, cfg=cfg)
    caplog.set_level(logging.INFO)
    for it, (loss, err) in enumerate([(2.0, 50.0), (1.0, 25.0), (3.0, 0.0), (4.0, 100.0)]):
        meter.iter_tic()
        meter.data_toc()
        meter.update_stats(err, err / 2, loss, lr=0.1, mb_size=2 + it)
        meter.iter_toc()
        meter.log_iter_stats(cur_epoch=1, cur_iter=it)
    epoch = meter.log_epoch_stats(1)
    # sample-weighted: sizes 2, 3, 4, 5
    assert epoch["loss"] == pytest.approx((4 + 3 + 12 + 20) / 14)
    assert epoch["top1_err"] == pytest.approx((100 + 75 + 0 + 500) / 14)
    lines = _json_lines(caplog)
    assert [line["_type"] for line in lines] == ["train_iter", "train_iter", "train_epoch"]
    assert lines[0]["epoch"] == "2/3" and lines[0]["iter"] == "2/4"
    assert lines[0]["loss"] == pytest.approx(1.5)  # window median of 2 and 1

    val = ValMeter(max_iter=2, cfg=cfg)
    for errs in ([40.0, 60.0], [20.0, 30.0]):
        val.reset()
        for e in errs:
            val.update_stats(e, e / 2, 10)
        stats = val.log_epoch_stats(0)
    assert stats["top1_err"] == pytest.approx(25.0) and stats["min_top1_err"] == pytest.approx(25.0)


def test_format_json_stats_rounds_floats():
    line = format_json_stats({"b": 1.0 / 3, "a": "x", "n": 2})
    assert line == 'json_stats: {"a": "x", "b": 0.33333, "n": 2}'
