"""What one training / evaluation iteration does with a batch, as a swappable "step runner".

The train and test loops (``trainer.py``, ``evaluator.py``) are written once; what differs
between tasks lives in a runner registered in ``STEP_RUNNER_REGISTRY``:

- ``clip`` (default): one forward of the whole clip, one loss, backward, optimizer step;
- ``detection`` (``DETECTION.ENABLE``): the clip runner, the model also given ``meta["boxes"]``;
- ``progressive`` (``PGT.ENABLE``, in ``slowfast.pgt``): P steps per clip.

Feeding the boxes is one mechanism shared by every runner, ``model_args(inputs, meta)``: with
``DETECTION.ENABLE`` the model is called as ``model(inputs, meta["boxes"])`` in training,
evaluation and precise BN, so the progressive runner is a detection runner too on AVA.

A runner is built as ``cls(cfg)`` and provides ``forward``, ``compute_loss``, ``train_step``
and ``eval_step``; subclass :class:`ClipStepRunner` and override what differs. Every runner
shares the seams of the clip runner: ``autocast()`` (``TRAIN.MIXED_PRECISION``,
``TRAIN.MIXED_PRECISION_DTYPE``), ``backward(loss)`` (scaled by the GradScaler of float16 on
CUDA) and ``optimizer_step(model, optimizer)`` (unscale, ``SOLVER.CLIP_GRAD_VAL`` /
``SOLVER.CLIP_GRAD_L2NORM``, step, scaler update).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

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

    def __init__(self, cfg: CfgNode, scaler: Optional[torch.amp.GradScaler] = None) -> None:
        from slowfast.models.losses import get_loss_func

        self.loss_name = cfg.MODEL.LOSS_FUNC
        self.loss_fn = get_loss_func(self.loss_name)(reduction="mean")
        self.amp = bool(cfg.TRAIN.MIXED_PRECISION)
        self.device_type = "cuda" if cfg.NUM_GPUS > 0 else "cpu"
        dtype = str(cfg.TRAIN.MIXED_PRECISION_DTYPE)
        if dtype not in ("float16", "bfloat16"):
            raise ValueError(
                f"TRAIN.MIXED_PRECISION_DTYPE must be 'float16' or 'bfloat16', got {dtype!r}"
            )
        # CPU autocast computes in bfloat16; float16 on CUDA needs a GradScaler.
        self.amp_dtype = torch.bfloat16 if self.device_type == "cpu" else getattr(torch, dtype)
        if scaler is None and self.amp and self.amp_dtype == torch.float16:
            scaler = torch.amp.GradScaler(self.device_type)
        self.scaler = scaler
        self.clip_val = cfg.SOLVER.CLIP_GRAD_VAL
        self.clip_norm = cfg.SOLVER.CLIP_GRAD_L2NORM
        self.detection = bool(cfg.DETECTION.ENABLE)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast of ``TRAIN.MIXED_PRECISION`` (a no-op when off)."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        """``loss.backward()``, scaled by the GradScaler when there is one."""
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        scaled.backward(retain_graph=retain_graph)

    def optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Unscale, clip (``SOLVER.CLIP_GRAD_VAL`` / ``CLIP_GRAD_L2NORM``), step, update."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if self.clip_val is not None or self.clip_norm is not None:
            params = [p for p in model.parameters() if p.grad is not None]
            if self.clip_val is not None:
                torch.nn.utils.clip_grad_value_(params, float(self.clip_val))
            if self.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, float(self.clip_norm))
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def model_args(self, inputs: List[torch.Tensor], meta: Dict[str, Any]) -> tuple:
        """The model's call arguments for a batch: ``(inputs,)``, or ``(inputs, boxes)`` with
        ``DETECTION.ENABLE`` (``meta["boxes"]``: (K, 5) rows [batch index, x1, y1, x2, y2])."""
        if not self.detection:
            return (inputs,)
        boxes = meta.get("boxes") if isinstance(meta, dict) else None
        if boxes is None:
            raise ValueError(
                "DETECTION.ENABLE is on but the batch carries no meta['boxes']: the dataset "
                "(TRAIN.DATASET / TEST.DATASET) must be a detection dataset such as 'ava'"
            )
        return (inputs, boxes)

    def forward(self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]):
        """The model's output for a batch (with ``DETECTION.ENABLE``, one row per box)."""
        return model(*self.model_args(inputs, meta))

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
        with self.autocast():
            preds = self.forward(model, inputs, meta)
            loss = self.compute_loss(preds, labels)
        check_finite_loss(loss, ctx)
        optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        self.optimizer_step(model, optimizer)
        return StepOutput(loss=loss.detach().float(), preds=preds.detach().float())

    def precise_bn_forward(self, model: nn.Module):
        """``(module, split, forwards per batch)`` for precise BN: ``split(inputs, meta)`` gives
        the items ``module`` is called on, here the model's call arguments of the batch."""

        def split(inputs: List[torch.Tensor], meta: Dict[str, Any]):
            return [self.model_args(inputs, meta)]

        return CallWithArgs(unwrap_ddp(model)), split, 1

    def end_forward(self, model: nn.Module) -> None:
        """Called after forwards driven outside the runner (precise BN); nothing to undo."""

    @torch.no_grad()
    def eval_step(
        self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]
    ) -> torch.Tensor:
        """Scores (N, NUM_CLASSES) of a batch, the model in eval mode (detection: one row per
        box of ``eval_boxes(meta)``)."""
        with self.autocast():
            return self.forward(model, inputs, meta).float()

    def eval_boxes(self, meta: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Detection: ``(ori_boxes (K, 4), metadata (K, 2))`` of the rows ``eval_step``
        returns, in the same order."""
        return meta["ori_boxes"], meta["metadata"]


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (or ``model``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class CallWithArgs(nn.Module):
    """Calls ``model(*item)`` (precise BN feeds it the runner's call arguments)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, item: tuple) -> torch.Tensor:
        return self.model(*item)


@STEP_RUNNER_REGISTRY.register()
class DetectionStepRunner(ClipStepRunner):
    """The clip runner for detection (``DETECTION.ENABLE``): the model is given the boxes."""

    name = "detection"

    def __init__(self, cfg: CfgNode, scaler: Optional[torch.amp.GradScaler] = None) -> None:
        super().__init__(cfg, scaler)
        self.detection = True


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
        import slowfast.pgt  # noqa: F401  (registers the progressive runner; errors propagate)
    for registered, cls in STEP_RUNNER_REGISTRY:
        if getattr(cls, "name", registered) == wanted:
            return cls(cfg)
    known = sorted(getattr(c, "name", r) for r, c in STEP_RUNNER_REGISTRY)
    key = {"progressive": "PGT.ENABLE", "detection": "DETECTION.ENABLE"}.get(wanted, "")
    raise ValueError(
        f"no step runner named {wanted!r} is registered (asked for by {key or 'the config'}); "
        f"registered: {known}"
    )
