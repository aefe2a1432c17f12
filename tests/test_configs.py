"""The project's configs (``configs/``): each loads as ``tools/run_net.py`` loads it, builds, and
describes the architecture its name and comments say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slowfast.utils.parser import load_config, parse_args

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
# The configs this test file's owner ships; each must be present.
OWN = [
    f"{d}/{n}.yaml"
    for d, names in {
        "Kinetics": ["SLOW_8x8_R50", "SLOWFAST_8x8_R50", "SLOW_8x8_R101", "SLOWFAST_8x8_R101"],
        "Charades": ["SLOW_16x8_R50", "SLOWFAST_16x8_R50", "SLOW_16x8_R101", "SLOWFAST_16x8_R101"],
        "AVA": ["SLOW_8x8_R50", "SLOWFAST_32x2_R50"],
    }.items()
    for n in names
]


def _load(path: Path, *overrides: str):
    return load_config(parse_args(["--cfg", str(path), "NUM_GPUS", "0", *overrides]))


def _res4_temporal_kernels(model: torch.nn.Module, pathway: int) -> list:
    """Temporal kernel of the first convolution of each res4 block of a pathway."""
    state = model.state_dict()
    kernels = []
    i = 0
    while f"s4.pathway{pathway}_res{i}.branch2.a.weight" in state:
        kernels.append(state[f"s4.pathway{pathway}_res{i}.branch2.a.weight"].shape[2])
        i += 1
    return kernels


def test_own_configs_present():
    rel = {p.relative_to(REPO / "configs").as_posix() for p in CONFIGS}
    assert set(OWN) <= rel, f"missing: {sorted(set(OWN) - rel)}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(REPO / "configs").as_posix())
def test_config_loads_builds_and_runs(path):
    from slowfast.models import build_model

    cfg = _load(path)
    arch = cfg.MODEL.ARCH
    n_path = 2 if arch in cfg.MODEL.MULTI_PATHWAY_ARCH else 1
    # A small clip keeps the forward fast; the weights do not depend on its size.
    cfg.DATA.TRAIN_CROP_SIZE = cfg.DATA.TEST_CROP_SIZE = 32
    cfg.DATA.NUM_FRAMES = 2 * cfg.SLOWFAST.ALPHA if n_path == 2 else 2
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    if arch in ("slow", "slowfast") and cfg.MODEL.MODEL_NAME != "RegNet":
        depth_blocks = {18: 2, 34: 6, 50: 6, 101: 23, 152: 36}[cfg.RESNET.DEPTH]
        for p in range(n_path):
            kernels = _res4_temporal_kernels(model, p)
            assert len(kernels) == depth_blocks
            # The first NUM_BLOCK_TEMP_KERNEL res4 blocks have the temporal kernel 3, others 1.
            n_temp = cfg.RESNET.NUM_BLOCK_TEMP_KERNEL[2][p]
            assert kernels == [3] * n_temp + [1] * (depth_blocks - n_temp), path.name
    frames = cfg.DATA.NUM_FRAMES
    times = [frames // cfg.SLOWFAST.ALPHA, frames] if n_path == 2 else [frames]
    clips = [torch.rand(1, 3, t, 32, 32) for t in times]
    with torch.no_grad():
        if cfg.DETECTION.ENABLE:
            out = model(clips, torch.tensor([[0.0, 2.0, 2.0, 20.0, 30.0]]))
        else:
            out = model(clips)
    assert out.shape == (1, cfg.MODEL.NUM_CLASSES)
    assert torch.isfinite(out).all()
    if cfg.MODEL.HEAD_ACT in ("softmax", "sigmoid"):
        assert ((out >= 0) & (out <= 1)).all(), "eval-mode head applies MODEL.HEAD_ACT"


@pytest.mark.parametrize(
    "name, depth, temp_blocks, fusion",
    [
        ("Kinetics/SLOW_8x8_R101.yaml", 101, [[3], [4], [23], [3]], None),
        ("Kinetics/SLOWFAST_8x8_R50.yaml", 50, [[3, 3], [4, 4], [6, 6], [3, 3]], 7),
        ("Kinetics/SLOWFAST_8x8_R101.yaml", 101, [[3, 3], [4, 4], [23, 23], [3, 3]], 5),
        ("Charades/SLOW_16x8_R101.yaml", 101, [[3], [4], [23], [3]], None),
        ("Charades/SLOWFAST_16x8_R101.yaml", 101, [[3, 3], [4, 4], [23, 23], [3, 3]], 5),
        ("Charades/SLOWFAST_16x8_R50.yaml", 50, [[3, 3], [4, 4], [6, 6], [3, 3]], 7),
    ],
)
def test_release_choices(name, depth, temp_blocks, fusion):
    """R101 configs inherit from the R50 ones (``_BASE_``) and carry the release's choices."""
    cfg = _load(REPO / "configs" / name)
    assert cfg.RESNET.DEPTH == depth
    assert [list(s) for s in cfg.RESNET.NUM_BLOCK_TEMP_KERNEL] == temp_blocks
    if fusion is not None:
        assert cfg.SLOWFAST.FUSION_KERNEL_SZ == fusion and cfg.SLOWFAST.ALPHA == 4
    if name.startswith("Charades"):
        assert list(cfg.MODEL.FINAL_POOL) == ["avg", "max"]
        assert cfg.DATA.MULTI_LABEL and cfg.MODEL.HEAD_ACT == "sigmoid"
        assert cfg.BN.NORM_TYPE == "frozen_batchnorm"
        assert cfg.DATA.NUM_FRAMES == (64 if "SLOWFAST" in name else 16)
        assert cfg.DATA.SAMPLING_RATE == (2 if "SLOWFAST" in name else 8)
    assert cfg.OUTPUT_DIR.endswith(name[: -len(".yaml")]), "each config writes to its own folder"
