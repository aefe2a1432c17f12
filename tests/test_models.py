"""Tests of the ResNet family: tiny models forward and backward, heads, norms, init, RoIAlign."""

import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slowfast.config.defaults import get_cfg
from slowfast.models import MODEL_REGISTRY, build_model
from slowfast.models.batchnorm_helper import (
    FrozenBatchNorm3d,
    SubBatchNorm3d,
    aggregate_sub_bn_stats,
    get_norm,
)
from slowfast.models.head_helper import ResNetBasicHead, TemporalPool
from slowfast.models.losses import SoftTargetCrossEntropy, get_loss_func
from slowfast.models.nonlocal_helper import Nonlocal
from slowfast.models.resnet_helper import ResBlock, block_temporal_kernels
from slowfast.models.roi_align import roi_align
from slowfast.models.video_model_builder import FuseFastToSlow

CROP = 32
FRAMES = 8
ALPHA = 4
CLASSES = 5


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(arch: str = "slow", **overrides):
    """A config for a narrow model on 32 px, 8-frame clips (SlowFast: 2 slow frames)."""
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.MODEL.ARCH = arch
    cfg.MODEL.MODEL_NAME = "SlowFast" if arch == "slowfast" else "ResNet"
    cfg.MODEL.NUM_CLASSES = CLASSES
    cfg.RESNET.WIDTH_PER_GROUP = 8
    cfg.DATA.TRAIN_CROP_SIZE = CROP
    cfg.DATA.NUM_FRAMES = FRAMES
    cfg.DATA.INPUT_CHANNEL_NUM = [3, 3] if arch == "slowfast" else [3]
    cfg.SLOWFAST.ALPHA = ALPHA
    cfg.SLOWFAST.BETA_INV = 4
    for key, value in overrides.items():
        node, name = key.split("__")
        cfg[node][name] = value
    return cfg


