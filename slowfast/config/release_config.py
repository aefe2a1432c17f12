"""Keys that the PGT release's configs use and PySlowFast lacks.

Those that change the model or the run are implemented (see the comment of each key); the others
are accepted so that the release's files load, and ``slowfast.config.checks`` logs once that
they have no effect here. ``NO_EFFECT_KEYS`` lists the latter; ``TOLERATED_NEW_KEYS`` are
patterns of keys the release may define beyond these, accepted on load with the same warning.
"""

from slowfast.config.node import CfgNode

# Keys accepted for the release's files but without effect in this codebase.
NO_EFFECT_KEYS = (
    "DATA.VIEW",
    "DEBUG",
    "LOGS.PERIOD",
    "LOGS.LOG_MODEL",
    "PGT.NL_NORM",
    "PGT.SELFATT",
    "PGT.SELFATT_LOCATION",
    "NONLOCAL.PROGRESS",
    "TEST.CYCLIC_LOAD",
    "TRAIN.FULL_TIME_EVAL",
    "TRAIN.TRANSFER_WEIGHT",
    "AVA.TRAIN_PCA_EIGVAL",
    "AVA.TRAIN_PCA_EIGVEC",
    "AVA.TRAIN_PCA_JITTER_ONLY",
    "DEMO.*",
    # PySlowFast keys read by nothing here: a non-default value is logged as without effect.
    "TENSORBOARD.MODEL_VIS.*",
    "TENSORBOARD.WRONG_PRED_VIS.*",
    "TENSORBOARD.PREDICTIONS_PATH",
    "BENCHMARK.*",
)

# fnmatch patterns of keys that may appear in the release's configs without a default here.
TOLERATED_NEW_KEYS = ("PGT.MGRID*", "LOGS.*")


def add_release_config(cfg: CfgNode) -> None:
    """Add the PGT release's extra keys to ``cfg`` (in place)."""
    # Head pooling per dimension, [spatial, temporal]: "avg" or "max" each
    # (the release's Charades heads pool time with max).
    cfg.MODEL.FINAL_POOL = ["avg", "avg"]
    # Batch norm and ReLU after the fast-to-slow fusion convolution.
    cfg.SLOWFAST.FUSION_BN = True
    cfg.SLOWFAST.FUSION_RELU = True
    # Name of the stem builder ("resnet_stem").
    cfg.RESNET.STEM_FUNC = "resnet_stem"
    # Pad the stem's max pooling by one pixel spatially (PySlowFast does).
    cfg.RESNET.STEM_POOL_PAD = True
    # Batch norm at the end of each non-local block.
    cfg.NONLOCAL.USE_BN = True
    # The release's progressive non-local block (from step 1 on it attends to the previous
    # step). True is rejected where there are non-local blocks (checks.check_model); without any
    # it is inert.
    cfg.NONLOCAL.PROGRESS = False
    # Legacy name of DATA.TRAIN_CROP_SIZE; when set, it overrides it.
    cfg.DATA.CROP_SIZE = None
    cfg.DATA.VIEW = "3rd"
    # Load checkpoints strictly: every key present, every shape equal.
    cfg.TRAIN.CHECKPOINT_STRICT = False
    cfg.TEST.CHECKPOINT_STRICT = False
    # When >= 1, load OUTPUT_DIR/checkpoints/checkpoint_epoch_<N>.pyth instead of the newest.
    cfg.TRAIN.CHECKPOINT_FILE_EPOCH = -1
    cfg.TEST.CHECKPOINT_FILE_EPOCH = -1
    cfg.TRAIN.FULL_TIME_EVAL = False
    cfg.TRAIN.TRANSFER_WEIGHT = False
    cfg.TEST.CYCLIC_LOAD = False
    # Norm of the release's progressive non-local block: "none", "batchnorm" or "layernorm"
    # (the release's default is "batchnorm"). Accepted without effect (see NO_EFFECT_KEYS).
    cfg.PGT.NL_NORM = "batchnorm"
    # AVA, PG-long evaluation: score the boxes of all steps (True) rather than only those of
    # the last step, whose centre is the annotated keyframe (False, the release's default).
    cfg.PGT.ALL_STEP_TEST = False
    cfg.PGT.SELFATT = False
    cfg.PGT.SELFATT_LOCATION = [0, 0, 0, 0]
    cfg.DEBUG = False
    cfg.LOGS = CfgNode()
    # Alias of OUTPUT_DIR: when set, it is used as OUTPUT_DIR (unless OUTPUT_DIR is also set).
    cfg.LOGS.DIR = None
    cfg.LOGS.PERIOD = 100
    cfg.LOGS.LOG_MODEL = False
    # RegNet-3D variant ("400M": the paper's RegNet0.4G-3D ablation backbone).
    cfg.REGNET = CfgNode()
    cfg.REGNET.DEPTH = "400M"
