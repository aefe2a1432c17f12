"""Set-up shared by training and testing: seeds, logging, the saved config, devices, DDP,
progress bars and the end-of-run summary."""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import sys
from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import torch
from fvcore.common.config import CfgNode
from torch import nn

from slowfast.utils import distributed as du
from slowfast.utils.env import collect_env_info, gpu_mem_usage_gb, peak_rss_gb
from slowfast.utils.logging import setup_logging

logger = logging.getLogger(__name__)

SUMMARY_FILE = "run_summary.json"


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and torch (the same seed on every rank, as PySlowFast)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_run(cfg: CfgNode, job: str) -> None:
    """Seeds, rank-aware logging to ``OUTPUT_DIR``, environment/arguments/config in the log,
    the resolved config saved to ``OUTPUT_DIR/config.yaml`` (master only)."""
    set_seeds(cfg.RNG_SEED)
    setup_logging(cfg.OUTPUT_DIR)
    logger.info(
        "%s: rank %d of %d (local rank %d)",
        job,
        du.get_rank(),
        du.get_world_size(),
        du.get_local_rank(),
    )
    if du.is_root_proc():
        logger.info("environment:\n%s", collect_env_info())
        logger.info("command line: %s", " ".join(sys.argv))
        logger.info("full config:\n%s", cfg.dump())
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())


def device_for(cfg: CfgNode) -> torch.device:
    """``cuda:<local rank>`` when ``NUM_GPUS > 0``, else the CPU."""
    if cfg.NUM_GPUS > 0:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (also inside lists, tuples and dicts) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def wrap_ddp(model: nn.Module, cfg: CfgNode, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when there is more than one process (CPU/gloo:
    ``device_ids=None``)."""
    if du.get_world_size() <= 1:
        return model
    if cfg.NUM_GPUS > 0:
        device = torch.cuda.current_device()
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device],
            output_device=device,
            find_unused_parameters=find_unused_parameters,
        )
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def progress(iterable: Iterable, total: int, desc: str) -> Iterable:
    """A tqdm bar with ETA on rank 0 when stdout is a terminal; the iterable itself otherwise."""
    if not (du.is_root_proc() and sys.stdout.isatty()):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False)


def memory_summary(cfg: CfgNode) -> str:
    """Peak CPU RSS of this process, and peak GPU memory when on GPU."""
    text = f"CPU RSS {peak_rss_gb():.2f} GiB"
    if cfg.NUM_GPUS > 0:
        text += f", GPU {gpu_mem_usage_gb():.2f} GiB (max allocated)"
    return text


def update_summary(cfg: CfgNode, values: Dict[str, Any]) -> Dict[str, Any]:
    """Merge ``values`` into ``OUTPUT_DIR/run_summary.json`` (master only); return the merged
    summary."""
    path = os.path.join(cfg.OUTPUT_DIR, SUMMARY_FILE)
    summary: Dict[str, Any] = {}
    if os.path.isfile(path):
        try:
            with open(path) as f:
                summary = json.load(f)
        except (OSError, ValueError):
            summary = {}
    summary.update(values)
    if du.is_root_proc():
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    return summary


def _fmt(value: Optional[float], suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def format_summary(summary: Dict[str, Any]) -> str:
    """A readable block of the run's results (train and test parts, whichever are present)."""
    lines: List[str] = ["", "=" * 26 + " run summary " + "=" * 26]
    lines.append(f"output dir          {summary.get('output_dir', '-')}")
    if "epochs_trained" in summary:
        lines.append(
            f"epochs              {summary['epochs_trained']} trained in this run, "
            f"{summary.get('last_epoch', '-')}/{summary.get('max_epoch', '-')} done"
        )
    if "best_val_top1_acc" in summary:
        lines.append(
            f"best val top-1/5    {_fmt(summary.get('best_val_top1_acc'))} / "
            f"{_fmt(summary.get('best_val_top5_acc'))} (epoch {summary.get('best_val_epoch')})"
        )
        lines.append(
            f"last val top-1/5    {_fmt(summary.get('last_val_top1_acc'))} / "
            f"{_fmt(summary.get('last_val_top5_acc'))}"
        )
    if "best_val_map" in summary:
        lines.append(
            f"val mAP best/last   {_fmt(summary.get('best_val_map'))} / "
            f"{_fmt(summary.get('last_val_map'))}"
        )
    if "train_wall_time" in summary:
        lines.append(f"train wall time     {summary['train_wall_time']}")
    if "decode_failures" in summary:
        lines.append(f"decode failures     {summary['decode_failures']} (per epoch)")
    if "test_top1_acc" in summary or "test_map" in summary:
        if "test_map" in summary:
            lines.append(f"test mAP            {_fmt(summary['test_map'])}")
        else:
            lines.append(
                f"test top-1/5        {_fmt(summary.get('test_top1_acc'))} / "
                f"{_fmt(summary.get('test_top5_acc'))} ({summary.get('test_views')} views)"
            )
        if summary.get("test_cost"):
            lines.append(f"test cost / video   {summary['test_cost']['text']}")
        lines.append(f"test wall time      {summary.get('test_wall_time', '-')}")
    for key in ("train_memory", "test_memory"):
        if key in summary:
            lines.append(f"peak memory ({key.split('_')[0]}) {summary[key]}")
    lines.append("=" * 65)
    return "\n".join(lines)


def wall_time(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))
