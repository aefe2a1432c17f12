"""The train/test loops end to end on a tiny model and dataset (in-process, CPU)."""

import math
import os
import pickle
import re

import engine_tiny as et
import pytest
import torch

from slowfast.engine.evaluator import test as run_test
from slowfast.engine.steps import (
    ClipStepRunner,
    NonFiniteLossError,
    StepContext,
    build_step_runner,
)
from slowfast.engine.trainer import train
from slowfast.utils import checkpoint as cu
from slowfast.utils.parser import load_config, parse_args


def _cfg(tmp_path, name="run", **overrides):
    out = str(tmp_path / name)
    path = et.write_cfg(str(tmp_path / f"{name}.yaml"), out, **overrides)
    return load_config(parse_args(["--cfg", path]))


def _log(cfg):
    with open(os.path.join(cfg.OUTPUT_DIR, "stdout.log")) as f:
        return f.read()


def test_nan_loss_message_names_epoch_iteration_lr():
    cfg = _cfg_plain()
    runner = ClipStepRunner(cfg)

    class NanNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, inputs):
            return inputs[0].mean(dim=(1, 2, 3, 4))[:, None] * self.w + float("nan")

    model = NanNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = StepContext(epoch=1, iteration=2, iters_per_epoch=7, max_epoch=5, lr=0.05)
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 2/5, iteration 3/7 \(learning rate 0.05\)"
    ):
        runner.train_step(model, opt, [torch.ones(2, 3, 1, 2, 2)], torch.tensor([0, 0]), {}, ctx)
    assert model.w.grad is None  # stopped before backward


def _cfg_plain():
    from slowfast.config.defaults import get_cfg

    return get_cfg()


def test_nan_loss_stops_the_training_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("TINY_NAN_INDEX", "3")  # every full batch holds item 3
    cfg = _cfg(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1/2, iteration 1/1"):
        train(cfg)


def test_decode_failures_counted_every_epoch(tmp_path, monkeypatch):
    """A bad file met in each epoch is counted in each epoch (logged by name once)."""
    monkeypatch.setenv("TINY_DECODE_FAIL_INDEX", "2")
    cfg = _cfg(tmp_path, **{"SOLVER.MAX_EPOCH": 3})
    summary = train(cfg)
    assert summary["decode_failures"] == [1, 1, 1]
    log = _log(cfg)
    assert log.count("epoch 2: 1 clips failed to decode") == 1
    assert log.count("decode failure: tiny_bad.mp4 (injected failure)") <= 1


def test_bce_on_logits_is_refused_with_the_key():
    cfg = _cfg_plain()
    cfg.MODEL.LOSS_FUNC = "bce"
    runner = ClipStepRunner(cfg)
    with pytest.raises(ValueError, match="bce_logit"):
        runner.compute_loss(torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]]))
    loss = runner.compute_loss(torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)


def test_step_runner_selection():
    cfg = _cfg_plain()
    assert type(build_step_runner(cfg)) is ClipStepRunner
    cfg.DETECTION.ENABLE = True
    runner = build_step_runner(cfg)
    assert runner.name == "detection" and runner.detection
    with pytest.raises(ValueError, match=r"DETECTION.ENABLE is on but the batch carries no"):
        runner.model_args([torch.zeros(1)], {})


def _weights(state):
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


# A schedule that does not depend on MAX_EPOCH, so that 2 + 1 epochs can match 3 epochs.
STEPS_LR = {
    "SOLVER.LR_POLICY": "steps_with_relative_lrs",
    "SOLVER.STEPS": [0, 2],
    "SOLVER.LRS": [1.0, 0.1],
}


def test_auto_resume_restores_model_and_optimizer(tmp_path):
    # 2 epochs, then MAX_EPOCH 3 in the same folder: resumes at epoch 3 (index 2)
    cfg = _cfg(tmp_path, "split", **STEPS_LR)
    train(cfg)
    ckpts = cu.list_checkpoints(cfg.OUTPUT_DIR)
    assert [os.path.basename(p) for p in ckpts] == [
        "checkpoint_epoch_00001.pyth",
        "checkpoint_epoch_00002.pyth",
    ]
    second = torch.load(ckpts[1], weights_only=False)
    assert second["epoch"] == 1 and second["optimizer_state"]["state"]  # momentum buffers

    cfg3 = _cfg(tmp_path, "split", **STEPS_LR, **{"SOLVER.MAX_EPOCH": 3})
    summary = train(cfg3)
    log = _log(cfg3)
    assert "start epoch: 3 of 3" in log
    assert f"Resuming from {ckpts[1]}" in log
    assert summary["epochs_trained"] == 1 and summary["start_epoch"] == 3

    # One uninterrupted 3-epoch run: full-batch steps, so the data order does not matter and
    # equality needs the restored weights, momentum and epoch (the LR steps at epoch 3).
    ref = _cfg(tmp_path, "whole", **STEPS_LR, **{"SOLVER.MAX_EPOCH": 3})
    train(ref)
    resumed = torch.load(cu.get_last_checkpoint(cfg3.OUTPUT_DIR), weights_only=False)
    whole = torch.load(cu.get_last_checkpoint(ref.OUTPUT_DIR), weights_only=False)
    assert resumed["epoch"] == whole["epoch"] == 2
    for key, value in _weights(whole["model_state"]).items():
        torch.testing.assert_close(resumed["model_state"][key], value, rtol=1e-5, atol=1e-6)
    # and the weights did move between epochs 2 and 3
    moved = _weights(second["model_state"])
    assert any(not torch.allclose(moved[k], v) for k, v in _weights(whole["model_state"]).items())


