"""Precise batch-norm statistics (fvcore's ``update_bn_stats``) for single and multi-process
runs."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import torch
from torch import nn

from slowfast.utils import distributed as du

logger = logging.getLogger(__name__)


def get_bn_modules(model: nn.Module) -> List[nn.Module]:
    """The batch-norm layers of ``model`` that are in training mode (those precise BN updates)."""
    from fvcore.nn.precise_bn import get_bn_modules as _fv_get_bn_modules

    return _fv_get_bn_modules(model)


def _to_cuda(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cuda(non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cuda(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _to_cuda(v) for k, v in obj.items()}
    return obj


def calculate_and_update_precise_bn(
    loader: Iterable,
    model: nn.Module,
    num_iters: int = 200,
    use_gpu: bool = True,
    split: Optional[Callable[[List[Any], Dict[str, Any]], Iterable[Any]]] = None,
) -> int:
    """Recompute the running statistics of ``model``'s batch norms over ``num_iters`` batches.

    Each process computes the statistics of its own batches (fvcore: mean and population
    variance over all their elements); the processes then combine them (equal batch counts
    assumed), so every rank ends with the same buffers. ``model`` may be DDP-wrapped (its inner
    module is used, without gradients). ``split(inputs, meta)`` turns one batch into the items
    ``model`` is called on, each one statistics sample (a detection runner adds the batch's
    boxes; progressive training runs a clip's steps); then ``num_iters`` counts forwards.
    Returns the number of batch-norm layers updated.
    """
    from fvcore.nn.precise_bn import update_bn_stats

    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    was_training = inner.training
    inner.train()
    bn_layers = get_bn_modules(inner)
    if not bn_layers or num_iters <= 0:
        inner.train(was_training)
        return 0

    def _inputs() -> Iterator:
        for inputs, *rest in loader:
            meta = rest[-1] if rest and isinstance(rest[-1], dict) else {}
            if use_gpu:
                inputs, meta = _to_cuda((inputs, meta))
            if split is None:
                yield inputs
            else:
                yield from split(inputs, meta)

    update_bn_stats(inner, _inputs(), num_iters)
    inner.train(was_training)
    if du.get_world_size() > 1:
        # fvcore stores the population (biased) variance: combine ranks through E[x^2]
        means = [m.running_mean for m in bn_layers]
        squares = [m.running_var + m.running_mean**2 for m in bn_layers]
        du.all_reduce(means + squares, average=True)
        for m, sq in zip(bn_layers, squares):
            m.running_var.copy_(sq - m.running_mean**2)
    logger.info("precise BN: updated %d batch norms over %d batches", len(bn_layers), num_iters)
    return len(bn_layers)


def aggregate_sub_bn_stats(model: nn.Module) -> int:
    """Fold the split statistics of sub-batch-norm layers (those with ``aggregate_stats``) into
    their evaluation statistics; return how many were folded."""
    count = 0
    for m in model.modules():
        fold = getattr(m, "aggregate_stats", None)
        if callable(fold):
            fold()
            count += 1
    return count
