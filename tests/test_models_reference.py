"""The models against an independent functional implementation of PySlowFast's computation.

``reference_forward`` recomputes a model's output from its state dict alone, with
``torch.nn.functional`` calls that spell out PySlowFast's order of operations, paddings and
strides (stem conv -> BN -> ReLU -> [1,3,3] max pool padded [0,1,1]; fusion conv with temporal
stride alpha and padding k // 2 -> BN -> ReLU -> concat; the temporal pool after res2 (after the
res2 fusion); bottleneck a [T,1,1] / b [1,3,3] strided / c; non-local blocks; head average
pooling with the training kernel and stride 1, projection, softmax per position, mean). The
model and the reference must agree in float64 in train and eval mode.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from slowfast.config.defaults import get_cfg
from slowfast.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _bn(sd, prefix, x, training):
    return F.batch_norm(
        x,
        sd[prefix + ".running_mean"].clone(),
        sd[prefix + ".running_var"].clone(),
        sd[prefix + ".weight"],
        sd[prefix + ".bias"],
        training=training,
        momentum=0.1,
        eps=1e-5,
    )


def _nonlocal(sd, prefix, x, pool, instantiation, training):
    n, _, t, h, w = x.shape
    theta = F.conv3d(x, sd[prefix + ".conv_theta.weight"], sd[prefix + ".conv_theta.bias"])
    kv = F.max_pool3d(x, pool, pool) if any(s > 1 for s in pool) else x
    phi = F.conv3d(kv, sd[prefix + ".conv_phi.weight"], sd[prefix + ".conv_phi.bias"])
    g = F.conv3d(kv, sd[prefix + ".conv_g.weight"], sd[prefix + ".conv_g.bias"])
    inner = theta.shape[1]
    theta, phi, g = theta.reshape(n, inner, -1), phi.reshape(n, inner, -1), g.reshape(n, inner, -1)
    tp = torch.einsum("nct,ncp->ntp", theta, phi)
    if instantiation == "softmax":
        tp = F.softmax(tp * inner**-0.5, dim=2)
    else:
        tp = tp / tp.shape[2]
    y = torch.einsum("ntg,ncg->nct", tp, g).reshape(n, inner, t, h, w)
    p = F.conv3d(y, sd[prefix + ".conv_out.weight"], sd[prefix + ".conv_out.bias"])
    return x + _bn(sd, prefix + ".bn", p, training)


def _block(sd, prefix, x, stride, dilation, groups, training):
    a = sd[prefix + ".branch2.a.weight"]
    kt = a.shape[2]
    y = F.conv3d(x, a, padding=(kt // 2, 0, 0))
    y = F.relu(_bn(sd, prefix + ".branch2.a_bn", y, training))
    y = F.conv3d(
        y,
        sd[prefix + ".branch2.b.weight"],
        stride=(1, stride, stride),
        padding=(0, dilation, dilation),
        dilation=(1, dilation, dilation),
        groups=groups,
    )
    y = F.relu(_bn(sd, prefix + ".branch2.b_bn", y, training))
    y = _bn(sd, prefix + ".branch2.c_bn", F.conv3d(y, sd[prefix + ".branch2.c.weight"]), training)
    if prefix + ".branch1.weight" in sd:
        short = F.conv3d(x, sd[prefix + ".branch1.weight"], stride=(1, stride, stride))
        short = _bn(sd, prefix + ".branch1_bn", short, training)
    else:
        short = x
    return F.relu(short + y)


def reference_forward(sd, inputs, spec, training):
    """PySlowFast's forward, from the state dict ``sd`` and the architecture ``spec``."""
    n = len(inputs)
    xs = []
    for p, x in enumerate(inputs):
        w = sd[f"s1.pathway{p}_stem.conv.weight"]
        x = F.conv3d(x, w, stride=(1, 2, 2), padding=(w.shape[2] // 2, 3, 3))
        x = F.relu(_bn(sd, f"s1.pathway{p}_stem.bn", x, training))
        xs.append(F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)))

    def fuse(stage, xs):
        if n == 1 or stage == 5:
            return xs
        w = sd[f"s{stage}_fuse.conv_f2s.weight"]
        f = F.conv3d(xs[1], w, stride=(spec["alpha"], 1, 1), padding=(w.shape[2] // 2, 0, 0))
        f = F.relu(_bn(sd, f"s{stage}_fuse.bn", f, training))
        return [torch.cat([xs[0], f], 1), xs[1]]

    xs = fuse(1, xs)
    for stage in range(2, 6):
        out = []
        for p, x in enumerate(xs):
            i = 0
            while f"s{stage}.pathway{p}_res{i}.branch2.a.weight" in sd:
                stride = spec["strides"][stage - 2] if i == 0 else 1
                x = _block(
                    sd,
                    f"s{stage}.pathway{p}_res{i}",
                    x,
                    stride,
                    spec["dilations"][stage - 2],
                    spec["groups"],
                    training,
                )
                nl = f"s{stage}.pathway{p}_nonlocal{i}"
                if nl + ".conv_theta.weight" in sd:
                    x = _nonlocal(sd, nl, x, spec["nl_pool"], spec["nl_inst"], training)
                i += 1
            out.append(x)
        xs = fuse(stage, out)
        if stage == 2:
            xs = [F.max_pool3d(x, k, k) for x, k in zip(xs, spec["pool1"])]
    pooled = [F.avg_pool3d(x, k, stride=1) for x, k in zip(xs, spec["head_pool"])]
    x = torch.cat(pooled, 1).permute(0, 2, 3, 4, 1)
    x = F.linear(x, sd["head.projection.weight"], sd["head.projection.bias"])
    if not training:
        x = F.softmax(x, dim=4).mean([1, 2, 3])
    return x.reshape(x.shape[0], -1)


def _randomise(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("running_mean", "bn.bias", "_bn.bias")):
                t.normal_(0, 0.2)
            elif name.endswith(("bn.weight", "_bn.weight")):
                t.uniform_(0.5, 1.5)
            elif name.endswith("projection.weight"):
                t.normal_(0, 0.3)


CASES = {
    "slowfast": ("slowfast", {}),
    "i3d_nonlocal": (
        "i3d",
        {"LOCATION": [[[]], [[1, 3]], [[]], [[]]], "INSTANTIATION": "softmax"},
    ),
    "c2d_nonlocal_dot": (
        "c2d",
        {"LOCATION": [[[]], [[0]], [[]], [[]]], "INSTANTIATION": "dot_product"},
    ),
    "slow_resnext_dilated": ("slow", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_equals_functional_reference(case):
    arch, nonlocal_cfg = CASES[case]
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.MODEL.ARCH = arch
    cfg.MODEL.MODEL_NAME = "SlowFast" if arch == "slowfast" else "ResNet"
    cfg.MODEL.NUM_CLASSES = 6
    cfg.MODEL.DROPOUT_RATE = 0.0
    cfg.RESNET.WIDTH_PER_GROUP = 8
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.INPUT_CHANNEL_NUM = [3, 3] if arch == "slowfast" else [3]
    cfg.SLOWFAST.ALPHA = 4
    cfg.SLOWFAST.BETA_INV = 4
    cfg.SLOWFAST.FUSION_KERNEL_SZ = 7
    cfg.NONLOCAL.POOL = [[[1, 2, 2], [1, 2, 2]]] * 4
    for key, value in nonlocal_cfg.items():
        cfg.NONLOCAL[key] = value
    groups, strides, dilations = 1, [1, 2, 2, 2], [1, 1, 1, 1]
    if case == "slow_resnext_dilated":
        groups = 2
        cfg.RESNET.NUM_GROUPS, cfg.RESNET.WIDTH_PER_GROUP = 2, 4
        strides, dilations = [1, 2, 2, 1], [1, 1, 1, 2]
        cfg.RESNET.SPATIAL_STRIDES = [[s] for s in strides]
        cfg.RESNET.SPATIAL_DILATIONS = [[d] for d in dilations]
    model = build_model(cfg).double()
    _randomise(model)
    pool1 = [[2, 1, 1]] if arch in ("c2d", "i3d") else [[1, 1, 1]] * model.num_pathways
    final = 1 if case != "slow_resnext_dilated" else 2
    if arch == "slowfast":
        head_pool = [[2, final, final], [8, final, final]]
        torch.manual_seed(1)
        inputs = [torch.randn(2, 3, 2, 32, 32), torch.randn(2, 3, 8, 32, 32)]
    else:
        head_pool = [[8 // pool1[0][0], final, final]]
        torch.manual_seed(1)
        inputs = [torch.randn(2, 3, 8, 32, 32)]
    inputs = [x.double() for x in inputs]
    spec = {
        "alpha": 4,
        "strides": strides,
        "dilations": dilations,
        "groups": groups,
        "pool1": pool1,
        "head_pool": head_pool,
        "nl_pool": [1, 2, 2],
        "nl_inst": cfg.NONLOCAL.INSTANTIATION,
    }
    for training in (True, False):
        m = copy.deepcopy(model).train(training)
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            got = m([x.clone() for x in inputs])
            want = reference_forward(sd, [x.clone() for x in inputs], spec, training)
        assert got.shape == want.shape == (2, 6)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    # Larger eval crops are fully convolutional: 64 px -> 2x2 positions per clip.
    big = [F.interpolate(x, scale_factor=(1, 2, 2)) for x in inputs]
    with torch.no_grad():
        got = copy.deepcopy(model).eval()(big)
        want = reference_forward(model.state_dict(), big, spec, False)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
