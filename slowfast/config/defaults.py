"""Default configuration: PySlowFast's keys and defaults, plus the PGT node.

The key names and default values follow PySlowFast, so a PySlowFast YAML file means the same
thing here. Sections that are not PySlowFast's live in their own modules and are added by a
function each (``add_pgt_config``, ``add_release_config``, ``add_custom_config``).

``get_cfg()`` returns a fresh copy of the defaults; ``assert_and_infer_cfg(cfg)`` validates a
merged config and fills in the values derived from others (see ``slowfast.config.checks``).
"""

from slowfast.config.custom_config import add_custom_config
from slowfast.config.node import CfgNode
from slowfast.config.pgt_config import add_pgt_config
from slowfast.config.release_config import TOLERATED_NEW_KEYS, add_release_config

CfgNode.TOLERATED_NEW_KEYS = TOLERATED_NEW_KEYS

_C = CfgNode()

# ---------------------------------------------------------------------------- #
# Batch norm
# ---------------------------------------------------------------------------- #
_C.BN = CfgNode()
# Recompute batch-norm statistics over NUM_BATCHES_PRECISE batches before each evaluation.
_C.BN.USE_PRECISE_STATS = False
_C.BN.NUM_BATCHES_PRECISE = 200
# Weight decay applied to batch-norm weights and biases.
_C.BN.WEIGHT_DECAY = 0.0
# One of "batchnorm", "frozen_batchnorm", "sub_batchnorm", "sync_batchnorm".
_C.BN.NORM_TYPE = "batchnorm"
# sub_batchnorm: split the batch into NUM_SPLITS parts normalised independently.
_C.BN.NUM_SPLITS = 1
# sync_batchnorm: number of devices whose statistics are synchronised.
_C.BN.NUM_SYNC_DEVICES = 1

# ---------------------------------------------------------------------------- #
# Training
# ---------------------------------------------------------------------------- #
_C.TRAIN = CfgNode()
_C.TRAIN.ENABLE = True
# Name of the dataset in DATASET_REGISTRY.
_C.TRAIN.DATASET = "kinetics"
# Total mini-batch size over all processes.
_C.TRAIN.BATCH_SIZE = 64
# Evaluate on the validation split every EVAL_PERIOD epochs.
_C.TRAIN.EVAL_PERIOD = 10
# Save a checkpoint every CHECKPOINT_PERIOD epochs.
_C.TRAIN.CHECKPOINT_PERIOD = 10
# Resume from the newest readable checkpoint in OUTPUT_DIR/checkpoints.
_C.TRAIN.AUTO_RESUME = True
# Stop when an iteration's loss exceeds this factor times the mean of the 5 before it (0: off).
_C.TRAIN.KILL_LOSS_EXPLOSION_FACTOR = 0.0
# Checkpoint to initialise from (when nothing to resume).
_C.TRAIN.CHECKPOINT_FILE_PATH = ""
# "pytorch" (.pyth) or "caffe2" (.pkl of the PySlowFast model zoo).
_C.TRAIN.CHECKPOINT_TYPE = "pytorch"
# Inflate 2D weights of the checkpoint to 3D.
_C.TRAIN.CHECKPOINT_INFLATE = False
# Restart the epoch count at 0 when initialising from CHECKPOINT_FILE_PATH.
_C.TRAIN.CHECKPOINT_EPOCH_RESET = False
# Substrings removed from checkpoint parameter names before loading (first occurrence).
_C.TRAIN.CHECKPOINT_CLEAR_NAME_PATTERN = ()
# Mixed precision (PySlowFast's key): autocast, with a GradScaler for float16 on CUDA.
_C.TRAIN.MIXED_PRECISION = False
# Ours: the autocast dtype on CUDA, "float16" (with a GradScaler) or "bfloat16" (without);
# CPU autocast is always bfloat16.
_C.TRAIN.MIXED_PRECISION_DTYPE = "float16"

