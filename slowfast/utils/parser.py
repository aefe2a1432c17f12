"""Command-line arguments and config loading, as PySlowFast's ``tools/run_net.py`` takes them."""

from __future__ import annotations

import argparse
import re
import sys
from typing import List, Optional

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.config.node import CfgNode

_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)*$")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse ``--cfg CFG [CFG ...] [--init_method URL] [--shard_id I] [--num_shards N]
    [KEY VALUE ...]``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        description="Train and test video models (PySlowFast-compatible, with PGT).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Trailing KEY VALUE pairs override config keys, e.g. NUM_GPUS 0 "
        "DATA.PATH_TO_DATA_DIR /data/kinetics",
    )
    parser.add_argument(
        "--shard_id", type=int, default=0, help="index of this machine (0 .. num_shards - 1)"
    )
    parser.add_argument("--num_shards", type=int, default=1, help="number of machines")
    parser.add_argument(
        "--init_method",
        default="tcp://localhost:9999",
        help="torch.distributed init method, e.g. tcp://HOST:PORT (machine 0's address)",
    )
    parser.add_argument(
        "--cfg",
        dest="cfg_files",
        nargs="+",
        default=["configs/Kinetics/SLOWFAST_8x8_R50.yaml"],
        help="config file(s); each one is a separate job, run in order (as PySlowFast)",
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=None, help="KEY VALUE config overrides"
    )
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        parser.print_help()
    args = parser.parse_args(argv)
    # A KEY VALUE list right after --cfg's files is swallowed by nargs="+": split it off.
    files = list(args.cfg_files)
    extra: List[str] = []
    for i, f in enumerate(files):
        if _CONFIG_KEY.match(f):
            files, extra = files[:i], files[i:]
            break
    args.cfg_files = files
    args.opts = extra + list(args.opts or [])
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    return args


def load_config(args: argparse.Namespace, path_to_config: Optional[str] = None) -> CfgNode:
    """Build the config: defaults, the file(s), then the ``KEY VALUE`` overrides, then the
    shard arguments; validated with ``assert_and_infer_cfg``.

    Args:
        args: as returned by ``parse_args``.
        path_to_config: a single file to use instead of ``args.cfg_files`` (``run_net`` runs
            each of several files as its own job, as PySlowFast does).
    """
    cfg = get_cfg()
    files = [path_to_config] if path_to_config is not None else list(args.cfg_files or [])
    for path in files:
        cfg.merge_from_file(path)
    if getattr(args, "opts", None):
        cfg.merge_from_list(list(args.opts))
    if hasattr(args, "num_shards") and hasattr(args, "shard_id"):
        if args.num_shards != 1 or args.shard_id != 0:
            cfg.NUM_SHARDS = args.num_shards
            cfg.SHARD_ID = args.shard_id
    from slowfast.utils.multiprocessing import torchrun_shards

    shards = torchrun_shards(int(cfg.NUM_GPUS))
    if shards is not None:  # torchrun knows the world: validate with it
        cfg.NUM_SHARDS, cfg.SHARD_ID = shards
    if hasattr(args, "rng_seed"):
        cfg.RNG_SEED = args.rng_seed
    try:
        return assert_and_infer_cfg(cfg)
    except ValueError as err:
        where = " + ".join(files + (["command line"] if getattr(args, "opts", None) else []))
        raise ValueError(f"{where}: {err}") from None
