"""Top-k counts and mAP against hand computations."""

import numpy as np
import pytest
import torch

from slowfast.utils import metrics


def test_topks_correct_hand_made():
    preds = torch.tensor(
        [
            [0.1, 0.5, 0.2, 0.15, 0.05],  # order 1, 2, 3, 0, 4
            [0.9, 0.02, 0.03, 0.04, 0.01],  # order 0, 3, 2, 1, 4
            [0.2, 0.2, 0.1, 0.3, 0.2],  # 3 first
        ]
    )
    labels = torch.tensor([2, 4, 3])
    top1, top2, top5 = metrics.topks_correct(preds, labels, (1, 2, 5))
    # top-1: only sample 2; top-2: samples 0 and 2; top-5: all.
    assert [top1.item(), top2.item(), top5.item()] == [1.0, 2.0, 3.0]
    err1, err5 = metrics.topk_errors(preds, labels, (1, 5))
    assert err1.item() == pytest.approx(100 * 2 / 3) and err5.item() == pytest.approx(0.0)
    (acc2,) = metrics.topk_accuracies(preds, labels, (2,))
    assert acc2.item() == pytest.approx(100 * 2 / 3)


def test_topks_correct_errors():
    with pytest.raises(ValueError, match="top-6"):
        metrics.topks_correct(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), (6,))
    with pytest.raises(ValueError, match="batch sizes"):
        metrics.topks_correct(torch.zeros(2, 5), torch.zeros(3, dtype=torch.long), (1,))


def _ap_by_hand(scores, positives):
    """AP = mean over positives of the precision at their rank (no ties)."""
    order = np.argsort(-np.asarray(scores))
    hits, precisions = 0, []
    for rank, i in enumerate(order, start=1):
        if positives[i]:
            hits += 1
            precisions.append(hits / rank)
    return float(np.mean(precisions))


def test_get_map_against_hand_computation_and_skips_empty_classes():
    preds = np.array([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.2, 0.6, 0.5], [0.4, 0.3, 0.1]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    # class 2 has no positive and is left out
    ap0 = _ap_by_hand(preds[:, 0], labels[:, 0])  # positives at ranks 1 and 4
    ap1 = _ap_by_hand(preds[:, 1], labels[:, 1])  # ranks 1 and 2 -> 1
    assert ap0 == pytest.approx((1 + 2 / 4) / 2)
    assert metrics.get_map(preds, labels) == pytest.approx((ap0 + ap1) / 2)
    assert metrics.get_map(torch.tensor(preds), torch.tensor(labels)) == pytest.approx(
        (ap0 + ap1) / 2
    )