# ---------------------------------------------------------------------------- #
# Testing
# ---------------------------------------------------------------------------- #
_C.TEST = CfgNode()
_C.TEST.ENABLE = True
_C.TEST.DATASET = "kinetics"
# Total mini-batch size over all processes.
_C.TEST.BATCH_SIZE = 8
# Checkpoint to test; empty: the newest one in OUTPUT_DIR/checkpoints, else TRAIN's.
_C.TEST.CHECKPOINT_FILE_PATH = ""
# Number of temporal clips uniformly spaced over each video.
_C.TEST.NUM_ENSEMBLE_VIEWS = 10
# Number of spatial crops per clip (1: centre, 3: both ends and centre of the long side).
_C.TEST.NUM_SPATIAL_CROPS = 3
_C.TEST.CHECKPOINT_TYPE = "pytorch"
# Where to save the per-video predictions and labels (a file name under OUTPUT_DIR).
_C.TEST.SAVE_RESULTS_PATH = ""

# ---------------------------------------------------------------------------- #
# ResNet
# ---------------------------------------------------------------------------- #
_C.RESNET = CfgNode()
# "basic_transform" or "bottleneck_transform".
_C.RESNET.TRANS_FUNC = "bottleneck_transform"
# Groups of the 3x3 convolution (1: ResNet, >1: ResNeXt).
_C.RESNET.NUM_GROUPS = 1
# Width of each group (64: ResNet).
_C.RESNET.WIDTH_PER_GROUP = 64
_C.RESNET.INPLACE_RELU = True
# Put the spatial stride on the 1x1 convolution instead of the 3x3 one.
_C.RESNET.STRIDE_1X1 = False
# Initialise the last batch-norm gamma of every residual block to zero.
_C.RESNET.ZERO_INIT_FINAL_BN = False
# 18, 34, 50, 101 or 152.
_C.RESNET.DEPTH = 50
# Per stage and pathway: how many blocks (counted from the first) keep the temporal kernel.
_C.RESNET.NUM_BLOCK_TEMP_KERNEL = [[3], [4], [6], [3]]
# Per stage and pathway spatial strides and dilations.
_C.RESNET.SPATIAL_STRIDES = [[1], [2], [2], [2]]
_C.RESNET.SPATIAL_DILATIONS = [[1], [1], [1], [1]]

# ---------------------------------------------------------------------------- #
# Non-local
# ---------------------------------------------------------------------------- #
_C.NONLOCAL = CfgNode()
# Per stage and pathway: indices of the blocks followed by a non-local block.
_C.NONLOCAL.LOCATION = [[[]], [[]], [[]], [[]]]
# Per stage and pathway: number of groups the batch is split into for attention.
_C.NONLOCAL.GROUP = [[1], [1], [1], [1]]
# "dot_product" or "softmax".
_C.NONLOCAL.INSTANTIATION = "dot_product"
# Per stage and pathway: max-pool size applied to the keys and values.
_C.NONLOCAL.POOL = [
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
    [[1, 2, 2], [1, 2, 2]],
]

# ---------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------- #
_C.MODEL = CfgNode()
# c2d, c2d_nopool, i3d, i3d_nopool, slow, slowfast.
_C.MODEL.ARCH = "slowfast"
# Name in MODEL_REGISTRY.
_C.MODEL.MODEL_NAME = "SlowFast"
_C.MODEL.NUM_CLASSES = 400
# cross_entropy, bce, bce_logit, soft_cross_entropy.
_C.MODEL.LOSS_FUNC = "cross_entropy"
_C.MODEL.SINGLE_PATHWAY_ARCH = ["c2d", "c2d_nopool", "i3d", "i3d_nopool", "slow"]
_C.MODEL.MULTI_PATHWAY_ARCH = ["slowfast"]
# Dropout before the final projection.
_C.MODEL.DROPOUT_RATE = 0.5
# Standard deviation of the final projection's initial weights.
_C.MODEL.FC_INIT_STD = 0.01
# softmax, sigmoid or none.
_C.MODEL.HEAD_ACT = "softmax"

