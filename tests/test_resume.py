"""Runs that survive: ``tools/run_net.py`` killed (``kill -9``) or stopped (SIGTERM) after its
first checkpoint and started again with the same command ends with exactly the weights of an
uninterrupted run (random augmentation, shuffling and dropout included), with
``DATA_LOADER.NUM_WORKERS`` 0 and 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 2


@pytest.fixture(scope="module")
def data(kinetics_8_videos):
    return kinetics_8_videos


def command(data: str, out: str, workers: int):
    overrides = {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": out,
        "MODEL.NUM_CLASSES": 2,
        "MODEL.DROPOUT_RATE": 0.5,  # the main process's RNG matters
        "DATA.NUM_FRAMES": 4,
        "DATA.SAMPLING_RATE": 2,
        "DATA.TRAIN_JITTER_SCALES": "[32, 40]",  # random scale, crop, flip and clip time
        "DATA.TRAIN_CROP_SIZE": 32,
        "DATA.TEST_CROP_SIZE": 32,
        "RESNET.WIDTH_PER_GROUP": 4,
        "TRAIN.BATCH_SIZE": 2,
        "TRAIN.EVAL_PERIOD": 1,
        "TRAIN.CHECKPOINT_PERIOD": 1,
        "TRAIN.AUTO_RESUME": True,
        "TEST.ENABLE": False,
        "SOLVER.MAX_EPOCH": EPOCHS,
        "SOLVER.WARMUP_EPOCHS": 0.5,
        "BN.USE_PRECISE_STATS": False,
        "DATA_LOADER.NUM_WORKERS": workers,
        "LOG_PERIOD": 1,
        "LOG_MODEL_INFO": False,
        "RNG_SEED": 3,
    }
    argv = [sys.executable, "tools/run_net.py", "--cfg", "configs/Synthetic/SLOW_8x8_R18.yaml"]
    for key, value in overrides.items():
        argv += [key, str(value)]
    return argv


def run(argv, timeout=240):
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def checkpoints(out: str):
    folder = os.path.join(out, "checkpoints")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def final_weights(out: str):
    path = os.path.join(out, "checkpoints", f"checkpoint_epoch_{EPOCHS:05d}.pyth")
    return torch.load(path, map_location="cpu", weights_only=False)["model_state"]


def max_abs_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def start_and_wait(argv, out: str, epoch: int = 1, iteration: int = 0) -> subprocess.Popen:
    """Start the run; return once its first checkpoint exists and, with ``iteration``, once
    its log shows that iteration of epoch ``epoch`` (a point inside that epoch)."""
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth")
    wanted = re.compile(
        rf'"_type": "train_iter".*"epoch": "{epoch}/{EPOCHS}".*"iter": "{iteration}/'
    )
    log = os.path.join(out, "stdout.log")

    def reached() -> bool:
        if not os.path.exists(first):
            return False
        if not iteration:
            return True
        with open(log) as f:
            return any(wanted.search(line) for line in f)

    deadline = time.monotonic() + 180
    while not reached():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill point: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run did not reach the kill point within 180 s")
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run (NUM_WORKERS 0)."""
    folder = str(tmp_path_factory.mktemp("uninterrupted"))
    run(command(data, folder, 0))
    return final_weights(folder)


@pytest.mark.parametrize("workers,iteration", [(0, 1), (2, 3)])
def test_kill_9_then_the_same_command_is_bit_exact(data, tmp_path, reference, workers, iteration):
    # the reference ran with 0 workers: equal weights also show that an item's random draws
    # (seed, epoch, position) do not depend on the DataLoader workers
    out = str(tmp_path / "run")
    argv = command(data, out, workers)
    proc = start_and_wait(argv, out, epoch=2, iteration=iteration)
    proc.kill()  # SIGKILL inside epoch 2: no handler runs
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = checkpoints(out)
    assert f"checkpoint_epoch_{EPOCHS:05d}.pyth" not in written, "killed too late to matter"
    resumed = run(argv)
    assert "Resuming from" in resumed.stdout + resumed.stderr
    diff = max_abs_diff(final_weights(out), reference)
    print(f"NUM_WORKERS {workers}: killed in epoch 2 after {written}; max |dw| = {diff}")
    assert diff == 0.0


def test_sigterm_writes_a_mid_epoch_checkpoint_and_resumes_bit_exact(data, tmp_path, reference):
    out = str(tmp_path / "run")
    argv = command(data, out, 0)
    proc = start_and_wait(argv, out)
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run did not stop within 120 s of SIGTERM") from None
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM received" in stderr and "Resume with the same command" in stderr
    mid = [n for n in checkpoints(out) if "_iter_" in n]
    assert len(mid) == 1, checkpoints(out)
    saved = torch.load(os.path.join(out, "checkpoints", mid[0]), weights_only=False)
    assert saved["epoch_iter"] >= 1 and "rng_state" in saved
    # PySlowFast's meaning of "epoch" (the last one completed) is kept
    assert f"checkpoint_epoch_{saved['epoch'] + 2:05d}_iter_" in mid[0]
    resumed = run(argv)
    log = resumed.stdout + resumed.stderr
    assert f"Resuming from {os.path.join(out, 'checkpoints', mid[0])}" in log
    assert f"resuming after iteration {saved['epoch_iter']}" in log
    diff = max_abs_diff(final_weights(out), reference)
    print(f"SIGTERM: {mid[0]}; max |dw| = {diff}")
    assert diff == 0.0
    # the finished epoch's file superseded the mid-epoch one
    assert not [n for n in checkpoints(out) if "_iter_" in n]
