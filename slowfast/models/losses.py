"""Loss functions selected by ``MODEL.LOSS_FUNC``."""

from typing import Type

import torch
import torch.nn as nn
import torch.nn.functional as F


class SoftTargetCrossEntropy(nn.Module):
    """Cross entropy with soft targets: ``sum_c -y_c * log_softmax(x)_c`` per sample.

    Args:
        reduction: "mean" (over samples), "sum" or "none".
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = torch.sum(-y * F.log_softmax(x, dim=-1), dim=-1)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


_LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss,
    "bce": nn.BCELoss,
    "bce_logit": nn.BCEWithLogitsLoss,
    "soft_cross_entropy": SoftTargetCrossEntropy,
}


def get_loss_func(loss_name: str) -> Type[nn.Module]:
    """The loss class for ``MODEL.LOSS_FUNC`` (instantiate it, e.g. ``(reduction="mean")``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if loss_name not in _LOSSES:
        raise ValueError(f"MODEL.LOSS_FUNC must be one of {sorted(_LOSSES)}, got {loss_name!r}")
    return _LOSSES[loss_name]
