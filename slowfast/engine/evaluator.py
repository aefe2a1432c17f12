"""Multi-view testing: every video is scored over ``TEST.NUM_ENSEMBLE_VIEWS x
TEST.NUM_SPATIAL_CROPS`` views, combined by ``DATA.ENSEMBLE_METHOD``."""

from __future__ import annotations

import logging
import os
import pickle
import time
from typing import Any, Dict, Optional

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
)
from slowfast.engine.steps import ClipStepRunner, build_step_runner
from slowfast.utils import distributed as du
from slowfast.utils.meters import TestMeter

logger = logging.getLogger(__name__)


@torch.no_grad()
def perform_test(
    loader: Any, model: nn.Module, meter: TestMeter, cfg: CfgNode, runner: ClipStepRunner
) -> Dict[str, Any]:
    """Score every clip of ``loader``, gather the clips of all ranks, combine the views;
    return the final metrics."""
    model.eval()
    device = device_for(cfg)
    log_period = max(1, cfg.LOG_PERIOD)
    meter.iter_tic()
    for cur_iter, (inputs, labels, index, meta) in enumerate(progress(loader, len(loader), "test")):
        inputs, labels, meta = to_device((inputs, labels, meta), device)
        index = index.to(device)
        meter.data_toc()
        preds = runner.eval_step(model, inputs, meta)
        preds, labels, index = du.all_gather([preds, labels, index])
        meter.iter_toc()
        meter.update_stats(preds.cpu(), labels.cpu(), index.cpu())
        if (cur_iter + 1) % log_period == 0:
            meter.log_iter_stats(cur_iter)
        meter.iter_tic()
    return meter.finalize_metrics(ks=(1, 5))


@torch.no_grad()
def perform_detection_test(
    loader: Any, model: nn.Module, meter: Any, cfg: CfgNode, runner: ClipStepRunner
) -> Dict[str, Any]:
    """Score every box of ``loader`` (an ``AVAMeter`` in test mode gathers the boxes of all
    ranks); return ``{"map": frame mAP}``."""
    model.eval()
    device = device_for(cfg)
    log_period = max(1, cfg.LOG_PERIOD)
    meter.iter_tic()
    for cur_iter, (inputs, _labels, _index, meta) in enumerate(
        progress(loader, len(loader), "test")
    ):
        inputs, meta = to_device((inputs, meta), device)
        meter.data_toc()
        preds = runner.eval_step(model, inputs, meta)
        ori_boxes, metadata = runner.eval_boxes(meta)
        preds, ori_boxes, metadata = du.all_gather([preds, ori_boxes, metadata])
        meter.iter_toc()
        meter.update_stats(preds.cpu(), ori_boxes.cpu(), metadata.cpu())
        if (cur_iter + 1) % log_period == 0:
            meter.log_iter_stats(0, cur_iter)
        meter.iter_tic()
    return {"map": meter.finalize_metrics()}


def save_results(path: str, video_preds: torch.Tensor, video_labels: torch.Tensor) -> str:
    """Write ``[video_preds, video_labels]`` (CPU tensors) with ``pickle.dump``, PySlowFast's
    format for ``TEST.SAVE_RESULTS_PATH`` (read it back with ``pickle.load``). Returns
    ``path``."""
    from iopath.common.file_io import g_pathmgr

    parent = os.path.dirname(path)
    if parent:
        g_pathmgr.mkdirs(parent)
    with g_pathmgr.open(path, "wb") as f:
        pickle.dump([video_preds.detach().cpu(), video_labels.detach().cpu()], f)
    return path


def test_cost(model: nn.Module, cfg: CfgNode, views: int) -> Optional[Dict[str, Any]]:
    """The cost of testing one video as the paper's tables write it, ``GFLOPs x P x views``:
    the GFLOPs of one forward at ``DATA.TEST_CROP_SIZE`` (with ``PGT.PG_EVAL``: of one step,
    run P times; otherwise of the whole clip, P = 1). ``None`` when fvcore cannot count."""
    from slowfast.utils.misc import get_flops

    steps = 1
    one = cfg
    if cfg.PGT.ENABLE and cfg.PGT.PG_EVAL:
        one = cfg.clone()
        one.DATA.NUM_FRAMES = int(cfg.PGT.STEP_LEN[-1])
        steps = int(cfg.PGT.STEPS)
    try:
        gflops = get_flops(model, one, use_train_input=False)
    except Exception as e:  # statistics must not stop a test; say why they are missing
        logger.warning("test cost could not be computed: %s: %s", type(e).__name__, e)
        return None
    return {
        "gflops": gflops,
        "steps": steps,
        "views": views,
        "total_gflops": gflops * steps * views,
        "text": f"{gflops:.2f} GFLOPs x {steps} x {views} views = {gflops * steps * views:.1f}",
    }


