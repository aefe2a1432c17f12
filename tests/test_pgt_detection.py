"""Detection and PGT together: the detection runner feeds the boxes, the progressive runner
feeds each step its own boxes and labels (AVA), PG long scores the last step's boxes (or all
steps' with ``PGT.ALL_STEP_TEST``), orig long pools the last step's window of a whole-clip
forward, and precise BN runs through the steps with the boxes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_pgt import CROP, pgt_cfg

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.engine.steps import build_step_runner
from slowfast.models import build_model
from slowfast.pgt import set_step
from slowfast.pgt.runner import step_meta
from slowfast.pgt.schedule import split_steps
from slowfast.utils.bn_helper import calculate_and_update_precise_bn

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = 4
STEPS = 3


def det_cfg(arch="slow", pgt=True, **overrides):
    """test_pgt's tiny PGT config (3 steps) as a detector: RoI head on res5 at stride 16,
    sigmoid outputs and BCE."""
    slow = arch == "slow"
    detection = {
        "MODEL__NUM_CLASSES": CLASSES,
        "MODEL__LOSS_FUNC": "bce",
        "MODEL__HEAD_ACT": "sigmoid",
        "RESNET__SPATIAL_STRIDES": [[1], [2], [2], [1]]
        if slow
        else [[1, 1], [2, 2], [2, 2], [1, 1]],
        "RESNET__SPATIAL_DILATIONS": (
            [[1], [1], [1], [2]] if slow else [[1, 1], [1, 1], [1, 1], [2, 2]]
        ),
        "DETECTION__ENABLE": True,
        "DETECTION__SPATIAL_SCALE_FACTOR": 16,
        "PGT__ENABLE": pgt,
    }
    return pgt_cfg(arch, steps=STEPS, **{**detection, **overrides})


def clip(cfg, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = cfg.DATA.NUM_FRAMES
    if cfg.MODEL.ARCH == "slowfast":
        return [
            torch.randn(batch, 3, t // 4, CROP, CROP, generator=g),
            torch.randn(batch, 3, t, CROP, CROP, generator=g),
        ]
    return [torch.randn(batch, 3, t, CROP, CROP, generator=g)]


def batch_meta(seed=0):
    """Per-step boxes (different per step, 1-3 per clip) and multi-hot labels, collated."""
    g = torch.Generator().manual_seed(seed)
    boxes, labels, ori, metadata = [], [], [], []
    for k in range(STEPS):
        rows = []
        for n in range(2):
            for _ in range(1 + (n + k) % 2):
                x1, y1 = torch.randint(0, 14, (2,), generator=g).tolist()
                rows.append([n, x1, y1, x1 + 10 + k, y1 + 12])
        b = torch.tensor(rows, dtype=torch.float32)
        boxes.append(b)
        labels.append((torch.rand(len(rows), CLASSES, generator=g) > 0.5).float())
        ori.append(b[:, 1:] / CROP)
        metadata.append(torch.stack([b[:, 0].long(), torch.full((len(rows),), 900 + k)], 1))
    meta = {
        "boxes": boxes[-1],
        "ori_boxes": ori[-1],
        "metadata": metadata[-1],
        "step_boxes": boxes,
        "step_labels": labels,
        "step_ori_boxes": ori,
        "step_metadata": metadata,
    }
    return meta, labels[-1]


def twins(cfg, seed=0):
    torch.manual_seed(seed)
    pgt = build_model(cfg)
    with torch.no_grad():
        for m in pgt.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return pgt


def manual_steps(model, cfg, xs, meta, call):
    """Each step in order with the step's own boxes; ``call(k, preds)`` on each output."""
    outs = []
    try:
        for k, x in enumerate(split_steps(xs, _schedule(cfg))):
            set_step(model, k)
            outs.append(call(k, model(x, meta["step_boxes"][k])))
    finally:
        set_step(model, None)
    return outs


def _schedule(cfg):
    from slowfast.pgt import schedule_from_cfg

    return schedule_from_cfg(cfg)


def test_step_meta_picks_the_steps_entries():
    meta, _ = batch_meta()
    m1 = step_meta(meta, 1)
    assert m1["boxes"] is meta["step_boxes"][1] and m1["ori_boxes"] is meta["step_ori_boxes"][1]
    assert m1["step_boxes"] is meta["step_boxes"]  # the lists stay
    with pytest.raises(ValueError, match="PGT.STEPS"):
        step_meta(meta, STEPS)


