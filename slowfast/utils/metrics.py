"""Classification metrics: top-k counts, errors and accuracies, and mean average precision."""

from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np
import torch


def topks_correct(
    preds: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]
) -> List[torch.Tensor]:
    """Number of samples whose label is among the ``k`` highest scores, for each ``k``.

    Args:
        preds: (N, C) scores.
        labels: (N,) class indices.
        ks: the ``k`` values (each <= C).

    Returns:
        One scalar tensor per ``k``: the count of correct samples.
    """
    if preds.dim() != 2:
        raise ValueError(f"preds must be (N, C), got shape {tuple(preds.shape)}")
    if preds.size(0) != labels.size(0):
        raise ValueError(
            f"preds ({preds.size(0)}) and labels ({labels.size(0)}) have different batch sizes"
        )
    max_k = max(ks)
    if max_k > preds.size(1):
        raise ValueError(f"top-{max_k} asked of {preds.size(1)} classes")
    # (N, max_k) indices of the highest scores, transposed to (max_k, N).
    top = preds.topk(max_k, dim=1, largest=True, sorted=True).indices.t()
    hits = top == labels.view(1, -1).to(top.dtype)
    return [hits[:k].any(dim=0).float().sum() for k in ks]


def topk_errors(preds: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> List[torch.Tensor]:
    """Top-k error rates in percent."""
    n = preds.size(0)
    return [(1.0 - c / n) * 100.0 for c in topks_correct(preds, labels, ks)]


def topk_accuracies(
    preds: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]
) -> List[torch.Tensor]:
    """Top-k accuracies in percent."""
    n = preds.size(0)
    return [(c / n) * 100.0 for c in topks_correct(preds, labels, ks)]


def get_map(
    preds: Union[np.ndarray, torch.Tensor], labels: Union[np.ndarray, torch.Tensor]
) -> float:
    """Mean over classes of the average precision (scikit-learn's), as PySlowFast computes it.

    Classes without a positive sample are left out (their AP is undefined).

    Args:
        preds: (N, C) scores.
        labels: (N, C) binary (multi-hot) targets.
    """
    from sklearn.metrics import average_precision_score

    if isinstance(preds, torch.Tensor):
        preds = preds.detach().float().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().float().cpu().numpy()
    preds, labels = np.asarray(preds), np.asarray(labels)
    if preds.shape != labels.shape or preds.ndim != 2:
        raise ValueError(
            f"preds {preds.shape} and labels {labels.shape} must both be (N, C) for mAP"
        )
    keep = ~np.all(labels == 0, axis=0)
    if not keep.any():
        raise ValueError("mAP is undefined: no class has a positive label")
    aps = average_precision_score(labels[:, keep], preds[:, keep], average=None)
    return float(np.mean(aps))