# ---------------------------------------------------------------------------- #
# SlowFast
# ---------------------------------------------------------------------------- #
_C.SLOWFAST = CfgNode()
# Channel ratio between the Slow and the Fast pathway (1 / beta).
_C.SLOWFAST.BETA_INV = 8
# Frame-rate ratio between the Fast and the Slow pathway.
_C.SLOWFAST.ALPHA = 8
# Output channels of the fast-to-slow fusion, relative to the Fast pathway's channels.
_C.SLOWFAST.FUSION_CONV_CHANNEL_RATIO = 2
# Temporal kernel of the fast-to-slow fusion convolution.
_C.SLOWFAST.FUSION_KERNEL_SZ = 5

# ---------------------------------------------------------------------------- #
# Data
# ---------------------------------------------------------------------------- #
_C.DATA = CfgNode()
_C.DATA.PATH_TO_DATA_DIR = ""
# Separator between path and label in the split files.
_C.DATA.PATH_LABEL_SEPARATOR = " "
# Prefix joined to every video path of the split files.
_C.DATA.PATH_PREFIX = ""
# Frames of the input clip (SlowFast: of the Fast pathway).
_C.DATA.NUM_FRAMES = 8
# Temporal stride, in frames at TARGET_FPS, between the sampled frames.
_C.DATA.SAMPLING_RATE = 8
# Per-channel mean and standard deviation of pixels scaled to [0, 1].
_C.DATA.MEAN = [0.45, 0.45, 0.45]
_C.DATA.STD = [0.225, 0.225, 0.225]
# Input channels of each pathway.
_C.DATA.INPUT_CHANNEL_NUM = [3, 3]
# Shorter side is resized to a random value in this range in training.
_C.DATA.TRAIN_JITTER_SCALES = [256, 320]
_C.DATA.TRAIN_CROP_SIZE = 224
_C.DATA.TEST_CROP_SIZE = 256
# Videos are resampled to this frame rate before temporal sampling.
_C.DATA.TARGET_FPS = 30
# "pyav" or "opencv" ("torchvision" is accepted as an alias of "pyav").
_C.DATA.DECODING_BACKEND = "pyav"
# Draw the jitter scale as the inverse of a uniform sample in [1/max, 1/min].
_C.DATA.INV_UNIFORM_SAMPLE = False
_C.DATA.RANDOM_FLIP = True
# Multi-label targets (Charades); the metric becomes mAP.
_C.DATA.MULTI_LABEL = False
# How views of one video are combined at test time: "sum" or "max".
_C.DATA.ENSEMBLE_METHOD = "sum"
# Reverse the channel order (RGB <-> BGR) of the input frames.
_C.DATA.REVERSE_INPUT_CHANNEL = False

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CfgNode()
_C.SOLVER.BASE_LR = 0.1
# "cosine", "steps_with_relative_lrs", "steps_with_lrs" or "steps_with_decay".
_C.SOLVER.LR_POLICY = "cosine"
# Final learning rate of the cosine policy.
_C.SOLVER.COSINE_END_LR = 0.0
# Decay factor of the steps_with_decay policy.
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEP_SIZE = 1
# Epochs where the steps_* policies change the learning rate.
_C.SOLVER.STEPS = []
# Learning rates (absolute or relative to BASE_LR) of the steps_* policies.
_C.SOLVER.LRS = []
_C.SOLVER.MAX_EPOCH = 300
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.DAMPENING = 0.0
_C.SOLVER.NESTEROV = True
_C.SOLVER.WEIGHT_DECAY = 1e-4
_C.SOLVER.WARMUP_FACTOR = 0.1
# Linear warm-up from WARMUP_START_LR over WARMUP_EPOCHS.
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_START_LR = 0.01
# "sgd", "adam" or "adamw".
_C.SOLVER.OPTIMIZING_METHOD = "sgd"
# Multiply BASE_LR by NUM_SHARDS.
_C.SOLVER.BASE_LR_SCALE_NUM_SHARDS = False
# Start the cosine curve after the warm-up instead of at epoch 0.
_C.SOLVER.COSINE_AFTER_WARMUP = False
# Clip each gradient element to [-CLIP_GRAD_VAL, CLIP_GRAD_VAL] before the step (None: off).
_C.SOLVER.CLIP_GRAD_VAL = None
# Clip the gradients' global L2 norm to CLIP_GRAD_L2NORM before the step (None: off).
_C.SOLVER.CLIP_GRAD_L2NORM = None

