"""tools/submit_slurm.py: argument building only (no SLURM here)."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "submit_slurm.py"
_spec = importlib.util.spec_from_file_location("submit_slurm", _PATH)
submit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(submit)


def test_expand_nodelist():
    assert submit.expand_nodelist("gpu[01-03,7],cpu5") == [
        "gpu01",
        "gpu02",
        "gpu03",
        "gpu7",
        "cpu5",
    ]
    assert submit.expand_nodelist("node1") == ["node1"]


def test_submit_args_and_executor_parameters():
    args, rest = submit.parse_submit_args(
        [
            "--partition",
            "p1",
            "--nodes",
            "2",
            "--gpus-per-node",
            "4",
            "--time",
            "60",
            "--job-dir",
            "/j/%j",
            "--cfg",
            "a.yaml",
            "SOLVER.MAX_EPOCH",
            "3",
        ]
    )
    assert rest == ["--cfg", "a.yaml", "SOLVER.MAX_EPOCH", "3"]
    params = submit.executor_parameters(args)
    assert params["nodes"] == 2 and params["gpus_per_node"] == 4 and params["tasks_per_node"] == 1
    assert params["slurm_partition"] == "p1" and params["timeout_min"] == 60
    assert "mem_gb" not in params


def test_node_argv_from_slurm_env_parses_with_run_net_parser():
    from slowfast.utils.parser import parse_args

    env = {"SLURM_JOB_NODELIST": "gpu[11-12]", "SLURM_NODEID": "1", "SLURM_JOB_NUM_NODES": "2"}
    init, shard, shards = submit.shard_from_slurm(env, 29511)
    assert (init, shard, shards) == ("tcp://gpu11:29511", 1, 2)
    argv = submit.run_net_argv(["--cfg", "a.yaml", "SOLVER.MAX_EPOCH", "3"], init, shard, shards, 8)
    parsed = parse_args(argv)
    assert parsed.init_method == "tcp://gpu11:29511"
    assert (parsed.shard_id, parsed.num_shards) == (1, 2)
    assert parsed.cfg_files == ["a.yaml"]
    assert parsed.opts == ["SOLVER.MAX_EPOCH", "3", "NUM_GPUS", "8"]


def test_missing_cfg_and_slurm_env_errors():
    with pytest.raises(SystemExit):
        submit.parse_submit_args(["--nodes", "2"])
    with pytest.raises(RuntimeError, match="SLURM_JOB_NODELIST"):
        submit.shard_from_slurm({}, 1)
