"""Normalisation layers for 3D feature maps and the factory that picks one from ``BN.NORM_TYPE``.

Every layer here is built as ``norm(num_features, eps=..., momentum=...)``; a *norm factory* is any
callable with that signature (``nn.BatchNorm3d`` is one).

- ``batchnorm``: ``nn.BatchNorm3d``.
- ``frozen_batchnorm``: :class:`FrozenBatchNorm3d`, fixed statistics and affine terms (buffers).
- ``sub_batchnorm``: :class:`SubBatchNorm3d`, statistics computed on ``BN.NUM_SPLITS`` parts of
  the batch; state-dict keys ``weight``, ``bias``, ``bn.*``, ``split_bn.*`` as in PySlowFast.
- ``sync_batchnorm``: ``nn.SyncBatchNorm`` over groups of ``BN.NUM_SYNC_DEVICES`` consecutive
  ranks of a machine (PySlowFast's meaning: 1, the default, keeps the statistics per device)
  when a process group is initialised and CUDA is available; plain ``nn.BatchNorm3d``
  otherwise (said once in the log).
"""

import logging
from functools import partial
from typing import Callable

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

NormFactory = Callable[..., nn.Module]

NORM_TYPES = ("batchnorm", "frozen_batchnorm", "sub_batchnorm", "sync_batchnorm")


