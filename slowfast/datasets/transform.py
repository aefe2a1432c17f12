"""Spatial transforms of clips shaped ``(C, T, H, W)`` (or any ``(..., H, W)`` 4-D tensor).

PySlowFast's semantics, written with torch ops only. Random draws use torch's generator, which
DataLoader seeds per worker.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if not images.is_floating_point():
        images = images.float()
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)


def short_side_scale(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the short side is ``size``, keeping the aspect ratio (long side floored).

    Returned unchanged when the short side already is ``size``.
    """
    height, width = images.shape[-2], images.shape[-1]
    if min(height, width) == size:
        return images
    if width < height:
        new_height, new_width = int(math.floor(height / width * size)), size
    else:
        new_height, new_width = size, int(math.floor(width / height * size))
    return _resize(images, new_height, new_width)


def random_short_side_scale_jitter(
    images: torch.Tensor, min_size: int, max_size: int, inverse_uniform_sampling: bool = False
) -> torch.Tensor:
    """Resize the short side to a size drawn in ``[min_size, max_size]``.

    The size is ``round(uniform(min, max))``, or with ``inverse_uniform_sampling``
    (``DATA.INV_UNIFORM_SAMPLE``) ``round(1 / uniform(1 / max, 1 / min))``.
    """
    u = float(torch.rand(()).item())
    if inverse_uniform_sampling:
        size = int(round(1.0 / (1.0 / max_size + u * (1.0 / min_size - 1.0 / max_size))))
    else:
        size = int(round(min_size + u * (max_size - min_size)))
    return short_side_scale(images, size)


def _check_crop(images: torch.Tensor, size: int) -> None:
    height, width = images.shape[-2], images.shape[-1]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from frames of {height}x{width}")


def random_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """A ``size`` x ``size`` crop at a uniformly drawn position."""
    _check_crop(images, size)
    height, width = images.shape[-2], images.shape[-1]
    y = int(torch.randint(0, height - size + 1, ()).item()) if height > size else 0
    x = int(torch.randint(0, width - size + 1, ()).item()) if width > size else 0
    return images[..., y : y + size, x : x + size]


def horizontal_flip(prob: float, images: torch.Tensor) -> torch.Tensor:
    """Mirror the frames left-right with probability ``prob``."""
    if float(torch.rand(()).item()) < prob:
        return images.flip(-1)
    return images


def uniform_crop(images: torch.Tensor, size: int, spatial_idx: int) -> torch.Tensor:
    """A ``size`` x ``size`` crop along the long side: 0 = left / top, 1 = centre, 2 = right /
    bottom (top/centre/bottom for portrait frames, left/centre/right otherwise); the short side
    is centred."""
    if spatial_idx not in (0, 1, 2):
        raise ValueError(f"spatial_idx must be 0, 1 or 2, got {spatial_idx}")
    _check_crop(images, size)
    height, width = images.shape[-2], images.shape[-1]
    y = int(math.ceil((height - size) / 2))
    x = int(math.ceil((width - size) / 2))
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[spatial_idx]
    else:
        x = {0: 0, 1: x, 2: width - size}[spatial_idx]
    return images[..., y : y + size, x : x + size]
