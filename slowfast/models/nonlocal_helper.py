"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018)."""

from typing import Optional, Sequence

import torch
import torch.nn as nn

from slowfast.models.batchnorm_helper import NormFactory
from slowfast.models.weight_init_helper import FINAL_BN_ATTR

INSTANTIATIONS = ("dot_product", "softmax")


class Nonlocal(nn.Module):
    """Non-local block: ``x + norm(conv_out(attention(theta(x), phi(x'), g(x'))))``.

    ``x'`` is ``x`` max-pooled by ``pool_size`` (when any entry is > 1). The affinity
    ``theta^T phi`` is normalised by a softmax over keys after scaling by ``dim_inner ** -0.5``
    ("softmax") or divided by the number of keys ("dot_product").

    ``group`` > 1 splits the time axis into ``group`` consecutive chunks that attend only within
    themselves (PySlowFast's ``NONLOCAL.GROUP``, which it folds into the batch in ``ResStage``).
    Submodules (state-dict keys) are PySlowFast's: ``conv_theta``, ``conv_phi``, ``conv_g``,
    ``conv_out``, ``bn`` (absent when ``use_bn`` is False), ``pool`` (no parameters).
    """

    def __init__(
        self,
        dim: int,
        dim_inner: int,
        pool_size: Optional[Sequence[int]] = None,
        instantiation: str = "softmax",
        zero_init_final_norm: bool = True,
        use_bn: bool = True,
        group: int = 1,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        norm_module: NormFactory = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        if instantiation not in INSTANTIATIONS:
            raise ValueError(
                f"NONLOCAL.INSTANTIATION must be one of {INSTANTIATIONS}, got {instantiation!r}"
            )
        if group < 1:
            raise ValueError(f"NONLOCAL.GROUP must be >= 1, got {group}")
        self.dim = dim
        self.dim_inner = dim_inner
        self.instantiation = instantiation
        self.group = group
        self.use_bn = use_bn
        self.conv_theta = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_phi = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_g = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_out = nn.Conv3d(dim_inner, dim, kernel_size=1)
        if use_bn:
            self.bn = norm_module(num_features=dim, eps=norm_eps, momentum=norm_momentum)
            setattr(self.bn, FINAL_BN_ATTR, zero_init_final_norm)
        self.use_pool = pool_size is not None and any(s > 1 for s in pool_size)
        if self.use_pool:
            self.pool = nn.MaxPool3d(kernel_size=list(pool_size), stride=list(pool_size))

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        theta = self.conv_theta(x)
        kv = self.pool(x) if self.use_pool else x
        phi = self.conv_phi(kv).flatten(2)
        g = self.conv_g(kv).flatten(2)
        theta = theta.flatten(2)
        # (N, C, Q) x (N, C, K) -> (N, Q, K)
        affinity = torch.einsum("ncq,nck->nqk", theta, phi)
        if self.instantiation == "softmax":
            affinity = torch.softmax(affinity * (self.dim_inner**-0.5), dim=2)
        else:
            affinity = affinity / affinity.shape[2]
        # (N, Q, K) x (N, C, K) -> (N, C, Q)
        out = torch.einsum("nqk,nck->ncq", affinity, g)
        return out.reshape(n, self.dim_inner, t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        if self.group > 1:
            if t % self.group != 0:
                raise ValueError(
                    f"Nonlocal: {t} frames cannot be split into NONLOCAL.GROUP {self.group} groups"
                )
            # (N, C, T, H, W) -> (N * G, C, T / G, H, W), consecutive frames per group.
            folded = x.permute(0, 2, 1, 3, 4).reshape(n * self.group, t // self.group, c, h, w)
            folded = folded.permute(0, 2, 1, 3, 4)
        else:
            folded = x
        p = self.conv_out(self._attend(folded))
        if self.use_bn:
            p = self.bn(p)
        out = folded + p
        if self.group > 1:
            out = out.permute(0, 2, 1, 3, 4).reshape(n, t, c, h, w).permute(0, 2, 1, 3, 4)
        return out
