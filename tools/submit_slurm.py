#!/usr/bin/env python3
"""Submit ``tools/run_net.py`` to SLURM with submitit: one task per node, one process per GPU.

    python tools/submit_slurm.py --partition learnfair --nodes 2 --gpus-per-node 8 \\
        --time 4320 --job-dir /checkpoint/$USER/jobs/%j --cfg CFG [KEY VALUE ...]

On each node the task reads its place from SLURM (``SLURM_NODEID``, ``SLURM_JOB_NUM_NODES``,
``SLURM_JOB_NODELIST``), meets the others at ``tcp://<first node>:<port>`` and runs
``run_net`` with ``--num_shards``/``--shard_id`` and ``NUM_GPUS <gpus per node>``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Tuple


def parse_submit_args(argv: Optional[List[str]] = None) -> Tuple[argparse.Namespace, List[str]]:
    """The SLURM options, and the remaining ``run_net`` arguments (``--cfg ... KEY VALUE``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partition", default="", help="SLURM partition")
    parser.add_argument("--nodes", type=int, default=1, help="machines")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (processes) per node")
    parser.add_argument("--cpus-per-task", type=int, default=10, help="CPUs per node's task")
    parser.add_argument("--mem-gb", type=int, default=0, help="memory per node (0: default)")
    parser.add_argument("--time", type=int, default=4320, help="time limit in minutes")
    parser.add_argument("--job-dir", default="slurm_jobs/%j", help="submitit's folder (%%j: id)")
    parser.add_argument("--name", default="slowfast", help="job name")
    parser.add_argument("--constraint", default="", help="SLURM constraint, e.g. volta32gb")
    parser.add_argument("--comment", default="", help="SLURM comment")
    parser.add_argument("--port", type=int, default=29500, help="port of the rendezvous")
    args, rest = parser.parse_known_args(argv)
    if "--cfg" not in rest:
        parser.error("give the run_net arguments after the SLURM options: --cfg CFG [KEY VALUE]")
    return args, rest


def executor_parameters(args: argparse.Namespace) -> Dict[str, object]:
    """Keyword arguments of ``submitit.AutoExecutor.update_parameters``."""
    params: Dict[str, object] = {
        "name": args.name,
        "nodes": args.nodes,
        "tasks_per_node": 1,
        "gpus_per_node": args.gpus_per_node,
        "cpus_per_task": args.cpus_per_task,
        "timeout_min": args.time,
    }
    if args.partition:
        params["slurm_partition"] = args.partition
    if args.mem_gb:
        params["mem_gb"] = args.mem_gb
    if args.constraint:
        params["slurm_constraint"] = args.constraint
    if args.comment:
        params["slurm_comment"] = args.comment
    return params


def expand_nodelist(nodelist: str) -> List[str]:
    """Expand SLURM's compressed host list: ``gpu[01-02,5],cpu7`` -> gpu01, gpu02, gpu5, cpu7."""
    hosts: List[str] = []
    for match in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist):
        prefix, ranges = match.group(1), match.group(2)
        if ranges is None:
            hosts.append(prefix)
            continue
        for part in ranges.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                hosts.extend(f"{prefix}{i:0{len(lo)}d}" for i in range(int(lo), int(hi) + 1))
            else:
                hosts.append(prefix + part)
    return hosts


def shard_from_slurm(environ: Mapping[str, str], port: int) -> Tuple[str, int, int]:
    """``(init_method, shard_id, num_shards)`` of this node's task, from SLURM's variables."""
    try:
        hosts = expand_nodelist(environ["SLURM_JOB_NODELIST"])
        shard_id = int(environ["SLURM_NODEID"])
        num_shards = int(environ["SLURM_JOB_NUM_NODES"])
    except KeyError as e:
        raise RuntimeError(f"not inside a SLURM job: ${e.args[0]} is not set") from None
    return f"tcp://{hosts[0]}:{port}", shard_id, num_shards


def run_net_argv(
    rest: List[str], init_method: str, shard_id: int, num_shards: int, gpus_per_node: int
) -> List[str]:
    """The ``run_net`` arguments of one node: the user's, the shard options, ``NUM_GPUS``."""
    return [
        *rest[: rest.index("--cfg")],
        "--init_method",
        init_method,
        "--num_shards",
        str(num_shards),
        "--shard_id",
        str(shard_id),
        *rest[rest.index("--cfg") :],
        "NUM_GPUS",
        str(gpus_per_node),
    ]


class NodeTask:
    """What submitit runs on each node (picklable)."""

    def __init__(self, rest: List[str], gpus_per_node: int, port: int) -> None:
        self.rest = rest
        self.gpus_per_node = gpus_per_node
        self.port = port

    def __call__(self) -> int:
        from slowfast.engine.run import main

        init_method, shard_id, num_shards = shard_from_slurm(os.environ, self.port)
        argv = run_net_argv(self.rest, init_method, shard_id, num_shards, self.gpus_per_node)
        return main(argv)


def main(argv: Optional[List[str]] = None) -> int:
    import submitit

    args, rest = parse_submit_args(argv)
    executor = submitit.AutoExecutor(folder=args.job_dir, slurm_max_num_timeout=30)
    executor.update_parameters(**executor_parameters(args))
    job = executor.submit(NodeTask(rest, args.gpus_per_node, args.port))
    print(f"submitted job {job.job_id}; logs in {args.job_dir.replace('%j', str(job.job_id))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