def tiny_input(arch: str, batch: int = 2, size: int = CROP, frames: int = FRAMES):
    torch.manual_seed(0)
    if arch == "slowfast":
        return [
            torch.randn(batch, 3, frames // ALPHA, size, size),
            torch.randn(batch, 3, frames, size, size),
        ]
    return [torch.randn(batch, 3, frames, size, size)]


CASES = {
    "c2d": {},
    "c2d_nopool": {},
    "i3d": {},
    "i3d_nopool": {},
    "slow": {},
    "slowfast": {},
    "slow_nonlocal": {
        "NONLOCAL__LOCATION": [[[]], [[1]], [[0]], [[]]],
        "NONLOCAL__INSTANTIATION": "softmax",
    },
    "slowfast_nonlocal_group": {
        "NONLOCAL__LOCATION": [[[], []], [[1], []], [[], []], [[], []]],
        "NONLOCAL__GROUP": [[1, 1], [2, 1], [1, 1], [1, 1]],
    },
    "i3d_frozen_bn": {"BN__NORM_TYPE": "frozen_batchnorm"},
    "slowfast_sub_bn": {"BN__NORM_TYPE": "sub_batchnorm", "BN__NUM_SPLITS": 2},
    "slow_r18_basic": {
        "RESNET__DEPTH": 18,
        "RESNET__TRANS_FUNC": "basic_transform",
        "RESNET__NUM_BLOCK_TEMP_KERNEL": [[2], [2], [2], [2]],
    },
    "c2d_resnext_stride1x1": {
        "RESNET__NUM_GROUPS": 2,
        "RESNET__WIDTH_PER_GROUP": 4,
        "RESNET__STRIDE_1X1": True,
    },
    "slow_dilated_res5": {
        "RESNET__SPATIAL_STRIDES": [[1], [2], [2], [1]],
        "RESNET__SPATIAL_DILATIONS": [[1], [1], [1], [2]],
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_model_forward_backward(case):
    arch = next(
        a
        for a in ("c2d_nopool", "i3d_nopool", "slowfast", "c2d", "i3d", "slow")
        if case.startswith(a)
    )
    model = build_model(tiny_cfg(arch, **CASES[case]))
    model.train()
    out = model(tiny_input(arch))
    assert out.shape == (2, CLASSES)
    out.pow(2).sum().backward()
    for p in range(model.num_pathways):
        grad = model.s1._modules[f"pathway{p}_stem"].conv.weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"no gradient reaches pathway {p} stem"
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm3d)]
    assert all(not list(m.parameters()) for m in frozen)
    if case.endswith("sub_bn"):
        assert aggregate_sub_bn_stats(model) > 0
    model.eval()
    with torch.no_grad():
        probs = model(tiny_input(arch))
    assert probs.shape == (2, CLASSES)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_temporal_pool_after_res2_halves_time_only_for_pooled_arches():
    seen = {}
    for arch in ("c2d", "c2d_nopool", "i3d", "slow"):
        model = build_model(tiny_cfg(arch))
        frames = []
        model.s3.register_forward_hook(lambda m, i, o, f=frames: f.append(i[0][0].shape[2]))
        model.eval()
        with torch.no_grad():
            model(tiny_input(arch))
        seen[arch] = frames[0]
        assert hasattr(model, "pathway0_pool") == (arch in ("c2d", "i3d"))
    assert seen == {"c2d": FRAMES // 2, "c2d_nopool": FRAMES, "i3d": FRAMES // 2, "slow": FRAMES}


def test_block_temporal_kernel_rule():
    # The basis is repeated over the blocks, cut after NUM_BLOCK_TEMP_KERNEL, then 1s.
    assert block_temporal_kernels([3, 1], 6, 3) == [3, 1, 3, 1, 1, 1]
    assert block_temporal_kernels([1, 3], 3, 3) == [1, 3, 1]
    assert block_temporal_kernels([3], 4, 2) == [3, 3, 1, 1]
    assert block_temporal_kernels([3], 4, 0) == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="NUM_BLOCK_TEMP_KERNEL"):
        block_temporal_kernels([3], 2, 3)
    model = build_model(tiny_cfg("i3d", RESNET__NUM_BLOCK_TEMP_KERNEL=[[3], [4], [3], [3]]))
    kernels = [model.s4._modules[f"pathway0_res{i}"].branch2.a.weight.shape[2] for i in range(6)]
    assert kernels == [3, 1, 3, 1, 1, 1]
    # res5 of i3d has basis [1, 3].
    kernels = [model.s5._modules[f"pathway0_res{i}"].branch2.a.weight.shape[2] for i in range(3)]
    assert kernels == [1, 3, 1]


def test_stem_pool_pad_false_drops_padding():
    sizes = {}
    for pad in (True, False):
        model = build_model(tiny_cfg("slow", RESNET__STEM_POOL_PAD=pad))
        model.eval()
        with torch.no_grad():
            out = model.s1(tiny_input("slow"))
        sizes[pad] = out[0].shape[-1]
    # conv stride 2: 32 -> 16; max pool 3, stride 2: padded -> 8, unpadded -> 7.
    assert sizes == {True: 8, False: 7}


def test_fusion_bn_and_relu_switches():
    torch.manual_seed(0)
    plain = FuseFastToSlow(4, 2, 5, ALPHA, fusion_bn=False, fusion_relu=False)
    assert plain.bn is None and plain.conv_f2s.bias is not None
    assert set(plain.state_dict()) == {"conv_f2s.weight", "conv_f2s.bias"}
    slow, fast = torch.randn(2, 6, 2, 3, 3), torch.randn(2, 4, 8, 3, 3)
    fused, fast_out = plain([slow, fast])
    assert fast_out is fast
    expected = F.conv3d(fast, plain.conv_f2s.weight, plain.conv_f2s.bias, (ALPHA, 1, 1), (2, 0, 0))
    torch.testing.assert_close(fused, torch.cat([slow, expected], 1))
    assert (fused[:, 6:] < 0).any(), "without FUSION_RELU negative values pass"
    full = FuseFastToSlow(4, 2, 5, ALPHA)
    assert full.conv_f2s.bias is None and isinstance(full.bn, nn.BatchNorm3d)
    assert (full([slow, fast])[0][:, 6:] >= 0).all()
    with pytest.raises(ValueError, match="ALPHA"):
        full([slow, torch.randn(2, 4, 12, 3, 3)])


# --------------------------------------------------------------------------------------------
# Head


def _hand_head(head, inputs, pool_size, temporal="avg"):
    """Per-position pooling, concatenation, projection and softmax, averaged, with loops."""
    per_pathway = []
    for x, (kt, kh, kw) in zip(inputs, pool_size):
        n, c, t, h, w = x.shape
        grid = torch.zeros(n, c, t - kt + 1, h - kh + 1, w - kw + 1)
        for i, j, k in itertools.product(*(range(s) for s in grid.shape[2:])):
            win = x[:, :, i : i + kt, j : j + kh, k : k + kw]
            spatial = win.mean(dim=(3, 4))
            grid[:, :, i, j, k] = spatial.mean(2) if temporal == "avg" else spatial.amax(2)
        per_pathway.append(grid)
    feats = torch.cat(per_pathway, 1)
    logits = torch.einsum("nctij,kc->ntijk", feats, head.projection.weight) + head.projection.bias
    return logits.softmax(-1).mean(dim=(1, 2, 3))


def test_eval_head_is_fully_convolutional_average_of_probabilities():
    torch.manual_seed(1)
    pool_size = [[2, 2, 2], [4, 2, 2]]
    head = ResNetBasicHead([6, 3], 7, pool_size, dropout_rate=0.5, act_func="softmax")
    nn.init.normal_(head.projection.weight)
    inputs = [torch.randn(2, 6, 3, 4, 4), torch.randn(2, 3, 5, 4, 4)]
    head.eval()
    out = head(inputs)
    torch.testing.assert_close(out, _hand_head(head, inputs, pool_size))
    # Training: logits, the map pooled to one position when the input has the training size.
    head.train()
    small = [x[:, :, :kt, :2, :2] for x, (kt, _, _) in zip(inputs, pool_size)]
    head.dropout.p = 0.0
    logits = head(small)
    feats = torch.cat([x.mean(dim=(2, 3, 4)) for x in small], 1)
    torch.testing.assert_close(logits, head.projection(feats))
    with pytest.raises(ValueError, match="TRAIN_CROP_SIZE"):
        head(inputs)


def test_final_pool_max_temporal():
    torch.manual_seed(2)
    pool_size = [[3, 2, 2]]
    inputs = [torch.randn(2, 4, 5, 3, 3)]
    heads = {}
    for mode in ("avg", "max"):
        torch.manual_seed(3)
        heads[mode] = ResNetBasicHead([4], 6, pool_size, pool_type=["avg", mode]).eval()
        nn.init.normal_(heads[mode].projection.weight)
    assert isinstance(heads["max"].pathway0_tpool, TemporalPool)
    out_max = heads["max"](inputs)
    out_avg = heads["avg"](inputs)
    torch.testing.assert_close(out_max, _hand_head(heads["max"], inputs, pool_size, "max"))
    torch.testing.assert_close(out_avg, _hand_head(heads["avg"], inputs, pool_size, "avg"))
    assert not torch.allclose(out_max, out_avg)


def test_head_activations_and_final_pool_from_config():
    cfg = tiny_cfg("slow", MODEL__HEAD_ACT="sigmoid", MODEL__FINAL_POOL=["avg", "max"])
    model = build_model(cfg).eval()
    assert model.head.pathway0_tpool.mode == "max"
    assert model.head.pathway0_tpool.kernel_t == FRAMES
    with torch.no_grad():
        out = model(tiny_input("slow"))
    assert ((out > 0) & (out < 1)).all()
    model = build_model(tiny_cfg("slow", MODEL__HEAD_ACT="none")).eval()
    model.head.projection.bias.data.fill_(-100.0)
    with torch.no_grad():
        assert (model(tiny_input("slow")) < 0).all(), "HEAD_ACT none returns raw scores"


def test_eval_on_larger_crop_averages_over_positions():
    model = build_model(tiny_cfg("slowfast")).eval()
    positions = []
    model.head.projection.register_forward_hook(lambda m, i, o: positions.append(o.shape[1:4]))
    with torch.no_grad():
        out = model(tiny_input("slowfast", size=64))
    assert positions == [(1, 2, 2)]
    assert out.shape == (2, CLASSES)
    torch.testing.assert_close(out.sum(1), torch.ones(2))


# --------------------------------------------------------------------------------------------
# Initialisation


def test_zero_init_final_bn_zeroes_every_residual_branch():
    for zero in (True, False):
        cfg = tiny_cfg(
            "slowfast",
            RESNET__ZERO_INIT_FINAL_BN=zero,
            NONLOCAL__LOCATION=[[[], []], [[0], []], [[], []], [[], []]],
        )
        model = build_model(cfg).train()
        outputs, nl_out = [], []
        hooks = []
        for m in model.modules():
            if isinstance(m, ResBlock):
                hooks.append(
                    m.branch2.register_forward_hook(lambda m, i, o, r=outputs: r.append(o))
                )
            if isinstance(m, Nonlocal):
                hooks.append(m.bn.register_forward_hook(lambda m, i, o, r=nl_out: r.append(o)))
        model(tiny_input("slowfast"))
        for h in hooks:
            h.remove()
        assert len(outputs) == 2 * 16 and len(nl_out) == 1
        maxima = [o.abs().max().item() for o in outputs + nl_out]
        if zero:
            assert max(maxima) == 0.0
        else:
            assert min(maxima) > 0.0


def test_weight_init_matches_pyslowfast_rules():
    torch.manual_seed(0)
    cfg = tiny_cfg("slow", RESNET__WIDTH_PER_GROUP=16, MODEL__FC_INIT_STD=0.05)
    cfg.MODEL.NUM_CLASSES = 400
    model = build_model(cfg)
    conv = model.s4.pathway0_res0.branch2.a.weight  # (256, 128... fan_out = out * kernel volume)
    fan_out = conv.shape[0] * conv[0, 0].numel()
    assert abs(conv.std().item() - math.sqrt(2.0 / fan_out)) < 0.1 * math.sqrt(2.0 / fan_out)
    assert abs(model.head.projection.weight.std().item() - 0.05) < 0.005
    assert (model.head.projection.bias == 0).all()
    bn = model.s4.pathway0_res0.branch2.c_bn
    assert (bn.weight == 1).all() and (bn.bias == 0).all()


# --------------------------------------------------------------------------------------------
# Norms


def test_sub_batchnorm_train_splits_and_aggregates():
    torch.manual_seed(0)
    sub = SubBatchNorm3d(3, num_splits=2)
    assert set(sub.state_dict()) >= {
        "weight",
        "bias",
        "bn.running_mean",
        "bn.running_var",
        "split_bn.running_mean",
        "split_bn.running_var",
    }
    sub.weight.data.uniform_(0.5, 2)
    sub.bias.data.normal_()
    x = torch.randn(4, 3, 2, 3, 3) * 3 + 1
    out = sub.train()(x)
    # Clip i belongs to part i % NUM_SPLITS (PySlowFast's view of the batch).
    for j in range(2):
        part = x[j::2]
        mean = part.mean(dim=(0, 2, 3, 4), keepdim=True)
        var = part.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        ref = (part - mean) / torch.sqrt(var + 1e-5)
        ref = ref * sub.weight.view(-1, 1, 1, 1) + sub.bias.view(-1, 1, 1, 1)
        torch.testing.assert_close(out[j::2], ref, atol=1e-5, rtol=1e-5)
    sub.aggregate_stats()
    means = sub.split_bn.running_mean.view(2, 3)
    variances = sub.split_bn.running_var.view(2, 3)
    torch.testing.assert_close(sub.bn.running_mean, means.mean(0))
    torch.testing.assert_close(
        sub.bn.running_var, variances.mean(0) + ((means - means.mean(0)) ** 2).mean(0)
    )
    with pytest.raises(ValueError, match="NUM_SPLITS"):
        sub.train()(torch.randn(3, 3, 2, 3, 3))


def test_frozen_batchnorm_is_fixed_and_loads_batchnorm_state():
    torch.manual_seed(0)
    bn = nn.BatchNorm3d(3)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    frozen = FrozenBatchNorm3d(3)
    frozen.load_state_dict(bn.state_dict())
    x = torch.randn(2, 3, 2, 4, 4)
    torch.testing.assert_close(frozen.train()(x), bn.eval()(x))
    assert not list(frozen.parameters())
    assert set(frozen.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_get_norm_factories():
    assert get_norm("batchnorm") is nn.BatchNorm3d
    assert isinstance(get_norm("sync_batchnorm")(4), nn.BatchNorm3d)  # no process group
    assert get_norm("sub_batchnorm", 3)(4).num_splits == 3
    with pytest.raises(ValueError, match="BN.NORM_TYPE"):
        get_norm("group_norm")


# --------------------------------------------------------------------------------------------
# Non-local


def test_nonlocal_matches_hand_computation_and_groups():
    torch.manual_seed(0)
    for instantiation in ("softmax", "dot_product"):
        nl = Nonlocal(6, 3, [1, 2, 2], instantiation=instantiation).eval()
        nn.init.normal_(nl.bn.weight)
        x = torch.randn(2, 6, 2, 4, 4)
        theta = nl.conv_theta(x).flatten(2)
        pooled = F.max_pool3d(x, [1, 2, 2], [1, 2, 2])
        phi, g = nl.conv_phi(pooled).flatten(2), nl.conv_g(pooled).flatten(2)
        aff = theta.transpose(1, 2) @ phi
        aff = aff.mul(3**-0.5).softmax(-1) if instantiation == "softmax" else aff / phi.shape[2]
        y = (aff @ g.transpose(1, 2)).transpose(1, 2).reshape(2, 3, 2, 4, 4)
        torch.testing.assert_close(nl(x), x + nl.bn(nl.conv_out(y)))
    # GROUP 2: each half of the frames attends only within itself.
    nl = Nonlocal(6, 3, None, group=2, use_bn=False).eval()
    assert not hasattr(nl, "bn")
    x = torch.randn(1, 6, 4, 2, 2)
    ungrouped = Nonlocal(6, 3, None, use_bn=False).eval()
    ungrouped.load_state_dict(nl.state_dict())
    expected = torch.cat([ungrouped(x[:, :, :2]), ungrouped(x[:, :, 2:])], 2)
    torch.testing.assert_close(nl(x), expected)


# --------------------------------------------------------------------------------------------
# RoIAlign and the detection head


def _roi_align_reference(feat, box, out_size, scale, sampling_ratio, aligned):
    """Direct transcription of the per-sample RoIAlign rule (one box, loops)."""
    c, h, w = feat.shape
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - off for v in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / out_size, rw / out_size
    gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out_size)
    gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out_size)
    out = torch.zeros(c, out_size, out_size, dtype=torch.float64)

    def sample(y, x):
        if y < -1.0 or y > h or x < -1.0 or x > w:
            return torch.zeros(c, dtype=torch.float64)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= h - 1:
            yl = yh = h - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= w - 1:
            xl = xh = w - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        f = feat.double()
        return (
            (1 - ly) * (1 - lx) * f[:, yl, xl]
            + (1 - ly) * lx * f[:, yl, xh]
            + ly * (1 - lx) * f[:, yh, xl]
            + ly * lx * f[:, yh, xh]
        )

    for i, j in itertools.product(range(out_size), repeat=2):
        acc = torch.zeros(c, dtype=torch.float64)
        for iy, ix in itertools.product(range(gh), range(gw)):
            y = y1 + i * bh + (iy + 0.5) * bh / gh
            x = x1 + j * bw + (ix + 0.5) * bw / gw
            acc += sample(y, x)
        out[:, i, j] = acc / max(gh * gw, 1)
    return out.float()


