"""Checkpoint saving/loading: PySlowFast .pyth files, Caffe2 .pkl files, safety, atomicity."""

import logging
import os
import pickle
import re
import struct
from typing import Dict

import numpy as np
import pytest
import torch
from torch import nn

from slowfast.config.defaults import get_cfg
from slowfast.models import build_model
from slowfast.utils import checkpoint as cu
from slowfast.utils.c2_model_loading import (
    UnsafePickleError,
    convert_caffe2_name,
    get_name_convert_func,
    load_caffe2_blobs,
)

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def tiny_cfg(arch: str = "slowfast", num_classes: int = 5, norm: str = "batchnorm", out=""):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.OUTPUT_DIR = str(out)
    cfg.MODEL.ARCH = arch
    cfg.MODEL.NUM_CLASSES = num_classes
    cfg.MODEL.DROPOUT_RATE = 0.0
    cfg.RESNET.DEPTH = 50
    cfg.RESNET.WIDTH_PER_GROUP = 8
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.TRAIN_CROP_SIZE = 32
    cfg.BN.NORM_TYPE = norm
    cfg.BN.NUM_SPLITS = 2
    if arch == "slowfast":
        cfg.MODEL.MODEL_NAME = "SlowFast"
        cfg.SLOWFAST.ALPHA = 4
        cfg.SLOWFAST.BETA_INV = 4
        cfg.DATA.INPUT_CHANNEL_NUM = [3, 3]
        # one non-local block after res3's block 1 of the slow pathway
        cfg.NONLOCAL.LOCATION = [[[], []], [[1], []], [[], []], [[], []]]
        cfg.NONLOCAL.GROUP = [[1, 1]] * 4
    else:
        cfg.MODEL.MODEL_NAME = "ResNet"
        cfg.DATA.INPUT_CHANNEL_NUM = [3]
    return cfg


def build(cfg, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(cfg)
    # non-trivial batch-norm statistics, so that loading them is checked too
    gen = torch.Generator().manual_seed(seed + 1000)
    for name, buf in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    return model


def inputs_for(cfg):
    torch.manual_seed(0)
    if cfg.MODEL.ARCH == "slowfast":
        return [torch.randn(2, 3, 2, 32, 32), torch.randn(2, 3, 8, 32, 32)]
    return [torch.randn(2, 3, 8, 32, 32)]


def assert_state_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], skip=()):
    assert set(a) == set(b)
    for k in a:
        if k in skip:
            continue
        assert torch.equal(a[k], b[k]), k


def one_sgd_step(model, cfg) -> torch.optim.Optimizer:
    """An SGD step with momentum on random gradients, so the optimizer has state to save."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(7)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    opt.step()
    opt.zero_grad()
    return opt


class Evil:
    """Pickles to a call of os.system that would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------------------------
# PySlowFast .pyth checkpoints
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip_model_and_optimizer(tmp_path):
    cfg = tiny_cfg(out=tmp_path)
    model = build(cfg, seed=1)
    opt = one_sgd_step(model, cfg)
    path = cu.save_checkpoint(str(tmp_path), model, opt, 2, cfg)
    assert path == os.path.join(tmp_path, "checkpoints", "checkpoint_epoch_00003.pyth")
    assert os.listdir(tmp_path / "checkpoints") == ["checkpoint_epoch_00003.pyth"]

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"epoch", "model_state", "optimizer_state", "cfg", "rng_state"}
    assert raw["epoch"] == 2 and isinstance(raw["cfg"], str) and "NUM_CLASSES: 5" in raw["cfg"]
    assert not any(k.startswith("module.") for k in raw["model_state"])

    other = build(cfg, seed=2)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.5, momentum=0.9)
    assert not torch.equal(
        other.state_dict()["head.projection.weight"], raw["model_state"]["head.projection.weight"]
    )
    epoch = cu.load_checkpoint(path, other, data_parallel=False, optimizer=other_opt, strict=True)
    assert epoch == 2
    assert_state_equal(model.state_dict(), other.state_dict())
    saved, restored = opt.state_dict(), other_opt.state_dict()
    assert restored["param_groups"][0]["lr"] == 0.01
    assert len(saved["state"]) == len(restored["state"]) > 0
    for idx, st in saved["state"].items():
        assert torch.equal(st["momentum_buffer"], restored["state"][idx]["momentum_buffer"])


