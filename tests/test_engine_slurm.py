"""tools/submit_slurm.py without a cluster: options, the node task's place from submitit's job
environment, the requeue hook, --dry-run. tests/test_slurm_cluster.py submits for real."""

import importlib.util
import pickle
import shlex
from pathlib import Path

import cloudpickle
import pytest
import submitit

from slowfast.utils.parser import parse_args

_PATH = Path(__file__).resolve().parents[1] / "tools" / "submit_slurm.py"
_spec = importlib.util.spec_from_file_location("submit_slurm", _PATH)
submit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(submit)

REST = ["--cfg", "a.yaml", "SOLVER.MAX_EPOCH", "3"]


def _slurm_env(monkeypatch, node, nodes=2, tasks=None, nodelist="gpu[11-12]", job_id="123"):
    env = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": job_id,
        "SLURM_NTASKS": str(nodes if tasks is None else tasks),
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NODEID": str(node),
        "SLURM_PROCID": str(node),
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": nodelist,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_submit_args_and_slurm_parameters():
    args, rest = submit.parse_submit_args(
        ["--partition", "p1", "--nodes", "2", "--gpus-per-node", "4", "--time", "60"]
        + ["--mem-gb", "64", "--job-dir", "/j/%j", *REST, "--time", "x"]
    )
    # everything from --cfg on is run_net's, even a word that looks like one of our options
    assert rest == [*REST, "--time", "x"]
    params = submit.slurm_parameters(args)
    assert params["nodes"] == 2 and params["gpus_per_node"] == 4 and params["ntasks_per_node"] == 1
    assert params["partition"] == "p1" and params["time"] == 60 and params["mem"] == "64GB"
    assert "constraint" not in params and "account" not in params
    cpu, _ = submit.parse_submit_args(["--nodes", "2", "--gpus-per-node", "0", *REST])
    assert "gpus_per_node" not in submit.slurm_parameters(cpu)  # no --gpus-per-node=0 line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nodes", "2"], "--cfg"),
        (["--nodes", "2", *REST, "--shard_id", "1"], "--shard_id is set per node"),
        (["--nodes", "0", *REST], "--nodes must be >= 1"),
        (["--gpus-per-node", "-1", *REST], "--gpus-per-node must be >= 0"),
        (["--bogus", *REST], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_submit_args(argv, message, capsys):
    with pytest.raises(SystemExit):
        submit.parse_submit_args(argv)
    assert message in capsys.readouterr().err


def test_node_task_reads_its_place_from_submitit(monkeypatch):
    _slurm_env(monkeypatch, node=1)
    parsed = parse_args(submit.NodeTask(REST, gpus_per_node=8, port=29511).argv())
    assert parsed.init_method == "tcp://gpu11:29511"
    assert (parsed.shard_id, parsed.num_shards) == (1, 2)
    assert parsed.cfg_files == ["a.yaml"]
    assert parsed.opts == ["SOLVER.MAX_EPOCH", "3", "NUM_GPUS", "8"]
    # a CPU job: gloo; port 0 derives the rendezvous port from the job id
    parsed = parse_args(submit.NodeTask(REST, gpus_per_node=0).argv())
    assert parsed.init_method == "tcp://gpu11:20123"
    assert parsed.opts[-4:] == ["NUM_GPUS", "0", "DIST_BACKEND", "gloo"]
    own = parse_args(submit.NodeTask([*REST, "DIST_BACKEND", "mpi"], gpus_per_node=0).argv())
    assert own.opts.count("DIST_BACKEND") == 1


def test_node_task_errors(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    with pytest.raises(RuntimeError, match="inside a submitit SLURM job only"):
        submit.NodeTask(REST, 0).place()
    _slurm_env(monkeypatch, node=0, nodes=2, tasks=4)
    with pytest.raises(RuntimeError, match="one task per node expected, the job has 4 tasks"):
        submit.NodeTask(REST, 0).place()


def test_rendezvous_port():
    assert submit.rendezvous_port(12345, "77") == 12345
    assert submit.rendezvous_port(0, "77") == 20077
    assert submit.rendezvous_port(0, "45000") == 25000
    assert submit.rendezvous_port(0, "88_3") == 20088  # array job: the array's id


def test_checkpoint_requeues_the_same_task():
    task = submit.NodeTask(REST, 2, 1234)
    assert isinstance(task, submitit.helpers.Checkpointable)
    delayed = task.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is task and delayed.args == () and delayed.kwargs == {}
    # submitit pickles the task with cloudpickle (by value: tools/ is no package)
    again = pickle.loads(cloudpickle.dumps(task))
    assert (again.rest, again.gpus_per_node, again.port) == (REST, 2, 1234)


def test_dry_run_prints_sbatch_script_and_node_commands(tmp_path, capsys):
    jobs = tmp_path / "jobs"
    argv = ["--dry-run", "--nodes", "2", "--gpus-per-node", "0", "--cpus-per-task", "2"]
    assert submit.main([*argv, "--job-dir", f"{jobs}/%j", *REST]) == 0
    out = capsys.readouterr().out
    for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --cpus-per-task=2"]:
        assert line in out
    assert "--gpus-per-node" not in out and "#SBATCH --signal=USR2@" in out
    assert f"srun --unbuffered --output {jobs}/%j/%j_%t_log.out" in out
    assert "submitit.core._submit" in out
    commands = [shlex.split(line) for line in out.splitlines() if "run_net.py" in line]
    assert len(commands) == 2
    for node, command in enumerate(commands):
        parsed = parse_args(command[2:])
        assert (parsed.shard_id, parsed.num_shards) == (node, 2)
        assert parsed.init_method.startswith("tcp://<first host>:")
        assert parsed.opts == ["SOLVER.MAX_EPOCH", "3", "NUM_GPUS", "0", "DIST_BACKEND", "gloo"]
    assert not jobs.exists()  # nothing submitted, nothing written
    assert submit.main(["--dry-run", "--gpus-per-node", "4", "--port", "1", *REST]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --gpus-per-node=4" in out and "tcp://<first host>:1" in out
