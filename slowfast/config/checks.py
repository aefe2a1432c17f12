"""Validation of a merged config and the values derived from others.

Each check is a small pure function of the config that raises ``ValueError`` naming the key to
change; ``check_and_infer`` runs them in order after filling in the derived values.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import List, Sequence

from fvcore.common.config import CfgNode

logger = logging.getLogger(__name__)

_RESNET_DEPTHS = (18, 34, 50, 101, 152)
_NORM_TYPES = ("batchnorm", "frozen_batchnorm", "sub_batchnorm", "sync_batchnorm")
_LOSSES = ("cross_entropy", "bce", "bce_logit", "soft_cross_entropy")
_HEAD_ACTS = ("softmax", "sigmoid", "none")
_DECODERS = ("pyav", "opencv", "torchvision")
_CHECKPOINT_TYPES = ("pytorch", "caffe2")
_LR_POLICIES = ("cosine", "steps_with_relative_lrs", "steps_with_lrs", "steps_with_decay")
_OPTIMIZERS = ("sgd", "adam", "adamw")
_logged_no_effect: set = set()


def pgt_clip_length(step_len: int, steps: int, overlap: int) -> int:
    """Frames of a long clip tiled by ``steps`` steps of ``step_len`` frames overlapping by
    ``overlap``: T = (T' - o)(P - 1) + T'."""
    return (step_len - overlap) * (steps - 1) + step_len


def num_pathways(cfg: CfgNode) -> int:
    """1 for single-pathway architectures, 2 for SlowFast."""
    return 2 if cfg.MODEL.ARCH in cfg.MODEL.MULTI_PATHWAY_ARCH else 1


def check_pgt(cfg: CfgNode) -> None:
    """The PGT frame arithmetic and the PGT options (only when ``PGT.ENABLE``)."""
    if cfg.PGT.CACHE not in ("last", "avg", "max"):
        raise ValueError(f"PGT.CACHE must be 'last', 'avg' or 'max', got {cfg.PGT.CACHE!r}")
    if cfg.PGT.ENSEMBLE_METHOD not in ("sum", "max"):
        raise ValueError(
            f"PGT.ENSEMBLE_METHOD must be 'sum' or 'max', got {cfg.PGT.ENSEMBLE_METHOD!r}"
        )
    if str(cfg.PGT.DPR).upper() not in ("", "A", "B"):
        raise ValueError(f"PGT.DPR must be '', 'A' or 'B', got {cfg.PGT.DPR!r}")
    if not 0.0 <= cfg.PGT.CACHE_MOMENTUM < 1.0:
        raise ValueError(f"PGT.CACHE_MOMENTUM must be in [0, 1), got {cfg.PGT.CACHE_MOMENTUM}")
    if not cfg.PGT.ENABLE:
        return
    if str(cfg.PGT.DPR) and (cfg.DETECTION.ENABLE or cfg.DATA.MULTI_LABEL):
        raise ValueError(
            f"PGT.DPR {cfg.PGT.DPR!r} draws the step length per iteration, but the per-step "
            "targets of detection (DETECTION.ENABLE) and multi-label datasets (DATA.MULTI_LABEL)"
            " are made by the dataset for PGT.STEP_LEN / PGT.STEPS; DPR is for single-label "
            "datasets such as Kinetics (the paper's section 3.4)"
        )
    n = num_pathways(cfg)
    for key in ("STEP_LEN", "OVERLAP", "TPOOL_SIZE"):
        values = list(cfg.PGT[key])
        if len(values) == 1 and n == 2 and key == "TPOOL_SIZE":
            continue  # one bin count for both pathways
        if len(values) != n:
            raise ValueError(
                f"PGT.{key} needs one value per pathway ({n} for MODEL.ARCH "
                f"{cfg.MODEL.ARCH!r}), got {values}"
            )
    if cfg.PGT.STEPS < 1:
        raise ValueError(f"PGT.STEPS must be >= 1, got {cfg.PGT.STEPS}")
    if cfg.PGT.TRUNCATE_GRAD and not cfg.PGT.TRAIN_TOGETHER and cfg.PGT.STEPS > 1:
        raise ValueError(
            "PGT.TRUNCATE_GRAD True keeps the caches in the graph, so a step's backward reaches "
            "the earlier steps and needs their weights as they were; PGT.TRAIN_TOGETHER False "
            "changes the weights after every step (the release fails there with an autograd "
            "in-place error). Set PGT.TRAIN_TOGETHER True, or PGT.TRUNCATE_GRAD False"
        )
    for p, (t, o) in enumerate(zip(cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP)):
        if not 0 <= o < t:
            raise ValueError(
                f"PGT.OVERLAP[{p}] = {o} must be >= 0 and smaller than PGT.STEP_LEN[{p}] = {t}"
            )
    lengths = [
        pgt_clip_length(t, cfg.PGT.STEPS, o) for t, o in zip(cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP)
    ]
    if n == 2:
        alpha = cfg.SLOWFAST.ALPHA
        (ts, tf), (os_, of) = cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP
        if tf != ts * alpha or of != os_ * alpha:
            want_t, want_o = ts * alpha, os_ * alpha
            want_len = pgt_clip_length(want_t, cfg.PGT.STEPS, want_o)
            raise ValueError(
                f"PGT.STEP_LEN {list(cfg.PGT.STEP_LEN)} / PGT.OVERLAP {list(cfg.PGT.OVERLAP)}: "
                f"a Fast step must span the time of its Slow step, so with SLOWFAST.ALPHA "
                f"{alpha} the Fast values must be STEP_LEN[1] = {want_t} and OVERLAP[1] = "
                f"{want_o} (PGT.STEP_LEN [{ts}, {want_t}], PGT.OVERLAP [{os_}, {want_o}]); "
                f"DATA.NUM_FRAMES would then be {want_len} (it is {cfg.DATA.NUM_FRAMES})"
            )
    check_pgt_model(cfg)
    expected = lengths[-1]
    if cfg.DATA.NUM_FRAMES != expected:
        t, o = cfg.PGT.STEP_LEN[-1], cfg.PGT.OVERLAP[-1]
        raise ValueError(
            f"DATA.NUM_FRAMES is {cfg.DATA.NUM_FRAMES} but PGT with STEP_LEN {t}, "
            f"OVERLAP {o} and STEPS {cfg.PGT.STEPS} tiles a clip of (T' - o)(P - 1) + T' = "
            f"({t} - {o}) * ({cfg.PGT.STEPS} - 1) + {t} = {expected} frames: "
            f"set DATA.NUM_FRAMES to {expected}"
        )


def check_pgt_model(cfg: CfgNode) -> None:
    """Architectures whose frame counts the Markov caches cannot follow."""
    if cfg.MODEL.MODEL_NAME == "ResNet" and cfg.MODEL.ARCH in ("c2d", "i3d"):
        raise ValueError(
            f"PGT.ENABLE: MODEL.ARCH {cfg.MODEL.ARCH!r} with MODEL.MODEL_NAME 'ResNet' has a "
            "temporal pooling after res2 that halves time between stages, so a step's carried "
            "frames would no longer line up; use MODEL.MODEL_NAME ResNet_nopool (or MODEL.ARCH "
            f"{cfg.MODEL.ARCH}_nopool)"
        )
    if cfg.MODEL.MODEL_NAME == "RegNet":
        return
    n = num_pathways(cfg)
    for stage, (locations, groups) in enumerate(zip(cfg.NONLOCAL.LOCATION, cfg.NONLOCAL.GROUP)):
        for p in range(min(n, len(locations), len(groups))):
            g = int(groups[p])
            if not locations[p] or g <= 1:
                continue
            t, o = int(cfg.PGT.STEP_LEN[p]), int(cfg.PGT.OVERLAP[p])
            if t % g or (cfg.PGT.STEPS > 1 and (t - o) % g):
                raise ValueError(
                    f"NONLOCAL.GROUP[{stage}][{p}] = {g} must divide the frames of every PGT "
                    f"step (PGT.STEP_LEN[{p}] = {t} on step 0, STEP_LEN - OVERLAP = {t - o} "
                    "after): non-local blocks attend within a step; set it to 1 or change "
                    "PGT.STEP_LEN / PGT.OVERLAP"
                )


def check_model(cfg: CfgNode) -> None:
    """Model keys that would otherwise fail deep inside the builder."""
    if cfg.RESNET.DEPTH not in _RESNET_DEPTHS:
        raise ValueError(f"RESNET.DEPTH must be one of {_RESNET_DEPTHS}, got {cfg.RESNET.DEPTH}")
    if cfg.BN.NORM_TYPE not in _NORM_TYPES:
        raise ValueError(f"BN.NORM_TYPE must be one of {_NORM_TYPES}, got {cfg.BN.NORM_TYPE!r}")
    if cfg.MODEL.LOSS_FUNC not in _LOSSES:
        raise ValueError(f"MODEL.LOSS_FUNC must be one of {_LOSSES}, got {cfg.MODEL.LOSS_FUNC!r}")
    if cfg.MODEL.HEAD_ACT not in _HEAD_ACTS:
        raise ValueError(f"MODEL.HEAD_ACT must be one of {_HEAD_ACTS}, got {cfg.MODEL.HEAD_ACT!r}")
    arches = list(cfg.MODEL.SINGLE_PATHWAY_ARCH) + list(cfg.MODEL.MULTI_PATHWAY_ARCH)
    if cfg.MODEL.ARCH not in arches:
        raise ValueError(f"MODEL.ARCH must be one of {arches}, got {cfg.MODEL.ARCH!r}")
    pools = list(cfg.MODEL.FINAL_POOL)
    if len(pools) != 2 or any(p not in ("avg", "max") for p in pools):
        raise ValueError(
            f"MODEL.FINAL_POOL must be [spatial, temporal] with 'avg' or 'max' each, got {pools}"
        )
    n = num_pathways(cfg)
    for key in ("NUM_BLOCK_TEMP_KERNEL", "SPATIAL_STRIDES", "SPATIAL_DILATIONS"):
        value = cfg.RESNET[key]
        if len(value) != 4 or any(len(stage) != n for stage in value):
            raise ValueError(
                f"RESNET.{key} needs 4 stages of {n} value(s) (one per pathway), got {value}"
            )
    if len(cfg.DATA.INPUT_CHANNEL_NUM) < n:
        raise ValueError(
            f"DATA.INPUT_CHANNEL_NUM needs {n} values for MODEL.ARCH {cfg.MODEL.ARCH!r}, "
            f"got {list(cfg.DATA.INPUT_CHANNEL_NUM)}"
        )
    if cfg.RESNET.STEM_FUNC not in ("resnet_stem",):
        raise ValueError(f"RESNET.STEM_FUNC must be 'resnet_stem', got {cfg.RESNET.STEM_FUNC!r}")
    if cfg.NONLOCAL.PROGRESS and any(any(stage) for stage in cfg.NONLOCAL.LOCATION):
        # The release swaps every non-local block for its ProgressNL: from step 1 on, keys and
        # values are the previous step's features; normed by PGT.NL_NORM. A different model,
        # which no release config builds. Without non-local blocks the key is inert.
        raise ValueError(
            "NONLOCAL.PROGRESS True (the PGT release's progressive non-local block) is not "
            "supported: non-local blocks here attend within the step (NONLOCAL.LOCATION "
            f"{[list(s) for s in cfg.NONLOCAL.LOCATION]}); set NONLOCAL.PROGRESS False"
        )


def check_data_and_solver(cfg: CfgNode) -> None:
    """Batch sizes, decoders, checkpoints, LR policy."""
    world = max(1, cfg.NUM_GPUS) * cfg.NUM_SHARDS
    for key in ("TRAIN", "TEST"):
        if cfg[key].BATCH_SIZE % world != 0:
            raise ValueError(
                f"{key}.BATCH_SIZE ({cfg[key].BATCH_SIZE}) must be divisible by "
                f"NUM_GPUS * NUM_SHARDS ({world})"
            )
        if cfg[key].CHECKPOINT_TYPE not in _CHECKPOINT_TYPES:
            raise ValueError(
                f"{key}.CHECKPOINT_TYPE must be one of {_CHECKPOINT_TYPES}, "
                f"got {cfg[key].CHECKPOINT_TYPE!r}"
            )
    if cfg.DATA.DECODING_BACKEND not in _DECODERS:
        raise ValueError(
            f"DATA.DECODING_BACKEND must be one of {_DECODERS}, got {cfg.DATA.DECODING_BACKEND!r}"
        )
    if cfg.SOLVER.LR_POLICY not in _LR_POLICIES:
        raise ValueError(
            f"SOLVER.LR_POLICY must be one of {_LR_POLICIES}, got {cfg.SOLVER.LR_POLICY!r}"
        )
    if cfg.SOLVER.OPTIMIZING_METHOD not in _OPTIMIZERS:
        raise ValueError(
            f"SOLVER.OPTIMIZING_METHOD must be one of {_OPTIMIZERS}, "
            f"got {cfg.SOLVER.OPTIMIZING_METHOD!r}"
        )
    if cfg.SOLVER.LR_POLICY.startswith("steps_with_") and cfg.SOLVER.LR_POLICY != (
        "steps_with_decay"
    ):
        if len(cfg.SOLVER.LRS) < len(cfg.SOLVER.STEPS) or not cfg.SOLVER.STEPS:
            raise ValueError(
                f"SOLVER.LR_POLICY {cfg.SOLVER.LR_POLICY!r} needs a non-empty SOLVER.STEPS and "
                f"one SOLVER.LRS entry per step: STEPS {list(cfg.SOLVER.STEPS)}, "
                f"LRS {list(cfg.SOLVER.LRS)}"
            )
    if cfg.MULTIGRID.LONG_CYCLE or cfg.MULTIGRID.SHORT_CYCLE:
        raise ValueError(
            "MULTIGRID.LONG_CYCLE / MULTIGRID.SHORT_CYCLE: multigrid training is not supported; "
            "set both to False"
        )
    if cfg.TEST.NUM_SPATIAL_CROPS not in (1, 3):
        raise ValueError(f"TEST.NUM_SPATIAL_CROPS must be 1 or 3, got {cfg.TEST.NUM_SPATIAL_CROPS}")


def check_tensorboard(cfg: CfgNode) -> None:
    """The validation plots' sizes and top-k (their files are read when the run starts, by
    ``slowfast.utils.tensorboard.eval_plots_from_cfg``)."""
    for node in ("CONFUSION_MATRIX", "HISTOGRAM"):
        if not cfg.TENSORBOARD[node].ENABLE:
            continue
        size = cfg.TENSORBOARD[node].FIGSIZE
        if len(size) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in size):
            raise ValueError(
                f"TENSORBOARD.{node}.FIGSIZE must be [width, height] in inches, got {list(size)}"
            )
    if cfg.TENSORBOARD.HISTOGRAM.ENABLE and cfg.TENSORBOARD.HISTOGRAM.TOPK < 1:
        raise ValueError(
            f"TENSORBOARD.HISTOGRAM.TOPK must be >= 1, got {cfg.TENSORBOARD.HISTOGRAM.TOPK}"
        )


def broadcast_pathway_specs(cfg: CfgNode) -> None:
    """Repeat a one-pathway per-stage spec for each pathway of a multi-pathway model.

    PySlowFast's defaults hold one value per stage, which its SlowFast builder cannot use; here a
    spec with exactly one value in every stage is taken to mean "the same for every pathway".
    """
    n = num_pathways(cfg)
    if n == 1:
        return
    for node, key in (
        ("RESNET", "NUM_BLOCK_TEMP_KERNEL"),
        ("RESNET", "SPATIAL_STRIDES"),
        ("RESNET", "SPATIAL_DILATIONS"),
        ("NONLOCAL", "LOCATION"),
        ("NONLOCAL", "GROUP"),
    ):
        value = cfg[node][key]
        if all(len(stage) == 1 for stage in value):
            cfg[node][key] = [list(stage) * n for stage in value]
            logger.info("%s.%s has one pathway; using it for all %d pathways", node, key, n)


def infer_aliases(cfg: CfgNode) -> None:
    """Fill the keys that the PGT release spells differently."""
    if cfg.DATA.CROP_SIZE is not None:
        cfg.DATA.TRAIN_CROP_SIZE = int(cfg.DATA.CROP_SIZE)
    if cfg.LOGS.DIR:
        from slowfast.config.defaults import get_cfg

        if cfg.OUTPUT_DIR == get_cfg().OUTPUT_DIR:
            cfg.OUTPUT_DIR = cfg.LOGS.DIR
        elif cfg.OUTPUT_DIR != cfg.LOGS.DIR:
            logger.warning(
                "LOGS.DIR (%s) and OUTPUT_DIR (%s) both set; using OUTPUT_DIR",
                cfg.LOGS.DIR,
                cfg.OUTPUT_DIR,
            )
    cfg.PGT.DPR = str(cfg.PGT.DPR).upper()
    if cfg.SOLVER.BASE_LR_SCALE_NUM_SHARDS and cfg.NUM_SHARDS > 1:
        # PySlowFast's linear scaling with the number of machines, applied once here.
        for key in ("BASE_LR", "WARMUP_START_LR", "COSINE_END_LR"):
            cfg.SOLVER[key] = cfg.SOLVER[key] * cfg.NUM_SHARDS
        cfg.SOLVER.BASE_LR_SCALE_NUM_SHARDS = False


def keys_without_effect(cfg: CfgNode) -> List[str]:
    """The accepted-but-ignored keys whose value differs from the default."""
    from slowfast.config.defaults import get_cfg
    from slowfast.config.node import TOLERATED_SEEN, _all_keys, _lookup
    from slowfast.config.release_config import NO_EFFECT_KEYS

    default = get_cfg()
    out = []
    for key in _all_keys(cfg):
        if not any(fnmatch.fnmatch(key, p) for p in NO_EFFECT_KEYS):
            continue
        found, dval = _lookup(default, key)
        _, val = _lookup(cfg, key)
        if isinstance(val, dict):
            continue
        if not found or val != dval:
            out.append(key)
    out.extend(sorted(TOLERATED_SEEN))
    return out


def log_keys_without_effect(cfg: CfgNode, keys: Sequence[str]) -> None:
    for key in keys:
        if key in _logged_no_effect:
            continue
        _logged_no_effect.add(key)
        logger.warning("config key %s is accepted for compatibility but has no effect here", key)


def check_and_infer(cfg: CfgNode) -> CfgNode:
    """Fill derived values, then validate; raise ``ValueError`` naming the key to change."""
    infer_aliases(cfg)
    broadcast_pathway_specs(cfg)
    check_model(cfg)
    check_data_and_solver(cfg)
    check_pgt(cfg)
    check_tensorboard(cfg)
    log_keys_without_effect(cfg, keys_without_effect(cfg))
    return cfg
