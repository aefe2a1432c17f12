"""Model statistics: FLOP conventions, input shapes, parameter counts, and the issue's figures."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from torch import nn

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.utils import misc

REPO = Path(__file__).resolve().parents[1]


class _Tiny(nn.Module):
    """conv -> BN -> ReLU -> mean -> linear, on the first pathway; BN statistics are tracked."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, (3, 3, 3), padding=1, bias=False)
        self.bn = nn.BatchNorm3d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, xs: List[torch.Tensor]) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(xs[0])))
        return self.fc(x.mean((2, 3, 4)))


def _tiny_cfg(frames: int = 4, size: int = 8):
    cfg = get_cfg()
    cfg.MODEL.ARCH = "slow"
    cfg.DATA.INPUT_CHANNEL_NUM = [3]
    cfg.DATA.NUM_FRAMES = frames
    cfg.DATA.TEST_CROP_SIZE = size
    cfg.DATA.TRAIN_CROP_SIZE = size // 2
    return cfg


def _analytic_macs(model: nn.Module, inputs) -> Dict[str, int]:
    """Multiply-accumulates of every Conv3d and Linear, and the element count of every batch
    norm's output, from forward hooks (independent of fvcore)."""
    totals = {"conv_linear": 0, "bn_elements": 0}

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2]
        totals["conv_linear"] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        totals["conv_linear"] += out.numel() * m.in_features

    def bn_hook(m, inp, out):
        totals["bn_elements"] += out.numel()

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            handles.append(m.register_forward_hook(bn_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(*inputs)
    model.train(was_training)
    for h in handles:
        h.remove()
    return totals


def test_tiny_model_both_conventions_and_mode_restored():
    model, cfg = _Tiny(), _tiny_cfg()
    model.train()
    running_mean = model.bn.running_mean.clone()
    conv = 8 * 4 * 8 * 8 * 3 * 27  # output elements x input channels x kernel volume
    linear = 5 * 8
    bn = 2 * 8 * 4 * 8 * 8  # eval-mode affine batch norm: 2 operations per element
    assert misc.get_model_stats(model, cfg, "flop", False) == pytest.approx((conv + linear) / 1e9)
    assert misc.get_flops(model, cfg, False, count_bn=True) == pytest.approx(
        (conv + linear + bn) / 1e9
    )
    # Activations: outputs of the convolution and the linear layer, in millions.
    assert misc.get_model_stats(model, cfg, "activation", False) == pytest.approx(
        (8 * 4 * 8 * 8 + 5) / 1e6
    )
    # Train input: half the crop, a quarter of the convolution's cost.
    assert misc.get_flops(model, cfg, True) == pytest.approx((conv // 4 + linear) / 1e9)
    assert model.training, "the model's mode must be restored"
    assert torch.equal(model.bn.running_mean, running_mean), "analysis must not update BN stats"
    with pytest.raises(ValueError, match="mode"):
        misc.get_model_stats(model, cfg, "params", False)


def test_unsupported_ops_logged_once_at_debug(caplog):
    model, cfg = _Tiny(), _tiny_cfg()
    misc._REPORTED_UNSUPPORTED.discard("aten::mean")
    with caplog.at_level(logging.DEBUG):
        misc.get_flops(model, cfg, False)
        misc.get_flops(model, cfg, False)
    mentions = [r for r in caplog.records if "aten::mean" in r.getMessage()]
    assert len(mentions) == 1 and mentions[0].levelno == logging.DEBUG
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_input_shapes_per_pathway():
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs/Charades/SLOWFAST_16x8_R50.yaml"))
    assert misc.analysis_input_shapes(cfg, use_train_input=False) == [
        [1, 3, 16, 256, 256],
        [1, 3, 64, 256, 256],
    ]
    assert misc.analysis_input_shapes(cfg, use_train_input=True)[0] == [1, 3, 16, 224, 224]
    cfg.DATA.NUM_FRAMES = 30
    with pytest.raises(ValueError, match="SLOWFAST.ALPHA"):
        misc.analysis_input_shapes(cfg, use_train_input=False)
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs/AVA/SLOW_8x8_R50.yaml"))
    inputs, boxes = misc._get_model_analysis_input(cfg, use_train_input=False)
    assert [list(x.shape) for x in inputs] == [[1, 3, 8, 256, 256]]
    assert boxes.shape == (1, 5), "detection models are counted for one box"


def test_params_count_and_memory():
    model = _Tiny()
    assert misc.params_count(model) == 8 * 3 * 27 + 2 * 8 + 8 * 5 + 5
    assert misc.params_count(model, ignore_bn=True) == 8 * 3 * 27 + 8 * 5 + 5
    used, total = misc.cpu_mem_usage()
    assert 0 < used <= total
    if not torch.cuda.is_available():
        assert misc.gpu_mem_usage() == 0.0


def test_is_eval_epoch():
    cfg = get_cfg()
    cfg.TRAIN.EVAL_PERIOD = 4
    cfg.SOLVER.MAX_EPOCH = 10
    assert [e for e in range(10) if misc.is_eval_epoch(cfg, e)] == [3, 7, 9]
    # Multigrid: 3 evaluations spread over each cycle ending at epochs 6 and 10.
    cfg.MULTIGRID.EVAL_FREQ = 3
    picked = [e for e in range(10) if misc.is_eval_epoch(cfg, e, [(0, 6), (0, 10)])]
    assert picked == [2, 5, 7, 9]


def _build(path: str, *overrides: str):
    models = pytest.importorskip("slowfast.models", reason="the models package is not built yet")
    if not hasattr(models, "build_model"):
        pytest.skip("slowfast.models.build_model is not available yet")
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / path))
    cfg.merge_from_list(["NUM_GPUS", "0", *overrides])
    assert_and_infer_cfg(cfg)
    torch.manual_seed(0)
    return models.build_model(cfg), cfg


@pytest.mark.parametrize(
    "path, overrides, gflops, params",
    [
        # The figures: PySlowFast's counts at 256 x 256 (conv/matmul/linear only).
        ("configs/Kinetics/SLOW_8x8_R50.yaml", (), 54.52, 32_454_096),
        # PySlowFast's SlowFast 8x8 R50 (fusion kernel 7, as our config).
        ("configs/Kinetics/SLOWFAST_8x8_R50.yaml", (), 65.71, 34_566_488),
    ],
)
def test_r50_figures_match_pyslowfast(path, overrides, gflops, params):
    model, cfg = _build(path, *overrides)
    summary = misc.model_summary(model, cfg, use_train_input=False, activations=False)
    assert summary["params"] == params
    assert summary["gflops"] == pytest.approx(gflops, rel=5e-3)
    assert summary["gflops_with_bn"] > summary["gflops"]
    # Independently of fvcore, on a smaller clip (64 x 64) to keep the test fast: the
    # multiply-accumulates of every convolution and linear layer, and (fvcore's default)
    # eval-mode batch norm at 2 operations per output element.
    small = ("DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64")
    model, cfg = _build(path, *overrides, *small)
    summary = misc.model_summary(model, cfg, use_train_input=False, activations=False)
    macs = _analytic_macs(model, misc._get_model_analysis_input(cfg, use_train_input=False))
    assert macs["bn_elements"] > 0
    assert summary["gflops"] == pytest.approx(macs["conv_linear"] / 1e9, rel=1e-6)
    assert summary["gflops_with_bn"] - summary["gflops"] == pytest.approx(
        2 * macs["bn_elements"] / 1e9, rel=1e-6
    )


def test_slowfast_fusion_kernel_5_vs_7():
    """The release's SlowFast R50 (fusion kernel 5) differs from the shipped PySlowFast one
    (kernel 7) only by 2 temporal taps of the four fast-to-slow fusion convolutions."""
    ours, cfg = _build("configs/Kinetics/SLOWFAST_8x8_R50.yaml", "SLOWFAST.FUSION_KERNEL_SZ", "5")
    theirs, _ = _build("configs/Kinetics/SLOWFAST_8x8_R50.yaml")
    assert cfg.SLOWFAST.FUSION_KERNEL_SZ == 5
    fast = cfg.RESNET.WIDTH_PER_GROUP // cfg.SLOWFAST.BETA_INV  # 8 channels after the stem
    ratio = cfg.SLOWFAST.FUSION_CONV_CHANNEL_RATIO
    per_tap = sum(c * c * ratio for c in (fast, fast * 4, fast * 8, fast * 16))
    assert misc.params_count(theirs) - misc.params_count(ours) == 2 * per_tap


def test_model_stats_tool_prints_json_last(tmp_path):
    pytest.importorskip("slowfast.models")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/model_stats.py"),
            "--cfg",
            str(REPO / "configs/Kinetics/SLOW_8x8_R50.yaml"),
            "DATA.TEST_CROP_SIZE",
            "64",
            "DATA.TRAIN_CROP_SIZE",
            "64",
            "DATA.NUM_FRAMES",
            "4",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["input"] == [[1, 3, 4, 64, 64]]
    assert last["params"] == 32_454_096
    # 4 frames at 64 x 64 instead of 8 at 256 x 256: a 32nd of the cost, up to the head and
    # the stem's rounding; 54.52 / 32 = 1.70.
    assert 1.5 < last["gflops"] < 1.9
    assert last["gflops_with_bn"] > last["gflops"]


def test_model_stats_tool_names_the_backbone():
    import importlib.util

    from slowfast.config.defaults import get_cfg

    spec = importlib.util.spec_from_file_location("model_stats_tool", REPO / "tools/model_stats.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = get_cfg()
    assert tool.describe_model(cfg) == "SlowFast (slowfast, ResNet-50)"
    cfg.MODEL.MODEL_NAME, cfg.MODEL.ARCH = "RegNet", "slow"
    assert tool.describe_model(cfg) == "RegNet (RegNet-400M-3D)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_counts_a_model_on_cuda():
    model, cfg = _Tiny(), _tiny_cfg()
    on_cpu = misc.get_flops(model, cfg, False, count_bn=True)
    assert misc.get_flops(model.cuda(), cfg, False, count_bn=True) == pytest.approx(on_cpu)
    assert misc.gpu_mem_usage() > 0
