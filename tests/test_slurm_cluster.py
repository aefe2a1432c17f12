"""Real SLURM jobs on a two-node cluster (scripts/slurm_local.sh starts one on this machine).

A 2-node CPU job trains then tests a small ResNet on synthetic encoded videos, submitted (a) by
tools/submit_slurm.py (submitit) and (b) with the plain template tools/slurm/run_net.sbatch. Each
must run on both nodes and end with exactly the weights (and test scores) of the same config run
as two local processes (--num_shards 2 over tcp://127.0.0.1, gloo): the same ranks do the same
float operations in the same order, one thread each, so max |dw| is 0, not a tolerance.
Pre-emption: a 3-epoch job of each kind gets `scancel --signal=USR2` after its first epoch's
checkpoint, requeues itself (Restarts=1), resumes from its mid-epoch checkpoint and ends with the
weights of the uninterrupted run (about 35 s each; SLURM holds the requeued job for
scripts/slurm_local.sh's cred_expire of 10 s, a default cluster for 120 s).
Skipped, with the reason, where no cluster with 2 idle nodes answers `sinfo`. The job folders
are under pytest's tmp_path: on a real cluster they must be visible from the nodes.
"""

import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CFG = "configs/Synthetic/SLOW_8x8_R18.yaml"
JOB_TIMEOUT_S = 120


def _cluster_problem():
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo/sbatch) here; start a cluster with scripts/slurm_local.sh"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        return "sinfo does not answer within 15 s"
    if proc.returncode != 0:
        return f"sinfo fails: {proc.stderr.strip()[:200]}"
    idle = {line.split()[0] for line in proc.stdout.splitlines() if line.split()[1:] == ["idle"]}
    if len(idle) < 2:
        return f"the SLURM cluster has {len(idle)} idle node(s), 2 needed: {proc.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # same threads in every run: same float sums
    return env


def _overrides(data, out):
    values = {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": out,
        "MODEL.NUM_CLASSES": 2,
        "DATA.NUM_FRAMES": 2,
        "DATA.SAMPLING_RATE": 2,
        "DATA.TRAIN_JITTER_SCALES": "[32, 32]",
        "DATA.TRAIN_CROP_SIZE": 32,
        "DATA.TEST_CROP_SIZE": 32,
        "TRAIN.BATCH_SIZE": 2,
        "TRAIN.AUTO_RESUME": False,
        "TEST.BATCH_SIZE": 2,
        "TEST.NUM_ENSEMBLE_VIEWS": 1,
        "TEST.NUM_SPATIAL_CROPS": 1,
        "TEST.SAVE_RESULTS_PATH": "preds.pyth",
        "SOLVER.MAX_EPOCH": 1,
        "SOLVER.WARMUP_EPOCHS": 0.0,
        "BN.USE_PRECISE_STATS": False,
        "DATA_LOADER.NUM_WORKERS": 0,
        "LOG_MODEL_INFO": False,
    }
    return [x for key, value in values.items() for x in (key, str(value))]


def _result(out):
    ckpt = torch.load(
        os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth"), weights_only=False
    )
    with open(os.path.join(out, "preds.pyth"), "rb") as f:
        return ckpt["model_state"], pickle.load(f)


