"""``tools/run_net.py``'s body: parse the arguments, load the config, train then test."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, List, NoReturn, Optional

import torch
from fvcore.common.config import CfgNode

from slowfast.engine.evaluator import test
from slowfast.engine.trainer import train
from slowfast.utils import distributed as du
from slowfast.utils.multiprocessing import launch_job, under_torchrun
from slowfast.utils.parser import load_config, parse_args
from slowfast.utils.train_state import Interrupted


def user_errors() -> tuple:
    """Errors whose message says all a user needs (the file, line or key): printed without a
    traceback."""
    from slowfast.datasets.build import DataError
    from slowfast.engine.steps import NonFiniteLossError
    from slowfast.engine.trainer import LossExplosionError
    from slowfast.utils.checkpoint import CheckpointWriteError, UnreadableCheckpointError

    return (
        DataError,
        UnreadableCheckpointError,
        CheckpointWriteError,
        NonFiniteLossError,
        LossExplosionError,
        FileNotFoundError,
    )


def check_devices(cfg: CfgNode) -> None:
    """``NUM_GPUS`` must be available here."""
    if cfg.NUM_GPUS <= 0:
        return
    if not torch.cuda.is_available():
        raise ValueError(
            f"NUM_GPUS is {cfg.NUM_GPUS} but CUDA is not available on this machine; set "
            "NUM_GPUS 0 to run on the CPU"
        )
    if not under_torchrun() and cfg.NUM_GPUS > torch.cuda.device_count():
        raise ValueError(
            f"NUM_GPUS is {cfg.NUM_GPUS} but this machine has {torch.cuda.device_count()} "
            "CUDA device(s)"
        )


def main(
    argv: Optional[List[str]] = None,
    train_func: Callable[[CfgNode], object] = train,
    test_func: Callable[[CfgNode], object] = test,
) -> int:
    """``--cfg CFG [CFG ...] [--init_method URL --num_shards N --shard_id I] [KEY VALUE ...]``:
    for each config file in order (a separate job each, as PySlowFast does; the overrides apply
    to all), run ``train`` when ``TRAIN.ENABLE``, then ``test`` when ``TEST.ENABLE``, on every
    rank. Returns the exit code: 0, 2 for a config error, 1 for an error in the data or a
    checkpoint, 128 + signal for a stop on a signal (a checkpoint was written).

    ``train_func`` / ``test_func`` replace the loops (tests and tools that wrap them)."""
    args = parse_args(argv)
    files = list(args.cfg_files or [])
    for i, path in enumerate(files):
        if len(files) > 1:
            print(f"[run_net] job {i + 1} of {len(files)}: {path}", file=sys.stderr)
        code = _run_one(args, path, train_func, test_func)
        if code != 0:
            return code
    return 0


def _run_one(
    args: Any,
    path: str,
    train_func: Callable[[CfgNode], object],
    test_func: Callable[[CfgNode], object],
) -> int:
    try:
        cfg = load_config(args, path)
        check_devices(cfg)
    except (KeyError, ValueError, FileNotFoundError) as err:
        # A config problem: the message names the file and the key; no traceback needed.
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if cfg.TRAIN.ENABLE:
            launch_job(cfg=cfg, init_method=args.init_method, func=train_func)
        if cfg.TEST.ENABLE:
            launch_job(cfg=cfg, init_method=args.init_method, func=test_func)
    except Interrupted as stopped:
        print(f"stopped: {stopped}", file=sys.stderr)
        du.shutdown()
        return stopped.exit_code
    except torch.multiprocessing.ProcessRaisedException as err:
        if "Interrupted" not in str(err):
            raise
        print(f"stopped (a spawned rank): {str(err).strip().splitlines()[-1]}", file=sys.stderr)
        return 143
    except user_errors() as err:
        logging.getLogger(__name__).debug("stopping on an error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        du.shutdown()
        return 1
    du.shutdown()  # a group kept from train through test (torchrun, one process per machine)
    return 0


def run_and_exit(
    argv: Optional[List[str]] = None, **funcs: Callable[[CfgNode], object]
) -> NoReturn:
    """``main`` as a process's whole life (``tools/run_net.py``).

    A process that joined a process group leaves with ``os._exit`` once the job is done, its
    group destroyed and its logs flushed: gloo's threads can otherwise abort the interpreter's
    finalisation ("terminate called without an active exception") and turn a successful
    multi-machine run into a failed exit code.
    """
    code = main(argv, **funcs)
    if du.joined_a_group():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
