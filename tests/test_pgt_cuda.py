"""PGT on a CUDA device: the paths a CPU cannot take (every test skips, with the reason,
where torch sees no CUDA device).

- the per-step outputs of PG long and of the train-mode steps on the GPU equal the CPU's;
- ``TRAIN.MIXED_PRECISION`` on the GPU is PySlowFast's fp16 autocast + ``GradScaler``: each
  step's loss scaled, unscale -> clip -> step -> update once per optimizer step (once per clip
  with ``PGT.TRAIN_TOGETHER``, per step without), the momentum blend of the caches in fp32,
  and a loss and an update close to float32's; ``bfloat16`` runs without a scaler;
- ``tools/run_net.py`` trains with PGT and AMP on one GPU, stores the scaler's state in the
  checkpoint, and tests in both inference modes.

``scripts/gpu_check.sh`` runs these with the other GPU tests and the GPU benchmark figures.
"""

import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F
from test_pgt import long_clip, models, pgt_cfg

from slowfast.pgt import ProgressiveStepRunner, progressive_forward, set_step, train_step
from slowfast.pgt.caches import CacheState, cache_states
from slowfast.pgt.runner import schedule_from_cfg
from slowfast.pgt.schedule import split_steps

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")
LR = 0.01


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 matmuls and convolutions would move GPU float32 about 1e-3 away from the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def on_gpu(cfg):
    """``cfg`` for one GPU (the runner's autocast follows NUM_GPUS)."""
    cfg = cfg.clone()
    cfg.NUM_GPUS = 1
    return cfg


def cpu_and_gpu_models(cfg):
    """The same random PGT model twice: on the CPU, and a copy on the GPU."""
    cpu, _ = models(cfg)
    return cpu, copy.deepcopy(cpu).to(CUDA)


@pytest.mark.parametrize(
    "arch,cache,momentum", [("slow", "last", 0.25), ("slow", "max", 0.0), ("slowfast", "avg", 0.25)]
)
def test_steps_on_the_gpu_equal_the_cpu(arch, cache, momentum):
    cfg = pgt_cfg(arch, cache=cache, momentum=momentum)
    cpu, gpu = cpu_and_gpu_models(cfg)
    xs = long_clip(cfg)
    with torch.no_grad():
        for train in (False, True):  # eval: PG-long probabilities; train: BN on each step
            cpu.train(train)
            gpu.train(train)
            want = progressive_forward(cpu, xs, cfg)
            got = progressive_forward(gpu, [x.to(CUDA) for x in xs], on_gpu(cfg))
            assert len(got) == len(want) == cfg.PGT.STEPS
            for k, (g, w) in enumerate(zip(got, want)):
                torch.testing.assert_close(g.cpu(), w, rtol=1e-4, atol=1e-5, msg=f"step {k}")
        # orig long: the whole clip in eval mode, no caches
        cpu.eval()
        gpu.eval()
        torch.testing.assert_close(
            gpu([x.to(CUDA) for x in xs]).cpu(), cpu(xs), rtol=1e-4, atol=1e-5
        )


def _count_calls(obj, name, counts):
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return original(*args, **kwargs)

    setattr(obj, name, counted)


@pytest.mark.parametrize("together", [True, False])
def test_fp16_autocast_with_grad_scaler(together):
    # A small learning rate: without TRAIN_TOGETHER the later steps run on updated weights, and
    # fp16's small differences must not grow into different trajectories.
    cfg = pgt_cfg("slow", momentum=0.25, PGT__TRAIN_TOGETHER=together)
    base, _ = models(cfg)
    xs = [x.to(CUDA) for x in long_clip(cfg)]
    labels = torch.tensor([0, 2], device=CUDA)
    start = {k: v.detach().to(CUDA) for k, v in base.state_dict().items()}

    fp32 = copy.deepcopy(base).to(CUDA).train()
    _, loss32 = train_step(
        fp32, xs, labels, F.cross_entropy, torch.optim.SGD(fp32.parameters(), LR), on_gpu(cfg)
    )

    amp_cfg = on_gpu(cfg)
    amp_cfg.TRAIN.MIXED_PRECISION = True
    default = ProgressiveStepRunner(amp_cfg)
    assert default.amp_dtype == torch.float16
    assert isinstance(default.scaler, torch.amp.GradScaler)
    # A scale of 2**10 keeps this tiny model's fp16 gradients finite from the first step, so the
    # step is taken (the default 2**16 may skip it, as GradScaler is meant to).
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**10)
    runner = ProgressiveStepRunner(amp_cfg, scaler=scaler)
    counts = {}
    for name in ("scale", "unscale_", "step", "update"):
        _count_calls(scaler, name, counts)
    amp = copy.deepcopy(base).to(CUDA).train()
    opt = torch.optim.SGD(amp.parameters(), LR)
    _, loss16 = runner.progressive_train(amp, opt, xs, labels, {}, None, F.cross_entropy)

    steps = cfg.PGT.STEPS
    per_update = 1 if together else steps
    assert counts == {
        "scale": steps,
        "unscale_": per_update,
        "step": per_update,
        "update": per_update,
    }
    assert scaler.get_scale() >= 2.0**10  # no overflow was found, nothing was skipped
    assert torch.isfinite(loss16)
    assert abs(float(loss16) - float(loss32)) < 0.02 * abs(float(loss32)) + 1e-3
    # The update (unscaled) points the way float32's does, with the same length.
    names = [k for k, _ in base.named_parameters()]
    d32 = torch.cat([(fp32.state_dict()[k] - start[k]).flatten() for k in names])
    d16 = torch.cat([(amp.state_dict()[k] - start[k]).flatten() for k in names])
    assert float(d16.norm()) > 0
    assert 0.9 < float(d16.norm() / d32.norm()) < 1.1
    assert float(F.cosine_similarity(d16, d32, dim=0)) > 0.97


