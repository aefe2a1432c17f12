"""Every compat config (PySlowFast's and the PGT release's) builds, with PySlowFast's
state-dict names and shapes.

Models are built on the ``meta`` device (no memory, no initialisation cost), so the R101 models
take milliseconds. The expected shapes are derived here from the YAML values and PySlowFast's
architecture tables, independently of the builder.
"""

from pathlib import Path
from typing import List

import pytest
import torch

from slowfast.config.defaults import get_cfg
from slowfast.models import build_model

# PySlowFast's facts, restated for the test.
STAGE_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
STEM_T = {
    "c2d": [1],
    "c2d_nopool": [1],
    "i3d": [5],
    "i3d_nopool": [5],
    "slow": [1],
    "slowfast": [1, 5],
}
BLOCK_T_BASIS = {
    "c2d": [[[1]], [[1]], [[1]], [[1]]],
    "c2d_nopool": [[[1]], [[1]], [[1]], [[1]]],
    "i3d": [[[3]], [[3, 1]], [[3, 1]], [[1, 3]]],
    "i3d_nopool": [[[3]], [[3, 1]], [[3, 1]], [[1, 3]]],
    "slow": [[[1]], [[1]], [[3]], [[3]]],
    "slowfast": [[[1], [3]], [[1], [3]], [[3], [3]], [[3], [3]]],
}


def _compat_files(shared_dir: Path) -> List[Path]:
    root = shared_dir / "compat"
    files = sorted(root.glob("pyslowfast_configs/**/*.yaml")) + sorted(
        root.glob("pgt_configs/**/*.yaml")
    )
    assert len(files) >= 40, f"expected the compat configs under {root}"
    return files