def test_truncated_newest_checkpoint_is_skipped(tmp_path):
    cfg = _cfg(tmp_path)
    train(cfg)
    newest = cu.get_path_to_checkpoint(cfg.OUTPUT_DIR, 2)
    data = open(newest, "rb").read()
    with open(newest, "wb") as f:
        f.write(data[: len(data) // 2])
    cfg3 = _cfg(tmp_path, **{"SOLVER.MAX_EPOCH": 3})
    train(cfg3)
    log = _log(cfg3)
    assert re.search(r"Skipping unreadable checkpoint .*checkpoint_epoch_00002\.pyth", log)
    assert "start epoch: 2 of 3" in log
    # epochs 2 and 3 were trained again; their checkpoints are readable now
    assert cu.checkpoint_problem(newest) is None
    assert cu.get_last_checkpoint(cfg3.OUTPUT_DIR).endswith("checkpoint_epoch_00003.pyth")


def test_train_then_test_outputs(tmp_path):
    cfg = _cfg(
        tmp_path,
        **{
            "TEST.ENABLE": True,
            "TEST.SAVE_RESULTS_PATH": "preds.pyth",
            "TENSORBOARD.ENABLE": True,
            "SOLVER.MAX_EPOCH": 3,
            "TRAIN.EVAL_PERIOD": 2,
        },
    )
    summary = train(cfg)
    log = _log(cfg)
    # validation after epoch 2 (period) and 3 (last), not after 1
    assert len(re.findall(r'"_type": "val_epoch"', log)) == 2
    assert len(re.findall(r'"_type": "train_epoch"', log)) == 3
    assert "run summary" in log and summary["best_val_epoch"] in (2, 3)
    assert os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
    runs = os.path.join(cfg.OUTPUT_DIR, "runs-tinysynth")
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(runs))

    result = run_test(cfg)
    with open(os.path.join(cfg.OUTPUT_DIR, "preds.pyth"), "rb") as f:  # PySlowFast: a pickle
        preds, labels = pickle.load(f)
    assert preds.shape == (et.NUM_TEST_VIDEOS, 3)
    assert labels.tolist() == [v % 3 for v in range(et.NUM_TEST_VIDEOS)]
    # the saved video scores are the sum of 2 softmax views
    torch.testing.assert_close(preds.sum(dim=1), torch.full((et.NUM_TEST_VIDEOS,), 2.0))
    top1 = (preds.argmax(dim=1) == labels).float().mean().item() * 100
    assert result["test_top1_acc"] == pytest.approx(top1)
    assert result["test_views"] == 2 and "test_top1_acc" in result
    assert "best_val_top1_acc" in result  # the summary file merges train and test


def test_multi_label_train_and_test_report_map(tmp_path):
    cfg = _cfg(
        tmp_path,
        **{
            "DATA.MULTI_LABEL": True,
            "MODEL.LOSS_FUNC": "bce_logit",
            "MODEL.HEAD_ACT": "sigmoid",
            "DATA.ENSEMBLE_METHOD": "max",
        },
    )
    summary = train(cfg)
    assert 0.0 < summary["last_val_map"] <= 1.0
    assert '"map"' in _log(cfg) and "top1_err" not in _log(cfg)
    result = run_test(cfg)
    assert 0.0 < result["test_map"] <= 1.0


def test_run_net_main_trains_and_tests(tmp_path):
    from slowfast.engine.run import main

    out = str(tmp_path / "main")
    path = et.write_cfg(str(tmp_path / "main.yaml"), out, **{"TEST.ENABLE": True})
    assert main(["--cfg", path, "SOLVER.MAX_EPOCH", "1"]) == 0
    log = open(os.path.join(out, "stdout.log")).read()
    assert '"split": "test_final"' in log and "checkpoint_epoch_00001.pyth" in log


class _ConvBN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, 1)
        self.bn = torch.nn.BatchNorm3d(4)

    def forward(self, inputs):
        return self.bn(self.conv(inputs[0]))


def test_precise_bn_sets_population_statistics():
    from slowfast.utils.bn_helper import calculate_and_update_precise_bn

    torch.manual_seed(0)
    model = _ConvBN().eval()
    batches = [([torch.randn(2, 3, 2, 4, 4) + i], torch.zeros(2), None, {}) for i in range(3)]
    assert calculate_and_update_precise_bn(batches, model, num_iters=3, use_gpu=False) == 1
    assert not model.training  # mode restored
    with torch.no_grad():
        feats = [model.conv(b[0][0]) for b in batches]
    # fvcore's estimate: mean and population variance over every element of the 3 batches
    per_channel = torch.cat([f.transpose(0, 1).reshape(4, -1) for f in feats], dim=1)
    mean = per_channel.mean(dim=1)
    var = per_channel.var(dim=1, unbiased=False)
    torch.testing.assert_close(model.bn.running_mean, mean)
    torch.testing.assert_close(model.bn.running_var, var)


def test_setup_logging_rank_files_and_console(tmp_path, capsys):
    import logging

    from slowfast.utils.logging import setup_logging

    try:
        setup_logging(str(tmp_path), rank=1)
        logging.getLogger("x").info("hello from rank one")
        assert "hello from rank one" in (tmp_path / "stdout_rank1.log").read_text()
        assert "hello from rank one" not in capsys.readouterr().out
        setup_logging(str(tmp_path), rank=0)
        logging.getLogger("x").info("hello from rank zero")
        assert "hello from rank zero" in capsys.readouterr().out
        assert "hello from rank zero" in (tmp_path / "stdout.log").read_text()
        print("print is not muted")
        assert "print is not muted" in capsys.readouterr().out
    finally:
        setup_logging(None, rank=0)
