"""The ResNet family of video models: C2D, I3D, Slow (``ResNet``) and SlowFast (``SlowFast``).

:class:`VideoResNet` builds any of them from explicit arguments by looping over a stage spec;
the registered classes ``ResNet``, ``ResNet_nopool`` and ``SlowFast`` only translate a config
into those arguments. Submodule names are PySlowFast's (``s1``, ``s1_fuse``, ``s2``...,
``pathway0_pool``, ``head``), so state dicts are interchangeable with its checkpoints.

Module types that a wrapper can find with ``model.modules()`` (the models know nothing of them):
``ResNetBasicStem`` (one per pathway, ``temporal_kernel``), ``ResBlock`` (``temp_kernel_size``),
``Nonlocal``, ``FuseFastToSlow`` (``alpha``) and the head's ``TemporalPool`` (``kernel_t``,
``mode``). Every forward takes and returns new lists; nothing is modified in place.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from slowfast.models.batchnorm_helper import NormFactory, get_norm_from_cfg
from slowfast.models.build import MODEL_REGISTRY
from slowfast.models.head_helper import ResNetBasicHead, ResNetRoIHead
from slowfast.models.resnet_helper import ResStage
from slowfast.models.stem_helper import VideoModelStem
from slowfast.models.weight_init_helper import init_weights

# Blocks of res2..res5 per depth.
MODEL_STAGE_DEPTH: Dict[int, Tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

# Temporal kernel bases: per stage (conv1, res2..res5), per pathway, the kernels that the
# stage's blocks cycle through (PySlowFast's _TEMPORAL_KERNEL_BASIS).
TEMPORAL_KERNEL_BASIS: Dict[str, List[List[List[int]]]] = {
    "c2d": [[[1]], [[1]], [[1]], [[1]], [[1]]],
    "c2d_nopool": [[[1]], [[1]], [[1]], [[1]], [[1]]],
    "i3d": [[[5]], [[3]], [[3, 1]], [[3, 1]], [[1, 3]]],
    "i3d_nopool": [[[5]], [[3]], [[3, 1]], [[3, 1]], [[1, 3]]],
    "slow": [[[1]], [[1]], [[1]], [[3]], [[3]]],
    "slowfast": [[[1], [5]], [[1], [3]], [[1], [3]], [[3], [3]], [[3], [3]]],
}

# Max pooling [T, H, W] after res2, per pathway (PySlowFast's _POOL1).
POOL1: Dict[str, List[List[int]]] = {
    "c2d": [[2, 1, 1]],
    "c2d_nopool": [[1, 1, 1]],
    "i3d": [[2, 1, 1]],
    "i3d_nopool": [[1, 1, 1]],
    "slow": [[1, 1, 1]],
    "slowfast": [[1, 1, 1], [1, 1, 1]],
}

# Channels of res2..res5 outputs and inner widths, as multiples of WIDTH_PER_GROUP and of
# NUM_GROUPS * WIDTH_PER_GROUP.
_OUT_MULT = (4, 8, 16, 32)
_INNER_MULT = (1, 2, 4, 8)


class FuseFastToSlow(nn.Module):
    """Lateral connection: a time-strided conv on the Fast features, concatenated to the Slow ones.

    ``conv_f2s`` is a [fusion_kernel, 1, 1] conv with stride [alpha, 1, 1], padding
    [fusion_kernel // 2, 0, 0] and ``dim_in * fusion_conv_channel_ratio`` outputs, followed by a
    norm ``bn`` (when ``fusion_bn``; otherwise the conv has a bias) and a ReLU (when
    ``fusion_relu``). Takes and returns [slow, fast]; the fast tensor passes unchanged.
    """

    def __init__(
        self,
        dim_in: int,
        fusion_conv_channel_ratio: int,
        fusion_kernel: int,
        alpha: int,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        inplace_relu: bool = True,
        norm_module: NormFactory = nn.BatchNorm3d,
        fusion_bn: bool = True,
        fusion_relu: bool = True,
    ) -> None:
        super().__init__()
        self.dim_out = dim_in * fusion_conv_channel_ratio
        self.alpha = alpha
        self.conv_f2s = nn.Conv3d(
            dim_in,
            self.dim_out,
            kernel_size=[fusion_kernel, 1, 1],
            stride=[alpha, 1, 1],
            padding=[fusion_kernel // 2, 0, 0],
            bias=not fusion_bn,
        )
        self.bn = (
            norm_module(num_features=self.dim_out, eps=eps, momentum=bn_mmt) if fusion_bn else None
        )
        self.relu = nn.ReLU(inplace_relu) if fusion_relu else None

    def lateral(self, x_f: torch.Tensor) -> torch.Tensor:
        """The fused Fast features (before concatenation)."""
        fuse = self.conv_f2s(x_f)
        if self.bn is not None:
            fuse = self.bn(fuse)
        if self.relu is not None:
            fuse = self.relu(fuse)
        return fuse

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        x_s, x_f = x
        fuse = self.lateral(x_f)
        if fuse.shape[2:] != x_s.shape[2:]:
            raise ValueError(
                f"FuseFastToSlow: the fused Fast features have size {tuple(fuse.shape[2:])} but "
                f"the Slow ones {tuple(x_s.shape[2:])}; the Fast pathway needs SLOWFAST.ALPHA "
                f"({self.alpha}) times the Slow pathway's frames"
            )
        return [torch.cat([x_s, fuse], 1), x_f]


class VideoResNet(nn.Module):
    """A 3D ResNet with one (C2D, I3D, Slow) or two (SlowFast) pathways, from explicit arguments.

    Args:
        arch: key of :data:`TEMPORAL_KERNEL_BASIS` (``MODEL.ARCH``).
        depth: 18, 34, 50, 101 or 152.
        input_channels: channels of each pathway's input.
        num_classes: outputs of the head.
        num_groups, width_per_group: the 3x3 convs have ``num_groups`` groups and the stages
            ``num_groups * width_per_group * (1, 2, 4, 8)`` inner channels.
        trans_func: "bottleneck_transform" or "basic_transform".
        stride_1x1: stride on the bottleneck's first conv rather than its 3x3 conv.
        inplace_relu: in-place ReLUs.
        num_block_temp_kernel, spatial_strides, spatial_dilations: per stage (res2..res5), one
            value per pathway.
        nonlocal_location, nonlocal_group, nonlocal_pool: per stage, per pathway (see
            ``NONLOCAL.*``).
        nonlocal_instantiation: "softmax" or "dot_product".
        nonlocal_use_bn: norm at the end of each non-local block.
        norm_module: norm factory (see ``batchnorm_helper``).
        head_pool_size: per pathway, the head's [T, H, W] pooling kernel (``None``: global).
        final_pool: the head's [spatial, temporal] pooling, "avg" or "max" each.
        dropout_rate: head dropout.
        head_act: evaluation activation, "softmax", "sigmoid" or "none".
        stem_func: ``RESNET.STEM_FUNC``.
        stem_pool_pad: pad the stem's max pooling spatially by one.
        temporal_pool_after_res2: apply ``POOL1[arch]`` after res2 (False for the "nopool"
            variants).
        slowfast: for two pathways, a dict with ``alpha``, ``beta_inv``,
            ``fusion_conv_channel_ratio``, ``fusion_kernel``, ``fusion_bn``, ``fusion_relu``.
        detection: for a detection (RoI) head, a dict with ``resolution`` (RoIAlign output
            size), ``scale_factor`` (feature stride) and ``aligned``; ``head_pool_size`` then
            gives each pathway's temporal window as [T, 1, 1]. ``forward`` then needs ``bboxes``.
        fc_init_std: std of the head's projection at initialisation.
        zero_init_final_bn: start each residual branch at zero.
    """

    def __init__(
        self,
        arch: str,
        depth: int,
        input_channels: Sequence[int],
        num_classes: int,
        num_groups: int = 1,
        width_per_group: int = 64,
        trans_func: str = "bottleneck_transform",
        stride_1x1: bool = False,
        inplace_relu: bool = True,
        num_block_temp_kernel: Sequence[Sequence[int]] = ((3,), (4,), (6,), (3,)),
        spatial_strides: Sequence[Sequence[int]] = ((1,), (2,), (2,), (2,)),
        spatial_dilations: Sequence[Sequence[int]] = ((1,), (1,), (1,), (1,)),
        nonlocal_location: Sequence[Sequence[Sequence[int]]] = (((),), ((),), ((),), ((),)),
        nonlocal_group: Sequence[Sequence[int]] = ((1,), (1,), (1,), (1,)),
        nonlocal_pool: Sequence[Sequence[Sequence[int]]] = ((None,),) * 4,
        nonlocal_instantiation: str = "dot_product",
        nonlocal_use_bn: bool = True,
        norm_module: NormFactory = nn.BatchNorm3d,
        head_pool_size: Optional[Sequence[Optional[Sequence[int]]]] = None,
        final_pool: Sequence[str] = ("avg", "avg"),
        dropout_rate: float = 0.5,
        head_act: str = "softmax",
        stem_func: str = "resnet_stem",
        stem_pool_pad: bool = True,
        temporal_pool_after_res2: bool = True,
        slowfast: Optional[dict] = None,
        detection: Optional[dict] = None,
        fc_init_std: float = 0.01,
        zero_init_final_bn: bool = False,
    ) -> None:
        super().__init__()
        if arch not in TEMPORAL_KERNEL_BASIS:
            raise ValueError(
                f"MODEL.ARCH must be one of {sorted(TEMPORAL_KERNEL_BASIS)}, got {arch!r}"
            )
        if depth not in MODEL_STAGE_DEPTH:
            raise ValueError(
                f"RESNET.DEPTH must be one of {sorted(MODEL_STAGE_DEPTH)}, got {depth}"
            )
        kernels = TEMPORAL_KERNEL_BASIS[arch]
        n = len(kernels[0])
        if (n == 2) != (slowfast is not None):
            raise ValueError(
                f"MODEL.ARCH {arch!r} has {n} pathway(s); the SlowFast options must be given "
                "exactly for two pathways"
            )
        if len(input_channels) < n:
            raise ValueError(
                f"DATA.INPUT_CHANNEL_NUM needs {n} value(s) for MODEL.ARCH {arch!r}, "
                f"got {list(input_channels)}"
            )
        self.arch = arch
        self.num_pathways = n
        beta_inv = slowfast["beta_inv"] if slowfast else 1
        # Channel divisor per pathway (the Fast pathway is 1 / beta_inv as wide).
        div = [1, beta_inv][:n]
        dim_inner = num_groups * width_per_group

        self.s1 = VideoModelStem(
            dim_in=list(input_channels[:n]),
            dim_out=[width_per_group // div[p] for p in range(n)],
            kernel=[[kernels[0][p][0], 7, 7] for p in range(n)],
            stride=[[1, 2, 2]] * n,
            padding=[[kernels[0][p][0] // 2, 3, 3] for p in range(n)],
            inplace_relu=inplace_relu,
            norm_module=norm_module,
            stem_func_name=stem_func,
            pool_pad=stem_pool_pad,
        )
        # Channels entering the next stage, per pathway.
        dims = [width_per_group // div[p] for p in range(n)]
        if slowfast:
            dims[0] += self._add_fusion("s1_fuse", dims[1], slowfast, inplace_relu, norm_module)
        self.stage_names = ["s1"]
        pool1 = POOL1[arch]
        for k, num_blocks in enumerate(MODEL_STAGE_DEPTH[depth]):
            name = f"s{k + 2}"
            dims_out = [width_per_group * _OUT_MULT[k] // div[p] for p in range(n)]
            stage = ResStage(
                dim_in=dims,
                dim_out=dims_out,
                dim_inner=[dim_inner * _INNER_MULT[k] // div[p] for p in range(n)],
                temp_kernel_sizes=kernels[k + 1],
                stride=spatial_strides[k],
                num_blocks=[num_blocks] * n,
                num_groups=[num_groups] * n,
                num_block_temp_kernel=num_block_temp_kernel[k],
                nonlocal_inds=nonlocal_location[k],
                nonlocal_group=nonlocal_group[k],
                nonlocal_pool=nonlocal_pool[k],
                instantiation=nonlocal_instantiation,
                trans_func_name=trans_func,
                stride_1x1=stride_1x1,
                inplace_relu=inplace_relu,
                dilation=spatial_dilations[k],
                norm_module=norm_module,
                nonlocal_use_bn=nonlocal_use_bn,
            )
            self.add_module(name, stage)
            self.stage_names.append(name)
            dims = list(dims_out)
            if slowfast and k < 3:
                fuse = f"{name}_fuse"
                dims[0] += self._add_fusion(fuse, dims[1], slowfast, inplace_relu, norm_module)
            if k == 0:
                # The temporal max pooling after res2 (c2d, i3d); identity elsewhere.
                self.pool_names = []
                for p in range(n):
                    if temporal_pool_after_res2 and any(s > 1 for s in pool1[p]):
                        pool = nn.MaxPool3d(kernel_size=pool1[p], stride=pool1[p])
                        self.add_module(f"pathway{p}_pool", pool)
                        self.pool_names.append(f"pathway{p}_pool")
                    else:
                        self.pool_names.append(None)

        self.enable_detection = detection is not None
        if detection is not None:
            if head_pool_size is None:
                raise ValueError("a detection head needs head_pool_size ([T, 1, 1] per pathway)")
            res = int(detection["resolution"])
            self.head = ResNetRoIHead(
                dim_in=dims,
                num_classes=num_classes,
                pool_size=head_pool_size,
                resolution=[[res, res]] * n,
                scale_factor=[detection["scale_factor"]] * n,
                dropout_rate=dropout_rate,
                act_func=head_act,
                aligned=detection["aligned"],
            )
        else:
            self.head = ResNetBasicHead(
                dim_in=dims,
                num_classes=num_classes,
                pool_size=head_pool_size if head_pool_size is not None else [None] * n,
                pool_type=final_pool,
                dropout_rate=dropout_rate,
                act_func=head_act,
            )
        init_weights(self, fc_init_std, zero_init_final_bn)

    def _add_fusion(
        self, name: str, fast_dim: int, sf: dict, inplace_relu: bool, norm_module: NormFactory
    ) -> int:
        fuse = FuseFastToSlow(
            fast_dim,
            sf["fusion_conv_channel_ratio"],
            sf["fusion_kernel"],
            sf["alpha"],
            inplace_relu=inplace_relu,
            norm_module=norm_module,
            fusion_bn=sf.get("fusion_bn", True),
            fusion_relu=sf.get("fusion_relu", True),
        )
        self.add_module(name, fuse)
        return fuse.dim_out

    def forward_features(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        """Stem, stages, fusions and the pooling after res2: the per-pathway res5 features."""
        if len(x) != self.num_pathways:
            raise ValueError(
                f"{type(self).__name__} ({self.arch}) expects a list of {self.num_pathways} "
                f"pathway tensor(s), got {len(x)}"
            )
        x = list(x)
        for name in self.stage_names:
            x = self._modules[name](x)
            fuse = self._modules.get(f"{name}_fuse")
            if fuse is not None:
                x = fuse(x)
            if name == "s2":
                x = [
                    x[p] if m is None else self._modules[m](x[p])
                    for p, m in enumerate(self.pool_names)
                ]
        return x

    def forward(self, x: List[torch.Tensor], bboxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        features = self.forward_features(x)
        if self.enable_detection:
            if bboxes is None:
                raise ValueError("a detection model (DETECTION.ENABLE) needs bboxes")
            return self.head(features, bboxes)
        return self.head(features)


def _per_pathway(value: Sequence, n: int, key: str) -> List[list]:
    """Per-stage spec with one entry per pathway; a one-pathway spec is repeated for ``n``."""
    stages = [list(stage) for stage in value]
    if len(stages) != 4:
        raise ValueError(f"{key} needs 4 stages (res2..res5), got {len(stages)}: {list(value)}")
    out = []
    for stage in stages:
        if len(stage) == n:
            out.append(stage)
        elif len(stage) == 1:
            out.append(stage * n)
        else:
            raise ValueError(f"{key} needs one value per pathway ({n}) in each stage, got {value}")
    return out


def _crop_size(cfg) -> int:
    legacy = cfg.DATA.get("CROP_SIZE", None)
    return int(legacy) if legacy is not None else int(cfg.DATA.TRAIN_CROP_SIZE)


def _head_frames(cfg, n: int) -> List[int]:
    """Frames each pathway's head pooling is sized for: what one training forward receives.

    Without PGT: ``DATA.NUM_FRAMES`` (SlowFast: that of the Fast pathway, the Slow one has
    ``NUM_FRAMES // ALPHA``). With ``PGT.ENABLE`` a forward receives one step,
    ``PGT.STEP_LEN[p]`` frames.
    """
    alpha = cfg.SLOWFAST.ALPHA
    if cfg.get("PGT") is not None and cfg.PGT.ENABLE:
        steps = list(cfg.PGT.STEP_LEN)
        if n == 2:
            return [steps[0], steps[1] if len(steps) > 1 else steps[0] * alpha]
        return [steps[0]]
    if n == 2:
        return [cfg.DATA.NUM_FRAMES // alpha, cfg.DATA.NUM_FRAMES]
    return [cfg.DATA.NUM_FRAMES]


def video_resnet_kwargs(cfg, arch: Optional[str] = None, no_pool: bool = False) -> dict:
    """Translate a config into :class:`VideoResNet` arguments (the only place that reads cfg)."""
    arch = arch or cfg.MODEL.ARCH
    if arch not in TEMPORAL_KERNEL_BASIS:
        raise ValueError(f"MODEL.ARCH must be one of {sorted(TEMPORAL_KERNEL_BASIS)}, got {arch!r}")
    n = len(TEMPORAL_KERNEL_BASIS[arch][0])
    pool1 = POOL1[arch]
    crop = _crop_size(cfg)
    frames = _head_frames(cfg, n)
    detection = None
    if cfg.DETECTION.ENABLE:
        detection = {
            "resolution": cfg.DETECTION.ROI_XFORM_RESOLUTION,
            "scale_factor": cfg.DETECTION.SPATIAL_SCALE_FACTOR,
            "aligned": cfg.DETECTION.ALIGNED,
        }
    strides = _per_pathway(cfg.RESNET.SPATIAL_STRIDES, n, "RESNET.SPATIAL_STRIDES")
    head_pool = []
    for p in range(n):
        # Stem conv and max pool stride 2 each, then the stages' strides (32 for PySlowFast's
        # defaults, where its builder hard-codes crop // 32).
        stride = 4 * math.prod(stage[p] for stage in strides)
        temporal = frames[p] if no_pool else frames[p] // pool1[p][0]
        spatial = (
            [1, 1] if detection else [crop // stride // pool1[p][1], crop // stride // pool1[p][2]]
        )
        if min(spatial) < 1:
            raise ValueError(
                f"DATA.TRAIN_CROP_SIZE {crop} is smaller than the network's spatial stride "
                f"{stride * max(pool1[p][1:])} (stem 4 x RESNET.SPATIAL_STRIDES x pool): the "
                f"head would pool 0 pixels; use a larger crop or smaller SPATIAL_STRIDES"
            )
        head_pool.append([temporal] + spatial)
    nl_pool = [
        list(stage)[:n] if len(stage) >= n else list(stage) * n for stage in cfg.NONLOCAL.POOL
    ]
    slowfast = None
    if n == 2:
        slowfast = {
            "alpha": cfg.SLOWFAST.ALPHA,
            "beta_inv": cfg.SLOWFAST.BETA_INV,
            "fusion_conv_channel_ratio": cfg.SLOWFAST.FUSION_CONV_CHANNEL_RATIO,
            "fusion_kernel": cfg.SLOWFAST.FUSION_KERNEL_SZ,
            "fusion_bn": cfg.SLOWFAST.get("FUSION_BN", True),
            "fusion_relu": cfg.SLOWFAST.get("FUSION_RELU", True),
        }
    return {
        "arch": arch,
        "depth": cfg.RESNET.DEPTH,
        "input_channels": list(cfg.DATA.INPUT_CHANNEL_NUM),
        "num_classes": cfg.MODEL.NUM_CLASSES,
        "num_groups": cfg.RESNET.NUM_GROUPS,
        "width_per_group": cfg.RESNET.WIDTH_PER_GROUP,
        "trans_func": cfg.RESNET.TRANS_FUNC,
        "stride_1x1": cfg.RESNET.STRIDE_1X1,
        "inplace_relu": cfg.RESNET.INPLACE_RELU,
        "num_block_temp_kernel": _per_pathway(
            cfg.RESNET.NUM_BLOCK_TEMP_KERNEL, n, "RESNET.NUM_BLOCK_TEMP_KERNEL"
        ),
        "spatial_strides": _per_pathway(cfg.RESNET.SPATIAL_STRIDES, n, "RESNET.SPATIAL_STRIDES"),
        "spatial_dilations": _per_pathway(
            cfg.RESNET.SPATIAL_DILATIONS, n, "RESNET.SPATIAL_DILATIONS"
        ),
        "nonlocal_location": _per_pathway(cfg.NONLOCAL.LOCATION, n, "NONLOCAL.LOCATION"),
        "nonlocal_group": _per_pathway(cfg.NONLOCAL.GROUP, n, "NONLOCAL.GROUP"),
        "nonlocal_pool": nl_pool,
        "nonlocal_instantiation": cfg.NONLOCAL.INSTANTIATION,
        "nonlocal_use_bn": cfg.NONLOCAL.get("USE_BN", True),
        "norm_module": get_norm_from_cfg(cfg),
        "head_pool_size": head_pool,
        "final_pool": list(cfg.MODEL.get("FINAL_POOL", ["avg", "avg"])),
        "dropout_rate": cfg.MODEL.DROPOUT_RATE,
        "head_act": cfg.MODEL.HEAD_ACT,
        "stem_func": cfg.RESNET.get("STEM_FUNC", "resnet_stem"),
        "stem_pool_pad": cfg.RESNET.get("STEM_POOL_PAD", True),
        "temporal_pool_after_res2": not no_pool,
        "slowfast": slowfast,
        "detection": detection,
        "fc_init_std": cfg.MODEL.FC_INIT_STD,
        "zero_init_final_bn": cfg.RESNET.ZERO_INIT_FINAL_BN,
    }


def _check_pathways(cfg, expected: int, name: str) -> None:
    n = len(TEMPORAL_KERNEL_BASIS.get(cfg.MODEL.ARCH, [[None]])[0])
    if cfg.MODEL.ARCH in TEMPORAL_KERNEL_BASIS and n != expected:
        raise ValueError(
            f"MODEL.MODEL_NAME {name!r} needs a {expected}-pathway MODEL.ARCH, got "
            f"{cfg.MODEL.ARCH!r}"
        )


@MODEL_REGISTRY.register()
class ResNet(VideoResNet):
    """Single-pathway ResNet (C2D, I3D, Slow, with or without non-local blocks).

    Feichtenhofer et al., "SlowFast networks for video recognition", ICCV 2019; Wang et al.,
    "Non-local neural networks", CVPR 2018.
    """

    def __init__(self, cfg) -> None:
        _check_pathways(cfg, 1, "ResNet")
        super().__init__(**video_resnet_kwargs(cfg))


@MODEL_REGISTRY.register()
class ResNet_nopool(VideoResNet):  # noqa: N801 (PySlowFast's config name)
    """``ResNet`` without the temporal max pooling after res2 (``MODEL_NAME: ResNet_nopool``)."""

    def __init__(self, cfg) -> None:
        _check_pathways(cfg, 1, "ResNet_nopool")
        super().__init__(**video_resnet_kwargs(cfg, no_pool=True))


@MODEL_REGISTRY.register()
class SlowFast(VideoResNet):
    """SlowFast network: a Slow and a Fast pathway with Fast-to-Slow lateral fusions.

    Feichtenhofer et al., "SlowFast networks for video recognition", ICCV 2019.
    """

    def __init__(self, cfg) -> None:
        _check_pathways(cfg, 2, "SlowFast")
        super().__init__(**video_resnet_kwargs(cfg))
