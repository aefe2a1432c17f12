"""Process-group set-up and the collective operations the engine uses.

Every function works without an initialised process group (a single process): sizes are 1,
rank 0, collectives return their input.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import List, Optional

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# Seconds a collective may wait for a peer before it fails (a dead rank then ends the job).
TIMEOUT_ENV = "SLOWFAST_DIST_TIMEOUT_S"
_DEFAULT_TIMEOUT_S = {"gloo": 120.0, "nccl": 1800.0}

# Whether this process joined a process group (see ``joined_a_group``).
_JOINED = False
_LOCAL_RANK: Optional[int] = None


def is_dist_avail_and_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the job (1 without a process group)."""
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine (its GPU index when on GPUs)."""
    if _LOCAL_RANK is not None:
        return _LOCAL_RANK
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_master_proc(num_gpus: int = 8) -> bool:
    """Whether this process is the first of its group of ``num_gpus`` ranks.

    ``is_master_proc(cfg.NUM_GPUS * cfg.NUM_SHARDS)`` is true on global rank 0 only;
    ``num_gpus <= 0`` (CPU runs) also means global rank 0.
    """
    if not is_dist_avail_and_initialized():
        return True
    if num_gpus <= 0:
        return dist.get_rank() == 0
    return dist.get_rank() % num_gpus == 0


def is_root_proc() -> bool:
    """Whether this is global rank 0."""
    return get_rank() == 0


def dist_timeout(backend: str) -> datetime.timedelta:
    """Collective timeout: ``$SLOWFAST_DIST_TIMEOUT_S`` seconds, else 120 s (gloo) / 30 min."""
    seconds = os.environ.get(TIMEOUT_ENV)
    value = float(seconds) if seconds else _DEFAULT_TIMEOUT_S.get(backend, 1800.0)
    return datetime.timedelta(seconds=value)


def init_process_group(
    local_rank: int,
    local_world_size: int,
    shard_id: int,
    num_shards: int,
    init_method: str,
    dist_backend: str = "nccl",
    use_gpu: bool = True,
) -> None:
    """Join the job's process group as rank ``shard_id * local_world_size + local_rank``.

    Args:
        local_rank: index of this process on its machine.
        local_world_size: processes per machine.
        shard_id: index of this machine.
        num_shards: number of machines.
        init_method: ``tcp://HOST:PORT`` or ``env://``.
        dist_backend: ``nccl`` or ``gloo``.
        use_gpu: bind this process to GPU ``local_rank``.
    """
    world_size = local_world_size * num_shards
    rank = shard_id * local_world_size + local_rank
    _join(local_rank, rank, world_size, init_method, dist_backend, use_gpu)


def init_process_group_from_env(dist_backend: str = "gloo", use_gpu: bool = False) -> None:
    """Join the process group described by ``$RANK``, ``$WORLD_SIZE``, ``$LOCAL_RANK``,
    ``$MASTER_ADDR`` and ``$MASTER_PORT`` (what ``torchrun`` sets)."""
    local_rank, rank = int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    _join(local_rank, rank, world_size, "env://", dist_backend, use_gpu)


def _join(
    local_rank: int, rank: int, world_size: int, init_method: str, backend: str, use_gpu: bool
) -> None:
    global _LOCAL_RANK, _JOINED
    _LOCAL_RANK = local_rank
    if use_gpu:
        torch.cuda.set_device(local_rank)
    _JOINED = True
    dist.init_process_group(
        backend=backend,
        init_method=init_method,
        world_size=world_size,
        rank=rank,
        timeout=dist_timeout(backend),
    )


def destroy_process_group() -> None:
    """Leave the process group, if any."""
    if is_dist_avail_and_initialized():
        dist.destroy_process_group()


def joined_a_group() -> bool:
    """Whether this process has been part of a process group."""
    return _JOINED


def shutdown() -> None:
    """Leave the process group cleanly at the end of a job: wait for every rank (so no
    collective is still in flight), free unreachable objects that hold the group (a DDP
    model's reducer), then destroy the group while the interpreter is fully alive. Tearing
    gloo down from ``atexit`` instead can abort the process after a successful run."""
    if not is_dist_avail_and_initialized():
        return
    import gc

    synchronize()
    gc.collect()
    dist.destroy_process_group()


def synchronize() -> None:
    """Barrier across all processes (no-op in a single process)."""
    if get_world_size() > 1:
        dist.barrier()


def all_reduce(tensors: List[torch.Tensor], average: bool = True) -> List[torch.Tensor]:
    """Sum (or average) each tensor over all processes, in place; return the list."""
    world = get_world_size()
    if world == 1:
        return tensors
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    if average:
        for t in tensors:
            t.div_(world)
    return tensors


def all_gather(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    """Concatenate each tensor over all processes along dim 0, in rank order.

    The first dimension may differ between processes (the last test batch may be short);
    the other dimensions must agree.
    """
    world = get_world_size()
    if world == 1:
        return tensors
    out = []
    for t in tensors:
        t = t.contiguous()
        size = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s.item()) for s in sizes]
        longest = max(sizes)
        if t.shape[0] < longest:
            pad = t.new_zeros((longest - t.shape[0],) + tuple(t.shape[1:]))
            t = torch.cat([t, pad], dim=0)
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        out.append(torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0))
    return out


def all_gather_object(obj):
    """The list of ``obj`` from every process, in rank order."""
    world = get_world_size()
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out