def test(cfg: CfgNode) -> Dict[str, Any]:
    """Test the newest checkpoint (or ``TEST.CHECKPOINT_FILE_PATH``); return the summary."""
    from slowfast.datasets.loader import construct_loader
    from slowfast.models import build_model
    from slowfast.utils import checkpoint as cu
    from slowfast.utils.misc import log_model_info

    start_time = time.time()
    setup_run(cfg, "test")
    model = build_model(cfg, gpu_id=du.get_local_rank() if cfg.NUM_GPUS > 0 else None)
    if cfg.LOG_MODEL_INFO and du.is_root_proc():
        log_model_info(model, cfg, use_train_input=False)
    checkpoint = cu.load_test_checkpoint(cfg, model)

    loader = construct_loader(cfg, "test")
    if cfg.DETECTION.ENABLE:
        return _test_detection(cfg, model, loader, checkpoint, start_time)
    dataset = loader.dataset
    num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
    num_videos = int(dataset.num_videos)
    if len(dataset) != num_videos * num_clips:
        raise ValueError(
            f"the test set of {cfg.TEST.DATASET!r} has {len(dataset)} clips, not "
            f"{num_videos} videos x {num_clips} views (TEST.NUM_ENSEMBLE_VIEWS "
            f"{cfg.TEST.NUM_ENSEMBLE_VIEWS} x TEST.NUM_SPATIAL_CROPS {cfg.TEST.NUM_SPATIAL_CROPS})"
        )
    logger.info(
        "testing %s on %d videos x %d views", checkpoint or "a random model", num_videos, num_clips
    )
    meter = TestMeter(
        num_videos,
        num_clips,
        cfg.MODEL.NUM_CLASSES,
        len(loader),
        multi_label=cfg.DATA.MULTI_LABEL,
        ensemble_method=cfg.DATA.ENSEMBLE_METHOD,
    )
    cost = test_cost(model, cfg, num_clips) if du.is_root_proc() else None
    if cost is not None:
        mode = ""
        if cfg.PGT.ENABLE:
            mode = " (PG long)" if cfg.PGT.PG_EVAL else " (orig long)"
        logger.info("test cost per video%s: %s", mode, cost["text"])
    stats = perform_test(loader, model, meter, cfg, build_step_runner(cfg))

    if cfg.TEST.SAVE_RESULTS_PATH and du.is_root_proc():
        path = save_results(
            os.path.join(cfg.OUTPUT_DIR, cfg.TEST.SAVE_RESULTS_PATH),
            meter.video_preds,
            meter.video_labels,
        )
        logger.info("saved per-video predictions and labels to %s", path)

    values: Dict[str, Any] = {
        "output_dir": cfg.OUTPUT_DIR,
        "test_checkpoint": checkpoint,
        "test_views": num_clips,
        "test_cost": cost,
        "test_wall_time": wall_time(time.time() - start_time),
        "test_memory": memory_summary(cfg),
    }
    if "map" in stats:
        values["test_map"] = stats["map"]
    else:
        values["test_top1_acc"] = stats.get("top1_acc")
        values["test_top5_acc"] = stats.get("top5_acc")
    summary = update_summary(cfg, values)
    if du.is_root_proc():
        logger.info("%s", format_summary(summary))
    return summary


def _test_detection(
    cfg: CfgNode, model: nn.Module, loader: Any, checkpoint: Optional[str], start_time: float
) -> Dict[str, Any]:
    """AVA-style test: each keyframe's boxes scored once (no multi-view), frame mAP."""
    from slowfast.engine.trainer import detection_video_names
    from slowfast.utils.ava_meter import AVAMeter

    names = detection_video_names(loader.dataset)
    logger.info(
        "testing %s on %d keyframes of %d videos",
        checkpoint or "a random model",
        len(loader.dataset),
        len(names),
    )
    meter = AVAMeter(len(loader), cfg, "test", video_names=names)
    cost = test_cost(model, cfg, 1) if du.is_root_proc() else None
    if cost is not None:
        mode = ""
        if cfg.PGT.ENABLE:
            mode = " (PG long)" if cfg.PGT.PG_EVAL else " (orig long)"
        logger.info("test cost per clip%s: %s", mode, cost["text"])
    stats = perform_detection_test(loader, model, meter, cfg, build_step_runner(cfg))
    values: Dict[str, Any] = {
        "output_dir": cfg.OUTPUT_DIR,
        "test_checkpoint": checkpoint,
        "test_views": 1,
        "test_cost": cost,
        "test_map": stats["map"],
        "test_wall_time": wall_time(time.time() - start_time),
        "test_memory": memory_summary(cfg),
    }
    summary = update_summary(cfg, values)
    if du.is_root_proc():
        logger.info("%s", format_summary(summary))
    return summary
