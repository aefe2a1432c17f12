"""Learning-rate policies, as a function of a fractional epoch.

``get_lr_at_epoch(cfg, e)`` gives the learning rate at epoch ``e`` (``epoch + iter /
iters_per_epoch``), following PySlowFast's semantics:

- ``cosine``: ``END + (BASE - END) * (1 + cos(pi * (e - o) / (MAX_EPOCH - o))) / 2`` with
  ``o = WARMUP_EPOCHS`` when ``SOLVER.COSINE_AFTER_WARMUP`` else 0;
- ``steps_with_relative_lrs``: ``BASE_LR * LRS[i]``, ``i`` the index of the last of
  ``SOLVER.STEPS`` that is <= e;
- ``steps_with_lrs``: ``LRS[i]``;
- ``steps_with_decay``: ``BASE_LR * GAMMA ** i``.

During the warm-up (``e < SOLVER.WARMUP_EPOCHS``) the rate goes linearly from
``SOLVER.WARMUP_START_LR`` at epoch 0 to the policy's value at ``WARMUP_EPOCHS``.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

from fvcore.common.config import CfgNode


def get_step_index(cfg: CfgNode, cur_epoch: float) -> int:
    """Index of the step of ``SOLVER.STEPS`` that ``cur_epoch`` falls in.

    ``STEPS`` lists the epochs where a step starts (PySlowFast's configs start it with 0).
    Epochs at or past ``SOLVER.MAX_EPOCH`` stay in the last step; an epoch before ``STEPS[0]``
    is in step 0.
    """
    steps = list(cfg.SOLVER.STEPS)
    if not steps:
        raise ValueError(
            f"SOLVER.LR_POLICY {cfg.SOLVER.LR_POLICY!r} needs a non-empty SOLVER.STEPS"
        )
    index = 0
    for i, start in enumerate(steps):
        if cur_epoch >= start:
            index = i
    return index


def _lrs_entry(cfg: CfgNode, index: int) -> float:
    lrs = list(cfg.SOLVER.LRS)
    if index >= len(lrs):
        raise ValueError(
            f"SOLVER.LRS {lrs} has no entry {index} for SOLVER.STEPS {list(cfg.SOLVER.STEPS)}: "
            "give one learning rate per step"
        )
    return float(lrs[index])


def lr_func_cosine(cfg: CfgNode, cur_epoch: float) -> float:
    """Half-cosine from ``BASE_LR`` down to ``COSINE_END_LR`` at ``MAX_EPOCH``."""
    base, end = cfg.SOLVER.BASE_LR, cfg.SOLVER.COSINE_END_LR
    if not end < base:
        raise ValueError(
            f"SOLVER.COSINE_END_LR ({end}) must be smaller than SOLVER.BASE_LR ({base})"
        )
    offset = cfg.SOLVER.WARMUP_EPOCHS if cfg.SOLVER.COSINE_AFTER_WARMUP else 0.0
    span = cfg.SOLVER.MAX_EPOCH - offset
    if span <= 0:
        raise ValueError(
            f"SOLVER.MAX_EPOCH ({cfg.SOLVER.MAX_EPOCH}) must exceed SOLVER.WARMUP_EPOCHS "
            f"({cfg.SOLVER.WARMUP_EPOCHS}) with SOLVER.COSINE_AFTER_WARMUP"
        )
    return end + (base - end) * (math.cos(math.pi * (cur_epoch - offset) / span) + 1.0) * 0.5


def lr_func_steps_with_relative_lrs(cfg: CfgNode, cur_epoch: float) -> float:
    """``BASE_LR * LRS[i]`` in step ``i``."""
    return _lrs_entry(cfg, get_step_index(cfg, cur_epoch)) * cfg.SOLVER.BASE_LR


def lr_func_steps_with_lrs(cfg: CfgNode, cur_epoch: float) -> float:
    """``LRS[i]`` in step ``i``."""
    return _lrs_entry(cfg, get_step_index(cfg, cur_epoch))


def lr_func_steps_with_decay(cfg: CfgNode, cur_epoch: float) -> float:
    """``BASE_LR * GAMMA ** i`` in step ``i``."""
    return cfg.SOLVER.BASE_LR * cfg.SOLVER.GAMMA ** get_step_index(cfg, cur_epoch)


LR_POLICIES: Dict[str, Callable[[CfgNode, float], float]] = {
    "cosine": lr_func_cosine,
    "steps_with_relative_lrs": lr_func_steps_with_relative_lrs,
    "steps_with_lrs": lr_func_steps_with_lrs,
    "steps_with_decay": lr_func_steps_with_decay,
}


def get_lr_func(lr_policy: str) -> Callable[[CfgNode, float], float]:
    """The function of the policy named ``lr_policy`` (``SOLVER.LR_POLICY``)."""
    try:
        return LR_POLICIES[lr_policy]
    except KeyError:
        raise ValueError(
            f"SOLVER.LR_POLICY {lr_policy!r} is unknown; choose one of {sorted(LR_POLICIES)}"
        ) from None


def get_lr_at_epoch(cfg: CfgNode, cur_epoch: float) -> float:
    """Learning rate at the fractional epoch ``cur_epoch``, warm-up included.

    Args:
        cfg: the config (``SOLVER.*`` keys).
        cur_epoch: ``epoch + iteration / iterations_per_epoch`` (0-based epoch).
    """
    policy = get_lr_func(cfg.SOLVER.LR_POLICY)
    warmup = cfg.SOLVER.WARMUP_EPOCHS
    if cur_epoch < warmup:
        start = cfg.SOLVER.WARMUP_START_LR
        end = policy(cfg, warmup)
        return start + (end - start) * cur_epoch / warmup
    return policy(cfg, cur_epoch)