# ---------------------------------------------------------------------------- #
# Misc
# ---------------------------------------------------------------------------- #
# GPUs per machine (0: CPU).
_C.NUM_GPUS = 1
# Number of machines.
_C.NUM_SHARDS = 1
# Index of this machine.
_C.SHARD_ID = 0
# Where logs, the resolved config and checkpoints are written.
_C.OUTPUT_DIR = "./tmp"
_C.RNG_SEED = 1
# Iterations between two log lines.
_C.LOG_PERIOD = 10
# Log the model, its parameter count and GFLOPs at start-up.
_C.LOG_MODEL_INFO = True
# "nccl" (GPUs) or "gloo" (CPU).
_C.DIST_BACKEND = "nccl"

# ---------------------------------------------------------------------------- #
# Data-loader benchmark
# ---------------------------------------------------------------------------- #
_C.BENCHMARK = CfgNode()
_C.BENCHMARK.NUM_EPOCHS = 5
_C.BENCHMARK.LOG_PERIOD = 100
_C.BENCHMARK.SHUFFLE = True

# ---------------------------------------------------------------------------- #
# Data loader
# ---------------------------------------------------------------------------- #
_C.DATA_LOADER = CfgNode()
# Worker processes per training process.
_C.DATA_LOADER.NUM_WORKERS = 8
_C.DATA_LOADER.PIN_MEMORY = True
# Let the decoder use several threads.
_C.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE = False

# ---------------------------------------------------------------------------- #
# Detection
# ---------------------------------------------------------------------------- #
_C.DETECTION = CfgNode()
_C.DETECTION.ENABLE = False
# RoIAlign with the half-pixel offset (detectron2's aligned=True).
_C.DETECTION.ALIGNED = True
# Stride of the feature map the boxes are pooled from.
_C.DETECTION.SPATIAL_SCALE_FACTOR = 16
_C.DETECTION.ROI_XFORM_RESOLUTION = 7

# ---------------------------------------------------------------------------- #
# AVA
# ---------------------------------------------------------------------------- #
_C.AVA = CfgNode()
_C.AVA.FRAME_DIR = "/mnt/fair-flash3-east/ava_trainval_frames.img/"
_C.AVA.FRAME_LIST_DIR = "/mnt/vol/gfsai-flash3-east/ai-group/users/haoqifan/ava/frame_list/"
_C.AVA.ANNOTATION_DIR = "/mnt/vol/gfsai-flash3-east/ai-group/users/haoqifan/ava/frame_list/"
# Frame lists of the splits.
_C.AVA.TRAIN_LISTS = ["train.csv"]
_C.AVA.TEST_LISTS = ["val.csv"]
# Box files (ground truth, then predicted) for training, and predicted boxes for test.
_C.AVA.TRAIN_GT_BOX_LISTS = ["ava_train_v2.2.csv"]
_C.AVA.TRAIN_PREDICT_BOX_LISTS = []
_C.AVA.TEST_PREDICT_BOX_LISTS = ["ava_val_predicted_boxes.csv"]
# Predicted boxes scoring below this are dropped.
_C.AVA.DETECTION_SCORE_THRESH = 0.9
# Frames stored as BGR.
_C.AVA.BGR = False
_C.AVA.TRAIN_USE_COLOR_AUGMENTATION = False
_C.AVA.TRAIN_PCA_JITTER_ONLY = True
_C.AVA.TRAIN_PCA_EIGVAL = [0.225, 0.224, 0.229]
_C.AVA.TRAIN_PCA_EIGVEC = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
]
_C.AVA.TEST_FORCE_FLIP = False
_C.AVA.FULL_TEST_ON_VAL = False
_C.AVA.LABEL_MAP_FILE = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
_C.AVA.EXCLUSION_FILE = "ava_val_excluded_timestamps_v2.2.csv"
_C.AVA.GROUNDTRUTH_FILE = "ava_val_v2.2.csv"
# "cv2" or "pytorch".
_C.AVA.IMG_PROC_BACKEND = "cv2"

