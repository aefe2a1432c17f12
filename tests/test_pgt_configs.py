"""The Kinetics PGT configs, the paper's ablations as key overrides, the release's PGT keys,
and loading the release's RegNet checkpoint (classifier ``fc``) into ours."""

import logging

import pytest
import torch

from slowfast.config.checks import pgt_clip_length
from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.models import build_model
from slowfast.utils import checkpoint as cu
from slowfast.utils.parser import load_config, parse_args

pytestmark = pytest.mark.usefixtures("one_thread")

PGT_CONFIGS = {
    "SLOW_8x8_R50_PGT": ("ResNet", "slow", 50),
    "SLOW_8x8_R101_PGT": ("ResNet", "slow", 101),
    "SLOWFAST_8x8_R50_PGT": ("SlowFast", "slowfast", 50),
    "RegNet0.4G-3D_8x8_PGT": ("RegNet", "slow", None),
}
NEW_CONFIGS = sorted(PGT_CONFIGS) + ["RegNet0.4G-3D_8x8"]


def _path(repo_root, name):
    return str(repo_root / "configs" / "Kinetics" / f"{name}.yaml")


def _load(repo_root, name, opts=()):
    cfg = get_cfg()
    cfg.merge_from_file(_path(repo_root, name))
    if opts:
        cfg.merge_from_list(list(opts))
    return assert_and_infer_cfg(cfg)


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_new_configs_load_and_validate(repo_root, name):
    args = parse_args(["--cfg", _path(repo_root, name), "NUM_GPUS", "0"])
    cfg = load_config(args)
    assert cfg.NUM_GPUS == 0
    assert cfg.MODEL.NUM_CLASSES == 400
    assert cfg.TRAIN.DATASET == "kinetics"
    if name == "RegNet0.4G-3D_8x8":
        assert cfg.MODEL.MODEL_NAME == "RegNet" and cfg.REGNET.DEPTH == "400M"
        assert (cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE) == (8, 8)
        assert not cfg.PGT.ENABLE
        assert cfg.SOLVER.MAX_EPOCH == 196
        assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (10, 3)


@pytest.mark.parametrize("name", sorted(PGT_CONFIGS))
def test_pgt_configs_follow_the_paper(repo_root, name):
    cfg = _load(repo_root, name)
    model_name, arch, depth = PGT_CONFIGS[name]
    assert (cfg.MODEL.MODEL_NAME, cfg.MODEL.ARCH) == (model_name, arch)
    if depth is not None:
        assert cfg.RESNET.DEPTH == depth
    assert cfg.PGT.ENABLE and cfg.PGT.STEPS == 5
    assert cfg.PGT.CACHE == "last" and cfg.PGT.CACHE_MOMENTUM == 0.25
    assert cfg.PGT.TRAIN_TOGETHER and not cfg.PGT.PG_EVAL
    assert cfg.SOLVER.WEIGHT_DECAY == 2e-4 and cfg.SOLVER.MAX_EPOCH == 100
    assert cfg.SOLVER.WARMUP_EPOCHS == pytest.approx(34.0 * 100 / 196, abs=0.01)
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (2, 3)
    if arch == "slowfast":
        assert list(cfg.PGT.STEP_LEN) == [8, 32] and list(cfg.PGT.OVERLAP) == [1, 4]
        assert cfg.SLOWFAST.ALPHA == 4 and cfg.DATA.SAMPLING_RATE == 2
        assert cfg.DATA.NUM_FRAMES == 144
    else:
        assert list(cfg.PGT.STEP_LEN) == [8] and list(cfg.PGT.OVERLAP) == [1]
        assert cfg.DATA.SAMPLING_RATE == 8 and cfg.DATA.NUM_FRAMES == 36
    # T = (T' - o)(P - 1) + T' for every pathway; DATA.NUM_FRAMES is the last (fast) one.
    lengths = [(t - o) * (cfg.PGT.STEPS - 1) + t for t, o in zip(cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP)]
    assert cfg.DATA.NUM_FRAMES == lengths[-1]
    # The step length stays that of the 8x8 baseline.
    assert cfg.PGT.STEP_LEN[0] == 8


