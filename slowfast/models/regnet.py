"""RegNet-3D, the ablation backbone of the PGT paper (``MODEL_NAME: RegNet``, ``REGNET.DEPTH``).

The architecture and the backbone's state-dict names are those of the PGT release's RegNet:
a [1, 3, 3] stride-2 stem conv (``conv1``, ``bn1``, no max pooling), four stages ``layer1`` ..
``layer4`` of bottleneck blocks whose first block halves the resolution (``downsample.0`` conv
and ``downsample.1`` norm on the shortcut), grouped 3x3 convolutions, and temporal kernels of 3
on the first conv of every block of ``layer3`` and ``layer4`` (1 before). The head is this
project's :class:`ResNetBasicHead` with global pooling (``head.projection``; the release calls
it ``fc``), so ``MODEL.HEAD_ACT``, ``MODEL.FINAL_POOL`` and ``MODEL.DROPOUT_RATE`` apply as for
the ResNet family, and the output in eval mode is the release's (activation of the globally
pooled features).

Temporal convolutions are padded by ``kernel // 2``, so a whole-clip forward keeps the frame
count; progressive training supplies its carried frames from outside the model.
"""

from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from slowfast.models.batchnorm_helper import NormFactory, get_norm_from_cfg
from slowfast.models.build import MODEL_REGISTRY
from slowfast.models.head_helper import ResNetBasicHead
from slowfast.models.weight_init_helper import FINAL_BN_ATTR, init_weights

# Per ``REGNET.DEPTH``: blocks per stage, widths per stage, number of groups of the 3x3 convs,
# bottleneck ratio, stem width (the release's table). The release also lists a "4G" variant
# (depths 2, 5, 14, 2; widths 80, 240, 560, 1360; 24 groups; stem 48) that cannot be built:
# 24 groups do not divide 80 channels. It is refused with that reason.
REGNET_VARIANTS: Dict[str, Dict[str, object]] = {
    "400M": {
        "depths": (1, 2, 7, 12),
        "widths": (32, 64, 160, 384),
        "groups": 16,
        "bottleneck_ratio": 1,
        "stem_width": 24,
    },
}
_UNBUILDABLE = {"4G": "the PGT release's 4G table puts 80 channels in 24 groups"}

# Temporal kernel of the first conv of the blocks of each stage.
STAGE_TEMPORAL_KERNELS = (1, 1, 3, 3)


