"""The training loop: epochs of training, precise BN, checkpoints, validation.

``train(cfg)`` is called on every rank (see ``slowfast.utils.multiprocessing.launch_job``). What
one iteration does with a batch is the step runner's business (``slowfast.engine.steps``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn

from slowfast.engine.common import (
    device_for,
    format_summary,
    memory_summary,
    progress,
    setup_run,
    to_device,
    update_summary,
    wall_time,
    wrap_ddp,
)
from slowfast.engine.steps import ClipStepRunner, StepContext, build_step_runner
from slowfast.utils import distributed as du
from slowfast.utils import metrics
from slowfast.utils.meters import TrainMeter, ValMeter
from slowfast.utils.tensorboard import TensorboardWriter
from slowfast.utils.train_state import Interrupted, StopRequest

logger = logging.getLogger(__name__)


def topk_ks(cfg: CfgNode) -> Tuple[int, ...]:
    """(1, 5), without 5 when there are fewer than 5 classes."""
    return (1, 5) if cfg.MODEL.NUM_CLASSES >= 5 else (1,)


def _batch_errors(
    preds: torch.Tensor, labels: torch.Tensor, cfg: CfgNode
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    errs = metrics.topk_errors(preds, labels, topk_ks(cfg))
    return errs[0], errs[1] if len(errs) > 1 else None


class LossExplosionError(RuntimeError):
    """The loss jumped past ``TRAIN.KILL_LOSS_EXPLOSION_FACTOR`` times its recent mean."""


class LossExplosionGuard:
    """PySlowFast's ``TRAIN.KILL_LOSS_EXPLOSION_FACTOR``: stop when an iteration's loss (the
    all-reduced one, so every rank decides alike) exceeds the factor times the mean of the 5
    iterations before it (checked once 6 losses of the epoch are known)."""

    def __init__(self, cfg: CfgNode) -> None:
        self.factor = float(cfg.TRAIN.KILL_LOSS_EXPLOSION_FACTOR)
        self.recent: List[float] = []

    def check(self, loss: float, epoch: int, iteration: int, iters: int) -> None:
        if self.factor <= 0.0:
            return
        if len(self.recent) >= 5:
            mean = sum(self.recent[-5:]) / 5.0
            if loss > self.factor * mean:
                raise LossExplosionError(
                    f"loss exploded at epoch {epoch + 1}, iteration {iteration + 1}/{iters}: "
                    f"{loss:.6g} > TRAIN.KILL_LOSS_EXPLOSION_FACTOR {self.factor:g} x "
                    f"{mean:.6g} (the mean of the 5 iterations before); stopping"
                )
        self.recent = (self.recent + [loss])[-5:]


def _stop_requested(stop: StopRequest, device: torch.device) -> bool:
    """Whether any rank received a stop signal (all ranks stop at the same iteration)."""
    if du.get_world_size() == 1:
        return stop.pending is not None
    flag = torch.tensor([0.0 if stop.pending is None else 1.0], device=device)
    (flag,) = du.all_reduce([flag], average=False)
    if float(flag) > 0 and stop.pending is None:
        stop.pending = "a stop signal on another rank"
    return float(flag) > 0


def val_meter_for(cfg: CfgNode, loader: Any) -> Any:
    """``ValMeter``, or for detection (``DETECTION.ENABLE``) an ``AVAMeter`` scoring frame mAP
    against the annotation files (the dataset gives the video names)."""
    if not cfg.DETECTION.ENABLE:
        return ValMeter(len(loader), cfg)
    from slowfast.utils.ava_meter import AVAMeter

    return AVAMeter(len(loader), cfg, "val", video_names=detection_video_names(loader.dataset))


def detection_video_names(dataset: Any) -> List[str]:
    """Video index -> video id of a detection dataset (``dataset.video_names``)."""
    names = getattr(dataset, "video_names", None)
    if names is None:
        raise ValueError(
            f"DETECTION.ENABLE: the dataset {type(dataset).__name__} has no video_names (video "
            "index -> video id), which the AVA evaluation needs"
        )
    return list(names)


def train_epoch(
    loader: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meter: TrainMeter,
    cur_epoch: int,
    cfg: CfgNode,
    runner: ClipStepRunner,
    writer: Optional[TensorboardWriter] = None,
    start_iter: int = 0,
    stop: Optional[StopRequest] = None,
) -> Dict[str, Any]:
    """Train one epoch; the learning rate is set every iteration. Returns the epoch's stats.

    ``start_iter``: iterations of this epoch already done (a resumed run): the loader's sampler
    skips their items, the rest come in the same order. ``stop``: after each iteration, when a
    stop signal arrived (on any rank), write a mid-epoch checkpoint and raise ``Interrupted``.
    """
    from slowfast.models.optimizer import get_epoch_lr, set_lr
    from slowfast.utils import checkpoint as cu

    model.train()
    data_size = len(loader)
    if start_iter:
        loader.sampler.set_start(start_iter * loader.batch_size)
        logger.info(
            "epoch %d: resuming after iteration %d of %d", cur_epoch + 1, start_iter, data_size
        )
    if data_size == 0:
        raise ValueError(
            f"the train loader of {cfg.TRAIN.DATASET!r} yields no batch: TRAIN.BATCH_SIZE "
            f"({cfg.TRAIN.BATCH_SIZE}) exceeds the training set (the last partial batch is "
            "dropped)"
        )
    device = device_for(cfg)
    world = du.get_world_size()
    explosion = LossExplosionGuard(cfg)
    meter.iter_tic()
    batches = progress(
        loader, data_size - start_iter, f"train {cur_epoch + 1}/{cfg.SOLVER.MAX_EPOCH}"
    )
    for cur_iter, (inputs, labels, _index, meta) in enumerate(batches, start=start_iter):
        inputs, labels, meta = to_device((inputs, labels, meta), device)
        lr = get_epoch_lr(cur_epoch + cur_iter / data_size, cfg)
        set_lr(optimizer, lr)
        meter.data_toc()
        ctx = StepContext(cur_epoch, cur_iter, data_size, cfg.SOLVER.MAX_EPOCH, lr)
        out = runner.train_step(model, optimizer, inputs, labels, meta, ctx)

        top1_err = top5_err = None
        if cfg.DATA.MULTI_LABEL or cfg.DETECTION.ENABLE:  # the loss only, as PySlowFast
            (loss,) = du.all_reduce([out.loss.clone()])
        else:
            top1_err, top5_err = _batch_errors(out.preds, labels, cfg)
            reduced = du.all_reduce(
                [t for t in (out.loss.clone(), top1_err, top5_err) if t is not None]
            )
            loss, top1_err = reduced[0], reduced[1]
            top5_err = reduced[2] if top5_err is not None else None
        loss_v = float(loss)
        explosion.check(loss_v, cur_epoch, cur_iter, data_size)
        top1_v = None if top1_err is None else float(top1_err)
        top5_v = None if top5_err is None else float(top5_err)
        meter.update_stats(top1_v, top5_v, loss_v, lr, inputs[0].size(0) * world)
        meter.iter_toc()
        meter.log_iter_stats(cur_epoch, cur_iter)
        if writer is not None:
            scalars = {"Train/loss": loss_v, "Train/lr": lr}
            if top1_v is not None:
                scalars["Train/Top1_err"] = top1_v
            if top5_v is not None:
                scalars["Train/Top5_err"] = top5_v
            writer.add_scalars(scalars, global_step=data_size * cur_epoch + cur_iter)
        if stop is not None and _stop_requested(stop, device):
            path = cu.save_checkpoint(
                cfg.OUTPUT_DIR,
                model,
                optimizer,
                cur_epoch,
                cfg,
                scaler=runner.scaler,
                iteration=cur_iter + 1,
            )
            du.synchronize()
            raise Interrupted(stop.pending or "stop", cur_epoch, cur_iter + 1, path)
        meter.iter_tic()
    stats = meter.log_epoch_stats(cur_epoch)
    meter.reset()
    return stats


@torch.no_grad()
def eval_epoch(
    loader: Any,
    model: nn.Module,
    meter: ValMeter,
    cur_epoch: int,
    cfg: CfgNode,
    runner: ClipStepRunner,
    writer: Optional[TensorboardWriter] = None,
) -> Dict[str, Any]:
    """Evaluate on the validation set; return the epoch's stats (errors, or mAP).

    When ``writer.wants_eval_predictions`` (the confusion matrix / histogram plots), the
    single-label top-1 predictions and labels of all ranks are kept and plotted at the end."""
    model.eval()
    device = device_for(cfg)
    world = du.get_world_size()
    keep_preds = writer is not None and writer.wants_eval_predictions
    meter.iter_tic()
    batches = progress(loader, len(loader), f"val {cur_epoch + 1}/{cfg.SOLVER.MAX_EPOCH}")
    for cur_iter, (inputs, labels, _index, meta) in enumerate(batches):
        inputs, labels, meta = to_device((inputs, labels, meta), device)
        meter.data_toc()
        preds = runner.eval_step(model, inputs, meta)
        if cfg.DETECTION.ENABLE:  # AVAMeter: the boxes' scores, frame mAP at the epoch's end
            ori_boxes, metadata = runner.eval_boxes(meta)
            preds, ori_boxes, metadata = du.all_gather([preds, ori_boxes, metadata])
            meter.update_stats(preds.cpu(), ori_boxes.cpu(), metadata.cpu())
        elif cfg.DATA.MULTI_LABEL:
            preds, labels = du.all_gather([preds, labels])
            meter.update_predictions(preds, labels)
        else:
            top1_err, top5_err = _batch_errors(preds, labels, cfg)
            errs = du.all_reduce([t for t in (top1_err, top5_err) if t is not None])
            top5 = float(errs[1]) if top5_err is not None else None
            meter.update_stats(float(errs[0]), top5, inputs[0].size(0) * world)
            if keep_preds:
                meter.update_predictions(*du.all_gather([preds.argmax(dim=1), labels]))
        meter.iter_toc()
        meter.log_iter_stats(cur_epoch, cur_iter)
        meter.iter_tic()
    stats = meter.log_epoch_stats(cur_epoch)
    if writer is not None:
        names = {"top1_err": "Val/Top1_err", "top5_err": "Val/Top5_err", "map": "Val/mAP"}
        writer.add_scalars({names[k]: v for k, v in stats.items() if k in names}, cur_epoch)
        if keep_preds and meter.all_preds:
            writer.plot_eval(torch.cat(meter.all_preds), torch.cat(meter.all_labels), cur_epoch)
    meter.reset()
    return stats


def _decode_failures(loader: Any, device: torch.device) -> Tuple[int, int]:
    """(failed decodes in the loader's last pass, distinct videos that failed so far), summed
    over all ranks (loaders that count them; 0 otherwise).

    ``device``: where the counts are reduced (NCCL reduces CUDA tensors only)."""
    distinct = len(getattr(loader, "decode_failures", {}) or {})
    in_epoch = int(getattr(loader, "epoch_decode_failures", 0) or 0)
    counts = torch.tensor([float(in_epoch), float(distinct)], device=device)
    counts = du.all_reduce([counts], average=False)[0]
    return int(counts[0].item()), int(counts[1].item())


class _BestTracker:
    """Best and last validation results, for the summary."""

    def __init__(self) -> None:
        self.values: Dict[str, Any] = {}

    def update(self, stats: Dict[str, Any], cur_epoch: int) -> None:
        if "map" in stats:
            best = max(self.values.get("best_val_map", float("-inf")), stats["map"])
            self.values.update(last_val_map=stats["map"], best_val_map=best)
            return
        top1 = 100.0 - stats["top1_err"]
        top5 = 100.0 - stats["top5_err"] if "top5_err" in stats else None
        self.values.update(last_val_top1_acc=top1, last_val_top5_acc=top5)
        if top1 > self.values.get("best_val_top1_acc", float("-inf")):
            self.values.update(
                best_val_top1_acc=top1, best_val_top5_acc=top5, best_val_epoch=cur_epoch + 1
            )


def train(cfg: CfgNode) -> Dict[str, Any]:
    """Train ``cfg``'s model (resuming from OUTPUT_DIR's newest checkpoint), validating every
    ``TRAIN.EVAL_PERIOD`` epochs; return the run summary."""
    from slowfast.datasets.loader import construct_loader
    from slowfast.models import build_model
    from slowfast.models.optimizer import construct_optimizer
    from slowfast.utils import checkpoint as cu
    from slowfast.utils.misc import log_model_info

    start_time = time.time()
    setup_run(cfg, "train")
    # First: the validation plots' files are checked here, before any model or data is built.
    writer = TensorboardWriter(cfg, enabled=cfg.TENSORBOARD.ENABLE and du.is_root_proc())
    model = build_model(cfg, gpu_id=du.get_local_rank() if cfg.NUM_GPUS > 0 else None)
    if cfg.LOG_MODEL_INFO and du.is_root_proc():
        log_model_info(model, cfg, use_train_input=True)
    model = wrap_ddp(model, cfg)
    optimizer = construct_optimizer(model, cfg)
    runner = build_step_runner(cfg)
    resume: Dict[str, Any] = {}
    start_epoch = cu.load_train_checkpoint(cfg, model, optimizer, runner.scaler, resume)
    start_iter = int(resume.get("iteration", 0))

    train_loader = construct_loader(cfg, "train")
    val_loader = construct_loader(cfg, "val")
    precise_bn_loader = construct_loader(cfg, "train") if cfg.BN.USE_PRECISE_STATS else None
    train_meter = TrainMeter(len(train_loader), cfg)
    val_meter = val_meter_for(cfg, val_loader)
    tracker = _BestTracker()
    failures_per_epoch: List[int] = []

    logger.info("start epoch: %d of %d", start_epoch + 1, cfg.SOLVER.MAX_EPOCH)
    last_epoch = start_epoch
    with StopRequest() as stop:
        try:
            last_epoch = _train_epochs(
                cfg, model, optimizer, runner, stop, start_epoch, start_iter,
                (train_loader, val_loader, precise_bn_loader),
                (train_meter, val_meter, writer, tracker, failures_per_epoch),
            )  # fmt: skip
        except Interrupted as stopped:
            writer.close()
            logger.warning("%s", stopped)
            stop.after_checkpoint()  # submitit: requeue; plain SLURM: scontrol requeue
            raise
    writer.close()
    extra: Dict[str, Any] = {}
    dpr_counts = getattr(runner, "dpr_counts", None)
    if dpr_counts:  # PGT.DPR: how often each step length was drawn, per epoch (1-based)
        extra["dpr_step_lengths"] = {
            str(epoch + 1): {str(k): int(n) for k, n in sorted(counts.items())}
            for epoch, counts in sorted(dpr_counts.items())
        }
    return _train_summary(
        cfg, start_epoch, last_epoch, start_time, failures_per_epoch, tracker, extra
    )


def _train_epochs(
    cfg: CfgNode,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    runner: ClipStepRunner,
    stop: StopRequest,
    start_epoch: int,
    start_iter: int,
    loaders: Tuple[Any, Any, Any],
    state: Tuple[Any, Any, Any, Any, List[int]],
) -> int:
    """The epochs from ``start_epoch`` (its first ``start_iter`` iterations done); returns the
    number of the last epoch finished."""
    from slowfast.datasets.loader import shuffle_dataset
    from slowfast.utils import checkpoint as cu
    from slowfast.utils.bn_helper import (
        aggregate_sub_bn_stats,
        calculate_and_update_precise_bn,
        get_bn_modules,
    )
    from slowfast.utils.misc import is_eval_epoch

    train_loader, val_loader, precise_bn_loader = loaders
    train_meter, val_meter, writer, tracker, failures_per_epoch = state
    last_epoch = start_epoch
    for cur_epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        shuffle_dataset(train_loader, cur_epoch)
        epoch_stats = train_epoch(
            train_loader, model, optimizer, train_meter, cur_epoch, cfg, runner, writer,
            start_iter=start_iter if cur_epoch == start_epoch else 0, stop=stop,
        )  # fmt: skip
        failures, bad_videos = _decode_failures(train_loader, device_for(cfg))
        failures_per_epoch.append(failures)
        if failures:
            logger.warning(
                "epoch %d: %d clips failed to decode and were replaced (%d distinct bad videos "
                "in this run)",
                cur_epoch + 1,
                failures,
                bad_videos,
            )
        if writer is not None:
            writer.add_scalars({"Train/epoch_loss": epoch_stats["loss"]}, cur_epoch)

        is_ckpt = cu.is_checkpoint_epoch(cfg, cur_epoch)
        is_eval = is_eval_epoch(cfg, cur_epoch)
        if (is_ckpt or is_eval) and cfg.BN.USE_PRECISE_STATS and get_bn_modules(model):
            bn_model, split, per_batch = runner.precise_bn_forward(model)
            calculate_and_update_precise_bn(
                precise_bn_loader,
                bn_model,
                min(cfg.BN.NUM_BATCHES_PRECISE, len(precise_bn_loader)) * per_batch,
                cfg.NUM_GPUS > 0,
                split=split,
            )
            runner.end_forward(model)
        aggregate_sub_bn_stats(model)
        if is_ckpt:
            cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, cur_epoch, cfg, runner.scaler)
        if is_eval:
            # The inner module: evaluation needs no DDP synchronisation.
            val_stats = eval_epoch(
                val_loader, cu.unwrap_model(model), val_meter, cur_epoch, cfg, runner, writer
            )
            tracker.update(val_stats, cur_epoch)
        last_epoch = cur_epoch + 1
    return last_epoch


def _train_summary(
    cfg: CfgNode,
    start_epoch: int,
    last_epoch: int,
    start_time: float,
    failures_per_epoch: List[int],
    tracker: _BestTracker,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    summary = update_summary(
        cfg,
        {
            "output_dir": cfg.OUTPUT_DIR,
            "start_epoch": start_epoch + 1,
            "epochs_trained": max(0, cfg.SOLVER.MAX_EPOCH - start_epoch),
            "last_epoch": last_epoch,
            "max_epoch": cfg.SOLVER.MAX_EPOCH,
            "train_wall_time": wall_time(time.time() - start_time),
            "train_memory": memory_summary(cfg),
            "decode_failures": failures_per_epoch,
            **(extra or {}),
            **tracker.values,
        },
    )
    if du.is_root_proc():
        logger.info("%s", format_summary(summary))
    return summary
