"""Config loading: PySlowFast and PGT-release files, checked merges, PGT arithmetic."""

from pathlib import Path

import pytest

from slowfast.config.checks import pgt_clip_length
from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.config.node import ConfigKeyError
from slowfast.utils.parser import load_config, parse_args

# Release files rejected on purpose, with the fragment the error must contain.
_REJECTED = {
    "SLOWFAST_PROG_76x8_R50_K400.yaml": "OVERLAP[1] = 4",
    "SLOWFAST_PROG_76x8_R101_K400.yaml": "OVERLAP[1] = 4",
    "SLOWFAST_PROG_76x8_R101_K600.yaml": "CHECKPOINT_TYPE",
    "SLOWFAST_16x8_R101_K600.yaml": "CHECKPOINT_TYPE",
}


def _compat_files(shared: Path):
    files = sorted((shared / "compat").rglob("*.yaml"))
    assert len(files) > 40, "expected the PySlowFast and PGT compat configs"
    return files


def test_every_compat_config_loads(shared_dir):
    """Every YAML under ../shared/compat merges; validation accepts all but known bad ones."""
    for path in _compat_files(shared_dir):
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        if path.name in _REJECTED:
            with pytest.raises(ValueError, match=_REJECTED[path.name].replace("[", r"\[")):
                assert_and_infer_cfg(cfg)
        else:
            assert_and_infer_cfg(cfg)


def test_base_inheritance_and_pgt_values(shared_dir):
    path = shared_dir / "compat/pgt_configs/Kinetics/SLOWFAST_PROG_36x8_R50.yaml"
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    assert_and_infer_cfg(cfg)
    # From the _BASE_ file (SLOWFAST_8x8_R50.yaml) ...
    assert cfg.MODEL.ARCH == "slowfast" and cfg.SLOWFAST.ALPHA == 4
    # ... overridden by the child.
    assert cfg.DATA.NUM_FRAMES == 144
    assert list(cfg.PGT.STEP_LEN) == [8, 32] and list(cfg.PGT.OVERLAP) == [1, 4]
    assert cfg.PGT.ENABLE and cfg.PGT.TRAIN_TOGETHER
    # LOGS.DIR is an alias of OUTPUT_DIR.
    assert cfg.OUTPUT_DIR == "logs/Kinetics/SLOWFAST_PROG_36x8_R50"


def test_pgt_clip_length_matches_design():
    assert pgt_clip_length(8, 5, 1) == 36
    assert pgt_clip_length(32, 5, 4) == 144
    assert pgt_clip_length(16, 5, 1) == 76


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_key_file_and_closest(tmp_path):
    _write(tmp_path, "base.yaml", "MODEL:\n  ARCH: slow\n")
    child = _write(tmp_path, "child.yaml", "_BASE_: base.yaml\nSOLVER:\n  BASE_LRR: 0.1\n")
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError) as err:
        cfg.merge_from_file(str(child))
    msg = str(err.value)
    assert "SOLVER.BASE_LRR" in msg and str(child) in msg and "SOLVER.BASE_LR" in msg
    # Nothing was merged: the base file's value did not land either.
    assert cfg.MODEL.ARCH == get_cfg().MODEL.ARCH


def test_unknown_key_in_base_names_the_base_file(tmp_path):
    base = _write(tmp_path, "base.yaml", "DATA:\n  NUM_FRAMEZ: 8\n")
    child = _write(tmp_path, "child.yaml", "_BASE_: base.yaml\n")
    with pytest.raises(ConfigKeyError, match="base.yaml.*DATA.NUM_FRAMEZ.*DATA.NUM_FRAMES"):
        get_cfg().merge_from_file(str(child))
    assert base.exists()


def test_type_mismatch_names_file(tmp_path):
    p = _write(tmp_path, "bad.yaml", "SOLVER:\n  BASE_LR: [1, 2]\n")
    with pytest.raises(ValueError, match="bad.yaml.*SOLVER.BASE_LR"):
        get_cfg().merge_from_file(str(p))


def test_missing_base_file_is_named(tmp_path):
    p = _write(tmp_path, "child.yaml", "_BASE_: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml.*child.yaml"):
        get_cfg().merge_from_file(str(p))