# ---------------------------------------------------------------------------- #
# Multigrid (accepted for compatibility; see slowfast.config.checks)
# ---------------------------------------------------------------------------- #
_C.MULTIGRID = CfgNode()
_C.MULTIGRID.EPOCH_FACTOR = 1.5
_C.MULTIGRID.SHORT_CYCLE = False
_C.MULTIGRID.SHORT_CYCLE_FACTORS = [0.5, 0.5**0.5]
_C.MULTIGRID.LONG_CYCLE = False
_C.MULTIGRID.LONG_CYCLE_FACTORS = [
    (0.25, 0.5**0.5),
    (0.5, 0.5**0.5),
    (0.5, 1),
    (1, 1),
]
_C.MULTIGRID.BN_BASE_SIZE = 8
_C.MULTIGRID.EVAL_FREQ = 3
_C.MULTIGRID.LONG_CYCLE_SAMPLING_RATE = 0
_C.MULTIGRID.DEFAULT_B = 0
_C.MULTIGRID.DEFAULT_T = 0
_C.MULTIGRID.DEFAULT_S = 0

# ---------------------------------------------------------------------------- #
# Tensorboard
# ---------------------------------------------------------------------------- #
_C.TENSORBOARD = CfgNode()
_C.TENSORBOARD.ENABLE = False
_C.TENSORBOARD.PREDICTIONS_PATH = ""
# Default: OUTPUT_DIR/runs-<dataset>.
_C.TENSORBOARD.LOG_DIR = ""
# Validation plots (single-label classification; slowfast.utils.eval_plots):
# JSON {"class name": class id} naming the classes in the plots (default: their ids).
_C.TENSORBOARD.CLASS_NAMES_PATH = ""
# JSON {"category": [class names]}: one more confusion matrix per category.
_C.TENSORBOARD.CATEGORIES_PATH = ""
# After each validation epoch: the confusion matrix normalised per true class.
_C.TENSORBOARD.CONFUSION_MATRIX = CfgNode()
_C.TENSORBOARD.CONFUSION_MATRIX.ENABLE = False
# Figure size in inches, [width, height].
_C.TENSORBOARD.CONFUSION_MATRIX.FIGSIZE = [8, 8]
# Text file, one class name per line: one more confusion matrix of these classes.
_C.TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH = ""
# After each validation epoch, per class: its videos' TOPK most frequent predictions.
_C.TENSORBOARD.HISTOGRAM = CfgNode()
_C.TENSORBOARD.HISTOGRAM.ENABLE = False
# Text file, one class name per line: plot these classes only.
_C.TENSORBOARD.HISTOGRAM.SUBSET_PATH = ""
_C.TENSORBOARD.HISTOGRAM.TOPK = 10
_C.TENSORBOARD.HISTOGRAM.FIGSIZE = [8, 8]
_C.TENSORBOARD.MODEL_VIS = CfgNode()
_C.TENSORBOARD.MODEL_VIS.ENABLE = False
_C.TENSORBOARD.MODEL_VIS.MODEL_WEIGHTS = False
_C.TENSORBOARD.MODEL_VIS.ACTIVATIONS = False
_C.TENSORBOARD.MODEL_VIS.INPUT_VIDEO = False
_C.TENSORBOARD.MODEL_VIS.LAYER_LIST = []
_C.TENSORBOARD.MODEL_VIS.TOPK_PREDS = 1
_C.TENSORBOARD.MODEL_VIS.COLORMAP = "Pastel2"
_C.TENSORBOARD.MODEL_VIS.GRAD_CAM = CfgNode()
_C.TENSORBOARD.MODEL_VIS.GRAD_CAM.ENABLE = True
_C.TENSORBOARD.MODEL_VIS.GRAD_CAM.LAYER_LIST = []
_C.TENSORBOARD.MODEL_VIS.GRAD_CAM.USE_TRUE_LABEL = False
_C.TENSORBOARD.MODEL_VIS.GRAD_CAM.COLORMAP = "viridis"
_C.TENSORBOARD.WRONG_PRED_VIS = CfgNode()
_C.TENSORBOARD.WRONG_PRED_VIS.ENABLE = False
_C.TENSORBOARD.WRONG_PRED_VIS.TAG = "Incorrectly classified videos."
_C.TENSORBOARD.WRONG_PRED_VIS.SUBSET_PATH = ""