@pytest.mark.parametrize("arch", ["slow", "slowfast"])
def test_progressive_detection_train_step_feeds_each_step_its_boxes_and_labels(arch):
    cfg = det_cfg(arch, PGT__TRAIN_TOGETHER=True)
    xs = clip(cfg)
    meta, labels = batch_meta()
    a = twins(cfg).train()
    b = twins(cfg).train()
    b.load_state_dict(a.state_dict())
    runner = build_step_runner(cfg)
    assert runner.name == "progressive" and runner.detection
    opt_a = torch.optim.SGD(a.parameters(), lr=0.5)
    out = runner.progressive_train(a, opt_a, xs, labels, meta, None)

    opt_b = torch.optim.SGD(b.parameters(), lr=0.5)
    opt_b.zero_grad()
    losses = []

    def step_loss(k, preds):
        loss = F.binary_cross_entropy(preds, meta["step_labels"][k])
        loss.backward()
        losses.append(loss.detach())
        return preds.detach()

    preds_b = manual_steps(b, cfg, xs, meta, step_loss)
    opt_b.step()
    torch.testing.assert_close(out[1], torch.stack(losses).mean())
    torch.testing.assert_close(out[0], preds_b[-1])
    assert out[0].shape == (len(meta["boxes"]), CLASSES)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)
    # the steps really had different boxes: feeding the last step's boxes everywhere differs
    c = twins(cfg).train()
    c.load_state_dict(b.state_dict())
    same = dict(meta, step_boxes=[meta["boxes"]] * STEPS, step_labels=[labels] * STEPS)
    other = runner.progressive_train(
        c, torch.optim.SGD(c.parameters(), lr=0.0), xs, labels, same, None
    )
    assert not torch.allclose(other[1], out[1])


@pytest.mark.parametrize("all_steps", [False, True])
def test_pg_long_detection_scores_the_last_or_all_steps_boxes(all_steps):
    cfg = det_cfg("slow", PGT__PG_EVAL=True, PGT__ALL_STEP_TEST=all_steps)
    xs = clip(cfg)
    meta, _ = batch_meta()
    model = twins(cfg).eval()
    runner = build_step_runner(cfg)
    preds = runner.eval_step(model, xs, meta)
    with torch.no_grad():
        ref = manual_steps(model, cfg, xs, meta, lambda k, p: p)
    ori, metadata = runner.eval_boxes(meta)
    if all_steps:
        torch.testing.assert_close(preds, torch.cat(ref))
        torch.testing.assert_close(ori, torch.cat(meta["step_ori_boxes"]))
        assert metadata[:, 1].tolist() == torch.cat(meta["step_metadata"])[:, 1].tolist()
    else:
        torch.testing.assert_close(preds, ref[-1])
        assert ori is meta["ori_boxes"] and metadata is meta["metadata"]
    assert len(preds) == len(ori) == len(metadata)


@pytest.mark.parametrize("arch", ["slow", "slowfast"])
def test_orig_long_detection_pools_the_last_steps_window(arch):
    cfg = det_cfg(arch, PGT__PG_EVAL=False)
    xs = clip(cfg)
    meta, _ = batch_meta()
    model = twins(cfg).eval()
    preds = build_step_runner(cfg).eval_step(model, xs, meta)
    # by hand: whole-clip features, each pathway's last T' frames averaged, then the RoI head
    with torch.no_grad():
        feats = model.forward_features(xs)
        head = model.head
        pooled = []
        for p, x in enumerate(feats):
            t_step = cfg.PGT.STEP_LEN[p]
            x = x[:, :, -t_step:].mean(dim=2)
            x = head._modules[f"s{p}_roi"](x, meta["boxes"])
            pooled.append(head._modules[f"s{p}_spool"](x))
        ref = torch.sigmoid(head.projection(torch.cat(pooled, 1).flatten(1)))
    torch.testing.assert_close(preds, ref)
    # and it is not the same as pooling the whole clip
    with torch.no_grad():
        whole = [f.mean(dim=2) for f in feats]
    assert not torch.allclose(whole[0], feats[0][:, :, -cfg.PGT.STEP_LEN[0] :].mean(dim=2))


