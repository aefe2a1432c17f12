"""``tools/run_net.py``'s body: parse the arguments, load the config, train then test."""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable, List, NoReturn, Optional

import torch
from fvcore.common.config import CfgNode

from slowfast.engine.evaluator import test
from slowfast.engine.trainer import train
from slowfast.utils import distributed as du
from slowfast.utils.multiprocessing import launch_job
from slowfast.utils.parser import load_config, parse_args
from slowfast.utils.train_state import Interrupted


def main(
    argv: Optional[List[str]] = None,
    train_func: Callable[[CfgNode], object] = train,
    test_func: Callable[[CfgNode], object] = test,
) -> int:
    """``--cfg CFG [--init_method URL --num_shards N --shard_id I] [KEY VALUE ...]``: run
    ``train`` when ``TRAIN.ENABLE``, then ``test`` when ``TEST.ENABLE``, on every rank.

    ``train_func`` / ``test_func`` replace the loops (tests and tools that wrap them)."""
    args = parse_args(argv)
    try:
        cfg = load_config(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        # A config problem: the message names the file and the key; no traceback needed.
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg.TRAIN.ENABLE:
        try:
            launch_job(cfg=cfg, init_method=args.init_method, func=train_func)
        except Interrupted as stopped:
            print(f"stopped: {stopped}", file=sys.stderr)
            du.shutdown()
            return stopped.exit_code
        except torch.multiprocessing.ProcessRaisedException as err:
            if "Interrupted" not in str(err):
                raise
            print(f"stopped (a spawned rank): {str(err).strip().splitlines()[-1]}", file=sys.stderr)
            return 143
    if cfg.TEST.ENABLE:
        launch_job(cfg=cfg, init_method=args.init_method, func=test_func)
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
