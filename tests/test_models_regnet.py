"""RegNet-3D (``MODEL_NAME: RegNet``, ``REGNET.DEPTH``): the PGT release's architecture.

The expected names, shapes and parameter counts are derived here from the release's table
(depths, widths, groups, stem width per variant), and the forward pass is recomputed from the
state dict with ``torch.nn.functional`` calls, independently of the module code.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_models_reference import _bn

from slowfast.config.defaults import get_cfg
from slowfast.models import MODEL_REGISTRY, build_model

# The release's variants: blocks and widths per stage, 3x3 groups, stem width.
RELEASE = {"400M": ([1, 2, 7, 12], [32, 64, 160, 384], 16, 24)}
TEMPORAL = [1, 1, 3, 3]


pytestmark = pytest.mark.usefixtures("one_thread")


def regnet_cfg(depth="400M", classes=7):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.MODEL.MODEL_NAME = "RegNet"
    cfg.MODEL.ARCH = "slow"
    cfg.MODEL.NUM_CLASSES = classes
    cfg.DATA.INPUT_CHANNEL_NUM = [3]
    cfg.REGNET.DEPTH = depth
    return cfg


def _meta(cfg):
    with torch.device("meta"):
        return build_model(cfg)


@pytest.mark.parametrize("depth", sorted(RELEASE))
def test_regnet_names_shapes_and_parameter_count(depth):
    assert "RegNet" in MODEL_REGISTRY
    blocks, widths, groups, stem = RELEASE[depth]
    classes = 7
    sd = _meta(regnet_cfg(depth, classes)).state_dict()
    assert sd["conv1.weight"].shape == (stem, 3, 1, 3, 3)
    expected = 3 * stem * 9 + 2 * stem
    dim_in = stem
    for k, (n, w) in enumerate(zip(blocks, widths)):
        for i in range(n):
            p = f"layer{k + 1}.{i}"
            c_in = dim_in if i == 0 else w
            assert sd[f"{p}.conv1.weight"].shape == (w, c_in, TEMPORAL[k], 1, 1), p
            assert sd[f"{p}.conv2.weight"].shape == (w, w // groups, 1, 3, 3), p
            assert sd[f"{p}.conv3.weight"].shape == (w, w, 1, 1, 1), p
            assert sd[f"{p}.bn3.running_var"].shape == (w,), p
            assert (f"{p}.downsample.0.weight" in sd) == (i == 0), p
            expected += c_in * w * TEMPORAL[k] + w * (w // groups) * 9 + w * w + 3 * 2 * w
            if i == 0:
                assert sd[f"{p}.downsample.0.weight"].shape == (w, c_in, 1, 1, 1)
                assert f"{p}.downsample.1.running_mean" in sd
                expected += c_in * w + 2 * w
        assert f"layer{k + 1}.{n}.conv1.weight" not in sd
        dim_in = w
    assert sd["head.projection.weight"].shape == (classes, widths[-1])
    expected += widths[-1] * classes + classes
    model = _meta(regnet_cfg(depth, classes))
    assert sum(p.numel() for p in model.parameters()) == expected


def reference_forward(sd, x, groups, training):
    """The release's RegNet forward (non-PGT padding), from the state dict alone."""
    x = F.conv3d(x, sd["conv1.weight"], stride=(1, 2, 2), padding=(0, 1, 1))
    x = F.relu(_bn(sd, "bn1", x, training))
    for k in range(1, 5):
        i = 0
        while f"layer{k}.{i}.conv1.weight" in sd:
            p = f"layer{k}.{i}"
            stride = 2 if i == 0 else 1
            w1 = sd[f"{p}.conv1.weight"]
            y = F.relu(
                _bn(sd, f"{p}.bn1", F.conv3d(x, w1, padding=(w1.shape[2] // 2, 0, 0)), training)
            )
            y = F.conv3d(
                y,
                sd[f"{p}.conv2.weight"],
                stride=(1, stride, stride),
                padding=(0, 1, 1),
                groups=groups,
            )
            y = F.relu(_bn(sd, f"{p}.bn2", y, training))
            y = _bn(sd, f"{p}.bn3", F.conv3d(y, sd[f"{p}.conv3.weight"]), training)
            if f"{p}.downsample.0.weight" in sd:
                s = F.conv3d(x, sd[f"{p}.downsample.0.weight"], stride=(1, stride, stride))
                s = _bn(sd, f"{p}.downsample.1", s, training)
            else:
                s = x
            x = F.relu(y + s)
            i += 1
    x = x.mean(dim=[2, 3, 4])
    x = F.linear(x, sd["head.projection.weight"], sd["head.projection.bias"])
    return x if training else F.softmax(x, dim=1)


def test_regnet_forward_equals_functional_reference():
    cfg = regnet_cfg("400M", classes=5)
    cfg.MODEL.DROPOUT_RATE = 0.0
    torch.manual_seed(0)
    model = build_model(cfg).double()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or (name.endswith(".bias") and "bn" in name):
                t.normal_(0, 0.2)
            elif "bn" in name and name.endswith(".weight"):
                t.uniform_(0.5, 1.5)  # also the zero-initialised bn3
            elif name == "head.projection.weight":
                t.normal_(0, 0.3)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    for size in (32, 64):  # the eval head pools globally, so a larger crop is one position
        x = torch.randn(2, 3, 4, size, size, dtype=torch.float64)
        for training in (True, False):
            m = copy.deepcopy(model).train(training)
            with torch.no_grad():
                got = m([x.clone()])
                want = reference_forward(sd, x.clone(), 16, training)
            assert got.shape == (2, 5)
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_regnet_init_keeps_frames_and_zero_inits_residual_branches():
    model = build_model(regnet_cfg("400M"))
    for name, t in model.state_dict().items():
        if name.endswith("bn3.weight"):
            assert torch.count_nonzero(t) == 0, name
        elif name.endswith("bn1.weight") or name.endswith("downsample.1.weight"):
            assert torch.all(t == 1), name
    feats = {}

    def keep_shape(module, inputs, output):
        feats["layer4"] = tuple(output.shape)

    model.layer4.register_forward_hook(keep_shape)
    model.train()
    out = model([torch.randn(2, 3, 6, 64, 64)])
    out.sum().backward()
    assert out.shape == (2, 7)
    assert feats["layer4"] == (2, 384, 6, 2, 2)  # stride 32, time kept


def test_regnet_config_errors():
    cfg = regnet_cfg("800M")
    with pytest.raises(ValueError, match="REGNET.DEPTH"):
        _meta(cfg)
    # The release's 4G entry (80 channels in 24 groups) cannot be built; the error says why.
    with pytest.raises(ValueError, match="REGNET.DEPTH.*24 groups"):
        _meta(regnet_cfg("4G"))
    cfg = regnet_cfg()
    cfg.MODEL.ARCH = "slowfast"
    with pytest.raises(ValueError, match="MODEL.ARCH"):
        _meta(cfg)