ABLATIONS = {
    "basic MCO": (["PGT.CACHE", "last", "PGT.CACHE_MOMENTUM", "0.0"], ("last", 0.0, "")),
    "CMCO-avg": (["PGT.CACHE", "avg", "PGT.CACHE_MOMENTUM", "0.0"], ("avg", 0.0, "")),
    "CMCO-max": (["PGT.CACHE", "max", "PGT.CACHE_MOMENTUM", "0.0"], ("max", 0.0, "")),
    "PMCO": (["PGT.CACHE", "last", "PGT.CACHE_MOMENTUM", "0.25"], ("last", 0.25, "")),
    "DPR-A": (["PGT.DPR", "A"], ("last", 0.25, "A")),
    "DPR-B": (["PGT.DPR", "b"], ("last", 0.25, "B")),
}


@pytest.mark.parametrize("row", sorted(ABLATIONS))
def test_ablations_load_by_key_overrides(repo_root, row):
    opts, (cache, momentum, dpr) = ABLATIONS[row]
    cfg = _load(repo_root, "RegNet0.4G-3D_8x8_PGT", opts)
    assert (cfg.PGT.CACHE, cfg.PGT.CACHE_MOMENTUM, cfg.PGT.DPR) == (cache, momentum, dpr)


@pytest.mark.parametrize("steps", [2, 3, 4, 5])
def test_number_of_steps_with_matching_clip_length(repo_root, steps):
    frames = pgt_clip_length(8, steps, 1)
    assert frames == 7 * (steps - 1) + 8
    for name in ("RegNet0.4G-3D_8x8_PGT", "SLOW_8x8_R50_PGT"):
        cfg = _load(repo_root, name, ["PGT.STEPS", str(steps), "DATA.NUM_FRAMES", str(frames)])
        assert (cfg.PGT.STEPS, cfg.DATA.NUM_FRAMES) == (steps, frames)
    fast = pgt_clip_length(32, steps, 4)
    cfg = _load(
        repo_root, "SLOWFAST_8x8_R50_PGT", ["PGT.STEPS", str(steps), "DATA.NUM_FRAMES", str(fast)]
    )
    assert cfg.DATA.NUM_FRAMES == fast
    if steps != 5:  # the file's 36 frames no longer tile: rejected with the value to use
        with pytest.raises(ValueError, match=f"set DATA.NUM_FRAMES to {frames}"):
            _load(repo_root, "RegNet0.4G-3D_8x8_PGT", ["PGT.STEPS", str(steps)])


def _tiny(cfg, width=None):
    cfg.NUM_GPUS = 0
    cfg.MODEL.NUM_CLASSES = 5
    if width is not None:
        cfg.RESNET.WIDTH_PER_GROUP = width
    return cfg


@pytest.mark.parametrize("name", ["SLOW_8x8_R50_PGT", "SLOWFAST_8x8_R50_PGT"])
def test_resnet_pgt_models_build(repo_root, name):
    cfg = _tiny(_load(repo_root, name), width=8)
    with torch.device("meta"):
        model = build_model(cfg)
    assert "head.projection.weight" in model.state_dict()


@pytest.mark.parametrize("name", ["RegNet0.4G-3D_8x8", "RegNet0.4G-3D_8x8_PGT"])
def test_regnet_models_build_and_run(repo_root, name):
    cfg = _tiny(_load(repo_root, name))
    model = build_model(cfg)
    assert model.state_dict()["head.projection.weight"].shape == (5, 384)
    model.eval()
    with torch.no_grad():
        out = model([torch.randn(1, 3, 8, 32, 32)])
    assert out.shape == (1, 5)


