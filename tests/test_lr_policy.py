"""LR policies against their closed forms, warm-up interpolation, and the optimizer's groups."""

import math

import pytest
import torch
from torch import nn

from slowfast.config.defaults import get_cfg
from slowfast.models import optimizer as optim
from slowfast.utils.lr_policy import get_lr_at_epoch, get_step_index


def _cfg(**solver):
    cfg = get_cfg()
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    return cfg


@pytest.mark.parametrize("epoch", [0.0, 3.5, 10.0, 19.99, 20.0])
def test_cosine_closed_form(epoch):
    cfg = _cfg(LR_POLICY="cosine", BASE_LR=0.4, COSINE_END_LR=0.01, MAX_EPOCH=20)
    want = 0.01 + (0.4 - 0.01) * 0.5 * (1 + math.cos(math.pi * epoch / 20))
    assert get_lr_at_epoch(cfg, epoch) == pytest.approx(want)


def test_cosine_after_warmup_starts_at_base_after_warmup():
    cfg = _cfg(
        LR_POLICY="cosine",
        BASE_LR=0.4,
        COSINE_END_LR=0.0,
        MAX_EPOCH=12,
        WARMUP_EPOCHS=2.0,
        WARMUP_START_LR=0.04,
        COSINE_AFTER_WARMUP=True,
    )
    assert get_lr_at_epoch(cfg, 2.0) == pytest.approx(0.4)
    e = 7.0
    assert get_lr_at_epoch(cfg, e) == pytest.approx(0.2 * (1 + math.cos(math.pi * 5 / 10)))
    assert get_lr_at_epoch(cfg, 12.0) == pytest.approx(0.0, abs=1e-12)


def test_warmup_interpolates_linearly_to_policy_value():
    cfg = _cfg(
        LR_POLICY="cosine",
        BASE_LR=1.0,
        COSINE_END_LR=0.0,
        MAX_EPOCH=10,
        WARMUP_EPOCHS=4.0,
        WARMUP_START_LR=0.1,
    )
    end = 0.5 * (1 + math.cos(math.pi * 4 / 10))  # the cosine's value at epoch 4
    for e in (0.0, 1.0, 2.5, 3.9):
        assert get_lr_at_epoch(cfg, e) == pytest.approx(0.1 + (end - 0.1) * e / 4)
    assert get_lr_at_epoch(cfg, 4.0) == pytest.approx(end)


def test_steps_with_relative_lrs():
    cfg = _cfg(
        LR_POLICY="steps_with_relative_lrs",
        BASE_LR=0.2,
        STEPS=[0, 5, 8],
        LRS=[1, 0.1, 0.01],
        MAX_EPOCH=10,
    )
    got = [get_lr_at_epoch(cfg, e) for e in (0, 4.99, 5, 7.5, 8, 9.9, 10)]
    assert got == pytest.approx([0.2, 0.2, 0.02, 0.02, 0.002, 0.002, 0.002])


def test_steps_with_lrs_and_decay_and_warmup():
    cfg = _cfg(LR_POLICY="steps_with_lrs", STEPS=[0, 3], LRS=[0.5, 0.05], MAX_EPOCH=6)
    assert [get_lr_at_epoch(cfg, e) for e in (1, 3, 5.5)] == pytest.approx([0.5, 0.05, 0.05])
    cfg = _cfg(LR_POLICY="steps_with_decay", BASE_LR=0.3, GAMMA=0.1, STEPS=[0, 2, 4], MAX_EPOCH=6)
    assert [get_lr_at_epoch(cfg, e) for e in (0, 2, 5)] == pytest.approx([0.3, 0.03, 0.003])
    cfg.SOLVER.WARMUP_EPOCHS = 1.0
    cfg.SOLVER.WARMUP_START_LR = 0.0
    assert get_lr_at_epoch(cfg, 0.5) == pytest.approx(0.15)
    assert get_step_index(cfg, 100) == 2