class RegNetBottleneck(nn.Module):
    """``relu(shortcut(x) + bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))))``.

    ``conv1``: [T, 1, 1]; ``conv2``: [1, 3, 3] with ``groups`` groups and the spatial stride;
    ``conv3``: [1, 1, 1]. The shortcut is ``downsample`` (strided 1x1 conv + norm) when given.
    ``temp_kernel_size`` is exposed for wrappers, as on ``ResBlock``.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        stride: int,
        groups: int,
        bottleneck_ratio: int,
        temp_kernel_size: int,
        norm_module: NormFactory = nn.BatchNorm3d,
        downsample: bool = False,
    ) -> None:
        super().__init__()
        inner = dim_out // bottleneck_ratio
        if inner % groups != 0:
            raise ValueError(f"RegNet: {inner} channels cannot be split into {groups} groups")
        self.temp_kernel_size = temp_kernel_size
        self.conv1 = nn.Conv3d(
            dim_in,
            inner,
            kernel_size=[temp_kernel_size, 1, 1],
            padding=[temp_kernel_size // 2, 0, 0],
            bias=False,
        )
        self.bn1 = norm_module(num_features=inner)
        self.conv2 = nn.Conv3d(
            inner,
            inner,
            kernel_size=[1, 3, 3],
            stride=[1, stride, stride],
            padding=[0, 1, 1],
            groups=groups,
            bias=False,
        )
        self.bn2 = norm_module(num_features=inner)
        self.conv3 = nn.Conv3d(inner, dim_out, kernel_size=1, bias=False)
        self.bn3 = norm_module(num_features=dim_out)
        setattr(self.bn3, FINAL_BN_ATTR, True)
        self.relu = nn.ReLU(inplace=True)
        self.relu_final = nn.ReLU(inplace=True)
        if downsample:
            self.downsample = nn.Sequential(
                nn.Conv3d(dim_in, dim_out, kernel_size=1, stride=[1, stride, stride], bias=False),
                norm_module(num_features=dim_out),
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu_final(out + shortcut)


class RegNet3D(nn.Module):
    """RegNet-3D from explicit arguments (see :data:`REGNET_VARIANTS`).

    Args:
        depth: ``REGNET.DEPTH``, a key of :data:`REGNET_VARIANTS`.
        num_classes: outputs of the head.
        input_channels: channels of the input clip.
        norm_module: norm factory (``BN.NORM_TYPE``).
        dropout_rate: head dropout.
        head_act: evaluation activation, "softmax", "sigmoid" or "none".
        final_pool: the head's [spatial, temporal] pooling, "avg" or "max" each.
        fc_init_std: std of the head's projection at initialisation.
        zero_init_final_bn: start each residual branch at zero (the release always does).
    """

    def __init__(
        self,
        depth: str,
        num_classes: int,
        input_channels: int = 3,
        norm_module: NormFactory = nn.BatchNorm3d,
        dropout_rate: float = 0.5,
        head_act: str = "softmax",
        final_pool: Sequence[str] = ("avg", "avg"),
        fc_init_std: float = 0.01,
        zero_init_final_bn: bool = True,
    ) -> None:
        super().__init__()
        if depth not in REGNET_VARIANTS:
            why = f" ({_UNBUILDABLE[depth]})" if depth in _UNBUILDABLE else ""
            raise ValueError(
                f"REGNET.DEPTH must be one of {sorted(REGNET_VARIANTS)}, got {depth!r}{why}"
            )
        spec = REGNET_VARIANTS[depth]
        self.depth = depth
        stem_width = int(spec["stem_width"])
        self.conv1 = nn.Conv3d(
            input_channels,
            stem_width,
            kernel_size=[1, 3, 3],
            stride=[1, 2, 2],
            padding=[0, 1, 1],
            bias=False,
        )
        self.bn1 = norm_module(num_features=stem_width)
        self.relu = nn.ReLU(inplace=True)
        dim_in = stem_width
        self.stage_names: List[str] = []
        for k, (blocks, width) in enumerate(zip(spec["depths"], spec["widths"])):
            layer = nn.Sequential(
                *[
                    RegNetBottleneck(
                        dim_in if i == 0 else width,
                        width,
                        stride=2 if i == 0 else 1,
                        groups=int(spec["groups"]),
                        bottleneck_ratio=int(spec["bottleneck_ratio"]),
                        temp_kernel_size=STAGE_TEMPORAL_KERNELS[k],
                        norm_module=norm_module,
                        downsample=i == 0,
                    )
                    for i in range(blocks)
                ]
            )
            self.add_module(f"layer{k + 1}", layer)
            self.stage_names.append(f"layer{k + 1}")
            dim_in = width
        self.head = ResNetBasicHead(
            dim_in=[dim_in],
            num_classes=num_classes,
            pool_size=[None],
            pool_type=final_pool,
            dropout_rate=dropout_rate,
            act_func=head_act,
        )
        init_weights(self, fc_init_std, zero_init_final_bn)

    def forward(self, x: List[torch.Tensor]) -> torch.Tensor:
        if len(x) != 1:
            raise ValueError(f"RegNet expects a list with one pathway tensor, got {len(x)}")
        out = self.relu(self.bn1(self.conv1(x[0])))
        for name in self.stage_names:
            out = self._modules[name](out)
        return self.head([out])


@MODEL_REGISTRY.register()
class RegNet(RegNet3D):
    """RegNet-3D of the PGT paper's ablations, variant ``REGNET.DEPTH`` ("400M").

    Radosavovic et al., "Designing network design spaces", CVPR 2020, inflated to 3D as in
    Pang et al., "PGT: a progressive method for training models on long videos", CVPR 2021.
    """

    def __init__(self, cfg) -> None:
        if cfg.MODEL.ARCH in cfg.MODEL.MULTI_PATHWAY_ARCH:
            raise ValueError(
                f"MODEL.MODEL_NAME 'RegNet' has one pathway; MODEL.ARCH {cfg.MODEL.ARCH!r} has two"
            )
        super().__init__(
            depth=str(cfg.REGNET.DEPTH),
            num_classes=cfg.MODEL.NUM_CLASSES,
            input_channels=int(cfg.DATA.INPUT_CHANNEL_NUM[0]),
            norm_module=get_norm_from_cfg(cfg),
            dropout_rate=cfg.MODEL.DROPOUT_RATE,
            head_act=cfg.MODEL.HEAD_ACT,
            final_pool=list(cfg.MODEL.get("FINAL_POOL", ["avg", "avg"])),
            fc_init_std=cfg.MODEL.FC_INIT_STD,
        )
