"""Multi-process runs on the CPU (gloo): torchrun and tcp:// shards.

Two ranks must end with identical weights, equal to one process trained on the union of their
batches (TinyNet has no batch statistics; every epoch is one full-batch step, so the sampler's
order does not matter). A rank that dies must end the whole job, in bounded time.
"""

import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import engine_tiny as et
import pytest
import torch

TINY = str(Path(__file__).with_name("engine_tiny.py"))
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _torchrun(cfg_path, env, timeout=90):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        TINY,
        "--cfg",
        cfg_path,
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def _final(out, rank):
    return torch.load(os.path.join(out, f"final_rank{rank}.pt"))


# 3 test clips over 2 ranks: the distributed sampler pads with a repeated clip.
WITH_TEST = {
    "SOLVER.MAX_EPOCH": 3,
    "TEST.ENABLE": True,
    "TEST.NUM_ENSEMBLE_VIEWS": 1,
    "TEST.BATCH_SIZE": 2,
    "TEST.SAVE_RESULTS_PATH": "preds.pyth",
}


def _one_process_reference(tmp_path):
    from slowfast.engine.evaluator import test
    from slowfast.utils.parser import load_config, parse_args

    out = str(tmp_path / "single")
    path = et.write_cfg(str(tmp_path / "single.yaml"), out, **WITH_TEST)
    cfg = load_config(parse_args(["--cfg", path]))
    et.train_and_save(cfg)
    test(cfg)
    with open(os.path.join(out, "preds.pyth"), "rb") as f:
        return _final(out, 0), pickle.load(f)