def test_bad_policy_and_cosine_end_errors_name_the_key():
    with pytest.raises(ValueError, match="SOLVER.LR_POLICY"):
        get_lr_at_epoch(_cfg(LR_POLICY="linear"), 0.0)
    with pytest.raises(ValueError, match="SOLVER.COSINE_END_LR"):
        get_lr_at_epoch(_cfg(LR_POLICY="cosine", BASE_LR=0.1, COSINE_END_LR=0.2), 0.0)
    with pytest.raises(ValueError, match="SOLVER.LRS"):
        get_lr_at_epoch(_cfg(LR_POLICY="steps_with_lrs", STEPS=[0, 2], LRS=[0.1]), 3.0)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1)
        self.conv_bn = nn.BatchNorm3d(4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_optimizer_bn_params_get_bn_weight_decay():
    cfg = get_cfg()
    cfg.BN.WEIGHT_DECAY = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 5e-4
    model = _Net()
    opt = optim.construct_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.SGD)
    bn_group, other = opt.param_groups
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    norm = [model.conv_bn.weight, model.conv_bn.bias, model.ln.weight, model.ln.bias]
    assert ids(bn_group["params"]) == ids(norm)
    assert bn_group["weight_decay"] == 0.0
    rest = [model.conv.weight, model.conv.bias, model.fc.weight, model.fc.bias]
    assert ids(other["params"]) == ids(rest)
    assert other["weight_decay"] == 5e-4
    assert opt.defaults["momentum"] == cfg.SOLVER.MOMENTUM and opt.defaults["nesterov"]
    optim.set_lr(opt, 0.123)
    assert all(g["lr"] == 0.123 for g in opt.param_groups)
    assert optim.get_epoch_lr(0.0, cfg) == pytest.approx(cfg.SOLVER.BASE_LR)


def test_optimizer_bn_step_uses_group_decay():
    """One SGD step with zero gradients: bn params untouched, others decayed."""
    cfg = get_cfg()
    cfg.BN.WEIGHT_DECAY = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.1
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.NESTEROV = False
    model = _Net()
    nn.init.constant_(model.conv_bn.weight, 2.0)
    before_fc = model.fc.weight.detach().clone()
    opt = optim.construct_optimizer(model, cfg)
    optim.set_lr(opt, 0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.conv_bn.weight, torch.full((4,), 2.0))
    assert torch.allclose(model.fc.weight, before_fc * (1 - 0.5 * 0.1))


@pytest.mark.parametrize("method,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_optimizer_adam_variants(method, cls):
    cfg = get_cfg()
    cfg.SOLVER.OPTIMIZING_METHOD = method
    assert isinstance(optim.construct_optimizer(_Net(), cfg), cls)


def test_nesterov_without_momentum_names_keys():
    cfg = get_cfg()
    cfg.SOLVER.MOMENTUM = 0.0
    with pytest.raises(ValueError, match="SOLVER.NESTEROV"):
        optim.construct_optimizer(_Net(), cfg)


def test_bn_params_match_pyslowfast_name_rule_on_slowfast(repo_root):
    """PySlowFast's optimizer took parameters whose name holds "bn"; ours are chosen by module
    type. On a real SlowFast both give the same groups (so its optimizer states load here)."""
    from slowfast.models import build_model
    from slowfast.utils.parser import load_config, parse_args

    path = str(repo_root / "configs" / "Kinetics" / "SLOWFAST_8x8_R50.yaml")
    model = build_model(load_config(parse_args(["--cfg", path, "NUM_GPUS", "0"])))
    groups = optim.split_bn_params(model)
    by_name = [p for n, p in model.named_parameters() if "bn" in n]
    assert len(groups["bn"]) == len(by_name) > 0
    assert {id(p) for p in groups["bn"]} == {id(p) for p in by_name}
    assert len(groups["bn"]) + len(groups["non_bn"]) == len(list(model.parameters()))