def test_fp16_steps_compute_in_half_and_blend_caches_in_float32():
    cfg = pgt_cfg("slow", momentum=0.25)
    model, _ = models(cfg)
    model = model.to(CUDA).train()
    dtypes = set()
    conv = model.s2.pathway0_res0.branch2.a
    handle = conv.register_forward_hook(lambda m, a, out: dtypes.add(out.dtype))
    blended = []
    try:
        with torch.autocast("cuda", dtype=torch.float16):
            steps = split_steps([x.to(CUDA) for x in long_clip(cfg)], schedule_from_cfg(cfg))
            for k, x in enumerate(steps):
                set_step(model, k)
                model(x)
                if k >= 1:
                    blended += [
                        s.cache.dtype
                        for s in cache_states(model)
                        if isinstance(s, CacheState) and s.cache is not None
                    ]
    finally:
        set_step(model, None)
        handle.remove()
    assert dtypes == {torch.float16}
    assert blended and set(blended) == {torch.float32}


def test_bf16_autocast_needs_no_scaler():
    cfg = pgt_cfg("slow", PGT__TRAIN_TOGETHER=True)
    base, _ = models(cfg)
    xs = [x.to(CUDA) for x in long_clip(cfg)]
    labels = torch.tensor([1, 3], device=CUDA)
    fp32 = copy.deepcopy(base).to(CUDA).train()
    _, loss32 = train_step(
        fp32, xs, labels, F.cross_entropy, torch.optim.SGD(fp32.parameters(), 0.1), on_gpu(cfg)
    )
    amp_cfg = on_gpu(cfg)
    amp_cfg.TRAIN.MIXED_PRECISION = True
    amp_cfg.TRAIN.MIXED_PRECISION_DTYPE = "bfloat16"
    runner = ProgressiveStepRunner(amp_cfg)
    assert runner.amp_dtype == torch.bfloat16 and runner.scaler is None
    amp = copy.deepcopy(base).to(CUDA).train()
    opt = torch.optim.SGD(amp.parameters(), 0.1)
    _, loss_bf16 = runner.progressive_train(amp, opt, xs, labels, {}, None, F.cross_entropy)
    assert abs(float(loss_bf16) - float(loss32)) < 0.05 * abs(float(loss32)) + 1e-3


def test_run_net_with_pgt_and_amp_on_one_gpu(tmp_path):
    from small_run import run_net
    from test_pgt_engine import pgt_run_overrides

    overrides = pgt_run_overrides(tmp_path)
    overrides.update({"NUM_GPUS": 1, "TRAIN.MIXED_PRECISION": True})
    out = overrides["OUTPUT_DIR"]
    run_net(overrides)
    ckpt = os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["scaler_state"]["scale"] > 0
    summary = json.load(open(os.path.join(out, "run_summary.json")))
    assert summary["test_cost"]["steps"] == 1 and 0.0 <= summary["test_top1_acc"] <= 100.0
    pg = dict(overrides, OUTPUT_DIR=str(tmp_path / "pg"))
    pg.update({"TRAIN.ENABLE": False, "TEST.CHECKPOINT_FILE_PATH": ckpt, "PGT.PG_EVAL": True})
    run_net(pg)
    pg_summary = json.load(open(tmp_path / "pg" / "run_summary.json"))
    assert pg_summary["test_cost"]["steps"] == 3
    assert 0.0 <= pg_summary["test_top1_acc"] <= 100.0