def _local_two_process_run(root, videos_per_class, overrides):
    """Write the dataset under ``root`` and run ``tools/run_net.py`` there as 2 local processes
    (shards 0 and 1, gloo); ``overrides(data, out)`` gives the config overrides. Returns
    ``(data, out)``."""
    from slowfast.datasets.synthetic import make_kinetics_dataset

    data = str(root / "data")
    make_kinetics_dataset(
        data,
        num_classes=2,
        videos_per_class=videos_per_class,
        eval_videos_per_class=1,
        num_frames=16,
        width=32,
        height=32,
    )
    out = str(root / "local")
    init = f"tcp://127.0.0.1:{_free_port()}"
    argv = [sys.executable, "tools/run_net.py", "--init_method", init, "--num_shards", "2"]
    rest = ["--cfg", CFG, *overrides(data, out), "DIST_BACKEND", "gloo", "NUM_GPUS", "0"]
    procs = [
        subprocess.Popen(
            [*argv, "--shard_id", str(shard), *rest],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for shard in (0, 1)
    ]
    logs = [p.communicate(timeout=JOB_TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    return data, out


@pytest.fixture(scope="module")
def reference(cluster, tmp_path_factory):
    """The dataset, and the same run as two local processes (shards 0 and 1)."""
    root = tmp_path_factory.mktemp("slurm")
    data, out = _local_two_process_run(root, 2, _overrides)
    return root, data, _result(out)


def _wait(job_id, logs):
    """Wait for the job to leave the queue; its final state (COMPLETED, FAILED, ...)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        queued = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=15
        )
        if queued.returncode == 0 and not queued.stdout.strip():
            break
        time.sleep(1)
    else:
        subprocess.run(["scancel", job_id], timeout=15)
        pytest.fail(f"job {job_id} still queued/running after {JOB_TIMEOUT_S}s\n{logs()}")
    info = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=15
    ).stdout
    match = re.search(r"JobState=(\S+)", info)
    return match.group(1) if match else f"unknown (scontrol: {info.strip()[:200]})", info


def _hosts(info):
    """The job's host names, in SLURM's order (node 0 first)."""
    nodelist = re.search(r"\sNodeList=(\S+)", info).group(1)
    return subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=15
    ).stdout.split()


def _read(path):
    return Path(path).read_text() if os.path.isfile(path) else f"<{path} missing>"


def _assert_same_as_local(out, reference, logs):
    (ref_state, (ref_preds, ref_labels)) = reference[2]
    state, (preds, labels) = _result(out)
    assert set(state) == set(ref_state) and state, logs()
    dw = max((state[k].double() - ref_state[k].double()).abs().max().item() for k in ref_state)
    print(f"max |dw| SLURM job vs 2 local processes: {dw}")
    assert dw == 0.0, f"max |dw| = {dw}\n{logs()}"
    assert torch.equal(preds, ref_preds) and torch.equal(labels, ref_labels)
    # both ranks trained and tested: rank 1 writes its own log in the shared output folder
    rank1 = _read(os.path.join(out, "stdout_rank1.log"))
    assert "train: rank 1 of 2" in rank1 and "test: rank 1 of 2" in rank1, logs()


def _submit_submitit(root, name, overrides, data):
    """Submit a 2-node job ``name`` with tools/submit_slurm.py writing under ``root``;
    ``(job id, OUTPUT_DIR, the tasks' .out/.err logs, what the tool printed)``."""
    out, jobs = str(root / "submitit_out"), str(root / "submitit_jobs")
    argv = [sys.executable, "tools/submit_slurm.py", "--nodes", "2", "--gpus-per-node", "0"]
    argv += ["--cpus-per-task", "2", "--time", "10", "--job-dir", f"{jobs}/%j", "--name", name]
    argv += ["--cfg", CFG, *overrides(data, out)]
    proc = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.search(r"submitted job (\d+)", proc.stdout).group(1)
    paths = [f"{jobs}/{job_id}/{job_id}_{t}_log.{ext}" for t in (0, 1) for ext in ("out", "err")]
    return job_id, out, paths, proc.stdout


def test_submit_slurm_two_node_cpu_job_matches_local_run(reference):
    root, data, _ = reference
    job_id, out, paths, printed = _submit_submitit(root, "t_a", _overrides, data)
    for path in paths:  # printed for the user
        assert path in printed, printed

    def logs():
        return "\n".join(f"== {p}\n{_read(p)[-3000:]}" for p in paths)

    state, info = _wait(job_id, logs)
    assert state == "COMPLETED", f"job {job_id}: {state}\n{info}\n{logs()}"
    hosts = _hosts(info)  # node1, node2 on scripts/slurm_local.sh's cluster
    assert len(set(hosts)) == 2, info
    # each node ran its own shard, meeting at the first host
    for node, host in enumerate(hosts):
        log = _read(paths[2 * node])
        assert f"[submit_slurm] node {host}: run_net --init_method tcp://{hosts[0]}:" in log, logs()
        assert f"--num_shards 2 --shard_id {node} " in log, logs()
    _assert_same_as_local(out, reference, logs)


def _submit_sbatch(root, name, overrides, data):
    """Submit tools/slurm/run_net.sbatch as a 2-node job ``name`` writing under ``root``;
    ``(job id, OUTPUT_DIR, sbatch log, rendezvous port)``."""
    out, log_path = str(root / "sbatch_out"), str(root / "sbatch.out")
    argv = ["sbatch", "--nodes", "2", "--cpus-per-task", "2", "--time", "10", "-J", name]
    argv += ["--output", log_path, "tools/slurm/run_net.sbatch", "--cfg", CFG]
    argv += overrides(data, out)
    env = _env()
    env["PORT"] = str(_free_port())
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.search(r"Submitted batch job (\d+)", proc.stdout).group(1)
    return job_id, out, log_path, env["PORT"]


def test_sbatch_template_two_node_cpu_job_matches_local_run(reference):
    root, data, _ = reference
    job_id, out, log_path, port = _submit_sbatch(root, "t_b", _overrides, data)

    def logs():
        return f"== {log_path}\n{_read(log_path)[-5000:]}"

    state, info = _wait(job_id, logs)
    assert state == "COMPLETED", f"job {job_id}: {state}\n{info}\n{logs()}"
    log = _read(log_path)
    hosts = _hosts(info)
    assert len(set(hosts)) == 2, info
    assert f"rendezvous tcp://{hosts[0]}:{port}" in log, logs()
    for node, host in enumerate(hosts):
        assert f"run_net.sbatch: node {host} is shard {node} of 2" in log, logs()
    _assert_same_as_local(out, reference, logs)


# ---- pre-emption: USR2 after the first checkpoint, the job requeues itself and finishes -------
REQUEUE_EPOCHS = 3


def test_own_signal_after_a_stop_relayed_from_another_rank_is_not_a_second_signal():
    """Needs no cluster. ``scancel --signal`` and SLURM's ``--signal`` reach every node's task a
    few ms apart; a rank whose copy comes just after the loop relayed another rank's stop
    (``pending`` set, no signal of its own yet) must keep going to the checkpoint, not exit
    at once as on a second signal (which left the other rank in a barrier and the job FAILED,
    not requeued)."""
    code = (
        "import os, signal, time\n"
        "from slowfast.utils.train_state import StopRequest\n"
        "with StopRequest() as stop:\n"
        "    stop.pending = 'a stop signal on another rank'  # as trainer._stop_requested\n"
        "    os.kill(os.getpid(), signal.SIGUSR2)\n"
        "    time.sleep(0.2)\n"
        "    print('pending', stop.pending)\n"
        "    os.kill(os.getpid(), signal.SIGUSR2)  # now a second signal: exit at once\n"
        "    time.sleep(5)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "pending SIGUSR2" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 128 + signal.SIGUSR2, proc.stdout + proc.stderr
    assert "SIGUSR2 again: exiting now" in proc.stderr, proc.stderr


def _requeue_overrides(data, out):
    """A 3-epoch run, a checkpoint every epoch, 20 iterations per epoch and shard (40 videos a
    shard): still training for a few seconds after ``checkpoint_epoch_00001.pyth`` appears."""
    extra = {
        "SOLVER.MAX_EPOCH": REQUEUE_EPOCHS,
        "TRAIN.AUTO_RESUME": True,  # the requeued attempt picks up the mid-epoch checkpoint
        "TRAIN.CHECKPOINT_PERIOD": 1,
        "TRAIN.EVAL_PERIOD": 100,  # validates after the last epoch only
        "TEST.ENABLE": False,
    }
    return _overrides(data, out) + [x for k, v in extra.items() for x in (k, str(v))]


def _final_weights(out):
    path = os.path.join(out, "checkpoints", f"checkpoint_epoch_{REQUEUE_EPOCHS:05d}.pyth")
    return torch.load(path, weights_only=False)["model_state"]


@pytest.fixture(scope="module")
def requeue_reference(cluster, tmp_path_factory):
    """A dataset of 80 training videos and its uninterrupted 3-epoch run as 2 local processes."""
    root = tmp_path_factory.mktemp("slurm_requeue")
    data, out = _local_two_process_run(root, 40, _requeue_overrides)
    return root, data, _final_weights(out)


def _preempt_after_first_checkpoint(job_id, out, logs):
    """Wait for ``checkpoint_epoch_00001.pyth``, then send USR2 to the job's tasks the way
    SLURM does before a time-out (``--signal=USR2@T``) and as submitit's own test hook does:
    ``scancel --signal=USR2 <job>`` signals every task of every step (not the batch shell)."""
    first = os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not os.path.isfile(first):
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], timeout=15)
            pytest.fail(f"no {first} after {JOB_TIMEOUT_S}s\n{logs()}")
        time.sleep(0.1)
    proc = subprocess.run(
        ["scancel", "--signal=USR2", job_id], capture_output=True, text=True, timeout=15
    )
    assert proc.returncode == 0, proc.stderr


def _assert_requeued_and_exact(job_id, out, reference, logs, rank0_logs):
    state, info = _wait(job_id, logs)
    assert state == "COMPLETED", f"job {job_id}: {state}\n{info}\n{logs()}"
    restarts = re.search(r"Restarts=(\d+)", info)
    assert restarts and int(restarts.group(1)) == 1, f"not requeued once:\n{info}\n{logs()}"
    # every epoch's checkpoint; the mid-epoch one is removed once its epoch's is written
    ckpts = sorted(os.listdir(os.path.join(out, "checkpoints")))
    expected = [f"checkpoint_epoch_{e:05d}.pyth" for e in range(1, REQUEUE_EPOCHS + 1)]
    assert ckpts == expected, f"{ckpts}\n{logs()}"
    log = "\n".join(_read(p) for p in rank0_logs)  # node 0's stdout and stderr
    # the first attempt stopped on the signal inside epoch 2 or later and wrote a mid-epoch
    # checkpoint; the second attempt resumed from it
    assert "SIGUSR2 received" in log, logs()
    mids = re.findall(r"Saved checkpoint (\S+_iter_\d{6}\.pyth)", log)
    assert len(mids) == 1 and os.path.dirname(mids[0]) == os.path.join(out, "checkpoints"), logs()
    assert not re.search(r"checkpoint_epoch_00001_iter_", mids[0]), mids  # after epoch 1
    assert f"Resuming from {mids[0]}" in log, logs()
    ref_state = reference[2]
    state_dict = _final_weights(out)
    assert set(state_dict) == set(ref_state) and state_dict, logs()
    dw = max((state_dict[k].double() - ref_state[k].double()).abs().max().item() for k in ref_state)
    print(
        f"max |dw| requeued SLURM job ({os.path.basename(mids[0])}) vs uninterrupted 2 local processes: {dw}"
    )
    assert dw == 0.0, f"max |dw| = {dw}\n{logs()}"


def test_submit_slurm_job_requeues_on_usr2_and_finishes_exactly(requeue_reference):
    root, data, _ = requeue_reference
    job_id, out, paths, _ = _submit_submitit(root, "t_rq", _requeue_overrides, data)

    def logs():
        return "\n".join(f"== {p}\n{_read(p)[-3000:]}" for p in paths)

    _preempt_after_first_checkpoint(job_id, out, logs)
    _assert_requeued_and_exact(job_id, out, requeue_reference, logs, paths[:2])
    # submitit's USR2 handler on node 0 checkpointed the task and requeued the job (its
    # "Requeued job" line may not make it to the log: the requeue kills the task at once)
    node0 = _read(paths[0])
    assert "Calling checkpoint method" in node0, logs()
    assert node0.count("[submit_slurm] node ") == 2, logs()  # two attempts


def test_sbatch_template_job_requeues_on_usr2_and_finishes_exactly(requeue_reference):
    root, data, _ = requeue_reference
    job_id, out, log_path, _ = _submit_sbatch(root, "t_rqb", _requeue_overrides, data)

    def logs():
        return f"== {log_path}\n{_read(log_path)[-6000:]}"

    _preempt_after_first_checkpoint(job_id, out, logs)
    _assert_requeued_and_exact(job_id, out, requeue_reference, logs, [log_path])
    log = _read(log_path)
    assert log.count(f"run_net.sbatch: job {job_id} on") == 2, logs()  # two attempts