@pytest.mark.parametrize("aligned,sampling_ratio", [(True, 0), (False, 0), (True, 2)])
def test_roi_align_matches_reference(aligned, sampling_ratio):
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 7, 9)
    boxes = torch.tensor(
        [
            [0, 2.0, 3.0, 20.0, 17.0],
            [1, -6.0, -4.0, 9.0, 30.0],  # partly outside the map
            [0, 30.0, 20.0, 36.0, 28.0],  # touching the far edges
            [1, 5.0, 5.0, 5.5, 6.0],  # smaller than a pixel
        ]
    )
    out = roi_align(feat, boxes, (3, 3), 0.25, sampling_ratio, aligned)
    for k, box in enumerate(boxes.tolist()):
        ref = _roi_align_reference(feat[int(box[0])], box[1:], 3, 0.25, sampling_ratio, aligned)
        torch.testing.assert_close(out[k], ref, atol=1e-5, rtol=1e-5)


def test_detection_model_forward_backward():
    cfg = tiny_cfg("slowfast", MODEL__HEAD_ACT="sigmoid")
    cfg.DETECTION.ENABLE = True
    cfg.DETECTION.SPATIAL_SCALE_FACTOR = 32
    model = build_model(cfg).train()
    boxes = torch.tensor([[0, 1.0, 2.0, 20.0, 30.0], [1, 0.0, 0.0, 31.0, 31.0], [1, 8, 8, 16, 16]])
    out = model(tiny_input("slowfast"), boxes)
    assert out.shape == (3, CLASSES) and ((out > 0) & (out < 1)).all()
    out.sum().backward()
    assert model.s1.pathway1_stem.conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="bboxes"):
        model(tiny_input("slowfast"))