def test_module_prefix_both_ways(tmp_path):
    cfg = tiny_cfg(arch="slow", out=tmp_path)
    model = build(cfg, seed=1)
    # a checkpoint saved from DDP: every key starts with "module."
    ddp_file = tmp_path / "ddp.pyth"
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 4, "model_state": state}, ddp_file)
    plain = build(cfg, seed=2)
    assert cu.load_checkpoint(str(ddp_file), plain, data_parallel=True, strict=True) == 4
    assert_state_equal(model.state_dict(), plain.state_dict())

    # a plain checkpoint into a wrapped model, with and without the data_parallel flag
    plain_file = cu.save_checkpoint(str(tmp_path), nn.DataParallel(model), None, 0, cfg)
    raw = torch.load(plain_file, weights_only=True)
    assert set(raw["model_state"]) == set(model.state_dict())
    for flag in (True, False):
        wrapped = nn.DataParallel(build(cfg, seed=3))
        cu.load_checkpoint(plain_file, wrapped, data_parallel=flag, strict=True)
        assert_state_equal(model.state_dict(), wrapped.module.state_dict())


def test_clear_name_pattern(tmp_path):
    cfg = tiny_cfg(arch="slow")
    model = build(cfg, seed=1)
    f = tmp_path / "prefixed.pyth"
    torch.save({"model_state": {"backbone." + k: v for k, v in model.state_dict().items()}}, f)
    other = build(cfg, seed=2)
    with pytest.raises(ValueError, match="Strict loading"):
        cu.load_checkpoint(str(f), other, data_parallel=False, strict=True)
    cu.load_checkpoint(
        str(f), other, data_parallel=False, clear_name_pattern=("backbone.",), strict=True
    )
    assert_state_equal(model.state_dict(), other.state_dict())


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    cfg = tiny_cfg(arch="slow", out=tmp_path)
    model = build(cfg, seed=1)
    path = cu.save_checkpoint(str(tmp_path), model, None, 0, cfg)
    before = open(path, "rb").read()

    real_save = torch.save

    def crash_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="simulated"):
        cu.save_checkpoint(str(tmp_path), model, None, 0, cfg)
    monkeypatch.setattr(torch, "save", real_save)

    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path / "checkpoints") == ["checkpoint_epoch_00001.pyth"]
    assert cu.get_last_checkpoint(str(tmp_path)) == path