class FrozenBatchNorm3d(nn.Module):
    """Batch norm with frozen statistics and affine parameters, all held as buffers.

    The output is ``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` in train and
    eval mode alike; nothing is learnt or updated. The state-dict keys (``weight``, ``bias``,
    ``running_mean``, ``running_var``) are those of ``nn.BatchNorm3d`` without
    ``num_batches_tracked``, which is dropped on load so a BatchNorm3d checkpoint loads here.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(
                f"FrozenBatchNorm3d expects a 5D input (N, C, T, H, W), got {x.dim()}D"
            )
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1, 1) + shift.view(1, -1, 1, 1, 1)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
    ):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class SubBatchNorm3d(nn.Module):
    """Batch norm whose training statistics are computed on ``num_splits`` parts of the batch.

    In training, the batch of N clips is viewed as N / num_splits clips of num_splits * C channels
    (so clip i belongs to part i % num_splits) and normalised by ``split_bn``; in evaluation ``bn`` is used,
    whose statistics :meth:`aggregate_stats` sets from those of the parts. One pair of affine
    parameters (``weight``, ``bias``) is shared, as in PySlowFast.
    """

    def __init__(
        self, num_features: int, num_splits: int, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if num_splits < 1:
            raise ValueError(f"BN.NUM_SPLITS must be >= 1, got {num_splits}")
        self.num_splits = num_splits
        self.num_features = num_features
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.bn = nn.BatchNorm3d(num_features, eps=eps, momentum=momentum, affine=False)
        self.split_bn = nn.BatchNorm3d(
            num_features * num_splits, eps=eps, momentum=momentum, affine=False
        )

    @torch.no_grad()
    def aggregate_stats(self) -> None:
        """Set ``bn``'s running mean and variance from those of the parts (call before eval).

        The variance is the mean of the parts' variances plus the variance of their means.
        """
        means = self.split_bn.running_mean.view(self.num_splits, -1)
        variances = self.split_bn.running_var.view(self.num_splits, -1)
        mean = means.mean(0)
        var = variances.mean(0) + ((means - mean) ** 2).mean(0)
        self.bn.running_mean.copy_(mean)
        self.bn.running_var.copy_(var)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            n, c, t, h, w = x.shape
            if n % self.num_splits != 0:
                raise ValueError(
                    f"SubBatchNorm3d: batch size {n} is not divisible by BN.NUM_SPLITS "
                    f"{self.num_splits}"
                )
            x = self.split_bn(x.reshape(n // self.num_splits, c * self.num_splits, t, h, w))
            x = x.reshape(n, c, t, h, w)
        else:
            x = self.bn(x)
        return x * self.weight.view(-1, 1, 1, 1) + self.bias.view(-1, 1, 1, 1)


_sync_fallback_logged = False
_sync_groups: dict = {}


def sync_group_ranks(world: int, local_world: int, num_sync_devices: int) -> list:
    """The rank lists of the synchronised batch-norm groups: ``num_sync_devices`` consecutive
    ranks each, within a machine of ``local_world`` ranks."""
    n = int(num_sync_devices)
    if n < 1 or local_world % n != 0:
        raise ValueError(
            f"BN.NUM_SYNC_DEVICES = {num_sync_devices} must divide the {local_world} devices of "
            "a machine (NUM_GPUS)"
        )
    return [list(range(start, start + n)) for start in range(0, world, n)]


def _process_group(num_sync_devices: int):
    """This rank's group (every rank creates every group, in the same order, once)."""
    dist = torch.distributed
    key = (dist.get_world_size(), int(num_sync_devices))
    if key not in _sync_groups:
        local_world = torch.cuda.device_count() or 1
        local_world = min(local_world, dist.get_world_size())
        groups = [dist.new_group(r) for r in sync_group_ranks(key[0], local_world, key[1])]
        _sync_groups[key] = groups[dist.get_rank() // int(num_sync_devices)]
    return _sync_groups[key]


def _sync_batchnorm(
    num_features: int, eps: float = 1e-5, momentum: float = 0.1, num_sync_devices: int = 1
) -> nn.Module:
    global _sync_fallback_logged
    dist = torch.distributed
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed and torch.cuda.is_available() and num_sync_devices > 1:
        group = _process_group(num_sync_devices)
        return nn.SyncBatchNorm(num_features, eps=eps, momentum=momentum, process_group=group)
    if not _sync_fallback_logged:
        why = (
            "BN.NUM_SYNC_DEVICES 1 keeps the statistics per device (PySlowFast's meaning)"
            if num_sync_devices <= 1
            else "it needs a multi-process CUDA run"
        )
        logger.info("BN.NORM_TYPE sync_batchnorm: %s; using BatchNorm3d", why)
        _sync_fallback_logged = True
    return nn.BatchNorm3d(num_features, eps=eps, momentum=momentum)


def get_norm(
    norm_type: str = "batchnorm", num_splits: int = 1, num_sync_devices: int = 1
) -> NormFactory:
    """The norm factory for ``BN.NORM_TYPE`` (``num_splits`` is ``BN.NUM_SPLITS``,
    ``num_sync_devices`` ``BN.NUM_SYNC_DEVICES``).

    Raises:
        ValueError: for an unknown ``norm_type``, naming ``BN.NORM_TYPE``.
    """
    if norm_type == "batchnorm":
        return nn.BatchNorm3d
    if norm_type == "frozen_batchnorm":
        return FrozenBatchNorm3d
    if norm_type == "sub_batchnorm":
        return partial(SubBatchNorm3d, num_splits=num_splits)
    if norm_type == "sync_batchnorm":
        return partial(_sync_batchnorm, num_sync_devices=int(num_sync_devices))
    raise ValueError(f"BN.NORM_TYPE must be one of {NORM_TYPES}, got {norm_type!r}")


def get_norm_from_cfg(cfg) -> NormFactory:
    """``get_norm(cfg.BN.NORM_TYPE, cfg.BN.NUM_SPLITS, cfg.BN.NUM_SYNC_DEVICES)``."""
    return get_norm(cfg.BN.NORM_TYPE, cfg.BN.NUM_SPLITS, cfg.BN.NUM_SYNC_DEVICES)


def aggregate_sub_bn_stats(module: nn.Module) -> int:
    """Call :meth:`SubBatchNorm3d.aggregate_stats` on every such layer; return how many."""
    count = 0
    for m in module.modules():
        if isinstance(m, SubBatchNorm3d):
            m.aggregate_stats()
            count += 1
    return count