def test_precise_bn_runs_the_steps_with_the_boxes():
    cfg = det_cfg("slow")
    model = twins(cfg)
    runner = build_step_runner(cfg)
    batches = []
    for i in range(2):
        meta, labels = batch_meta(seed=i)
        batches.append((clip(cfg, seed=i), labels, torch.arange(2), meta))
    bn = model.s1.pathway0_stem.bn
    before = bn.running_mean.clone()
    module, split, per_batch = runner.precise_bn_forward(model)
    assert per_batch == STEPS
    updated = calculate_and_update_precise_bn(batches, module, 2 * per_batch, False, split=split)
    runner.end_forward(model)
    assert updated > 0 and not torch.allclose(before, bn.running_mean)
    # the statistics of the steps run by hand (fvcore: the mean over every element seen)
    ref = twins(cfg).train()
    seen = []
    hook = ref.s1.pathway0_stem.bn.register_forward_pre_hook(
        lambda m, a: seen.append(a[0].detach().transpose(0, 1).reshape(a[0].shape[1], -1))
    )
    with torch.no_grad():
        for xs, _, _, meta in batches:
            manual_steps(ref, cfg, xs, meta, lambda k, p: p)
    hook.remove()
    assert len(seen) == 2 * STEPS
    torch.testing.assert_close(bn.running_mean, torch.cat(seen, 1).mean(1))


def test_plain_detection_runner_feeds_the_boxes_everywhere():
    cfg = det_cfg("slow", pgt=False, DATA__NUM_FRAMES=6)
    model = twins(cfg)
    runner = build_step_runner(cfg)
    assert runner.name == "detection"
    xs = [clip(cfg)[0]]
    meta, labels = batch_meta()
    out = runner.train_step(
        model, torch.optim.SGD(model.parameters(), lr=0.1), xs, labels, meta, _ctx()
    )
    assert out.preds.shape == (len(meta["boxes"]), CLASSES)
    model.eval()
    torch.testing.assert_close(runner.eval_step(model, xs, meta), model(xs, meta["boxes"]))
    module, split, per_batch = runner.precise_bn_forward(model)
    assert per_batch == 1
    (item,) = split(xs, meta)
    assert item[1] is meta["boxes"]


def _ctx():
    from slowfast.engine.steps import StepContext

    return StepContext(0, 0, 1, 1, 0.1)


def test_dpr_with_per_step_targets_is_rejected():
    with pytest.raises(ValueError, match="PGT.DPR"):
        det_cfg("slow", PGT__DPR="A")


@pytest.mark.parametrize("name", ["SLOW_8x8_R50_PGT", "SLOWFAST_32x2_R50_PGT"])
def test_ava_pgt_configs_run_a_progressive_detection_step(name):
    from pathlib import Path

    cfg = get_cfg()
    cfg.merge_from_file(
        str(Path(__file__).resolve().parents[1] / "configs" / "AVA" / f"{name}.yaml")
    )
    cfg.NUM_GPUS = 0
    cfg.RESNET.WIDTH_PER_GROUP = 8  # SlowFast: Fast width = 8 / BETA_INV 8 = 1
    cfg.DATA.TRAIN_CROP_SIZE = cfg.DATA.TEST_CROP_SIZE = CROP
    cfg = assert_and_infer_cfg(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    t = cfg.DATA.NUM_FRAMES
    xs = [torch.randn(2, 3, t, CROP, CROP)]
    if cfg.MODEL.ARCH == "slowfast":
        xs = [xs[0][:, :, :: cfg.SLOWFAST.ALPHA], xs[0]]
    boxes = torch.tensor([[0, 2.0, 3.0, 20.0, 30.0], [1, 5.0, 1.0, 30.0, 25.0]])
    labels = (torch.rand(2, cfg.MODEL.NUM_CLASSES) > 0.9).float()
    meta = {"boxes": boxes, "step_boxes": [boxes] * cfg.PGT.STEPS}
    meta["step_labels"] = [labels] * cfg.PGT.STEPS
    runner = build_step_runner(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    preds, loss = runner.progressive_train(model.train(), opt, xs, labels, meta, None)
    assert preds.shape == (2, 80) and torch.isfinite(loss)
    assert runner.eval_step(model.eval(), xs, meta).shape == (2, 80)