def test_torchrun_two_cpu_ranks_match_one_process(tmp_path):
    out = str(tmp_path / "ddp")
    plots = {"TENSORBOARD.ENABLE": True, "TENSORBOARD.CONFUSION_MATRIX.ENABLE": True}
    cfg_path = et.write_cfg(str(tmp_path / "ddp.yaml"), out, **WITH_TEST, **plots)
    proc, _ = _torchrun(cfg_path, _env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = _final(out, 0), _final(out, 1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # rank 1 logs to its own file, rank 0 to stdout.log
    assert os.path.isfile(os.path.join(out, "stdout_rank1.log"))
    assert "rank 1 of 2" in open(os.path.join(out, "stdout_rank1.log")).read()

    single, single_preds = _one_process_reference(tmp_path)
    assert set(single) == set(rank0) and single
    for key, value in single.items():
        torch.testing.assert_close(rank0[key], value, rtol=1e-5, atol=1e-6)
    # the test gathered every clip once from both ranks: same video scores as one process
    with open(os.path.join(out, "preds.pyth"), "rb") as f:
        preds, labels = pickle.load(f)
    torch.testing.assert_close(preds, single_preds[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(labels, single_preds[1])
    log = open(os.path.join(out, "stdout.log")).read()
    assert "1 repeated test clips were counted once" in log
    # each rank validated 3 of the 6 videos; rank 0 plotted the confusion matrix of all 6
    assert log.count(f"tensorboard: 1 validation figure(s) of {et.NUM_VAL} videos") == 3


def test_dead_rank_ends_torchrun_job(tmp_path):
    out = str(tmp_path / "dead")
    cfg_path = et.write_cfg(str(tmp_path / "dead.yaml"), out, **{"SOLVER.MAX_EPOCH": 3})
    env = _env(TINY_FAIL_RANK=1, TINY_FAIL_AT=5, SLOWFAST_DIST_TIMEOUT_S=20)
    proc, elapsed = _torchrun(cfg_path, env, timeout=90)
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stdout + proc.stderr
    assert elapsed < 60


def _shard_cmd(cfg_path, port, shard):
    return [
        sys.executable,
        TINY,
        "--cfg",
        cfg_path,
        "--init_method",
        f"tcp://127.0.0.1:{port}",
        "--num_shards",
        "2",
        "--shard_id",
        str(shard),
    ]


def _run_shards(cfg_path, env, timeout=90):
    port = _free_port()
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            _shard_cmd(cfg_path, port, s),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in (0, 1)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in procs], outs, time.monotonic() - start


def test_tcp_shards_train_with_identical_weights(tmp_path):
    out = str(tmp_path / "tcp")
    cfg_path = et.write_cfg(
        str(tmp_path / "tcp.yaml"), out, **{"SOLVER.MAX_EPOCH": 2, "TEST.ENABLE": True}
    )
    codes, outs, _ = _run_shards(cfg_path, _env())
    assert codes == [0, 0], "\n".join(o[-2000:] for o in outs)
    rank0, rank1 = _final(out, 0), _final(out, 1)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    ckpt = torch.load(os.path.join(out, "checkpoints", "checkpoint_epoch_00002.pyth"))
    for key, value in ckpt["model_state"].items():
        assert torch.equal(value, rank0[key]), key
    # the test ran after training in the same processes (the group is kept, not re-joined)
    assert '"split": "test_final"' in open(os.path.join(out, "stdout.log")).read()


def test_dead_shard_ends_both_shards(tmp_path):
    out = str(tmp_path / "tcp_dead")
    cfg_path = et.write_cfg(str(tmp_path / "tcp_dead.yaml"), out, **{"SOLVER.MAX_EPOCH": 3})
    env = _env(TINY_FAIL_RANK=1, TINY_FAIL_AT=5, SLOWFAST_DIST_TIMEOUT_S=15)
    codes, outs, elapsed = _run_shards(cfg_path, env)
    assert codes[0] != 0 and codes[1] != 0, codes
    assert "injected failure on rank 1" in outs[1]
    assert elapsed < 60


@pytest.mark.parametrize("world", [1])
def test_collectives_without_process_group(world):
    from slowfast.utils import distributed as du

    t = torch.arange(3.0)
    assert du.get_world_size() == world and du.get_rank() == 0 and du.is_master_proc(0)
    assert du.all_reduce([t])[0] is t
    assert du.all_gather([t])[0] is t


def test_torchrun_env_checks_num_gpus(monkeypatch):
    from slowfast.config.defaults import get_cfg
    from slowfast.utils.multiprocessing import launch_job

    for key, value in {"RANK": 0, "WORLD_SIZE": 2, "LOCAL_RANK": 0, "LOCAL_WORLD_SIZE": 2}.items():
        monkeypatch.setenv(key, str(value))
    cfg = get_cfg()
    cfg.NUM_GPUS = 1
    with pytest.raises(ValueError, match="set NUM_GPUS 2"):
        launch_job(cfg, "tcp://localhost:1", lambda c: None)
    cfg.NUM_GPUS = 0
    cfg.DIST_BACKEND = "nccl"
    with pytest.raises(ValueError, match="DIST_BACKEND gloo"):
        launch_job(cfg, "tcp://localhost:1", lambda c: None)


def test_spawned_rank_failure_propagates_and_stops_the_others(tmp_path, capfd):
    """The path of NUM_GPUS > 1 (one spawned process per device), here on CPU with gloo."""
    import torch.multiprocessing as mp

    from slowfast.config.defaults import get_cfg
    from slowfast.utils.multiprocessing import run

    cfg = get_cfg()
    cfg.NUM_GPUS = 0
    init = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    # spawn re-raises the first failure it sees: rank 1's, or rank 0's lost connection
    with pytest.raises(
        mp.ProcessRaisedException, match="rank 1 fails on purpose|closed by peer|reset by peer"
    ):
        mp.spawn(run, nprocs=2, args=(2, et.fail_on_rank_one, init, 0, 1, "gloo", cfg))
    assert time.monotonic() - start < 40
    # every rank's own error is printed, so the cause is visible either way
    assert "rank 1 failed:" in capfd.readouterr().err