def test_scalar_step_len_is_accepted_as_a_list(tmp_path):
    p = _write(tmp_path, "pgt.yaml", "PGT:\n  STEP_LEN: 8\n  OVERLAP: 1\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(p))
    assert list(cfg.PGT.STEP_LEN) == [8] and list(cfg.PGT.OVERLAP) == [1]


def test_tolerated_release_keys(tmp_path):
    p = _write(tmp_path, "rel.yaml", "PGT:\n  MGRID: True\nLOGS:\n  DIR: out/x\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(p))
    assert cfg.PGT.MGRID is True
    assert_and_infer_cfg(cfg)
    assert cfg.OUTPUT_DIR == "out/x"


def test_pgt_arithmetic_error_gives_expected_num_frames():
    cfg = get_cfg()
    cfg.merge_from_list(
        ["MODEL.ARCH", "slow", "MODEL.MODEL_NAME", "ResNet", "DATA.INPUT_CHANNEL_NUM", "[3]"]
    )
    cfg.merge_from_list(["RESNET.NUM_BLOCK_TEMP_KERNEL", "[[3], [4], [6], [3]]"])
    cfg.merge_from_list(["PGT.ENABLE", "True", "PGT.STEP_LEN", "[8]", "PGT.OVERLAP", "[1]"])
    cfg.merge_from_list(["DATA.NUM_FRAMES", "32"])
    with pytest.raises(ValueError, match="set DATA.NUM_FRAMES to 36"):
        assert_and_infer_cfg(cfg)
    cfg.DATA.NUM_FRAMES = 36
    assert_and_infer_cfg(cfg)


def test_slowfast_pgt_needs_alpha_consistent_steps(shared_dir):
    path = shared_dir / "compat/pgt_configs/Charades/SLOWFAST_PROG_76x8_R50_K400.yaml"
    args = parse_args(["--cfg", str(path), "PGT.OVERLAP", "[1, 4]"])
    cfg = load_config(args)
    assert cfg.DATA.NUM_FRAMES == 304


def test_parser_splits_overrides_and_shards():
    argv = ["--init_method", "tcp://h:1", "--num_shards", "2", "--shard_id", "1"]
    argv += ["--cfg", "a.yaml", "b.yaml", "NUM_GPUS", "0", "SOLVER.BASE_LR", "0.2"]
    args = parse_args(argv)
    assert args.cfg_files == ["a.yaml", "b.yaml"]
    assert args.opts == ["NUM_GPUS", "0", "SOLVER.BASE_LR", "0.2"]
    assert args.init_method == "tcp://h:1" and args.num_shards == 2 and args.shard_id == 1


def test_load_config_applies_overrides_and_shards(shared_dir):
    path = shared_dir / "compat/pyslowfast_configs/Kinetics/SLOW_8x8_R50.yaml"
    args = parse_args(
        ["--num_shards", "2", "--shard_id", "1", "--cfg", str(path), "NUM_GPUS", "2"]
        + ["TRAIN.BATCH_SIZE", "8", "TEST.BATCH_SIZE", "4"]
    )
    cfg = load_config(args)
    assert (cfg.NUM_SHARDS, cfg.SHARD_ID, cfg.NUM_GPUS) == (2, 1, 2)
    assert cfg.MODEL.ARCH == "slow"


def test_batch_size_must_divide_over_processes():
    cfg = get_cfg()
    cfg.merge_from_list(["NUM_GPUS", "3", "TRAIN.BATCH_SIZE", "64"])
    with pytest.raises(ValueError, match="TRAIN.BATCH_SIZE"):
        assert_and_infer_cfg(cfg)


def test_odd_override_list_is_an_error():
    with pytest.raises(ValueError, match="KEY VALUE"):
        get_cfg().merge_from_list(["NUM_GPUS"])


def test_base_lr_scales_with_shards_once():
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.BASE_LR_SCALE_NUM_SHARDS", "True", "NUM_SHARDS", "4"])
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.1", "SOLVER.WARMUP_START_LR", "0.01"])
    assert_and_infer_cfg(cfg)
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.4)
    assert cfg.SOLVER.WARMUP_START_LR == pytest.approx(0.04)
    assert_and_infer_cfg(cfg)  # a second validation does not scale again
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.4)


def test_failed_merge_adds_no_tolerated_key(tmp_path):
    p = _write(tmp_path, "rel.yaml", "PGT:\n  MGRID_X: 3\nSOLVER:\n  BASE_LRR: 0.1\n")
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError, match="SOLVER.BASE_LRR"):
        cfg.merge_from_file(str(p))
    assert "MGRID_X" not in cfg.PGT


def test_run_net_reports_config_errors_without_traceback(tmp_path, capsys):
    from slowfast.engine.run import main

    p = _write(tmp_path, "bad.yaml", "DATA:\n  NUM_FRAMES: 8\nPGT:\n  ENABLE: True\n")
    assert main(["--cfg", str(p), "MODEL.ARCH", "slow", "DATA.INPUT_CHANNEL_NUM", "[3]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.yaml + command line" in err
    assert "set DATA.NUM_FRAMES to 36" in err and "Traceback" not in err


def test_accepted_keys_without_effect_are_logged_once(caplog):
    import logging

    from slowfast.config import checks
    from slowfast.config.defaults import assert_and_infer_cfg, get_cfg

    cfg = get_cfg()
    cfg.TENSORBOARD.MODEL_VIS.ENABLE = True
    cfg.TENSORBOARD.WRONG_PRED_VIS.TAG = "x"
    cfg.BENCHMARK.NUM_EPOCHS = 2
    cfg.PGT.ALL_STEP_TEST = True  # implemented (AVA): not reported
    # implemented (validation plots): not reported
    cfg.TENSORBOARD.CONFUSION_MATRIX.ENABLE = True
    cfg.TENSORBOARD.HISTOGRAM.TOPK = 3
    cfg.TENSORBOARD.CLASS_NAMES_PATH = "names.json"
    cfg.TENSORBOARD.CATEGORIES_PATH = "categories.json"
    keys = checks.keys_without_effect(cfg)
    for key in (
        "TENSORBOARD.MODEL_VIS.ENABLE",
        "TENSORBOARD.WRONG_PRED_VIS.TAG",
        "BENCHMARK.NUM_EPOCHS",
    ):
        assert key in keys
    for key in (
        "PGT.ALL_STEP_TEST",
        "TENSORBOARD.CONFUSION_MATRIX.ENABLE",
        "TENSORBOARD.HISTOGRAM.TOPK",
        "TENSORBOARD.CLASS_NAMES_PATH",
        "TENSORBOARD.CATEGORIES_PATH",
    ):
        assert key not in keys
    assert "TENSORBOARD.ENABLE" not in checks.keys_without_effect(get_cfg())
    checks._logged_no_effect.clear()
    with caplog.at_level(logging.WARNING, logger="slowfast.config.checks"):
        assert_and_infer_cfg(cfg.clone())
        assert_and_infer_cfg(cfg.clone())
    said = [r.getMessage() for r in caplog.records if "BENCHMARK.NUM_EPOCHS" in r.getMessage()]
    assert len(said) == 1 and "has no effect here" in said[0]
