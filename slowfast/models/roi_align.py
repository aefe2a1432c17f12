"""RoIAlign in pure PyTorch, with the semantics of detectron2's ``ROIAlign`` (torchvision's
``roi_align``), for ``aligned=True`` and ``aligned=False``.

Each box is divided into ``output_size`` bins; each bin averages ``sampling_ratio`` x
``sampling_ratio`` bilinearly interpolated samples (``sampling_ratio <= 0``: ``ceil(box size /
bins)`` samples per bin and axis, per box; an empty box gives 0). Samples further than one pixel outside the map are
0; others are clamped to the map. Bilinear interpolation is separable, so each box is computed as
two small matrix products, ``Wy @ feature @ Wx^T``, which runs on any device and is
differentiable with respect to the features.
"""

import math
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn


def _axis_weights(
    start: float, bin_size: float, bins: int, grid: int, size: int, dtype, device
) -> torch.Tensor:
    """(bins * grid, size) interpolation weights of the sample points along one axis."""
    idx = torch.arange(bins * grid, device=device, dtype=torch.float64)
    # Sample j of bin b sits at start + b * bin + (j + 0.5) * bin / grid.
    coords = start + (idx // grid) * bin_size + ((idx % grid) + 0.5) * bin_size / grid
    valid = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0.0)
    low = coords.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coords = torch.where(at_edge, low.to(coords.dtype), coords)
    frac = coords - low.to(coords.dtype)
    weights = torch.zeros(bins * grid, size, dtype=torch.float64, device=device)
    rows = torch.arange(bins * grid, device=device)
    weights.index_put_((rows, low), (1.0 - frac) * valid, accumulate=True)
    weights.index_put_((rows, high), frac * valid, accumulate=True)
    return weights.to(dtype)


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool ``features`` (N, C, H, W) inside ``boxes`` (K, 5: batch index, x1, y1, x2, y2, in
    input-image coordinates) to (K, C, output_size[0], output_size[1])."""
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"boxes must be (K, 5) as [batch index, x1, y1, x2, y2], got {tuple(boxes.shape)}"
        )
    n, c, h, w = features.shape
    ph, pw = output_size
    out = features.new_zeros(boxes.shape[0], c, ph, pw)
    offset = 0.5 if aligned else 0.0
    for k, box in enumerate(boxes.detach().to(torch.float64).cpu().tolist()):
        b = int(box[0])
        if not 0 <= b < n:
            raise ValueError(f"box {k} has batch index {b}, but the batch holds {n} clips")
        x1, y1, x2, y2 = (v * spatial_scale - offset for v in box[1:])
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / ph, roi_w / pw
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw)
        if gh <= 0 or gw <= 0:
            continue  # an empty box (possible with aligned=True) pools to 0
        wy = _axis_weights(y1, bin_h, ph, gh, h, features.dtype, features.device)
        wx = _axis_weights(x1, bin_w, pw, gw, w, features.dtype, features.device)
        samples = wy @ features[b] @ wx.t()  # (C, ph * gh, pw * gw)
        out[k] = samples.reshape(c, ph, gh, pw, gw).mean(dim=(2, 4))
    return out


class ROIAlign(nn.Module):
    """Module form of :func:`roi_align` (detectron2's ``ROIAlign`` arguments)."""

    def __init__(
        self,
        output_size: Union[int, Sequence[int]],
        spatial_scale: float,
        sampling_ratio: int = 0,
        aligned: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return roi_align(
            features,
            boxes,
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
