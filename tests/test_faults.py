"""Faults a user meets, each tried by running ``tools/run_net.py`` as a user would: the run
stops with a message naming the file, the line or the key (no traceback), and what was written
before stays usable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(kinetics_8_videos):
    return kinetics_8_videos


def argv(data: str, out: str, **extra):
    overrides = {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": out,
        "MODEL.NUM_CLASSES": 2,
        "DATA.NUM_FRAMES": 4,
        "DATA.SAMPLING_RATE": 2,
        "DATA.TRAIN_JITTER_SCALES": "[32, 40]",
        "DATA.TRAIN_CROP_SIZE": 32,
        "DATA.TEST_CROP_SIZE": 32,
        "RESNET.WIDTH_PER_GROUP": 4,
        "TRAIN.BATCH_SIZE": 2,
        "TEST.BATCH_SIZE": 2,
        "TEST.NUM_ENSEMBLE_VIEWS": 1,
        "TEST.NUM_SPATIAL_CROPS": 1,
        "TEST.ENABLE": False,
        "SOLVER.MAX_EPOCH": 1,
        "BN.USE_PRECISE_STATS": False,
        "DATA_LOADER.NUM_WORKERS": 0,
        "LOG_MODEL_INFO": False,
    }
    overrides.update({k.replace("__", "."): v for k, v in extra.items()})
    cmd = [sys.executable, "tools/run_net.py", "--cfg", "configs/Synthetic/SLOW_8x8_R18.yaml"]
    for key, value in overrides.items():
        cmd += [key, str(value)]
    return cmd


def run(cmd, timeout=180):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc, *needles):
    assert proc.returncode not in (0, None), proc.stdout[-2000:] + proc.stderr[-2000:]
    err = proc.stderr
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err[-3000:]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def broken_split(data: str, tmp_path: Path, train_lines):
    folder = tmp_path / "split"
    folder.mkdir()
    for name in ("val.csv", "test.csv"):
        shutil.copy(os.path.join(data, name), folder / name)
    (folder / "train.csv").write_text("".join(line + "\n" for line in train_lines))
    return str(folder)


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("{video}", "expected 'path' 'label' (DATA.PATH_LABEL_SEPARATOR = ' ')"),
        ("{video} two", "label 'two' is not an integer"),
        ("{video} 7", "label 7 is outside [0, MODEL.NUM_CLASSES = 2)"),
    ],
)
def test_bad_kinetics_csv_line(data, tmp_path, bad, needle):
    lines = open(os.path.join(data, "train.csv")).read().splitlines()
    video = lines[0].split(" ")[0]
    lines.insert(2, bad.format(video=video))
    split = broken_split(data, tmp_path, lines)
    proc = run(argv(data, str(tmp_path / "out"), DATA__PATH_TO_DATA_DIR=split))
    assert_clean_error(proc, os.path.join(split, "train.csv") + ":3:", needle)
    assert not os.path.isdir(tmp_path / "out" / "checkpoints")  # before training started


def test_empty_kinetics_csv(data, tmp_path):
    split = broken_split(data, tmp_path, [])
    proc = run(argv(data, str(tmp_path / "out"), DATA__PATH_TO_DATA_DIR=split))
    assert_clean_error(proc, os.path.join(split, "train.csv"), "lists no video")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_num_gpus_without_cuda(data, tmp_path):
    proc = run(argv(data, str(tmp_path / "out"), NUM_GPUS=1))
    assert proc.returncode == 2
    assert_clean_error(proc, "NUM_GPUS is 1 but CUDA is not available")


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_unreadable_test_checkpoint(data, tmp_path, kind):
    path = tmp_path / "model.pyth"
    if kind == "garbage":
        path.write_bytes(b"\x80\x04not a checkpoint at all" * 10)
    else:
        torch.save({"model_state": {"w": torch.randn(1000)}, "epoch": 1}, path)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    proc = run(
        argv(
            data,
            str(tmp_path / "out"),
            TRAIN__ENABLE=False,
            TEST__ENABLE=True,
            TEST__CHECKPOINT_FILE_PATH=str(path),
        )
    )
    last = assert_clean_error(proc, str(path))
    assert "pickle" not in proc.stderr.lower() or "unpickler" in last


def test_loss_explosion_stops_the_run_naming_iteration_and_loss(data, tmp_path):
    proc = run(
        argv(
            data,
            str(tmp_path / "out"),
            TRAIN__BATCH_SIZE=1,
            TRAIN__KILL_LOSS_EXPLOSION_FACTOR=0.5,  # any loss above half the recent mean
            SOLVER__BASE_LR=0.05,
        )
    )
    last = assert_clean_error(proc, "loss exploded at epoch 1, iteration 6/8")
    assert "TRAIN.KILL_LOSS_EXPLOSION_FACTOR 0.5" in last


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    size_kb = 15000  # one checkpoint of this model (~10.1 MB) and the logs fit, not two
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(data, small_disk):
    out = small_disk / "out"
    cmd = argv(
        data,
        str(out),
        SOLVER__MAX_EPOCH=2,
        TRAIN__CHECKPOINT_PERIOD=1,
        TRAIN__EVAL_PERIOD=5,
        TENSORBOARD__ENABLE=False,
    )
    proc = run(cmd)
    last = assert_clean_error(proc, "could not write checkpoint", "checkpoint_epoch_00002.pyth")
    first = str(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    assert f"the newest checkpoint, {first}, is intact" in last
    from slowfast.utils import checkpoint as cu

    assert sorted(os.listdir(out / "checkpoints")) == ["checkpoint_epoch_00001.pyth"]  # no temp
    assert cu.get_last_checkpoint(str(out)) == first
    assert torch.load(first, weights_only=False)["epoch"] == 0


def test_several_cfg_files_run_as_separate_jobs_in_order(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cmd = argv(data, "unused")
    i = cmd.index("--cfg")
    cfg_a, cfg_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base = os.path.join(REPO, "configs", "Synthetic", "SLOW_8x8_R18.yaml")
    cfg_a.write_text(f"_BASE_: {base}\nOUTPUT_DIR: {a}\n")
    cfg_b.write_text(f"_BASE_: {base}\nOUTPUT_DIR: {b}\n")  # merged, b's would win
    cmd[i + 1 : i + 2] = [str(cfg_a), str(cfg_b)]
    j = cmd.index("OUTPUT_DIR")
    del cmd[j : j + 2]
    proc = run(cmd, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "job 1 of 2" in proc.stderr and "job 2 of 2" in proc.stderr
    assert sorted(os.listdir(a / "checkpoints")) == ["checkpoint_epoch_00001.pyth"]
    assert sorted(os.listdir(b / "checkpoints")) == ["checkpoint_epoch_00001.pyth"]


def test_train_net_and_test_net_exit_as_run_net(data, tmp_path):
    path = tmp_path / "bad.pyth"
    path.write_bytes(b"garbage")
    cmd = argv(data, str(tmp_path / "out"), TEST__ENABLE=True, TEST__CHECKPOINT_FILE_PATH=str(path))
    cmd[1] = "tools/test_net.py"  # TRAIN.ENABLE False appended by the tool
    proc = run(cmd)
    assert proc.returncode == 1
    assert_clean_error(proc, str(path))
    cmd = argv(data, str(tmp_path / "out2"), NUM_GPUS=1)
    cmd[1] = "tools/train_net.py"
    if not torch.cuda.is_available():
        proc = run(cmd)
        assert proc.returncode == 2
        assert_clean_error(proc, "NUM_GPUS is 1")
