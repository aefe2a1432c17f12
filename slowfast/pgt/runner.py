"""Progressive training and evaluation: the ``progressive`` step runner and the public calls.

Training (one clip): ``zero_grad``; for each step k: forward the step's frames, the step's mean
loss, backward, and free the step's graph; the gradients of the steps add up; the optimizer
steps once per clip with ``PGT.TRAIN_TOGETHER`` (after every step otherwise). Under DDP with
``TRAIN_TOGETHER`` every step but the last runs under ``no_sync()``, so gradients are
all-reduced once per clip. Evaluation: ``PGT.PG_EVAL`` runs the steps and combines the
per-step probabilities by ``PGT.ENSEMBLE_METHOD``; otherwise the model sees the whole long
clip (orig long: no caches, the head pools time into ``PGT.TPOOL_SIZE`` bins).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn

from slowfast.engine.steps import (
    STEP_RUNNER_REGISTRY,
    ClipStepRunner,
    StepContext,
    StepOutput,
    check_finite_loss,
)
from slowfast.pgt.caches import set_step, unwrap
from slowfast.pgt.schedule import Schedule, base_schedule, dpr_schedule, split_steps

logger = logging.getLogger(__name__)


def _num_pathways(cfg: CfgNode) -> int:
    return 2 if cfg.MODEL.ARCH in cfg.MODEL.MULTI_PATHWAY_ARCH else 1


def schedule_from_cfg(cfg: CfgNode) -> Schedule:
    """``PGT.STEP_LEN``, ``PGT.OVERLAP``, ``PGT.STEPS`` for the model's pathways."""
    return base_schedule(cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP, cfg.PGT.STEPS, _num_pathways(cfg))


def step_meta(meta: Dict[str, Any], k: int) -> Dict[str, Any]:
    """The batch meta of step ``k``: every ``step_<name>`` entry (a list with one value per
    step, e.g. AVA's ``step_boxes``) gives ``<name>`` its ``k``-th value."""
    if not isinstance(meta, dict):
        return meta
    out = dict(meta)
    for key, value in meta.items():
        if key.startswith("step_") and isinstance(value, (list, tuple)):
            if k >= len(value):
                raise ValueError(
                    f"meta[{key!r}] holds {len(value)} steps, step {k + 1} was asked for: the "
                    "dataset's per-step targets follow PGT.STEPS"
                )
            out[key[len("step_") :]] = value[k]
    return out


def _step_labels(
    labels: torch.Tensor, k: int, steps: int, meta: Optional[Dict[str, Any]] = None
) -> torch.Tensor:
    """Labels of step ``k``: the step's own (``meta["step_labels"]``, e.g. AVA's per-box
    labels, or per-step targets (N, P, ...) such as Charades'), else the clip's."""
    if isinstance(meta, dict) and "step_labels" in meta:
        return meta["step_labels"][k]
    if labels.dim() == 3:
        if labels.shape[1] != steps:
            raise ValueError(
                f"per-step targets of {labels.shape[1]} steps for a clip of {steps} steps: the "
                "dataset's per-step targets follow PGT.STEPS (PGT.DPR changes the steps)"
            )
        return labels[:, k]
    return labels


def _run_steps(
    model: nn.Module,
    step_inputs: List[List[torch.Tensor]],
    call: Callable[[List[torch.Tensor]], torch.Tensor],
) -> List[torch.Tensor]:
    """``call`` on each step's inputs in order, the caches told the step; afterwards (also on
    an error) the model is back to whole-clip forwards with nothing cached."""
    outputs = []
    try:
        for k, x in enumerate(step_inputs):
            set_step(model, k)
            outputs.append(call(x))
    finally:
        set_step(model, None)
    return outputs


def progressive_forward(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    cfg: CfgNode,
    bboxes: Optional[torch.Tensor] = None,
    schedule: Optional[Schedule] = None,
) -> List[torch.Tensor]:
    """Reset the caches, run the P steps of the long clip ``inputs`` (one tensor per pathway),
    return the per-step outputs (in eval mode: the eval head's probabilities of each step)."""
    schedule = schedule or schedule_from_cfg(cfg)

    def call(x: List[torch.Tensor]) -> torch.Tensor:
        return model(x) if bboxes is None else model(x, bboxes)

    return _run_steps(model, split_steps(inputs, schedule), call)


