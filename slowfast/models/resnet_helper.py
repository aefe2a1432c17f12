"""Residual transforms, blocks and stages of the 3D ResNet family (C2D, I3D, Slow, SlowFast).

Names of submodules are PySlowFast's, so state-dict keys match its checkpoints:
``s2.pathway0_res0.branch1.weight``, ``.branch1_bn``, ``.branch2.a``, ``.a_bn``, ``.b``,
``.b_bn``, ``.c``, ``.c_bn``, and ``s4.pathway0_nonlocal1.conv_theta.weight``.
"""

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from slowfast.models.batchnorm_helper import NormFactory
from slowfast.models.nonlocal_helper import Nonlocal
from slowfast.models.weight_init_helper import FINAL_BN_ATTR


class BasicTransform(nn.Module):
    """``a``: [T, 3, 3] conv (spatial stride), norm, ReLU; ``b``: [1, 3, 3] conv (dilated), norm.

    ``dim_inner``, ``num_groups`` and ``stride_1x1`` are accepted for a uniform signature and
    unused, as in PySlowFast.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        temp_kernel_size: int,
        stride: int,
        dim_inner: Optional[int] = None,
        num_groups: int = 1,
        stride_1x1: bool = False,
        inplace_relu: bool = True,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        dilation: int = 1,
        norm_module: NormFactory = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        self.temp_kernel_size = temp_kernel_size
        self.a = nn.Conv3d(
            dim_in,
            dim_out,
            kernel_size=[temp_kernel_size, 3, 3],
            stride=[1, stride, stride],
            padding=[temp_kernel_size // 2, 1, 1],
            bias=False,
        )
        self.a_bn = norm_module(num_features=dim_out, eps=eps, momentum=bn_mmt)
        self.a_relu = nn.ReLU(inplace=inplace_relu)
        self.b = nn.Conv3d(
            dim_out,
            dim_out,
            kernel_size=[1, 3, 3],
            stride=[1, 1, 1],
            padding=[0, dilation, dilation],
            dilation=[1, dilation, dilation],
            bias=False,
        )
        self.b_bn = norm_module(num_features=dim_out, eps=eps, momentum=bn_mmt)
        setattr(self.b_bn, FINAL_BN_ATTR, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        return self.b_bn(self.b(x))


class BottleneckTransform(nn.Module):
    """``a``: [T, 1, 1] conv, norm, ReLU; ``b``: [1, 3, 3] conv (grouped, dilated), norm, ReLU;
    ``c``: [1, 1, 1] conv, norm. The spatial stride is on ``b`` (on ``a`` when ``stride_1x1``).
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        temp_kernel_size: int,
        stride: int,
        dim_inner: int,
        num_groups: int = 1,
        stride_1x1: bool = False,
        inplace_relu: bool = True,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        dilation: int = 1,
        norm_module: NormFactory = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        self.temp_kernel_size = temp_kernel_size
        str1x1, str3x3 = (stride, 1) if stride_1x1 else (1, stride)
        self.a = nn.Conv3d(
            dim_in,
            dim_inner,
            kernel_size=[temp_kernel_size, 1, 1],
            stride=[1, str1x1, str1x1],
            padding=[temp_kernel_size // 2, 0, 0],
            bias=False,
        )
        self.a_bn = norm_module(num_features=dim_inner, eps=eps, momentum=bn_mmt)
        self.a_relu = nn.ReLU(inplace=inplace_relu)
        self.b = nn.Conv3d(
            dim_inner,
            dim_inner,
            kernel_size=[1, 3, 3],
            stride=[1, str3x3, str3x3],
            padding=[0, dilation, dilation],
            groups=num_groups,
            dilation=[1, dilation, dilation],
            bias=False,
        )
        self.b_bn = norm_module(num_features=dim_inner, eps=eps, momentum=bn_mmt)
        self.b_relu = nn.ReLU(inplace=inplace_relu)
        self.c = nn.Conv3d(dim_inner, dim_out, kernel_size=[1, 1, 1], bias=False)
        self.c_bn = norm_module(num_features=dim_out, eps=eps, momentum=bn_mmt)
        setattr(self.c_bn, FINAL_BN_ATTR, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


_TRANS_FUNCS = {"bottleneck_transform": BottleneckTransform, "basic_transform": BasicTransform}


def get_trans_func(name: str) -> type:
    """The transform class for ``RESNET.TRANS_FUNC``."""
    if name not in _TRANS_FUNCS:
        raise ValueError(f"RESNET.TRANS_FUNC must be one of {sorted(_TRANS_FUNCS)}, got {name!r}")
    return _TRANS_FUNCS[name]


class ResBlock(nn.Module):
    """Residual block: ``relu(shortcut(x) + branch2(x))``.

    The shortcut is a strided [1, 1, 1] conv + norm (``branch1``, ``branch1_bn``) when the
    channels or the spatial size change, the identity otherwise. ``temp_kernel_size`` is the
    temporal kernel of ``branch2``'s first conv.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        temp_kernel_size: int,
        stride: int,
        trans_func: type,
        dim_inner: int,
        num_groups: int = 1,
        stride_1x1: bool = False,
        inplace_relu: bool = True,
        eps: float = 1e-5,
        bn_mmt: float = 0.1,
        dilation: int = 1,
        norm_module: NormFactory = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        self.temp_kernel_size = temp_kernel_size
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(
                dim_in, dim_out, kernel_size=1, stride=[1, stride, stride], bias=False
            )
            self.branch1_bn = norm_module(num_features=dim_out, eps=eps, momentum=bn_mmt)
        else:
            self.branch1 = None
        self.branch2 = trans_func(
            dim_in,
            dim_out,
            temp_kernel_size,
            stride,
            dim_inner,
            num_groups,
            stride_1x1=stride_1x1,
            inplace_relu=inplace_relu,
            eps=eps,
            bn_mmt=bn_mmt,
            dilation=dilation,
            norm_module=norm_module,
        )
        self.relu = nn.ReLU(inplace_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is not None:
            out = self.branch1_bn(self.branch1(x)) + self.branch2(x)
        else:
            out = x + self.branch2(x)
        return self.relu(out)


def block_temporal_kernels(
    kernel_basis: Sequence[int], num_blocks: int, num_block_temp_kernel: int
) -> List[int]:
    """Temporal kernel of each block of one pathway of a stage (PySlowFast's rule).

    The basis is repeated over the blocks and cut after ``num_block_temp_kernel`` blocks; the
    remaining blocks get 1. E.g. basis [3, 1], 6 blocks, 3 kept -> [3, 1, 3, 1, 1, 1].
    """
    if not 0 <= num_block_temp_kernel <= num_blocks:
        raise ValueError(
            f"RESNET.NUM_BLOCK_TEMP_KERNEL entry {num_block_temp_kernel} must be between 0 and "
            f"the stage's number of blocks ({num_blocks})"
        )
    kept = (list(kernel_basis) * num_blocks)[:num_block_temp_kernel]
    return kept + [1] * (num_blocks - num_block_temp_kernel)


class ResStage(nn.Module):
    """One stage (res2..res5) for every pathway.

    Pathway ``p`` has blocks ``pathway{p}_res{i}``; a non-local block ``pathway{p}_nonlocal{i}``
    follows block ``i`` when ``i`` is in ``nonlocal_inds[p]``. Only the first block of a pathway
    changes the channels or strides. Takes and returns a list with one tensor per pathway.

    Args:
        dim_in, dim_out, dim_inner: channels per pathway.
        stride: spatial stride per pathway (of the first block).
        temp_kernel_sizes: per pathway, the temporal kernel basis of the blocks.
        num_blocks: blocks per pathway.
        num_groups: groups of the 3x3 conv per pathway.
        num_block_temp_kernel: per pathway, how many blocks keep the basis (see
            :func:`block_temporal_kernels`).
        nonlocal_inds: per pathway, indices of blocks followed by a non-local block.
        nonlocal_group: per pathway, ``NONLOCAL.GROUP``.
        nonlocal_pool: per pathway, the non-local block's pooling of keys and values.
        dilation: spatial dilation per pathway.
        instantiation: non-local affinity normalisation.
        trans_func_name: ``RESNET.TRANS_FUNC``.
        nonlocal_use_bn: norm at the end of non-local blocks.
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        dim_out: Sequence[int],
        stride: Sequence[int],
        temp_kernel_sizes: Sequence[Sequence[int]],
        num_blocks: Sequence[int],
        dim_inner: Sequence[int],
        num_groups: Sequence[int],
        num_block_temp_kernel: Sequence[int],
        nonlocal_inds: Sequence[Sequence[int]],
        nonlocal_group: Sequence[int],
        nonlocal_pool: Sequence[Sequence[int]],
        dilation: Sequence[int],
        instantiation: str = "softmax",
        trans_func_name: str = "bottleneck_transform",
        stride_1x1: bool = False,
        inplace_relu: bool = True,
        norm_module: NormFactory = nn.BatchNorm3d,
        nonlocal_use_bn: bool = True,
    ) -> None:
        super().__init__()
        n = len(num_blocks)
        per_pathway = {
            "dim_in": dim_in,
            "dim_out": dim_out,
            "stride": stride,
            "temp_kernel_sizes": temp_kernel_sizes,
            "dim_inner": dim_inner,
            "num_groups": num_groups,
            "num_block_temp_kernel": num_block_temp_kernel,
            "nonlocal_inds": nonlocal_inds,
            "nonlocal_group": nonlocal_group,
            "dilation": dilation,
        }
        for name, value in per_pathway.items():
            if len(value) != n:
                raise ValueError(
                    f"ResStage: {name} has {len(value)} entries, expected one per pathway ({n})"
                )
        if len(nonlocal_pool) < n:
            raise ValueError(
                f"ResStage: nonlocal_pool (NONLOCAL.POOL) needs {n} entries, got {nonlocal_pool}"
            )
        self.num_pathways = n
        self.num_blocks = list(num_blocks)
        self.temp_kernel_sizes = [
            block_temporal_kernels(temp_kernel_sizes[p], num_blocks[p], num_block_temp_kernel[p])
            for p in range(n)
        ]
        trans_func = get_trans_func(trans_func_name)
        # Names of the modules applied in order, per pathway.
        self.pathway_module_names: List[List[str]] = []
        for p in range(n):
            names = []
            for i in range(num_blocks[p]):
                block = ResBlock(
                    dim_in[p] if i == 0 else dim_out[p],
                    dim_out[p],
                    self.temp_kernel_sizes[p][i],
                    stride[p] if i == 0 else 1,
                    trans_func,
                    dim_inner[p],
                    num_groups[p],
                    stride_1x1=stride_1x1,
                    inplace_relu=inplace_relu,
                    dilation=dilation[p],
                    norm_module=norm_module,
                )
                self.add_module(f"pathway{p}_res{i}", block)
                names.append(f"pathway{p}_res{i}")
                if i in nonlocal_inds[p]:
                    nln = Nonlocal(
                        dim_out[p],
                        dim_out[p] // 2,
                        nonlocal_pool[p],
                        instantiation=instantiation,
                        use_bn=nonlocal_use_bn,
                        group=nonlocal_group[p],
                        norm_module=norm_module,
                    )
                    self.add_module(f"pathway{p}_nonlocal{i}", nln)
                    names.append(f"pathway{p}_nonlocal{i}")
            self.pathway_module_names.append(names)

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(inputs) != self.num_pathways:
            raise ValueError(f"expected {self.num_pathways} pathway input(s), got {len(inputs)}")
        outputs = []
        for x, names in zip(inputs, self.pathway_module_names):
            for name in names:
                x = self._modules[name](x)
            outputs.append(x)
        return outputs