def test_release_pgt_keys(tmp_path):
    default = get_cfg()
    assert default.PGT.NL_NORM == "batchnorm"
    assert default.PGT.ALL_STEP_TEST is False
    f = tmp_path / "release.yaml"
    f.write_text(
        "PGT:\n  ENABLE: False\n  NL_NORM: layernorm\n  ALL_STEP_TEST: True\n"
        "MODEL:\n  ARCH: slow\nDATA:\n  INPUT_CHANNEL_NUM: [3]\n"
    )
    cfg = load_config(parse_args(["--cfg", str(f)]))
    assert cfg.PGT.NL_NORM == "layernorm" and cfg.PGT.ALL_STEP_TEST is True
    cfg.merge_from_list(["PGT.NL_NORM", "batchnorm"])
    assert cfg.PGT.NL_NORM == "batchnorm"


def test_release_progressive_nonlocal_is_rejected_where_it_would_change_the_model(repo_root):
    nl = ["NONLOCAL.LOCATION", [[[]], [[]], [[1, 3]], [[]]], "NONLOCAL.GROUP", [[1]] * 4]
    assert _load(repo_root, "SLOW_8x8_R50_PGT", nl).NONLOCAL.PROGRESS is False  # within the step
    with pytest.raises(ValueError, match=r"NONLOCAL\.PROGRESS True .*attend within the step"):
        _load(repo_root, "SLOW_8x8_R50_PGT", nl + ["NONLOCAL.PROGRESS", True])
    # no non-local block: the key builds nothing and loads (logged as without effect)
    cfg = _load(repo_root, "SLOW_8x8_R50_PGT", ["NONLOCAL.PROGRESS", True])
    assert cfg.NONLOCAL.PROGRESS is True


def test_release_kinetics_pgt_config_loads(shared_dir):
    path = shared_dir / "compat/pgt_configs/Kinetics/SLOW_PROG_36x8_R50.yaml"
    cfg = load_config(parse_args(["--cfg", str(path), "PGT.NL_NORM", "batchnorm"]))
    assert cfg.PGT.ENABLE and cfg.DATA.NUM_FRAMES == 36 and cfg.PGT.NL_NORM == "batchnorm"


def test_release_regnet_checkpoint_fc_maps_to_head_projection(tmp_path, caplog):
    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    cfg.MODEL.MODEL_NAME = "RegNet"
    cfg.MODEL.ARCH = "slow"
    cfg.MODEL.NUM_CLASSES = 7
    cfg.DATA.INPUT_CHANNEL_NUM = [3]
    torch.manual_seed(1)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    state = {
        k.replace("head.projection.", "fc.", 1): v.clone() for k, v in model.state_dict().items()
    }
    assert "fc.weight" in state and "fc.bias" in state
    assert not any(k.startswith("head.") for k in state)
    path = tmp_path / "release_regnet.pyth"
    torch.save({"model_state": state}, path)

    torch.manual_seed(2)
    fresh = build_model(cfg)
    assert not torch.equal(fresh.head.projection.weight, model.head.projection.weight)
    with caplog.at_level(logging.INFO, logger="slowfast.utils.checkpoint"):
        epoch = cu.load_checkpoint(str(path), fresh, data_parallel=False, strict=True)
    assert epoch == -1
    want, got = model.state_dict(), fresh.state_dict()
    assert set(want) == set(got)
    for key, value in want.items():
        assert torch.equal(value, got[key]), key
    messages = [r.getMessage() for r in caplog.records if "classifier keys" in r.getMessage()]
    assert len(messages) == 1
    assert "fc.weight -> head.projection.weight" in messages[0]
    assert "fc.bias -> head.projection.bias" in messages[0]


def test_fc_keys_kept_for_a_model_with_fc(tmp_path):
    state = {"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}
    model_keys = ["fc.weight", "fc.bias"]
    assert cu.map_release_classifier(state, model_keys) is state
    model_keys = ["head.projection.weight", "head.projection.bias"]
    mapped = cu.map_release_classifier(state, model_keys)
    assert list(mapped) == model_keys
    ddp = cu.map_release_classifier(
        {"module." + k: v for k, v in state.items()}, ["module." + k for k in model_keys]
    )
    assert list(ddp) == ["module." + k for k in model_keys]
