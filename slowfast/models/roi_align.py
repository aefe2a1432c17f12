"""RoIAlign in pure PyTorch, with the semantics of detectron2's ``ROIAlign`` (torchvision's
``roi_align``), for ``aligned=True`` and ``aligned=False``.

Each box is divided into ``output_size`` bins; each bin averages ``sampling_ratio`` x
``sampling_ratio`` bilinearly interpolated samples (``sampling_ratio <= 0``: ``ceil(box size /
bins)`` samples per bin and axis, per box; an empty box gives 0). Samples further than one pixel
outside the map are 0; others are clamped to the map. Bilinear interpolation is separable, so each
box is ``Wy @ feature @ Wx^T`` with per-box weight matrices; all boxes are computed at once
(one batched product), on any device, differentiable with respect to the features.
"""

from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn


def _axis_weights(
    start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, bins: int, size: int
) -> torch.Tensor:
    """(K, bins, size): per box, each bin's average interpolation weights over its ``grid``
    samples along one axis (float64; ``grid`` (K,) may differ per box, 0 gives zero weights)."""
    k = start.shape[0]
    g_max = max(int(grid.max()), 1) if k else 1
    b = torch.arange(bins, dtype=torch.float64, device=start.device).view(1, bins, 1)
    j = torch.arange(g_max, dtype=torch.float64, device=start.device).view(1, 1, g_max)
    g = grid.to(torch.float64).clamp(min=1).view(k, 1, 1)
    # Sample j of bin b sits at start + b * bin + (j + 0.5) * bin / grid.
    coords = (
        start.view(k, 1, 1) + b * bin_size.view(k, 1, 1) + (j + 0.5) * bin_size.view(k, 1, 1) / g
    )
    used = (j < grid.view(k, 1, 1)) & (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0.0)
    low = coords.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coords = torch.where(at_edge, low.to(coords.dtype), coords)
    frac = coords - low.to(coords.dtype)
    weights = torch.zeros(k, bins, g_max, size, dtype=torch.float64, device=start.device)
    weights.scatter_add_(3, low.unsqueeze(3), ((1.0 - frac) * used).unsqueeze(3))
    weights.scatter_add_(3, high.unsqueeze(3), (frac * used).unsqueeze(3))
    return weights.sum(dim=2) / g


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> torch.Tensor:
    """Pool ``features`` (N, C, H, W) inside ``boxes`` (K, 5: batch index, x1, y1, x2, y2, in
    input-image coordinates) to (K, C, output_size[0], output_size[1]); all boxes at once."""
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"boxes must be (K, 5) as [batch index, x1, y1, x2, y2], got {tuple(boxes.shape)}"
        )
    n, c, h, w = features.shape
    ph, pw = (int(v) for v in output_size)
    if boxes.shape[0] == 0:
        return features.new_zeros(0, c, ph, pw)
    rois = boxes.detach().to(device=features.device, dtype=torch.float64)
    index = rois[:, 0].long()
    bad = (index < 0) | (index >= n) | (rois[:, 0] != index.to(torch.float64))
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise ValueError(
            f"box {k} has batch index {float(rois[k, 0]):g}, but the batch holds {n} clips"
        )
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        gh = torch.full_like(roi_h, sampling_ratio).long()
        gw = torch.full_like(roi_w, sampling_ratio).long()
    else:  # adaptive; an empty box (possible with aligned=True) has no sample and pools to 0
        gh, gw = torch.ceil(roi_h / ph).long(), torch.ceil(roi_w / pw).long()
    empty = ((gh <= 0) | (gw <= 0)).view(-1, 1, 1)
    wy = _axis_weights(y1, bin_h, gh, ph, h).masked_fill(empty, 0.0).to(features.dtype)
    wx = _axis_weights(x1, bin_w, gw, pw, w).masked_fill(empty, 0.0).to(features.dtype)
    # Bilinear sampling is separable: each box is wy @ feature @ wx^T (per clip of the batch,
    # so no per-box copy of the feature map is made).
    out = features.new_zeros(boxes.shape[0], c, ph, pw)
    for b in torch.unique(index).tolist():
        sel = (index == b).nonzero().squeeze(1)
        out = out.index_copy(
            0, sel, torch.einsum("kph,chw,kqw->kcpq", wy[sel], features[b], wx[sel])
        )
    return out


_TORCHVISION = None


def _torchvision_roi_align():
    """torchvision's ``roi_align`` when it imports (same semantics: an optional fast path),
    else None; looked up once."""
    global _TORCHVISION
    if _TORCHVISION is None:
        try:
            from torchvision.ops import roi_align as tv_roi_align
        except Exception:  # absent, or built for another torch
            tv_roi_align = False
        _TORCHVISION = tv_roi_align
    return _TORCHVISION or None


class ROIAlign(nn.Module):
    """Module form of :func:`roi_align` (detectron2's ``ROIAlign`` arguments); uses
    torchvision's kernel when torchvision imports (``tests/test_models.py`` checks the two
    agree where it does)."""

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
        fast = _torchvision_roi_align()
        if fast is not None and boxes.dim() == 2 and boxes.shape[1] == 5:
            return fast(
                features,
                boxes.to(features.dtype),
                self.output_size,
                self.spatial_scale,
                self.sampling_ratio,
                self.aligned,
            )
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