# ---------------------------------------------------------------------------- #
# Demo (accepted for compatibility; see slowfast.config.checks)
# ---------------------------------------------------------------------------- #
_C.DEMO = CfgNode()
_C.DEMO.ENABLE = False
_C.DEMO.LABEL_FILE_PATH = ""
_C.DEMO.WEBCAM = -1
_C.DEMO.INPUT_VIDEO = ""
_C.DEMO.DISPLAY_WIDTH = 0
_C.DEMO.DISPLAY_HEIGHT = 0
_C.DEMO.DETECTRON2_CFG = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
_C.DEMO.DETECTRON2_WEIGHTS = (
    "detectron2://COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl"
)
_C.DEMO.DETECTRON2_THRESH = 0.9
_C.DEMO.BUFFER_SIZE = 0
_C.DEMO.OUTPUT_FILE = ""
_C.DEMO.OUTPUT_FPS = -1
_C.DEMO.INPUT_FORMAT = "BGR"
_C.DEMO.CLIP_VIS_SIZE = 10
_C.DEMO.NUM_VIS_INSTANCES = 2
_C.DEMO.PREDS_BOXES = ""
_C.DEMO.THREAD_ENABLE = False
_C.DEMO.NUM_CLIPS_SKIP = 0
_C.DEMO.GT_BOXES = ""
_C.DEMO.STARTING_SECOND = 900
_C.DEMO.FPS = 30
_C.DEMO.VIS_MODE = "thres"
_C.DEMO.COMMON_CLASS_THRES = 0.7
_C.DEMO.UNCOMMON_CLASS_THRES = 0.3
_C.DEMO.COMMON_CLASS_NAMES = [
    "watch (a person)",
    "talk to (e.g., self, a person, a group)",
    "listen to (a person)",
    "touch (an object)",
    "carry/hold (an object)",
    "walk",
    "sit",
    "lie/sleep",
    "bend/bow (at the waist)",
]
_C.DEMO.SLOWMO = 1

add_pgt_config(_C)
add_release_config(_C)
add_custom_config(_C)


def get_cfg() -> CfgNode:
    """Return a fresh copy of the default config."""
    return _C.clone()


def assert_and_infer_cfg(cfg: CfgNode) -> CfgNode:
    """Validate ``cfg`` and fill in derived values (in place); return it.

    Raises:
        ValueError: naming the key to change, with a consistent value where there is one.
    """
    from slowfast.config.checks import check_and_infer

    return check_and_infer(cfg)
