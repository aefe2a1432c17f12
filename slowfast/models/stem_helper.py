"""Stems: the first convolution, norm, ReLU and spatial max pooling of each pathway.

``VideoModelStem`` holds one stem per pathway as ``pathway{p}_stem`` (PySlowFast's names, so the
state-dict keys are ``s1.pathway0_stem.conv.weight``, ``s1.pathway0_stem.bn.running_mean``...).
"""

from typing import List, Sequence

import torch
import torch.nn as nn

from slowfast.models.batchnorm_helper import NormFactory


class ResNetBasicStem(nn.Module):
    """Conv (``kernel``, ``stride``, ``padding``), norm, ReLU, then a [1, 3, 3] max pool with
    stride [1, 2, 2] (padded by [0, 1, 1] when ``pool_pad``, else unpadded).

    ``temporal_kernel`` (the conv's temporal size) is exposed for wrappers that need it.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        inplace_relu: bool = True,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        norm_module: NormFactory = nn.BatchNorm3d,
        pool_pad: bool = True,
    ) -> None:
        super().__init__()
        self.temporal_kernel = int(kernel[0])
        self.conv = nn.Conv3d(
            dim_in, dim_out, list(kernel), stride=list(stride), padding=list(padding), bias=False
        )
        self.bn = norm_module(num_features=dim_out, eps=eps, momentum=bn_mmt)
        self.relu = nn.ReLU(inplace_relu)
        self.pool_layer = nn.MaxPool3d(
            kernel_size=[1, 3, 3], stride=[1, 2, 2], padding=[0, 1, 1] if pool_pad else [0, 0, 0]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


_STEM_FUNCS = {"resnet_stem": ResNetBasicStem}


def get_stem_func(name: str) -> type:
    """The stem class for ``RESNET.STEM_FUNC``."""
    if name not in _STEM_FUNCS:
        raise ValueError(f"RESNET.STEM_FUNC must be one of {sorted(_STEM_FUNCS)}, got {name!r}")
    return _STEM_FUNCS[name]


class VideoModelStem(nn.Module):
    """One stem per pathway; takes and returns a list with one tensor per pathway."""

    def __init__(
        self,
        dim_in: Sequence[int],
        dim_out: Sequence[int],
        kernel: Sequence[Sequence[int]],
        stride: Sequence[Sequence[int]],
        padding: Sequence[Sequence[int]],
        inplace_relu: bool = True,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        norm_module: NormFactory = nn.BatchNorm3d,
        stem_func_name: str = "resnet_stem",
        pool_pad: bool = True,
    ) -> None:
        super().__init__()
        lengths = {len(dim_in), len(dim_out), len(kernel), len(stride), len(padding)}
        if len(lengths) != 1:
            raise ValueError(
                "VideoModelStem: dim_in, dim_out, kernel, stride and padding need one entry per "
                f"pathway, got lengths {len(dim_in)}, {len(dim_out)}, {len(kernel)}, "
                f"{len(stride)}, {len(padding)}"
            )
        self.num_pathways = len(dim_in)
        stem_func = get_stem_func(stem_func_name)
        for p in range(self.num_pathways):
            stem = stem_func(
                dim_in[p],
                dim_out[p],
                kernel[p],
                stride[p],
                padding[p],
                inplace_relu=inplace_relu,
                eps=eps,
                bn_mmt=bn_mmt,
                norm_module=norm_module,
                pool_pad=pool_pad,
            )
            self.add_module(f"pathway{p}_stem", stem)

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(x) != self.num_pathways:
            raise ValueError(f"expected {self.num_pathways} pathway input(s), got {len(x)}")
        return [getattr(self, f"pathway{p}_stem")(x[p]) for p in range(self.num_pathways)]