def test_newest_unreadable_checkpoints_are_skipped(tmp_path, caplog):
    cfg = tiny_cfg(arch="slow", out=tmp_path)
    cfg.TRAIN.AUTO_RESUME = True
    model = build(cfg, seed=1)
    paths = [cu.save_checkpoint(str(tmp_path), model, None, e, cfg) for e in range(4)]
    assert cu.get_last_checkpoint(str(tmp_path)) == paths[3]
    # newest: truncated; second newest: one byte flipped inside the tensor data
    data = open(paths[3], "rb").read()
    open(paths[3], "wb").write(data[: len(data) // 2])
    data = bytearray(open(paths[2], "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(paths[2], "wb").write(bytes(data))
    with caplog.at_level(logging.WARNING, logger="slowfast.utils.checkpoint"):
        assert cu.get_last_checkpoint(str(tmp_path)) == paths[1]
    assert paths[3] in caplog.text and paths[2] in caplog.text
    assert cu.has_checkpoint(str(tmp_path))
    # resuming uses it: it stores epoch 1, so training restarts at epoch 2
    assert cu.load_train_checkpoint(cfg, build(cfg, seed=5), None) == 2
    with pytest.raises(cu.UnreadableCheckpointError, match="checkpoint_epoch_00004"):
        cu.load_checkpoint(paths[3], model, data_parallel=False)


def test_release_legacy_format_with_numpy_1_names_loads(tmp_path):
    """The PGT release saves with the legacy (non-zip) format; numpy 1 names numpy.core."""
    state = {"w": torch.arange(4.0)}
    f = tmp_path / "legacy.pyth"
    obj = {"epoch": 7, "model_state": state, "stat": np.arange(3.0), "cfg": "A: 1"}
    torch.save(obj, f, _use_new_zipfile_serialization=False)
    data = f.read_bytes()
    assert b"numpy._core.multiarray" in data
    f.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = cu.load_pytorch_checkpoint_file(str(f))
    assert loaded["epoch"] == 7 and torch.equal(loaded["model_state"]["w"], state["w"])
    np.testing.assert_array_equal(loaded["stat"], np.arange(3.0))
    assert cu.checkpoint_problem(str(f)) is None


def test_malicious_pyth_is_refused(tmp_path):
    marker = tmp_path / "pwned_pyth"
    f = tmp_path / "evil.pyth"
    torch.save({"model_state": {}, "epoch": 0, "payload": Evil(marker)}, f)
    with pytest.raises(cu.UnreadableCheckpointError, match=r"evil\.pyth.*system"):
        cu.load_checkpoint(str(f), nn.Linear(2, 2), data_parallel=False)
    assert not marker.exists()


def test_head_reinitialised_on_class_count_change(tmp_path, caplog):
    src_cfg = tiny_cfg(num_classes=5, out=tmp_path)
    src = build(src_cfg, seed=1)
    path = cu.save_checkpoint(str(tmp_path), src, None, 0, src_cfg)
    dst = build(tiny_cfg(num_classes=7), seed=2)
    head_before = {k: v.clone() for k, v in dst.state_dict().items() if k.startswith("head.")}
    with caplog.at_level(logging.INFO, logger="slowfast.utils.checkpoint"):
        epoch = cu.load_checkpoint(path, dst, data_parallel=False, strict=True, epoch_reset=True)
    assert epoch == -1
    after = dst.state_dict()
    for k, v in head_before.items():
        assert torch.equal(after[k], v), k
    head = {"head.projection.weight", "head.projection.bias"}
    assert_state_equal(
        {k: v for k, v in src.state_dict().items() if k not in head},
        {k: v for k, v in after.items() if k not in head},
    )
    assert re.search(
        r"Re-initialised head\.projection\.weight, head\.projection\.bias", caplog.text
    )
    assert "5x320 vs model 7x320" in caplog.text
    assert "| head re-initialised (class count differs)" in caplog.text  # the table


def test_strict_raises_listing_keys_and_leaves_model_untouched(tmp_path):
    cfg = tiny_cfg(arch="slow")
    src = build(cfg, seed=1)
    state = src.state_dict()
    del state["s2.pathway0_res0.branch1.weight"]
    state["s5.pathway0_res2.branch2.c.weight"] = torch.zeros(3, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    f = tmp_path / "bad.pyth"
    torch.save({"model_state": state}, f)
    dst = build(cfg, seed=2)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(ValueError) as info:
        cu.load_checkpoint(str(f), dst, data_parallel=False, strict=True)
    msg = str(info.value)
    assert "missing in checkpoint: s2.pathway0_res0.branch1.weight" in msg
    assert "unexpected in checkpoint: extra.weight" in msg
    assert "shape mismatch: s5.pathway0_res2.branch2.c.weight" in msg
    assert_state_equal(before, dst.state_dict())
    # non-strict: everything else is loaded, the offending keys keep the model's values
    cu.load_checkpoint(str(f), dst, data_parallel=False, strict=False)
    after = dst.state_dict()
    for k in ("s2.pathway0_res0.branch1.weight", "s5.pathway0_res2.branch2.c.weight"):
        assert torch.equal(after[k], before[k])
    assert torch.equal(
        after["s4.pathway0_res1.branch2.b.weight"], state["s4.pathway0_res1.branch2.b.weight"]
    )


def test_sub_batchnorm_saved_as_plain_and_loaded_both_ways(tmp_path):
    sub_cfg = tiny_cfg(arch="slow", norm="sub_batchnorm", out=tmp_path)
    sub = build(sub_cfg, seed=1)
    sub.train()
    sub(inputs_for(sub_cfg))  # split_bn statistics move
    for m in sub.modules():
        if hasattr(m, "aggregate_stats"):
            m.aggregate_stats()
    path = cu.save_checkpoint(str(tmp_path), sub, None, 0, sub_cfg)
    saved = torch.load(path, weights_only=True)["model_state"]
    assert not any(".split_bn." in k or ".bn.bn." in k for k in saved)
    plain = build(tiny_cfg(arch="slow"), seed=2)
    assert set(saved) == set(plain.state_dict())
    cu.load_checkpoint(path, plain, data_parallel=False, strict=True)
    sub_state = sub.state_dict()
    key = "s2.pathway0_res0.branch2.a_bn"
    assert torch.equal(
        plain.state_dict()[key + ".running_mean"], sub_state[key + ".bn.running_mean"]
    )
    # and the plain checkpoint back into a sub-batch-norm model: split_bn gets one copy per split
    sub2 = build(sub_cfg, seed=3)
    cu.load_checkpoint(path, sub2, data_parallel=False, strict=True)
    s2 = sub2.state_dict()
    mean = saved[key + ".running_mean"]
    assert torch.equal(s2[key + ".bn.running_mean"], mean)
    assert torch.equal(s2[key + ".split_bn.running_mean"], mean.repeat(2))
    assert torch.equal(s2[key + ".weight"], saved[key + ".weight"])


def test_batchnorm_checkpoint_loads_strictly_into_frozen_batchnorm(tmp_path):
    cfg = tiny_cfg(arch="slow", out=tmp_path)
    src = build(cfg, seed=1)
    path = cu.save_checkpoint(str(tmp_path), src, None, 0, cfg)
    frozen = build(tiny_cfg(arch="slow", norm="frozen_batchnorm"), seed=2)
    assert not any(k.endswith("num_batches_tracked") for k in frozen.state_dict())
    cu.load_checkpoint(path, frozen, data_parallel=False, strict=True)
    for k, v in frozen.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k


# --------------------------------------------------------------------------------------------
# 2D -> 3D inflation
# --------------------------------------------------------------------------------------------


def test_inflated_kernel_matches_2d_conv_on_a_static_video():
    torch.manual_seed(0)
    w2d = torch.randn(4, 3, 3, 3)
    w3d = cu.inflate_weight(w2d, (4, 3, 5, 3, 3))
    frame = torch.randn(1, 3, 9, 9)
    video = frame.unsqueeze(2).repeat(1, 1, 7, 1, 1)
    out3d = nn.functional.conv3d(video, w3d, padding=(0, 1, 1))  # 'valid' in time
    out2d = nn.functional.conv2d(frame, w2d, padding=1)
    for t in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, t], out2d, rtol=1e-5, atol=1e-5)


def test_2d_checkpoint_inflates_into_3d_model(tmp_path):
    cfg = tiny_cfg(arch="i3d")
    dst = build(cfg, seed=1)
    target = dst.state_dict()
    gen = torch.Generator().manual_seed(3)
    state2d = {}
    for k, v in target.items():
        if v.dim() == 5:  # every conv of the 3D model becomes a 2D kernel
            state2d[k] = torch.randn(v.shape[0], v.shape[1], *v.shape[3:], generator=gen)
        else:
            state2d[k] = torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
    f = tmp_path / "c2d.pyth"
    torch.save({"model_state": state2d, "epoch": 9}, f)
    cu.load_checkpoint(
        str(f), dst, data_parallel=False, inflation=True, strict=True, epoch_reset=True
    )
    got = dst.state_dict()
    kernel = "s1.pathway0_stem.conv.weight"
    t = target[kernel].shape[2]
    assert t == 5  # i3d stem
    torch.testing.assert_close(
        got[kernel], state2d[kernel].unsqueeze(2).expand(-1, -1, t, -1, -1) / t
    )
    torch.testing.assert_close(got[kernel].sum(2), state2d[kernel])
    for k, v in state2d.items():
        if v.dim() == 4:
            torch.testing.assert_close(got[k].sum(2), v)
        else:
            assert torch.equal(got[k], v), k


def test_temporal_kernel_one_inflates_only_when_asked(tmp_path):
    cfg = tiny_cfg(arch="i3d")
    target = build(cfg, seed=1).state_dict()
    kernel = "s1.pathway0_stem.conv.weight"
    state = dict(target)
    state[kernel] = torch.randn(*target[kernel].shape[:2], 1, *target[kernel].shape[3:])
    f = tmp_path / "t1.pyth"
    torch.save({"model_state": state}, f)
    with pytest.raises(ValueError, match="shape mismatch: s1.pathway0_stem.conv.weight"):
        cu.load_checkpoint(str(f), build(cfg, seed=2), data_parallel=False, strict=True)
    dst = build(cfg, seed=2)
    cu.load_checkpoint(str(f), dst, data_parallel=False, inflation=True, strict=True)
    torch.testing.assert_close(dst.state_dict()[kernel], state[kernel].repeat(1, 1, 5, 1, 1) / 5)


# --------------------------------------------------------------------------------------------
# Caffe2 .pkl checkpoints
# --------------------------------------------------------------------------------------------


def caffe2_name(key: str, stage_blocks=(3, 4, 6, 3)) -> str:
    """PyTorch key -> Caffe2 blob name, written independently of the converter under test."""
    module, _, param = key.rpartition(".")
    is_bn = module.endswith("bn")
    suffix = {
        ("weight", True): "s",
        ("bias", True): "b",
        ("running_mean", True): "rm",
        ("running_var", True): "riv",
        ("weight", False): "w",
        ("bias", False): "b",
    }[(param, is_bn)]
    if module == "head.projection":
        return f"pred_{suffix}"
    m = re.fullmatch(r"s1\.pathway(\d)_stem\.(conv|bn)", module)
    if m:
        fast = "t_" if m.group(1) == "1" else ""
        return f"{fast}conv1_{suffix}" if m.group(2) == "conv" else f"{fast}res_conv1_bn_{suffix}"
    m = re.fullmatch(r"s(\d)_fuse\.(conv_f2s|bn)", module)
    if m:
        stage = int(m.group(1))
        base = (
            "t_pool1_subsample"
            if stage == 1
            else (f"t_res{stage}_{stage_blocks[stage - 2] - 1}_branch2c_bn_subsample")
        )
        return f"{base}_{suffix}" if m.group(2) == "conv_f2s" else f"{base}_bn_{suffix}"
    m = re.fullmatch(r"s(\d)\.pathway0_nonlocal(\d+)\.(conv_(theta|phi|g|out)|bn)", module)
    if m:
        part = m.group(4) or "bn"
        return f"nonlocal_conv{m.group(1)}_{m.group(2)}_{part}_{suffix}"
    m = re.fullmatch(
        r"s(\d)\.pathway(\d)_res(\d+)\.(branch1|branch1_bn|branch2\.([abc])(_bn)?)", module
    )
    if m:
        fast = "t_" if m.group(2) == "1" else ""
        if m.group(5):
            branch = f"branch2{m.group(5)}{m.group(6) or ''}"
        else:
            branch = m.group(4)
        return f"{fast}res{m.group(1)}_{m.group(3)}_{branch}_{suffix}"
    raise AssertionError(f"no Caffe2 name for {key}")


@pytest.mark.parametrize(
    "c2, pt",
    [  # examples spelled out in PySlowFast's converter and model zoo
        ("conv1_w", "s1.pathway0_stem.conv.weight"),
        ("res_conv1_bn_s", "s1.pathway0_stem.bn.weight"),
        ("res_conv1_bn_riv", "s1.pathway0_stem.bn.running_var"),
        ("res2_0_branch2a_w", "s2.pathway0_res0.branch2.a.weight"),
        ("res4_4_branch2c_bn_b", "s4.pathway0_res4.branch2.c_bn.bias"),
        ("res3_1_branch2b_bn_rm", "s3.pathway0_res1.branch2.b_bn.running_mean"),
        ("res4_0_branch1_w", "s4.pathway0_res0.branch1.weight"),
        ("res5_0_branch1_bn_s", "s5.pathway0_res0.branch1_bn.weight"),
        ("t_conv1_w", "s1.pathway1_stem.conv.weight"),
        ("t_res_conv1_bn_b", "s1.pathway1_stem.bn.bias"),
        ("t_res3_2_branch2b_w", "s3.pathway1_res2.branch2.b.weight"),
        ("t_pool1_subsample_w", "s1_fuse.conv_f2s.weight"),
        ("t_pool1_subsample_bn_rm", "s1_fuse.bn.running_mean"),
        ("t_res4_5_branch2c_bn_subsample_bn_rm", "s4_fuse.bn.running_mean"),
        ("t_res2_2_branch2c_bn_subsample_w", "s2_fuse.conv_f2s.weight"),
        ("nonlocal_conv3_1_theta_w", "s3.pathway0_nonlocal1.conv_theta.weight"),
        ("nonlocal_conv4_5_g_b", "s4.pathway0_nonlocal5.conv_g.bias"),
        ("nonlocal_conv3_3_out_w", "s3.pathway0_nonlocal3.conv_out.weight"),
        ("nonlocal_conv4_5_bn_s", "s4.pathway0_nonlocal5.bn.weight"),
        ("pred_w", "head.projection.weight"),
        ("pred_b", "head.projection.bias"),
    ],
)
def test_caffe2_names(c2, pt):
    assert convert_caffe2_name(c2) == pt
    assert get_name_convert_func()(c2) == pt


def write_caffe2_pickle(path, model) -> Dict[str, np.ndarray]:
    blobs = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        blobs[caffe2_name(k)] = v.numpy().copy()
    blobs["conv1_w_momentum"] = np.zeros(3, np.float32)
    blobs["lr"] = np.array([0.1], np.float32)
    blobs["model_iter"] = np.array([1000], np.int64)
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    return blobs


def test_caffe2_pickle_converts_and_loads_strictly(tmp_path, caplog):
    cfg = tiny_cfg()  # SlowFast with fusions and a non-local block
    src = build(cfg, seed=1)
    f = tmp_path / "SLOWFAST_4x16_R50.pkl"
    blobs = write_caffe2_pickle(f, src)
    assert len(set(blobs)) == len(blobs)
    read = load_caffe2_blobs(str(f))
    assert set(read) == set(blobs)
    dst = build(cfg, seed=2)
    with caplog.at_level(logging.INFO):
        epoch = cu.load_checkpoint(
            str(f), dst, data_parallel=False, convert_from_caffe2=True, strict=True
        )
    assert epoch == -1
    assert "skipped 3 Caffe2 solver blobs" in caplog.text and "model_iter" in caplog.text
    bookkeeping = [k for k in dst.state_dict() if k.endswith("num_batches_tracked")]
    assert_state_equal(src.state_dict(), dst.state_dict(), skip=bookkeeping)
    x = inputs_for(cfg)
    assert torch.equal(src(x), dst(x))


def py2_pickle(blobs: Dict[str, np.ndarray]) -> bytes:
    """The bytes Python 2 + numpy 1 write for ``{'blobs': blobs}`` (protocol 2, str = bytes)."""

    def pystr(b: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING / BINSTRING
        if len(b) < 256:
            return b"U" + bytes([len(b)]) + b
        return b"T" + struct.pack("<i", len(b)) + b

    out = [b"\x80\x02}(" + pystr(b"blobs") + b"}("]
    for name, arr in blobs.items():
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        out.append(pystr(name.encode()))
        out.append(
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + pystr(b"b")
        )
        out.append(b"\x87R(K\x01")
        out.append(b"(" + b"".join(b"J" + struct.pack("<i", d) for d in arr.shape) + b"t")
        out.append(b"cnumpy\ndtype\n" + pystr(b"f4") + b"K\x00K\x01\x87R")
        out.append(b"(K\x03" + pystr(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        out.append(b"\x89" + pystr(arr.tobytes()) + b"tb")
    out.append(b"uu.")
    return b"".join(out)


def test_python2_caffe2_pickle_is_read(tmp_path):
    gen = np.random.default_rng(0)
    blobs = {"conv1_w": gen.standard_normal((4, 3, 1, 7, 7)), "pred_b": gen.standard_normal(5)}
    blobs["res_conv1_bn_riv"] = np.arange(256 * 2, dtype=np.float32) / 7  # > 255 bytes of data
    f = tmp_path / "py2.pkl"
    f.write_bytes(py2_pickle(blobs))
    read = load_caffe2_blobs(str(f))
    assert set(read) == set(blobs)
    for name, arr in blobs.items():
        np.testing.assert_array_equal(read[name], arr.astype(np.float32))
        assert read[name].dtype == np.float32


def test_caffe2_2d_pickle_inflates_via_config(tmp_path):
    cfg = tiny_cfg(arch="slow", out=tmp_path)
    src = build(cfg, seed=1)
    f = tmp_path / "R50_IN1K.pkl"
    blobs = {}
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            blobs[caffe2_name(k)] = (v[:, :, 0] if v.dim() == 5 else v).numpy().copy()
    with open(f, "wb") as fh:
        pickle.dump({"blobs": blobs}, fh, protocol=2)
    cfg.TRAIN.CHECKPOINT_FILE_PATH = str(f)
    cfg.TRAIN.CHECKPOINT_TYPE = "caffe2"
    cfg.TRAIN.CHECKPOINT_INFLATE = True
    cfg.TRAIN.CHECKPOINT_STRICT = True
    dst = build(cfg, seed=2)
    assert cu.load_train_checkpoint(cfg, dst, None) == 0
    got = dst.state_dict()
    k = "s4.pathway0_res0.branch2.a.weight"  # a 3x1x1 kernel in the Slow model
    assert got[k].shape[2] == 3
    torch.testing.assert_close(got[k], src.state_dict()[k][:, :, :1].repeat(1, 1, 3, 1, 1) / 3)


def test_malicious_caffe2_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned_pkl"
    f = tmp_path / "evil.pkl"
    with open(f, "wb") as fh:
        pickle.dump({"blobs": {"conv1_w": Evil(marker)}}, fh, protocol=2)
    cfg = tiny_cfg(arch="slow")
    with pytest.raises(UnsafePickleError) as info:
        cu.load_checkpoint(
            str(f), build(cfg, seed=1), data_parallel=False, convert_from_caffe2=True
        )
    assert str(f) in str(info.value) and "posix.system" in str(info.value)
    assert not marker.exists()
    # other ways to reach code are refused too
    for payload in (
        b"\x80\x02cbuiltins\neval\nX\x06\x00\x00\x00print()\x85R.",
        b"\x80\x02c__builtin__\ngetattr\n.",
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.",
    ):
        g = tmp_path / "evil2.pkl"
        g.write_bytes(payload)
        with pytest.raises((UnsafePickleError, ValueError)):
            load_caffe2_blobs(str(g))


# --------------------------------------------------------------------------------------------
# train / test entry points
# --------------------------------------------------------------------------------------------


def test_load_train_checkpoint_order(tmp_path):
    pre_dir = tmp_path / "pretrain"
    job = tmp_path / "job"
    cfg = tiny_cfg(arch="slow", out=job)
    pre = build(cfg, seed=1)
    pre_opt = one_sgd_step(pre, cfg)
    pre_path = cu.save_checkpoint(str(pre_dir), pre, pre_opt, 9, cfg)

    # nothing anywhere -> 0
    model = build(cfg, seed=2)
    assert cu.load_train_checkpoint(cfg, model, None) == 0

    # TRAIN.CHECKPOINT_FILE_PATH, fine-tuning (epoch reset): weights only
    cfg.TRAIN.CHECKPOINT_FILE_PATH = pre_path
    cfg.TRAIN.CHECKPOINT_EPOCH_RESET = True
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    assert cu.load_train_checkpoint(cfg, model, opt) == 0
    assert_state_equal(pre.state_dict(), model.state_dict())
    assert opt.state_dict()["state"] == {} and opt.param_groups[0]["lr"] == 0.5
    # ... and resuming from it: epoch and optimizer
    cfg.TRAIN.CHECKPOINT_EPOCH_RESET = False
    assert cu.load_train_checkpoint(cfg, model, opt) == 10
    assert opt.param_groups[0]["lr"] == 0.01 and len(opt.state_dict()["state"]) > 0

    # a checkpoint in OUTPUT_DIR wins over CHECKPOINT_FILE_PATH when auto-resuming
    for e in (0, 1):
        cu.save_checkpoint(str(job), build(cfg, seed=10 + e), None, e, cfg)
    cfg.TRAIN.AUTO_RESUME = True
    model = build(cfg, seed=3)
    assert cu.load_train_checkpoint(cfg, model, None) == 2
    assert_state_equal(build(cfg, seed=11).state_dict(), model.state_dict())
    cfg.TRAIN.CHECKPOINT_FILE_EPOCH = 1
    assert cu.load_train_checkpoint(cfg, model, None) == 1
    assert_state_equal(build(cfg, seed=10).state_dict(), model.state_dict())
    cfg.TRAIN.CHECKPOINT_FILE_EPOCH = 7
    with pytest.raises(FileNotFoundError, match="TRAIN.CHECKPOINT_FILE_EPOCH = 7"):
        cu.load_train_checkpoint(cfg, model, None)
    cfg.TRAIN.CHECKPOINT_FILE_EPOCH = -1
    cfg.TRAIN.AUTO_RESUME = False
    assert cu.load_train_checkpoint(cfg, model, None) == 10


def test_load_test_checkpoint_order(tmp_path, caplog):
    job = tmp_path / "job"
    cfg = tiny_cfg(arch="slow", out=job)
    models = {name: build(cfg, seed=s) for name, s in (("train", 1), ("test", 2), ("job", 3))}
    train_path = cu.save_checkpoint(str(tmp_path / "a"), models["train"], None, 0, cfg)
    test_path = cu.save_checkpoint(str(tmp_path / "b"), models["test"], None, 0, cfg)

    model = build(cfg, seed=9)
    with caplog.at_level(logging.WARNING):
        assert cu.load_test_checkpoint(cfg, model) is None
    assert "randomly initialised" in caplog.text
    cfg.TRAIN.CHECKPOINT_FILE_PATH = train_path
    assert cu.load_test_checkpoint(cfg, model) == train_path
    assert_state_equal(models["train"].state_dict(), model.state_dict())
    job_path = cu.save_checkpoint(str(job), models["job"], None, 4, cfg)
    assert cu.load_test_checkpoint(cfg, model) == job_path
    assert_state_equal(models["job"].state_dict(), model.state_dict())
    cfg.TEST.CHECKPOINT_FILE_PATH = test_path
    assert cu.load_test_checkpoint(cfg, model) == test_path
    assert_state_equal(models["test"].state_dict(), model.state_dict())


def test_is_checkpoint_epoch():
    cfg = get_cfg()
    cfg.SOLVER.MAX_EPOCH = 25
    cfg.TRAIN.CHECKPOINT_PERIOD = 10
    saved = [e for e in range(25) if cu.is_checkpoint_epoch(cfg, e)]
    assert saved == [9, 19, 24]
