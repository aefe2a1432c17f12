#!/usr/bin/env python3
"""Submit ``tools/run_net.py`` to SLURM with submitit: one task per node, one process per GPU.

    python tools/submit_slurm.py --partition learnfair --nodes 2 --gpus-per-node 8 \\
        --time 4320 --job-dir /checkpoint/$USER/jobs/%j --cfg CFG [KEY VALUE ...]
    python tools/submit_slurm.py --nodes 2 --gpus-per-node 0 --cpus-per-task 2 --cfg CFG ...
    python tools/submit_slurm.py --dry-run --nodes 2 --cfg CFG ...   # print, submit nothing

The options before ``--cfg`` are SLURM's; everything from ``--cfg`` on is ``run_net``'s. On each
node the task reads its place from ``submitit.JobEnvironment`` (node index, number of nodes,
host names), meets the others at ``tcp://<first host>:<port>`` and runs ``run_net`` with
``--num_shards``/``--shard_id``/``--init_method`` and ``NUM_GPUS <gpus per node>``.
``--gpus-per-node 0`` asks SLURM for no GPU: one CPU process per node, ``DIST_BACKEND gloo``.

The task is a ``submitit.helpers.Checkpointable``: on the signal SLURM sends before a time-out or
a pre-emption (USR2), submitit calls ``NodeTask.checkpoint`` and requeues the same task.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Dict, List, Optional, Tuple

import submitit

RUN_NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_net.py")


def parse_submit_args(argv: Optional[List[str]] = None) -> Tuple[argparse.Namespace, List[str]]:
    """The SLURM options, and the remaining ``run_net`` arguments (``--cfg ... KEY VALUE``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--partition", default="", help="SLURM partition (default: the default)")
    parser.add_argument("--nodes", type=int, default=1, help="machines")
    parser.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs (processes) per node; 0: a CPU job"
    )
    parser.add_argument("--cpus-per-task", type=int, default=10, help="CPUs per node's task")
    parser.add_argument("--mem-gb", type=int, default=0, help="memory per node (0: default)")
    parser.add_argument("--time", type=int, default=4320, help="time limit in minutes")
    parser.add_argument("--job-dir", default="slurm_jobs/%j", help="submitit's folder (%%j: id)")
    parser.add_argument("--name", default="slowfast", help="job name")
    parser.add_argument("--constraint", default="", help="SLURM constraint, e.g. volta32gb")
    parser.add_argument("--comment", default="", help="SLURM comment")
    parser.add_argument("--account", default="", help="SLURM account")
    parser.add_argument("--qos", default="", help="SLURM quality of service")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port of the rendezvous on the first node (0: 20000 + job id modulo 20000)",
    )
    parser.add_argument(
        "--max-requeues", type=int, default=30, help="times a timed-out job requeues itself"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the sbatch script and each node's run_net command; submit nothing",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cfg" not in argv:
        parser.parse_args(argv)  # --help, or an error about our own options first
        parser.error("give the run_net arguments after the SLURM options: --cfg CFG [KEY VALUE]")
    # everything from --cfg on is run_net's, even an option that looks like one of ours
    split = argv.index("--cfg")
    args, rest = parser.parse_args(argv[:split]), argv[split:]
    for key in ("--init_method", "--num_shards", "--shard_id"):
        if key in rest:
            parser.error(f"{key} is set per node by submit_slurm.py; remove it")
    for arg in ("nodes", "gpus_per_node", "cpus_per_task", "time"):
        low = 0 if arg == "gpus_per_node" else 1
        if getattr(args, arg) < low:
            parser.error(f"--{arg.replace('_', '-')} must be >= {low}")
    return args, rest


def slurm_parameters(args: argparse.Namespace) -> Dict[str, object]:
    """Keyword arguments of ``submitit.SlurmExecutor.update_parameters`` (sbatch's names)."""
    params: Dict[str, object] = {
        "job_name": args.name,
        "nodes": args.nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": args.cpus_per_task,
        "time": args.time,
    }
    if args.gpus_per_node > 0:  # a CPU job asks for no GPU at all (no --gpus-per-node=0)
        params["gpus_per_node"] = args.gpus_per_node
    optional = {
        "partition": args.partition,
        "mem": f"{args.mem_gb}GB" if args.mem_gb else "",
        "constraint": args.constraint,
        "comment": args.comment,
        "account": args.account,
        "qos": args.qos,
    }
    params.update({k: v for k, v in optional.items() if v})
    return params


def run_net_argv(
    rest: List[str], init_method: str, shard_id: int, num_shards: int, gpus_per_node: int
) -> List[str]:
    """The ``run_net`` arguments of one node: the shard options, the user's arguments, then
    ``NUM_GPUS`` (and ``DIST_BACKEND gloo`` for a CPU job unless the user chose a backend)."""
    argv = [
        "--init_method",
        init_method,
        "--num_shards",
        str(num_shards),
        "--shard_id",
        str(shard_id),
        *rest,
        "NUM_GPUS",
        str(gpus_per_node),
    ]
    if gpus_per_node == 0 and "DIST_BACKEND" not in rest:
        argv += ["DIST_BACKEND", "gloo"]
    return argv


def rendezvous_port(port: int, job_id: str) -> int:
    """``port``, or for 0 a port derived from the job id (jobs sharing a node differ)."""
    if port:
        return port
    digits = "".join(c for c in str(job_id).split("_")[0] if c.isdigit())
    return 20000 + int(digits or 0) % 20000


class NodeTask(submitit.helpers.Checkpointable):
    """What submitit runs on each node: ``run_net`` as this node's shard (picklable)."""

    def __init__(self, rest: List[str], gpus_per_node: int, port: int = 0) -> None:
        self.rest = list(rest)
        self.gpus_per_node = gpus_per_node
        self.port = port

    def place(self) -> Tuple[str, int, int]:
        """``(init_method, shard_id, num_shards)`` of this node, from submitit's job environment."""
        try:
            env = submitit.JobEnvironment()
        except RuntimeError as err:
            raise RuntimeError(f"NodeTask runs inside a submitit SLURM job only: {err}") from None
        if env.num_tasks != env.num_nodes:
            raise RuntimeError(
                f"one task per node expected, the job has {env.num_tasks} tasks on "
                f"{env.num_nodes} nodes (submit with ntasks_per_node=1)"
            )
        port = rendezvous_port(self.port, env.job_id)
        return f"tcp://{env.hostnames[0]}:{port}", env.node, env.num_nodes

    def argv(self) -> List[str]:
        init_method, shard_id, num_shards = self.place()
        return run_net_argv(self.rest, init_method, shard_id, num_shards, self.gpus_per_node)

    def __call__(self) -> int:
        from slowfast.engine.run import main

        argv = self.argv()
        node = os.environ.get("SLURMD_NODENAME", "?")
        print(f"[submit_slurm] node {node}: run_net {shlex.join(argv)}", flush=True)
        code = main(argv)
        if code != 0:
            raise RuntimeError(f"run_net exited with code {code} on node {node}")
        return code

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on USR2 (time-out, pre-emption): requeue this same task."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def sbatch_script(args: argparse.Namespace) -> str:
    """The sbatch script submitit writes for this job (for ``--dry-run``)."""
    from submitit.slurm import slurm as submitit_slurm

    folder = submitit.core.utils.JobPaths(args.job_dir).folder
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", str(folder)])
    return submitit_slurm._make_sbatch_string(
        command=command, folder=folder, **slurm_parameters(args)
    )


def dry_run(args: argparse.Namespace, rest: List[str]) -> None:
    print("# sbatch script (submitit writes it to <job dir>/<job id>_submission.sh)")
    print(sbatch_script(args))
    port = str(args.port) if args.port else "<20000 + job id % 20000>"
    print(f"# run_net on each of the {args.nodes} node(s), inside the submitit task:")
    for node in range(args.nodes):
        init = f"tcp://<first host>:{port}"
        argv = run_net_argv(rest, init, node, args.nodes, args.gpus_per_node)
        print(shlex.join([sys.executable, RUN_NET, *argv]))


def main(argv: Optional[List[str]] = None) -> int:
    args, rest = parse_submit_args(argv)
    if args.dry_run:
        dry_run(args, rest)
        return 0
    try:
        executor = submitit.SlurmExecutor(folder=args.job_dir, max_num_timeout=args.max_requeues)
    except RuntimeError as err:
        print(f"error: {err} (use --dry-run to see what would be submitted)", file=sys.stderr)
        return 2
    executor.update_parameters(**slurm_parameters(args))
    job = executor.submit(NodeTask(rest, args.gpus_per_node, args.port))
    print(f"submitted job {job.job_id}")
    for task in range(args.nodes):
        paths = submitit.core.utils.JobPaths(args.job_dir, job_id=job.job_id, task_id=task)
        print(f"  node {task}: stdout {paths.stdout}")
        print(f"  node {task}: stderr {paths.stderr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