# --------------------------------------------------------------------------------------------
# build_model and losses


def test_build_model_errors():
    cfg = tiny_cfg("slow")
    cfg.MODEL.MODEL_NAME = "NoSuchNet"
    with pytest.raises(KeyError, match="SlowFast"):
        build_model(cfg)
    assert {"ResNet", "ResNet_nopool", "SlowFast"} <= {k for k, _ in MODEL_REGISTRY}
    cfg = tiny_cfg("slowfast")
    cfg.MODEL.MODEL_NAME = "ResNet"
    with pytest.raises(ValueError, match="MODEL.ARCH"):
        build_model(cfg)
    cfg = tiny_cfg("slow", RESNET__SPATIAL_STRIDES=[[1, 1], [2, 2], [2, 2], [2, 2]])
    with pytest.raises(ValueError, match="RESNET.SPATIAL_STRIDES"):
        build_model(cfg)
    cfg = tiny_cfg("slow", RESNET__DEPTH=26)
    with pytest.raises(ValueError, match="RESNET.DEPTH"):
        build_model(cfg)
    # A crop smaller than the network's stride would make the head pool 0 x 0 pixels.
    cfg = tiny_cfg("slow", DATA__TRAIN_CROP_SIZE=16)
    with pytest.raises(ValueError, match="TRAIN_CROP_SIZE 16 is smaller than .* stride 32"):
        build_model(cfg)
    cfg = tiny_cfg("slow", DATA__TRAIN_CROP_SIZE=16, RESNET__SPATIAL_STRIDES=[[1], [2], [2], [1]])
    model = build_model(cfg)
    assert tuple(model.head.pathway0_spool.kernel_size)[1:] == (1, 1)
    assert model([torch.randn(1, 3, FRAMES, 16, 16)]).shape == (1, cfg.MODEL.NUM_CLASSES)
    # A one-pathway spec is used for both pathways of SlowFast.
    cfg = tiny_cfg("slowfast", RESNET__NUM_BLOCK_TEMP_KERNEL=[[3], [4], [2], [3]])
    model = build_model(cfg)
    kernels = [model.s4._modules[f"pathway1_res{i}"].temp_kernel_size for i in range(6)]
    assert kernels == [3, 3, 1, 1, 1, 1]
    if not torch.cuda.is_available():
        cfg = tiny_cfg("slow")
        cfg.NUM_GPUS = 1
        with pytest.raises(RuntimeError, match="NUM_GPUS"):
            build_model(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_build_model_moves_to_gpu():
    cfg = tiny_cfg("slow")
    cfg.NUM_GPUS = 1
    model = build_model(cfg, gpu_id=0)
    assert next(model.parameters()).device == torch.device("cuda", 0)
    out = model([x.cuda() for x in tiny_input("slow")])
    assert out.shape == (2, CLASSES)


def test_losses():
    assert get_loss_func("cross_entropy") is nn.CrossEntropyLoss
    assert get_loss_func("bce") is nn.BCELoss
    assert get_loss_func("bce_logit") is nn.BCEWithLogitsLoss
    x = torch.randn(4, 5)
    hard = torch.tensor([0, 3, 1, 4])
    soft = get_loss_func("soft_cross_entropy")()
    torch.testing.assert_close(soft(x, F.one_hot(hard, 5).float()), F.cross_entropy(x, hard))
    y = torch.softmax(torch.randn(4, 5), 1)
    expected = -(y * x.log_softmax(1)).sum(1)
    torch.testing.assert_close(SoftTargetCrossEntropy("none")(x, y), expected)
    with pytest.raises(ValueError, match="LOSS_FUNC"):
        get_loss_func("hinge")


def test_roi_align_empty_batch_gradients_and_bad_index():
    torch.manual_seed(0)
    feat = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    assert roi_align(feat, torch.zeros(0, 5), (2, 2), 0.5).shape == (0, 3, 2, 2)
    boxes = torch.tensor(
        [[1, 0.5, 1.0, 7.0, 9.0], [0, -2.0, 3.0, 4.0, 14.0], [1, 2.0, 2.0, 2.2, 2.1]],
        dtype=torch.float64,
    )
    for aligned in (True, False):
        assert torch.autograd.gradcheck(
            lambda f, a=aligned: roi_align(f, boxes, (2, 3), 0.5, 0, a), (feat,)
        )
    with pytest.raises(ValueError, match="batch index 2"):
        roi_align(feat, torch.tensor([[2, 0.0, 0.0, 1.0, 1.0]]), (2, 2), 0.5)


def test_roi_align_equals_torchvision_where_it_imports():
    try:
        from torchvision.ops import roi_align as tv_roi_align
    except Exception as err:  # torchvision does not import beside this torch build
        pytest.skip(f"torchvision does not import here ({type(err).__name__}: {err})")
    torch.manual_seed(0)
    feat = torch.randn(3, 4, 9, 11)
    boxes = torch.cat([torch.randint(0, 3, (20, 1)).float(), torch.rand(20, 4) * 40 - 4], 1)
    boxes[:, 3:] = boxes[:, 1:3] + boxes[:, 3:].abs() / 2
    for aligned, ratio in ((True, 0), (False, 0), (True, 2)):
        ours = roi_align(feat, boxes, (3, 3), 0.25, ratio, aligned)
        theirs = tv_roi_align(feat, boxes, (3, 3), 0.25, ratio, aligned)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_sync_batchnorm_groups_follow_num_sync_devices():
    from slowfast.models.batchnorm_helper import sync_group_ranks

    assert sync_group_ranks(8, 8, 2) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert sync_group_ranks(16, 8, 4) == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
        [12, 13, 14, 15],
    ]
    assert sync_group_ranks(4, 4, 1) == [[0], [1], [2], [3]]
    with pytest.raises(ValueError, match="BN.NUM_SYNC_DEVICES = 3"):
        sync_group_ranks(8, 8, 3)
    # NUM_SYNC_DEVICES 1 (PySlowFast's default): statistics per device
    assert type(get_norm("sync_batchnorm", 1, 1)(4)) is nn.BatchNorm3d
