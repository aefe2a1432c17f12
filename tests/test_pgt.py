"""PGT: Markov caches, the step schedule, progressive training and both inference modes.

The reference below re-implements the release's semantics directly (concatenate the cache at
each module's input, compute the new cache from that, drop the carried frames of the output)
on a plain model with the same weights, so it checks the hooks, including the
before-the-ReLU concatenation that the caches use between consecutive blocks.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.models import build_model
from slowfast.models.head_helper import TemporalPool
from slowfast.models.nonlocal_helper import Nonlocal
from slowfast.models.resnet_helper import ResBlock
from slowfast.pgt import (
    ProgressiveStepRunner,
    Schedule,
    combine_steps,
    dpr_schedule,
    progressive_forward,
    schedule_from_cfg,
    set_step,
    step_bounds,
    train_step,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CROP = 32
CLASSES = 5


def pgt_cfg(arch="slow", steps=3, cache="last", momentum=0.0, **overrides):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.MODEL.ARCH = arch
    cfg.MODEL.MODEL_NAME = {"slowfast": "SlowFast", "regnet": "RegNet"}.get(arch, "ResNet")
    if arch == "regnet":
        cfg.MODEL.ARCH = "slow"
    cfg.MODEL.NUM_CLASSES = CLASSES
    cfg.MODEL.DROPOUT_RATE = 0.0
    cfg.RESNET.WIDTH_PER_GROUP = 4
    cfg.RESNET.DEPTH = 18
    cfg.RESNET.TRANS_FUNC = "basic_transform"
    cfg.RESNET.NUM_BLOCK_TEMP_KERNEL = [[2], [2], [2], [2]]
    cfg.DATA.TRAIN_CROP_SIZE = CROP
    cfg.DATA.TEST_CROP_SIZE = CROP
    cfg.SLOWFAST.ALPHA = 4
    cfg.SLOWFAST.BETA_INV = 4
    cfg.PGT.ENABLE = True
    cfg.PGT.STEPS = steps
    cfg.PGT.CACHE = cache
    cfg.PGT.CACHE_MOMENTUM = momentum
    if arch == "slowfast":
        cfg.DATA.INPUT_CHANNEL_NUM = [3, 3]
        cfg.PGT.STEP_LEN = [4, 16]
        cfg.PGT.OVERLAP = [1, 4]
        cfg.DATA.NUM_FRAMES = (16 - 4) * (steps - 1) + 16
    else:
        cfg.DATA.INPUT_CHANNEL_NUM = [3]
        cfg.PGT.STEP_LEN = [6]
        cfg.PGT.OVERLAP = [1]
        cfg.DATA.NUM_FRAMES = 5 * (steps - 1) + 6
    for key, value in overrides.items():
        node, name = key.split("__")
        cfg[node][name] = value
    return assert_and_infer_cfg(cfg)


def long_clip(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t, crop = cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE
    if cfg.MODEL.ARCH == "slowfast":
        return [
            torch.randn(batch, 3, t // 4, crop, crop, generator=g),
            torch.randn(batch, 3, t, crop, crop, generator=g),
        ]
    return [torch.randn(batch, 3, t, crop, crop, generator=g)]


def models(cfg, seed=0):
    """(PGT model, plain model) with the same random weights (non-zero residual branches)."""
    torch.manual_seed(seed)
    pgt = build_model(cfg)
    with torch.no_grad():
        for m in pgt.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    plain_cfg = cfg.clone()
    plain_cfg.PGT.ENABLE = False
    plain = build_model(plain_cfg)
    plain.load_state_dict(pgt.state_dict())
    return pgt, plain


# ----------------------------------------------------------------------------------------- #
# The independent reference: release semantics on the plain model.
# ----------------------------------------------------------------------------------------- #
class Reference:
    def __init__(self, model, cfg):
        self.m = model
        self.mode = cfg.PGT.CACHE
        self.mom = cfg.PGT.CACHE_MOMENTUM
        self.head_cache = cfg.PGT.HEAD
        self.ov = list(cfg.PGT.OVERLAP)
        self.caches = {}

    def _cached(self, key, x, k, o, fn, drop=True):
        if k > 0:
            x = torch.cat([self.caches[key].to(x.dtype), x], 2)
        if self.mode == "last":
            new = x[:, :, -o:]
        elif self.mode == "avg":
            new = F.adaptive_avg_pool3d(x, (o, None, None))
        else:
            new = F.adaptive_max_pool3d(x, (o, None, None))
        if k > 0:
            new = (1 - self.mom) * new + self.mom * self.caches[key]
        self.caches[key] = new.detach()
        y = fn(x)
        return y[:, :, o:] if (k > 0 and drop) else y

    def step(self, xs, k):
        m = self.m
        xs = list(xs)
        for p in range(len(xs)):
            stem = getattr(m.s1, f"pathway{p}_stem")
            if stem.temporal_kernel > 1:
                xs[p] = self._cached(("stem", p), xs[p], k, self.ov[p], stem)
            else:
                xs[p] = stem(xs[p])
        for name in m.stage_names:
            stage = m._modules[name]
            if name != "s1":
                for p, names in enumerate(stage.pathway_module_names):
                    for n in names:
                        mod = stage._modules[n]
                        if isinstance(mod, ResBlock):
                            xs[p] = self._cached((name, n), xs[p], k, self.ov[p], mod)
                        else:
                            xs[p] = mod(xs[p])
            fuse = m._modules.get(f"{name}_fuse")
            if fuse is not None:
                lat = fuse.lateral(xs[1])
                if lat.shape[2] > xs[0].shape[2]:
                    lat = lat[:, :, self.ov[0] :]
                xs = [torch.cat([xs[0], lat], 1), xs[1]]
        head = m.head
        pooled = []
        for p, x in enumerate(xs):
            # The head's cache holds the feature maps the head receives (the release's).

            def pool1(
                z,
                spool=head._modules[f"pathway{p}_spool"],
                mode=head._modules[f"pathway{p}_tpool"].mode,
            ):
                fn = F.adaptive_avg_pool3d if mode == "avg" else F.adaptive_max_pool3d
                return fn(spool(z), (1, None, None))

            if self.head_cache:
                pooled.append(self._cached(("head", p), x, k, self.ov[p], pool1, drop=False))
            else:
                pooled.append(pool1(x))
        return head.classify(torch.cat(pooled, 1))


def ref_steps(plain, cfg, xs):
    from slowfast.pgt.schedule import split_steps

    ref = Reference(plain, cfg)
    return [ref.step(x, k) for k, x in enumerate(split_steps(xs, schedule_from_cfg(cfg)))]


# ----------------------------------------------------------------------------------------- #
# Crop 64: res5 is 2 x 2, so the head's spatial pooling is not the identity and its cache (of the
# maps it receives, as in the release) differs from a cache of spatially pooled features for
# `max` caches and for a spatial max pool (MODEL.FINAL_POOL [max, avg]) with momentum.
BIG = {"DATA__TRAIN_CROP_SIZE": 64, "DATA__TEST_CROP_SIZE": 64}


@pytest.mark.parametrize(
    "arch,cache,momentum,extra",
    [
        ("slow", "last", 0.0, {}),
        ("slow", "last", 0.25, {}),
        ("slow", "avg", 0.0, {}),
        ("slow", "avg", 0.25, {}),
        ("slow", "max", 0.25, {}),
        ("slow", "max", 0.25, BIG),
        ("slow", "last", 0.25, dict(BIG, MODEL__FINAL_POOL=["max", "avg"])),
        ("slowfast", "last", 0.0, {}),
        ("slowfast", "last", 0.25, {}),
        ("slowfast", "avg", 0.25, {}),
        ("slowfast", "max", 0.0, BIG),
    ],
)
def test_per_step_outputs_equal_the_reference(arch, cache, momentum, extra):
    cfg = pgt_cfg(arch, cache=cache, momentum=momentum, **extra)
    pgt, plain = models(cfg)
    xs = long_clip(cfg)
    for training in (False, True):
        pgt.train(training)
        plain.train(training)
        # Train-mode batch norm updates running stats: compare from equal states.
        plain.load_state_dict(pgt.state_dict())
        with torch.no_grad():
            got = progressive_forward(pgt, xs, cfg)
            want = ref_steps(plain, cfg, xs)
        assert len(got) == cfg.PGT.STEPS
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_head_cache_off_and_nonlocal_within_the_step():
    cfg = pgt_cfg(
        "slow",
        PGT__HEAD=False,
        NONLOCAL__LOCATION=[[[]], [[0]], [[]], [[]]],
        NONLOCAL__INSTANTIATION="softmax",
    )
    pgt, plain = models(cfg)
    assert any(isinstance(m, Nonlocal) for m in pgt.modules())
    xs = long_clip(cfg)
    pgt.eval()
    plain.eval()
    with torch.no_grad():
        for g, w in zip(progressive_forward(pgt, xs, cfg), ref_steps(plain, cfg, xs)):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["slow", "slowfast"])
def test_one_way_dependency(arch):
    cfg = pgt_cfg(arch, steps=3, cache="avg", momentum=0.25)
    pgt, _ = models(cfg)
    pgt.eval()
    xs = long_clip(cfg)
    sched = schedule_from_cfg(cfg)
    with torch.no_grad():
        base = progressive_forward(pgt, xs, cfg)
        for p_changed in range(cfg.PGT.STEPS - 1):
            changed = [x.clone() for x in xs]
            for p, x in enumerate(changed):
                start = step_bounds(x.shape[2], sched.step_len[p], sched.overlap[p], sched.steps)[
                    p_changed + 1
                ][0]
                x[:, :, start:] = torch.randn_like(x[:, :, start:])
            out = progressive_forward(pgt, changed, cfg)
            for k in range(p_changed + 1):
                torch.testing.assert_close(out[k], base[k], rtol=0, atol=0)
            assert not torch.allclose(out[p_changed + 1], base[p_changed + 1])


@pytest.mark.parametrize("keep_graph", [False, True])
def test_truncated_gradient(keep_graph):
    cfg = pgt_cfg("slow", steps=3, PGT__TRUNCATE_GRAD=keep_graph, PGT__TRAIN_TOGETHER=True)
    pgt, _ = models(cfg)
    pgt.train()
    xs = [long_clip(cfg)[0].requires_grad_(True)]
    outs = progressive_forward(pgt, xs, cfg)
    grad = torch.autograd.grad(outs[-1].sum(), xs[0], allow_unused=True)[0]
    start_last = step_bounds(cfg.DATA.NUM_FRAMES, 6, 1, 3)[2][0]
    earlier = grad[:, :, :start_last]
    assert grad[:, :, start_last:].abs().sum() > 0
    if keep_graph:
        assert earlier.abs().sum() > 0
    else:
        assert torch.count_nonzero(earlier) == 0


@pytest.mark.parametrize("cache, reach", [("last", 7), ("max", None)])
def test_cache_reach_across_step_borders(repo_root, cache, reach):
    """The long-range PGT config (benchmarks/long_range.py): with MCO (``last``) a step's
    output depends on the frames of earlier steps only as far back as the temporal receptive
    field (stem 5, five temporal-3 convs: 7 frames); CMCO-max caches carry every earlier frame.
    Eval mode (fixed BN statistics), gradients kept across steps."""
    cfg = get_cfg()
    cfg.merge_from_file(str(repo_root / "configs" / "Synthetic" / "LONG_RANGE_PGT.yaml"))
    cfg.merge_from_list(["NUM_GPUS", 0, "PGT.CACHE", cache, "PGT.TRUNCATE_GRAD", True])
    cfg.merge_from_list(["RESNET.ZERO_INIT_FINAL_BN", False])  # every residual branch counts
    cfg = assert_and_infer_cfg(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, cfg.DATA.NUM_FRAMES, 16, 16, requires_grad=True)
    outs = progressive_forward(model, [x], cfg)
    bounds = step_bounds(cfg.DATA.NUM_FRAMES, 8, 1, 5)
    for k in (2, 3, 4):
        grad = torch.autograd.grad(outs[k][:, 0].sum(), x, retain_graph=True)[0]
        seen = torch.nonzero(grad.abs().sum(dim=(0, 1, 3, 4))).flatten().tolist()
        new, end = bounds[k]  # the step's new frames; it sees [new - 1, end), o = 1
        expected_first = new - 1 - reach if reach is not None else 0
        assert (seen[0], seen[-1]) == (expected_first, end - 1)


@pytest.mark.parametrize("arch", ["slow", "slowfast", "regnet"])
def test_one_step_equals_the_plain_model_and_orig_long_uses_bins(arch):
    if arch == "regnet":
        cfg = pgt_cfg("regnet", steps=1, DATA__TRAIN_CROP_SIZE=64, DATA__TEST_CROP_SIZE=64)
        size = 64
    else:
        cfg = pgt_cfg(arch, steps=1)
        size = CROP
    pgt, plain = models(cfg)
    xs = [x[..., :size, :size] for x in long_clip(cfg)]
    if size != CROP:
        g = torch.Generator().manual_seed(1)
        xs = [torch.randn(2, 3, x.shape[2], size, size, generator=g) for x in xs]
    for training in (True, False):
        pgt.train(training)
        plain.train(training)
        plain.load_state_dict(pgt.state_dict())
        with torch.no_grad():
            (step,) = progressive_forward(pgt, xs, cfg)
            torch.testing.assert_close(step, plain(xs), rtol=1e-5, atol=1e-6)
    # Orig long: the whole clip in eval mode, the head's time in PGT.TPOOL_SIZE bins.
    cfg5 = pgt_cfg(arch if arch != "regnet" else "regnet", steps=5, PGT__TPOOL_SIZE=[3])
    if arch == "regnet":
        cfg5 = pgt_cfg(
            "regnet",
            steps=5,
            PGT__TPOOL_SIZE=[3],
            DATA__TRAIN_CROP_SIZE=64,
            DATA__TEST_CROP_SIZE=64,
        )
    pgt5, plain5 = models(cfg5)
    pgt5.eval()
    plain5.eval()
    g = torch.Generator().manual_seed(2)
    xs5 = [torch.randn(2, 3, x.shape[2], size, size, generator=g) for x in long_clip(cfg5)]
    with torch.no_grad():
        got = pgt5(xs5)
        for m in plain5.head.modules():
            if isinstance(m, TemporalPool):
                m.bins = 3
        want = plain5(xs5)
        for m in plain5.head.modules():
            if isinstance(m, TemporalPool):
                m.bins = None
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got, plain5.head.classify(_one_bin(plain5, xs5)))


def _one_bin(model, xs):
    feats = model.forward_features(xs) if hasattr(model, "forward_features") else None
    if feats is None:
        out = model.relu(model.bn1(model.conv1(xs[0])))
        for name in model.stage_names:
            out = model._modules[name](out)
        feats = [out]
    pooled = [
        F.adaptive_avg_pool3d(model.head._modules[f"pathway{p}_spool"](f), (1, None, None))
        for p, f in enumerate(feats)
    ]
    return torch.cat(pooled, 1)


def test_regnet_blocks_carry_caches():
    cfg = pgt_cfg("regnet", steps=3, DATA__TRAIN_CROP_SIZE=64, DATA__TEST_CROP_SIZE=64)
    pgt, plain = models(cfg)
    from slowfast.models.regnet import RegNetBottleneck

    blocks = [m for m in pgt.modules() if isinstance(m, RegNetBottleneck)]
    assert blocks and all(hasattr(b, "pgt_state") for b in blocks)
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(1, 3, cfg.DATA.NUM_FRAMES, 64, 64, generator=g)]
    pgt.eval()
    with torch.no_grad():
        outs = progressive_forward(pgt, xs, cfg)
        # Step 1 differs from the same frames run as a fresh clip: the caches carried in.
        fresh = progressive_forward(pgt, [xs[0][:, :, 5:11]], cfg, schedule=Schedule((6,), (1,), 1))
    assert not torch.allclose(outs[1], fresh[0])


def test_no_leak_between_clips_train_eval_and_whole_clip():
    cfg = pgt_cfg("slow", steps=3)
    pgt, _ = models(cfg)
    pgt.eval()
    a, b = long_clip(cfg, seed=0), long_clip(cfg, seed=1)
    with torch.no_grad():
        first = progressive_forward(pgt, a, cfg)
        progressive_forward(pgt, b, cfg)
        again = progressive_forward(pgt, a, cfg)
        for x, y in zip(first, again):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        # After the steps nothing is cached, and a whole-clip forward is a plain one.
        states = [s for s in pgt.pgt_states if hasattr(s, "cache")]
        assert states and all(s.cache is None and s.step is None for s in states)
        whole = pgt(a)
        progressive_forward(pgt, b, cfg)
        torch.testing.assert_close(pgt(a), whole, rtol=0, atol=0)
    # An error inside a step leaves no state behind.
    broken = [a[0][:, :2]]  # 2 channels: the stem fails
    with pytest.raises(RuntimeError):
        progressive_forward(pgt, broken, cfg)
    assert all(s.cache is None and s.step is None for s in states)
    # A step >= 1 without step 0 is refused rather than guessed.
    set_step(pgt, 1)
    with pytest.raises(RuntimeError, match="no cache"):
        pgt([a[0][:, :, :5]])
    set_step(pgt, None)


def test_state_dict_keys_unchanged_and_checkpoints_load_both_ways(tmp_path):
    from slowfast.utils import checkpoint as cu

    for arch in ("slow", "slowfast"):
        cfg = pgt_cfg(arch)
        pgt, plain = models(cfg)
        assert list(pgt.state_dict()) == list(plain.state_dict())
        for src, dst in ((pgt, copy.deepcopy(plain)), (plain, copy.deepcopy(pgt))):
            path = tmp_path / f"{arch}.pyth"
            torch.save({"model_state": src.state_dict()}, path)
            for p in dst.parameters():
                p.data.zero_()
            cu.load_checkpoint(str(path), dst)
            for k, v in src.state_dict().items():
                torch.testing.assert_close(dst.state_dict()[k], v)


def test_dpr_draws_are_deterministic_and_tile_the_clip():
    cfg = pgt_cfg("slow", steps=5, PGT__STEP_LEN=[8], PGT__DPR="A", DATA__NUM_FRAMES=36)
    base = schedule_from_cfg(cfg)
    seen = {}
    for it in range(60):
        sched, factor = dpr_schedule(base, "A", 1, 0, it)
        again, _ = dpr_schedule(base, "A", 1, 0, it)  # another rank, or after a resume
        assert sched == again
        t = sched.step_len[0]
        assert t == round(factor * 8) and factor in (0.75, 1.0, 1.25)
        assert sched.steps == round(35 / (t - 1))
        seen[t] = sched.steps
        bounds = step_bounds(36, t, 1, sched.steps)
        assert bounds[0] == (0, t)
        for (_, b0), (a1, b1) in zip(bounds, bounds[1:]):
            assert a1 == b0 and b1 - a1 <= t - 1
        assert abs(bounds[-1][1] - 36) <= 1
    assert seen == {6: 7, 8: 5, 10: 4}
    b_sched = {dpr_schedule(base, "B", 1, 0, it)[0].step_len[0] for it in range(60)}
    assert b_sched == {4, 6, 8}
    # SlowFast: the fast pathway keeps alpha times the slow step.
    sf = schedule_from_cfg(pgt_cfg("slowfast", steps=3))
    sched, _ = dpr_schedule(sf, "A", 0, 2, 7, alpha=4)
    assert sched.step_len[1] == 4 * sched.step_len[0] and sched.overlap == (1, 4)


def test_dpr_runner_trains_with_varying_steps():
    cfg = pgt_cfg("slow", steps=5, PGT__STEP_LEN=[8], PGT__DPR="B", DATA__NUM_FRAMES=36)
    pgt, _ = models(cfg)
    pgt.train()
    runner = ProgressiveStepRunner(cfg)
    opt = torch.optim.SGD(pgt.parameters(), lr=0.01)
    from slowfast.engine.steps import StepContext

    xs = long_clip(cfg)
    labels = torch.tensor([0, 1])
    for it in range(6):
        out = runner.train_step(pgt, opt, xs, labels, {}, StepContext(0, it, 6, 1, 0.01))
        assert torch.isfinite(out.loss)
    assert sum(runner.dpr_counts[0].values()) == 6


def _hand_train_step(plain, cfg, xs, labels, lr):
    """The release's iteration on the plain model: per step forward, loss, backward; sum."""
    ref = Reference(plain, cfg)
    from slowfast.pgt.schedule import split_steps

    opt = torch.optim.SGD(plain.parameters(), lr=lr)
    opt.zero_grad()
    losses = []
    for k, x in enumerate(split_steps(xs, schedule_from_cfg(cfg))):
        loss = F.cross_entropy(ref.step(x, k), labels)
        loss.backward()
        losses.append(float(loss.detach()))
    opt.step()
    return losses


