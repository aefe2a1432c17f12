"""Clip-level helpers shared by datasets: normalisation, spatial sampling, pathway packing."""

from __future__ import annotations

from typing import List, Sequence

import torch

from slowfast.datasets import transform


def tensor_normalize(
    tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float], channel_dim: int = -1
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` for uint8 input, ``(x - mean) / std`` for float input.

    ``mean`` and ``std`` hold one value per channel; channels are dimension ``channel_dim``
    (the last one, as in PySlowFast's ``(T, H, W, C)``; 0 for ``(C, T, H, W)``).
    """
    shape = [1] * tensor.dim()
    shape[channel_dim] = -1
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    if tensor.dtype == torch.uint8:  # one pass less: x * (1 / (255 std)) - mean / std
        return tensor.float().mul_(1.0 / (255.0 * std_t)).sub_(mean_t / std_t)
    return (tensor.float() - mean_t).div_(std_t)


def spatial_sampling(
    frames: torch.Tensor,
    spatial_idx: int = -1,
    min_scale: int = 256,
    max_scale: int = 320,
    crop_size: int = 224,
    random_horizontal_flip: bool = True,
    inverse_uniform_sampling: bool = False,
) -> torch.Tensor:
    """Spatial sampling of ``(C, T, H, W)`` frames.

    ``spatial_idx == -1`` (train): short side jittered in ``[min_scale, max_scale]``, random
    ``crop_size`` crop, random horizontal flip. ``spatial_idx`` in 0, 1, 2 (test): short side
    scaled to ``min_scale`` (no jitter: ``max_scale`` must equal it), then the uniform crop
    ``spatial_idx`` of ``crop_size`` along the long side.
    """
    if spatial_idx == -1:
        frames = transform.random_short_side_scale_jitter(
            frames, min_scale, max_scale, inverse_uniform_sampling
        )
        frames = transform.random_crop(frames, crop_size)
        if random_horizontal_flip:
            frames = transform.horizontal_flip(0.5, frames)
        return frames
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"spatial_idx must be -1, 0, 1 or 2, got {spatial_idx}")
    if min_scale != max_scale:
        raise ValueError(
            f"deterministic spatial sampling needs min_scale == max_scale, got {min_scale}, "
            f"{max_scale}"
        )
    frames = transform.short_side_scale(frames, min_scale)
    return transform.uniform_crop(frames, crop_size, spatial_idx)


def slow_pathway_index(num_frames: int, alpha: int) -> torch.Tensor:
    """Frames of the Slow pathway: ``linspace(0, T - 1, T // alpha)`` as longs
    (``0, 4, 8, 13, 17, 22, 26, 31`` for T = 32, alpha = 4)."""
    if num_frames // alpha < 1:
        raise ValueError(
            f"SLOWFAST.ALPHA ({alpha}) is larger than the clip's {num_frames} frames "
            "(DATA.NUM_FRAMES)"
        )
    return torch.linspace(0, num_frames - 1, num_frames // alpha).long()


def pack_frames(
    frames: torch.Tensor,
    num_pathways: int,
    alpha: int,
    reverse_channels: bool = False,
    strided_slow: bool = False,
) -> List[torch.Tensor]:
    """Split ``(C, T, H, W)`` frames into the model's pathway inputs.

    One pathway: ``[frames]``; two (SlowFast): ``[slow, fast]`` with ``slow`` the frames at
    :func:`slow_pathway_index`, or with ``strided_slow`` exactly every ``alpha``-th frame
    (``0, alpha, 2 alpha, ...``, ``T // alpha`` of them: PGT, where slow frame ``j`` must be
    fast frame ``alpha * j`` for the steps of both pathways to cover the same time).
    ``reverse_channels`` turns RGB into BGR (and back) first.
    """
    if reverse_channels:
        frames = frames.flip(0)
    if num_pathways == 1:
        return [frames]
    if num_pathways == 2:
        num_frames = frames.shape[1]
        if strided_slow:
            index = torch.arange(0, (num_frames // alpha) * alpha, alpha)
        else:
            index = slow_pathway_index(num_frames, alpha)
        return [torch.index_select(frames, 1, index), frames]
    raise ValueError(f"expected 1 or 2 pathways, got {num_pathways}")


def pack_pathway_output(cfg, frames: torch.Tensor) -> List[torch.Tensor]:
    """:func:`pack_frames` from the config: the pathways of ``MODEL.ARCH``, ``SLOWFAST.ALPHA``,
    ``DATA.REVERSE_INPUT_CHANNEL``; the Slow pathway is strided exactly when ``PGT.ENABLE``."""
    num_pathways = 2 if cfg.MODEL.ARCH in cfg.MODEL.MULTI_PATHWAY_ARCH else 1
    return pack_frames(
        frames,
        num_pathways,
        int(cfg.SLOWFAST.ALPHA),
        bool(cfg.DATA.REVERSE_INPUT_CHANNEL),
        strided_slow=bool(cfg.PGT.ENABLE),
    )
