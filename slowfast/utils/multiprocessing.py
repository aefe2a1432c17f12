"""Starting a job on one process, one process per GPU, several machines, or under torchrun.

- ``torchrun`` (``$RANK``/``$WORLD_SIZE``/``$LOCAL_RANK`` set): this process is one rank; the
  process group is joined through ``env://``. With ``NUM_GPUS 0`` each process is a CPU rank
  (use ``DIST_BACKEND gloo``); with GPUs, ``NUM_GPUS`` must equal the processes per machine.
- ``NUM_GPUS > 1`` or ``NUM_SHARDS > 1``: ``torch.multiprocessing.spawn`` starts
  ``max(NUM_GPUS, 1)`` processes on this machine (a single one runs in this process); ranks
  are ``SHARD_ID * NUM_GPUS + local``; machines meet at ``--init_method tcp://HOST:PORT``.
  When one process raises, ``spawn`` stops the others and re-raises its error here.
- otherwise ``func(cfg)`` runs in this process.

A process that waits on a dead peer fails after the collective timeout (``distributed.py``),
so a crashed rank ends the job instead of hanging it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import traceback
from typing import Callable, Optional, Tuple

import torch
from fvcore.common.config import CfgNode

from slowfast.utils import distributed as du
from slowfast.utils.train_state import Interrupted

logger = logging.getLogger(__name__)


def under_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (or another env:// launcher)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def run(
    local_rank: int,
    num_proc: int,
    func: Callable[[CfgNode], None],
    init_method: str,
    shard_id: int,
    num_shards: int,
    backend: str,
    cfg: CfgNode,
    keep_group: bool = False,
) -> None:
    """Body of a spawned process: join the process group, then ``func(cfg)``.

    With ``keep_group`` (this process runs several jobs, e.g. train then test), the group is
    joined once and kept until the process exits: leaving and re-joining through the same
    ``tcp://`` address can meet the previous group's store.
    """
    if not du.is_dist_avail_and_initialized():
        du.init_process_group(
            local_rank=local_rank,
            local_world_size=num_proc,
            shard_id=shard_id,
            num_shards=num_shards,
            init_method=init_method,
            dist_backend=backend,
            use_gpu=cfg.NUM_GPUS > 0,
        )
        if keep_group:
            atexit.register(du.destroy_process_group)
    try:
        func(cfg)
    except Interrupted:
        raise  # a checkpointed stop on a signal, not a failure
    except BaseException:
        # spawn re-raises only the first failure it sees, which may be a peer's "connection
        # closed"; print every rank's own error so the cause is never lost
        print(f"rank {du.get_rank()} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        raise
    finally:
        if not keep_group:
            du.destroy_process_group()


def torchrun_shards(num_gpus: int) -> Optional[Tuple[int, int]]:
    """Under torchrun with GPUs: ``(NUM_SHARDS, SHARD_ID)`` of this process's machine (known
    before the config is validated, so the batch and learning-rate rules see the real world
    size); None otherwise (CPU ranks keep the configured values)."""
    if not under_torchrun() or num_gpus <= 0:
        return None
    world = int(os.environ["WORLD_SIZE"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    shard = int(os.environ.get("GROUP_RANK", int(os.environ["RANK"]) // max(1, local_world)))
    return max(1, world // max(1, local_world)), shard


def _join_torchrun_group(cfg: CfgNode) -> None:
    world = int(os.environ["WORLD_SIZE"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if cfg.NUM_GPUS > 0 and cfg.NUM_GPUS != local_world:
        raise ValueError(
            f"torchrun starts {local_world} process(es) per machine but NUM_GPUS is "
            f"{cfg.NUM_GPUS}: set NUM_GPUS {local_world} (one GPU per process), or NUM_GPUS 0 "
            "with DIST_BACKEND gloo for CPU ranks"
        )
    if cfg.NUM_GPUS == 0 and cfg.DIST_BACKEND == "nccl" and world > 1:
        raise ValueError("NUM_GPUS 0 under torchrun needs DIST_BACKEND gloo (nccl is GPU-only)")
    if cfg.NUM_GPUS > 0:
        cfg.NUM_SHARDS = world // local_world
        cfg.SHARD_ID = int(os.environ.get("GROUP_RANK", int(os.environ["RANK"]) // local_world))
    if world > 1 and not du.is_dist_avail_and_initialized():
        du.init_process_group_from_env(cfg.DIST_BACKEND, use_gpu=cfg.NUM_GPUS > 0)
        atexit.register(du.destroy_process_group)


def launch_job(
    cfg: CfgNode, init_method: str, func: Callable[[CfgNode], None], daemon: bool = False
) -> None:
    """Run ``func(cfg)`` on every rank of the job described by ``cfg`` (see module doc).

    Args:
        cfg: the config (``NUM_GPUS``, ``NUM_SHARDS``, ``SHARD_ID``, ``DIST_BACKEND``).
        init_method: where the machines meet, e.g. ``tcp://HOST:PORT``.
        func: the job, called with ``cfg`` in every process.
        daemon: start the spawned processes as daemons.
    """
    if under_torchrun():
        _join_torchrun_group(cfg)
        func(cfg)
        return
    if cfg.NUM_GPUS > 1 or cfg.NUM_SHARDS > 1:
        if cfg.NUM_GPUS == 0 and cfg.DIST_BACKEND == "nccl":
            raise ValueError("NUM_GPUS 0 with NUM_SHARDS > 1 needs DIST_BACKEND gloo")
        nprocs = max(cfg.NUM_GPUS, 1)
        args = (nprocs, func, init_method, cfg.SHARD_ID, cfg.NUM_SHARDS, cfg.DIST_BACKEND, cfg)
        if nprocs == 1:  # one process on this machine: no need for a child
            run(0, *args, keep_group=True)
        else:
            torch.multiprocessing.spawn(run, nprocs=nprocs, args=args, daemon=daemon)
        return
    func(cfg)