@pytest.mark.parametrize(
    "arch,cache,momentum", [("slow", "last", 0.25), ("slow", "avg", 0.0), ("slowfast", "last", 0.0)]
)
def test_train_step_equals_the_reference(arch, cache, momentum):
    cfg = pgt_cfg(arch, cache=cache, momentum=momentum, PGT__TRAIN_TOGETHER=True)
    pgt, plain = models(cfg)
    pgt.train()
    plain.train()
    xs = long_clip(cfg)
    labels = torch.tensor([1, 3])
    want_losses = _hand_train_step(plain, cfg, xs, labels, lr=0.1)
    opt = torch.optim.SGD(pgt.parameters(), lr=0.1)
    preds, loss = train_step(pgt, xs, labels, F.cross_entropy, opt, cfg)
    assert preds.shape == (2, CLASSES)
    assert abs(float(loss) - sum(want_losses) / len(want_losses)) < 1e-5
    for (name, a), b in zip(pgt.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_step_per_step_without_train_together():
    cfg = pgt_cfg("slow", PGT__TRAIN_TOGETHER=False)
    pgt, _ = models(cfg)
    pgt.train()
    opt = torch.optim.SGD(pgt.parameters(), lr=0.1)
    calls = []
    opt.register_step_post_hook(lambda *a: calls.append(1))
    train_step(pgt, long_clip(cfg), torch.tensor([0, 1]), F.cross_entropy, opt, cfg)
    assert len(calls) == cfg.PGT.STEPS
    cfg2 = pgt_cfg("slow", PGT__TRAIN_TOGETHER=True)
    calls.clear()
    train_step(pgt, long_clip(cfg2), torch.tensor([0, 1]), F.cross_entropy, opt, cfg2)
    assert len(calls) == 1


def test_pg_long_ensemble_and_orig_long_in_the_runner():
    cfg = pgt_cfg("slow", PGT__PG_EVAL=True, PGT__ENSEMBLE_METHOD="max")
    pgt, _ = models(cfg)
    pgt.eval()
    xs = long_clip(cfg)
    with torch.no_grad():
        steps = progressive_forward(pgt, xs, cfg)
        got = ProgressiveStepRunner(cfg).eval_step(pgt, xs, {})
        torch.testing.assert_close(got, torch.stack(steps, 1).max(1).values)
        torch.testing.assert_close(combine_steps(steps, "sum"), sum(steps))
        for s in steps:  # probabilities per step
            torch.testing.assert_close(s.sum(1), torch.ones(2))
        cfg_orig = cfg.clone()
        cfg_orig.PGT.PG_EVAL = False
        torch.testing.assert_close(ProgressiveStepRunner(cfg_orig).eval_step(pgt, xs, {}), pgt(xs))


def test_amp_on_cpu_bfloat16_close_to_fp32():
    cfg = pgt_cfg("slow", PGT__TRAIN_TOGETHER=True)
    pgt, plain = models(cfg)
    pgt_amp = copy.deepcopy(pgt)
    xs, labels = long_clip(cfg), torch.tensor([0, 2])
    pgt.train()
    pgt_amp.train()
    _, loss32 = train_step(
        pgt, xs, labels, F.cross_entropy, torch.optim.SGD(pgt.parameters(), 0.1), cfg
    )
    cfg_amp = cfg.clone()
    cfg_amp.TRAIN.MIXED_PRECISION = True
    runner = ProgressiveStepRunner(cfg_amp)
    assert runner.amp_dtype == torch.bfloat16 and runner.scaler is None
    opt = torch.optim.SGD(pgt_amp.parameters(), 0.1)
    _, loss16 = runner.progressive_train(pgt_amp, opt, xs, labels, {}, None, F.cross_entropy)
    assert torch.isfinite(loss16)
    assert abs(float(loss16) - float(loss32)) < 0.05 * abs(float(loss32)) + 1e-3


def test_grad_clipping_seams():
    cfg = pgt_cfg("slow", SOLVER__CLIP_GRAD_L2NORM=1e-3, PGT__TRAIN_TOGETHER=True)
    pgt, _ = models(cfg)
    pgt.train()
    before = {k: v.clone() for k, v in pgt.state_dict().items()}
    opt = torch.optim.SGD(pgt.parameters(), lr=1.0)
    train_step(pgt, long_clip(cfg), torch.tensor([0, 1]), F.cross_entropy, opt, cfg)
    total = sum(
        float((pgt.state_dict()[k] - before[k]).pow(2).sum()) for k, _ in pgt.named_parameters()
    )
    assert 0 < total**0.5 <= 1e-3 * 1.0001


def test_config_rejects_what_pgt_cannot_honour():
    with pytest.raises(ValueError, match="temporal pooling"):
        pgt_cfg("i3d")
    with pytest.raises(ValueError, match="NONLOCAL.GROUP"):
        pgt_cfg(
            "slow",
            NONLOCAL__LOCATION=[[[]], [[0]], [[]], [[]]],
            NONLOCAL__GROUP=[[1], [2], [1], [1]],
        )
    with pytest.raises(ValueError, match="PGT.TRUNCATE_GRAD True .* PGT.TRAIN_TOGETHER False"):
        pgt_cfg("slow", PGT__TRUNCATE_GRAD=True, PGT__TRAIN_TOGETHER=False)
    cfg = pgt_cfg("i3d", MODEL__MODEL_NAME="ResNet_nopool")
    assert build_model(cfg) is not None


@pytest.mark.parametrize("cache", ["last", "max"])
def test_momentum_blend_keeps_float64(cache):
    """The cache is blended in the features' own dtype (fp32 only for fp16 / bf16 under
    autocast): a float64 model is not rounded to fp32 at every cache."""
    cfg = pgt_cfg("slowfast", cache=cache, momentum=0.25)
    pgt, plain = models(cfg)
    pgt, plain = pgt.double().eval(), plain.double().eval()
    xs = [x.double() for x in long_clip(cfg)]
    with torch.no_grad():
        got = progressive_forward(pgt, xs, cfg)
        want = ref_steps(plain, cfg, xs)
    for g, w in zip(got, want):
        assert g.dtype == torch.float64
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-14)


def test_regnet_with_caches_keeps_the_papers_params_and_gflops():
    """RegNet0.4G-3D, 400 classes: 8,873,800 parameters and 6.59 GFLOPs for an 8-frame view
    at 256 x 256 (the paper's figures), with the caches attached."""
    from slowfast.utils.misc import get_flops

    cfg = pgt_cfg("regnet", steps=5, PGT__STEP_LEN=[8], DATA__NUM_FRAMES=36, MODEL__NUM_CLASSES=400)
    model = build_model(cfg)
    assert model.pgt_states
    assert sum(p.numel() for p in model.parameters()) == 8_873_800
    view = cfg.clone()
    view.DATA.NUM_FRAMES = 8
    view.DATA.TEST_CROP_SIZE = 256
    assert round(get_flops(model, view, use_train_input=False), 2) == 6.59