def combine_steps(outputs: Sequence[torch.Tensor], method: str) -> torch.Tensor:
    """PG-long ensemble of the per-step outputs: ``sum`` or ``max``."""
    stacked = torch.stack(list(outputs), dim=1)
    if method == "sum":
        return stacked.sum(dim=1)
    if method == "max":
        return stacked.max(dim=1).values
    raise ValueError(f"PGT.ENSEMBLE_METHOD must be 'sum' or 'max', got {method!r}")


@STEP_RUNNER_REGISTRY.register()
class ProgressiveStepRunner(ClipStepRunner):
    """P steps per clip with Markov caches (``PGT.ENABLE``); see the module docstring."""

    name = "progressive"

    def __init__(self, cfg: CfgNode, scaler: Optional[torch.amp.GradScaler] = None) -> None:
        super().__init__(cfg, scaler)
        self.schedule = schedule_from_cfg(cfg)
        self.train_together = bool(cfg.PGT.TRAIN_TOGETHER)
        self.pg_eval = bool(cfg.PGT.PG_EVAL)
        self.ensemble = str(cfg.PGT.ENSEMBLE_METHOD)
        self.keep_graph = bool(cfg.PGT.TRUNCATE_GRAD)
        self.all_step_test = bool(cfg.PGT.ALL_STEP_TEST)
        self.dpr = str(cfg.PGT.DPR).upper()
        self.seed = int(cfg.RNG_SEED)
        self.alpha = int(cfg.SLOWFAST.ALPHA)
        # DPR: how often each step length was drawn, per epoch (0-based).
        self.dpr_counts: Dict[int, collections.Counter] = collections.defaultdict(
            collections.Counter
        )

    def schedule_for(self, ctx: Optional[StepContext]) -> Schedule:
        """The iteration's schedule: the configured one, or DPR's draw."""
        if not self.dpr or ctx is None:
            return self.schedule
        schedule, factor = dpr_schedule(
            self.schedule, self.dpr, self.seed, ctx.epoch, ctx.iteration, self.alpha
        )
        counts = self.dpr_counts[ctx.epoch]
        counts[schedule.step_len[0]] += 1
        logger.debug(
            "DPR-%s epoch %d iteration %d: factor %g, STEP_LEN %s, STEPS %d",
            self.dpr,
            ctx.epoch + 1,
            ctx.iteration + 1,
            factor,
            list(schedule.step_len),
            schedule.steps,
        )
        if ctx.iteration + 1 == ctx.iters_per_epoch:
            logger.info(
                "DPR-%s epoch %d: step lengths drawn %s",
                self.dpr,
                ctx.epoch + 1,
                dict(sorted(counts.items())),
            )
        return schedule

    def progressive_train(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: Sequence[torch.Tensor],
        labels: torch.Tensor,
        meta: Dict[str, Any],
        ctx: Optional[StepContext],
        loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One progressive iteration; returns (last step's predictions, mean step loss)."""
        schedule = self.schedule_for(ctx)
        step_inputs = split_steps(inputs, schedule)
        loss_fn = loss_fn or self.compute_loss
        ddp = isinstance(model, nn.parallel.DistributedDataParallel)
        last = len(step_inputs) - 1
        losses = []
        preds = None
        optimizer.zero_grad(set_to_none=True)
        try:
            for k, x in enumerate(step_inputs):
                set_step(model, k)
                quiet = ddp and self.train_together and k < last
                with model.no_sync() if quiet else contextlib.nullcontext():
                    with self.autocast():
                        preds = self.forward(model, x, step_meta(meta, k))
                        loss = loss_fn(preds, _step_labels(labels, k, len(step_inputs), meta))
                    if ctx is not None:
                        check_finite_loss(loss, ctx)
                    elif not torch.isfinite(loss.detach()).all():
                        raise FloatingPointError(f"PGT step {k}: the loss is {float(loss)}")
                    self.backward(loss, retain_graph=self.keep_graph and k < last)
                if not self.train_together:
                    self.optimizer_step(model, optimizer)
                    optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach().float())
                preds = preds.detach()
        finally:
            set_step(model, None)
        if self.train_together:
            self.optimizer_step(model, optimizer)
        return preds.float(), torch.stack(losses).mean()

    def precise_bn_forward(self, model: nn.Module):
        """Precise BN through the steps: every step of a clip is one statistics sample (whole
        long clips in train mode would not fit the head)."""
        schedule = self.schedule

        def split(inputs: List[torch.Tensor], meta: Dict[str, Any]):
            for k, x in enumerate(split_steps(inputs, schedule)):
                yield k, self.model_args(x, step_meta(meta, k))

        return StepModel(model), split, schedule.steps

    def end_forward(self, model: nn.Module) -> None:
        """Back to whole-clip forwards, no cache kept."""
        set_step(model, None)

    def train_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        inputs: List[torch.Tensor],
        labels: torch.Tensor,
        meta: Dict[str, Any],
        ctx: StepContext,
    ) -> StepOutput:
        preds, loss = self.progressive_train(model, optimizer, inputs, labels, meta, ctx)
        return StepOutput(loss=loss, preds=preds)

    @torch.no_grad()
    def eval_step(
        self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]
    ) -> torch.Tensor:
        """PG long (``PGT.PG_EVAL``): the steps' probabilities combined; orig long otherwise."""
        with self.autocast():
            if not self.pg_eval:
                set_step(model, None)
                return self.forward(model, inputs, meta).float()
            return self._pg_long(model, inputs, meta)

    def _pg_long(
        self, model: nn.Module, inputs: List[torch.Tensor], meta: Dict[str, Any]
    ) -> torch.Tensor:
        steps = split_steps(inputs, self.schedule)
        if not self.detection:
            outputs = _run_steps(model, steps, lambda x: self.forward(model, x, meta).float())
            return combine_steps(outputs, self.ensemble)
        # Detection: each step scores its own boxes (those of the second nearest to its centre
        # where the dataset gives per-step boxes); the last step's boxes are the keyframe's.
        metas = iter([step_meta(meta, k) for k in range(len(steps))])
        outputs = _run_steps(model, steps, lambda x: self.forward(model, x, next(metas)).float())
        if self.all_step_test:
            return torch.cat(outputs, dim=0)
        return outputs[-1]

    def eval_boxes(self, meta: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """With ``PGT.ALL_STEP_TEST`` (PG long): every step's boxes, in step order; else the
        keyframe's (the last step's)."""
        if self.pg_eval and self.all_step_test:
            if "step_ori_boxes" not in meta:
                raise ValueError(
                    "PGT.ALL_STEP_TEST needs the dataset's per-step boxes (meta['step_ori_boxes']"
                    ", meta['step_metadata'])"
                )
            return torch.cat(list(meta["step_ori_boxes"])), torch.cat(list(meta["step_metadata"]))
        return meta["ori_boxes"], meta["metadata"]


def train_step(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    loss_fun: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: CfgNode,
    scaler: Optional[torch.amp.GradScaler] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One progressive training iteration of ``model`` on the long clip ``inputs`` with the
    configured schedule (no DPR draw); returns ``(last_step_preds, mean_loss)``."""
    runner = ProgressiveStepRunner(cfg, scaler=scaler)
    return runner.progressive_train(model, optimizer, inputs, labels, {}, None, loss_fun)


class StepModel(nn.Module):
    """Wraps a PGT model so that calling it on ``(step, inputs)`` runs that step; the steps of
    a clip must come in order (precise BN iterates over them through it); the runner's
    ``end_forward`` returns the caches to the whole-clip state afterwards."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = unwrap(model)

    def forward(self, item: Tuple[int, Any]) -> torch.Tensor:
        """``item``: ``(step, inputs)`` or ``(step, call arguments)`` (a runner's
        ``model_args``: the inputs, and the boxes of a detection model)."""
        step, args = item
        set_step(self.model, step)
        if not isinstance(args, tuple):
            args = (args,)
        try:
            return self.model(*args)
        except BaseException:
            set_step(self.model, None)
            raise