def _load(path: Path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.NUM_GPUS = 0
    return cfg


def _build_meta(cfg):
    with torch.device("meta"):
        return build_model(cfg)


def _spec(value, n):
    return [list(stage) * n if len(stage) == 1 else list(stage) for stage in value]


def _expected_kernels(basis, blocks, keep):
    return (basis * blocks)[:keep] + [1] * (blocks - keep)


def test_every_compat_config_builds_with_pyslowfast_shapes(shared_dir):
    for path in _compat_files(shared_dir):
        cfg = _load(path)
        where = f"{path.relative_to(shared_dir)}"
        model = _build_meta(cfg)
        sd = model.state_dict()
        assert type(model).__name__ == cfg.MODEL.MODEL_NAME, where
        head = type(model.head).__name__
        assert head == ("ResNetRoIHead" if cfg.DETECTION.ENABLE else "ResNetBasicHead"), where
        arch = cfg.MODEL.ARCH
        n = 2 if arch == "slowfast" else 1
        w = cfg.RESNET.WIDTH_PER_GROUP
        inner = cfg.RESNET.NUM_GROUPS * w
        beta = cfg.SLOWFAST.BETA_INV if n == 2 else 1
        div = [1, beta][:n]
        ratio = cfg.SLOWFAST.FUSION_CONV_CHANNEL_RATIO
        for p in range(n):
            assert sd[f"s1.pathway{p}_stem.conv.weight"].shape == (
                w // div[p],
                cfg.DATA.INPUT_CHANNEL_NUM[p],
                STEM_T[arch][p],
                7,
                7,
            ), where
        keep = _spec(cfg.RESNET.NUM_BLOCK_TEMP_KERNEL, n)
        location = _spec(cfg.NONLOCAL.LOCATION, n)
        dim_in = [w // d for d in div]
        if n == 2:
            dim_in[0] += w // beta * ratio
        for k, blocks in enumerate(STAGE_BLOCKS[cfg.RESNET.DEPTH]):
            stage = f"s{k + 2}"
            for p in range(n):
                out_c = w * 4 * 2**k // div[p]
                mid_c = inner * 2**k // div[p]
                kernels = _expected_kernels(BLOCK_T_BASIS[arch][k][p], blocks, keep[k][p])
                for i in range(blocks):
                    prefix = f"{stage}.pathway{p}_res{i}"
                    c_in = dim_in[p] if i == 0 else out_c
                    assert sd[f"{prefix}.branch2.a.weight"].shape == (
                        mid_c,
                        c_in,
                        kernels[i],
                        1,
                        1,
                    ), f"{where}: {prefix}"
                    assert sd[f"{prefix}.branch2.c.weight"].shape == (out_c, mid_c, 1, 1, 1)
                    assert (f"{prefix}.branch1.weight" in sd) == (i == 0), f"{where}: {prefix}"
                    has_nl = f"{stage}.pathway{p}_nonlocal{i}.conv_theta.weight" in sd
                    assert has_nl == (i in location[k][p]), f"{where}: {stage} nonlocal {i}"
                    if has_nl:
                        nl = f"{stage}.pathway{p}_nonlocal{i}"
                        assert sd[f"{nl}.conv_theta.weight"].shape == (out_c // 2, out_c, 1, 1, 1)
                        assert sd[f"{nl}.bn.weight"].shape == (out_c,)
                dim_in[p] = out_c
            if n == 2 and k < 3:
                fast = dim_in[1]
                assert sd[f"{stage}_fuse.conv_f2s.weight"].shape == (
                    fast * ratio,
                    fast,
                    cfg.SLOWFAST.FUSION_KERNEL_SZ,
                    1,
                    1,
                ), where
                dim_in[0] += fast * ratio
                fusion_bn = cfg.SLOWFAST.FUSION_BN
                assert (f"{stage}_fuse.bn.weight" in sd) == fusion_bn, where
                assert (f"{stage}_fuse.conv_f2s.bias" in sd) == (not fusion_bn), where
            assert f"s{k + 6}.pathway0_res0.branch2.a.weight" not in sd
        assert sd["head.projection.weight"].shape == (cfg.MODEL.NUM_CLASSES, sum(dim_in)), where


@pytest.mark.parametrize(
    "name,count",
    [
        ("pyslowfast_configs/Kinetics/SLOW_8x8_R50.yaml", 32_454_096),
        ("pyslowfast_configs/Kinetics/SLOWFAST_8x8_R50.yaml", 34_566_488),
        ("pyslowfast_configs/Kinetics/c2/SLOW_8x8_R50.yaml", 32_454_096),
        ("pyslowfast_configs/Kinetics/c2/SLOWFAST_8x8_R50.yaml", 34_566_488),
    ],
)
def test_parameter_counts_equal_pyslowfast(shared_dir, name, count):
    model = _build_meta(_load(shared_dir / "compat" / name))
    assert sum(p.numel() for p in model.parameters()) == count


PYSLOWFAST_KEYS = {
    "slow": [
        "s1.pathway0_stem.conv.weight",
        "s1.pathway0_stem.bn.weight",
        "s1.pathway0_stem.bn.running_mean",
        "s1.pathway0_stem.bn.running_var",
        "s2.pathway0_res0.branch1.weight",
        "s2.pathway0_res0.branch1_bn.weight",
        "s2.pathway0_res0.branch2.a.weight",
        "s2.pathway0_res0.branch2.a_bn.weight",
        "s2.pathway0_res0.branch2.b.weight",
        "s2.pathway0_res0.branch2.b_bn.running_var",
        "s2.pathway0_res0.branch2.c.weight",
        "s2.pathway0_res0.branch2.c_bn.bias",
        "s2.pathway0_res2.branch2.c_bn.bias",
        "s5.pathway0_res2.branch2.c.weight",
        "head.projection.weight",
        "head.projection.bias",
    ],
    "slowfast": [
        "s1.pathway1_stem.conv.weight",
        "s1_fuse.conv_f2s.weight",
        "s1_fuse.bn.weight",
        "s1_fuse.bn.running_mean",
        "s2_fuse.conv_f2s.weight",
        "s4_fuse.bn.bias",
        "s2.pathway1_res0.branch1.weight",
        "s5.pathway1_res2.branch2.c_bn.weight",
    ],
}


def test_state_dict_key_layout(shared_dir):
    root = shared_dir / "compat" / "pyslowfast_configs" / "Kinetics"
    slow = _build_meta(_load(root / "SLOW_8x8_R50.yaml")).state_dict()
    assert set(PYSLOWFAST_KEYS["slow"]) <= set(slow)
    sf = _build_meta(_load(root / "SLOWFAST_8x8_R50.yaml")).state_dict()
    assert set(PYSLOWFAST_KEYS["slow"] + PYSLOWFAST_KEYS["slowfast"]) <= set(sf)
    assert not any("fuse" in k for k in slow)
    assert not any(k.startswith("s5_fuse") for k in sf)
    # No parameters or buffers beyond PySlowFast's kinds of leaves.
    leaves = {k.rsplit(".", 1)[1] for k in sf}
    assert leaves == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    # The stem and blocks are ordered as PySlowFast registers them (checkpoint files list keys
    # in this order).
    keys = list(sf)
    assert keys.index("s1_fuse.conv_f2s.weight") < keys.index("s2.pathway0_res0.branch1.weight")
    assert keys.index("s2_fuse.conv_f2s.weight") < keys.index("s3.pathway0_res0.branch1.weight")
    nln = _build_meta(_load(root / "SLOW_NLN_8x8_R50.yaml")).state_dict()
    for leaf in ("conv_theta", "conv_phi", "conv_g", "conv_out"):
        assert f"s4.pathway0_nonlocal1.{leaf}.weight" in nln
        assert f"s4.pathway0_nonlocal1.{leaf}.bias" in nln
    assert "s4.pathway0_nonlocal1.bn.running_mean" in nln


def test_norm_types_keep_pyslowfast_keys(shared_dir):
    path = shared_dir / "compat" / "pyslowfast_configs" / "Kinetics" / "SLOW_8x8_R50.yaml"
    cfg = _load(path)
    cfg.BN.NORM_TYPE = "sub_batchnorm"
    cfg.BN.NUM_SPLITS = 2
    sub = _build_meta(cfg).state_dict()
    stem = "s1.pathway0_stem.bn"
    assert {f"{stem}.weight", f"{stem}.bias", f"{stem}.bn.running_mean"} <= set(sub)
    assert sub[f"{stem}.split_bn.running_mean"].shape == (128,)
    cfg.BN.NORM_TYPE = "frozen_batchnorm"
    frozen = _build_meta(cfg).state_dict()
    plain = _build_meta(_load(path)).state_dict()
    assert set(frozen) == {k for k in plain if not k.endswith("num_batches_tracked")}
