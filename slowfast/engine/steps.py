"""What one training / evaluation iteration does with a batch, as a swappable "step runner".

The train and test loops (``trainer.py``, ``evaluator.py``) are written once; what differs
between tasks lives in a runner registered in ``STEP_RUNNER_REGISTRY``:

- ``clip`` (default): one forward of the whole clip, one loss, backward, optimizer step;
- a progressive-training runner (``PGT.ENABLE``) replaces it with P steps per clip;
- a detection runner would feed ``meta["boxes"]`` to the model.

A runner is built as ``cls(cfg)`` and provides ``forward``, ``compute_loss``, ``train_step``
and ``eval_step``; subclass :class:`ClipStepRunner` and override what differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
from fvcore.common.config import CfgNode
from fvcore.common.registry import Registry
from torch import nn

STEP_RUNNER_REGISTRY = Registry("STEP_RUNNER")
STEP_RUNNER_REGISTRY.__doc__ = """
Registry of step runners: ``cls(cfg)`` with ``train_step(model, optimizer, inputs, labels, meta,
ctx) -> StepOutput`` and ``eval_step(model, inputs, meta) -> Tensor (N, NUM_CLASSES)``.
"""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the run stops."""


@dataclass
class StepContext:
    """Where the loop is: 0-based epoch and iteration, their totals, the learning rate."""

    epoch: int
    iteration: int
    iters_per_epoch: int
    max_epoch: int
    lr: float


@dataclass
class StepOutput:
    """A training step's result: the (detached) loss and the predictions used for metrics."""

    loss: torch.Tensor
    preds: torch.Tensor


def check_finite_loss(loss: torch.Tensor, ctx: StepContext) -> None:
    """Raise ``NonFiniteLossError`` naming the epoch, iteration and learning rate."""
    value = float(loss.detach())
    if math.isfinite(value):
        return
    raise NonFiniteLossError(
        f"loss is {value} at epoch {ctx.epoch + 1}/{ctx.max_epoch}, iteration "
        f"{ctx.iteration + 1}/{ctx.iters_per_epoch} (learning rate {ctx.lr:g}); stopping. "
        "Lower SOLVER.BASE_LR or lengthen SOLVER.WARMUP_EPOCHS, and check the data of this "
        "iteration"
    )


@STEP_RUNNER_REGISTRY.register()
class ClipStepRunner:
    """One forward/loss/backward/step per clip (PySlowFast's training iteration)."""

    name = "clip"

    def __init__(self, cfg: CfgNode) -> None:
        from slowfast.models.losses import get_loss_func

        self.loss_name = cfg.MODEL.LOSS_FUNC
        self.loss_fn = get_loss_func(self.loss_name)(reduction="mean")

    def forward(self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]):
        """The model's output for a batch (detection runners also pass the boxes)."""
        return model(inputs)

    def compute_loss(self, preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss of ``MODEL.LOSS_FUNC``; targets of non cross-entropy losses are cast to
        the predictions' dtype."""
        if self.loss_name == "cross_entropy":
            return self.loss_fn(preds, labels.long())
        if self.loss_name == "bce" and (preds.min() < 0 or preds.max() > 1):
            raise ValueError(
                "MODEL.LOSS_FUNC 'bce' expects probabilities but the model's training output "
                f"lies in [{float(preds.min()):.3g}, {float(preds.max()):.3g}] (logits: heads "
                "apply MODEL.HEAD_ACT only in eval mode); use MODEL.LOSS_FUNC bce_logit"
            )
        return self.loss_fn(preds, labels.to(preds.dtype))

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: List[torch.Tensor],
        labels: torch.Tensor,
        meta: Dict[str, Any],
        ctx: StepContext,
    ) -> StepOutput:
        """Forward, loss (stop on NaN/inf), backward, optimizer step."""
        preds = self.forward(model, inputs, meta)
        loss = self.compute_loss(preds, labels)
        check_finite_loss(loss, ctx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return StepOutput(loss=loss.detach(), preds=preds.detach())

    @torch.no_grad()
    def eval_step(
        self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]
    ) -> torch.Tensor:
        """Scores (N, NUM_CLASSES) of a batch, the model in eval mode."""
        return self.forward(model, inputs, meta)


def runner_name(cfg: CfgNode) -> str:
    """The runner ``cfg`` asks for: ``progressive`` (PGT.ENABLE), ``detection``
    (DETECTION.ENABLE) or ``clip``."""
    if cfg.PGT.ENABLE:
        return "progressive"
    if cfg.DETECTION.ENABLE:
        return "detection"
    return "clip"


def build_step_runner(cfg: CfgNode) -> ClipStepRunner:
    """The step runner for ``cfg`` (see ``runner_name``)."""
    wanted = runner_name(cfg)
    if wanted == "progressive":
        import importlib

        try:  # the PGT package registers its runner on import
            importlib.import_module("slowfast.pgt")
        except ImportError:
            pass
    for registered, cls in STEP_RUNNER_REGISTRY:
        if getattr(cls, "name", registered) == wanted:
            return cls(cfg)
    known = sorted(getattr(c, "name", r) for r, c in STEP_RUNNER_REGISTRY)
    key = {"progressive": "PGT.ENABLE", "detection": "DETECTION.ENABLE"}.get(wanted, "")
    raise ValueError(
        f"no step runner named {wanted!r} is registered (asked for by {key or 'the config'}); "
        f"registered: {known}"
    )
