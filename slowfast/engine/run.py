"""``tools/run_net.py``'s body: parse the arguments, load the config, train then test."""

from __future__ import annotations

import sys
from typing import List, Optional

from slowfast.engine.evaluator import test
from slowfast.engine.trainer import train
from slowfast.utils.multiprocessing import launch_job
from slowfast.utils.parser import load_config, parse_args


def main(argv: Optional[List[str]] = None) -> int:
    """``--cfg CFG [--init_method URL --num_shards N --shard_id I] [KEY VALUE ...]``: run
    ``train`` when ``TRAIN.ENABLE``, then ``test`` when ``TEST.ENABLE``, on every rank."""
    args = parse_args(argv)
    try:
        cfg = load_config(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        # A config problem: the message names the file and the key; no traceback needed.
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg.TRAIN.ENABLE:
        launch_job(cfg=cfg, init_method=args.init_method, func=train)
    if cfg.TEST.ENABLE:
        launch_job(cfg=cfg, init_method=args.init_method, func=test)
    return 0
