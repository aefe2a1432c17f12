"""The step schedule of a long clip, and dynamic progressive regularisation (DPR).

Step 0 feeds frames ``[0, T')``; step ``k >= 1`` feeds the ``T' - o`` new frames
``[k T' - (k - 1) o, k T' - (k - 1) o + T' - o)``. A clip shorter than the schedule (DPR draws
that need a frame more than was loaded) gives its last step the frames that are left; frames
beyond the schedule are not used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

# Paper section 3.4: the step length is drawn from these multiples of the base step length.
DPR_FACTORS = {"A": (0.75, 1.0, 1.25), "B": (0.5, 0.75, 1.0)}


@dataclass(frozen=True)
class Schedule:
    """Per pathway step lengths ``T'`` and overlaps ``o``, and the number of steps ``P``."""

    step_len: Tuple[int, ...]
    overlap: Tuple[int, ...]
    steps: int


def step_bounds(num_frames: int, step_len: int, overlap: int, steps: int) -> List[Tuple[int, int]]:
    """``(start, end)`` of each step's new frames in a clip of ``num_frames`` frames."""
    if steps < 1:
        raise ValueError(f"PGT.STEPS must be >= 1, got {steps}")
    if not 0 <= overlap < step_len:
        raise ValueError(f"PGT.OVERLAP {overlap} must be in [0, STEP_LEN {step_len})")
    bounds = []
    for k in range(steps):
        start = 0 if k == 0 else k * step_len - (k - 1) * overlap
        end = min(step_len if k == 0 else start + step_len - overlap, num_frames)
        if end <= start:
            raise ValueError(
                f"a clip of {num_frames} frames has no frame for step {k + 1} of {steps} "
                f"(STEP_LEN {step_len}, OVERLAP {overlap}): DATA.NUM_FRAMES must be "
                f"(T' - o)(P - 1) + T' = {(step_len - overlap) * (steps - 1) + step_len}"
            )
        bounds.append((start, end))
    return bounds


def split_steps(inputs: Sequence[torch.Tensor], schedule: Schedule) -> List[List[torch.Tensor]]:
    """Per step, the list of per-pathway inputs (views of ``inputs``)."""
    per_pathway = [
        [
            x[:, :, a:b]
            for a, b in step_bounds(
                x.shape[2], schedule.step_len[p], schedule.overlap[p], schedule.steps
            )
        ]
        for p, x in enumerate(inputs)
    ]
    return [list(step) for step in zip(*per_pathway)]


def base_schedule(step_len: Sequence[int], overlap: Sequence[int], steps: int, n: int) -> Schedule:
    """The configured schedule for ``n`` pathways (a one-value list serves every pathway)."""

    def per(values: Sequence[int]) -> Tuple[int, ...]:
        values = [int(v) for v in values]
        return tuple(values[p] if p < len(values) else values[-1] for p in range(n))

    return Schedule(per(step_len), per(overlap), int(steps))


def dpr_schedule(
    base: Schedule, variant: str, seed: int, epoch: int, iteration: int, alpha: int = 1
) -> Tuple[Schedule, float]:
    """DPR's draw for one iteration: ``T'`` from ``DPR_FACTORS[variant]`` x the base ``T'``
    (of the first pathway; a second pathway keeps ``alpha`` times it), ``P = round((T_b - o)
    / (T' - o))`` so that the clip stays about ``T_b`` frames. The draw is a function of
    ``(seed, epoch, iteration)``: the same on every rank and after a resume. Returns the
    schedule and the drawn factor."""
    factors = DPR_FACTORS[variant]
    rng = np.random.default_rng([int(seed), int(epoch), int(iteration)])
    factor = factors[int(rng.integers(len(factors)))]
    t_b, o = base.step_len[0], base.overlap[0]
    clip = (t_b - o) * (base.steps - 1) + t_b
    t = max(o + 1, int(round(factor * t_b)))
    steps = max(1, int(round((clip - o) / (t - o))))
    step_len = [t] + [t * alpha for _ in base.step_len[1:]]
    overlap = [o] + [ov for ov in base.overlap[1:]]
    return Schedule(tuple(step_len), tuple(overlap), steps), factor
