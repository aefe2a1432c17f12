"""PGT in the engine: two-process DDP (one gradient all-reduce per clip), and tools/run_net.py
end to end on synthetic videos with both inference modes."""

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from small_run import SMALL_RUN, make_small_kinetics, run_net


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, together, out_dir):
    import torch.distributed as dist
    from test_pgt import long_clip, models, pgt_cfg

    from slowfast.pgt import train_step

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        cfg = pgt_cfg("slow", steps=3, PGT__TRAIN_TOGETHER=together)
        model, _ = models(cfg, seed=0)
        model.train()
        ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=1000)
        calls = {"n": 0}

        def hook(state, bucket):
            state["n"] += 1
            fut = dist.all_reduce(bucket.buffer().div_(world), async_op=True).get_future()
            return fut.then(lambda f: f.value()[0])

        ddp.register_comm_hook(calls, hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        per_clip = []
        for it in range(2):
            calls["n"] = 0
            xs = long_clip(cfg, seed=10 * it + rank)  # each rank its own clips
            train_step(ddp, xs, torch.tensor([rank, 2]), F.cross_entropy, opt, cfg)
            per_clip.append(calls["n"])
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save({"per_clip": per_clip, "params": params}, os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("together", [True, False])
def test_ddp_one_all_reduce_per_clip_and_identical_weights(tmp_path, together):
    import torch.multiprocessing as mp

    sys.path.insert(0, str(Path(__file__).parent))
    mp.spawn(_ddp_worker, args=(2, _free_port(), together, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"r{r}.pt") for r in (0, 1))
    steps = 3
    assert r0["per_clip"] == r1["per_clip"] == [1 if together else steps] * 2
    for k, v in r0["params"].items():
        torch.testing.assert_close(r1["params"][k], v, rtol=0, atol=0, msg=k)


def pgt_run_overrides(tmp_path) -> dict:
    """A tiny synthetic Kinetics folder under ``tmp_path`` and the run_net overrides that train
    SLOW_8x8_R18 on it with PGT (3 steps of 4 frames, momentum 0.25, DPR-A) for one epoch and
    test it with 2 views (orig long)."""
    data = make_small_kinetics(str(tmp_path / "data"))
    return {
        "DATA.PATH_TO_DATA_DIR": data,
        "DATA.PATH_PREFIX": data,
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MODEL.NUM_CLASSES": 2,
        "PGT.ENABLE": True,
        "PGT.STEP_LEN": "[4]",
        "PGT.OVERLAP": "[1]",
        "PGT.STEPS": 3,
        "PGT.TRAIN_TOGETHER": True,
        "PGT.CACHE_MOMENTUM": 0.25,
        "PGT.DPR": "A",  # training only: the test runs the configured steps
        "DATA.NUM_FRAMES": 10,
        "BN.NUM_BATCHES_PRECISE": 1,
        **SMALL_RUN,
    }


def test_run_net_trains_with_pgt_and_tests_both_inference_modes(tmp_path):
    overrides = pgt_run_overrides(tmp_path)
    out = overrides["OUTPUT_DIR"]
    proc = run_net(overrides)
    assert "run summary" in proc.stdout
    log = open(os.path.join(out, "stdout.log")).read()
    assert '"_type": "train_epoch"' in log and '"_type": "val_epoch"' in log
    assert "precise BN: updated" in log
    assert "test cost per video (orig long)" in log
    summary = json.load(open(os.path.join(out, "run_summary.json")))
    orig = summary["test_cost"]
    assert orig["steps"] == 1 and orig["views"] == 2 and orig["gflops"] > 0
    assert 0.0 <= summary["test_top1_acc"] <= 100.0
    # DPR-A drew a step length (3, 4 or 5) for each of the 2 training iterations
    drawn = summary["dpr_step_lengths"]["1"]
    assert set(drawn) <= {"3", "4", "5"} and sum(drawn.values()) == 2
    # PG long from the trained checkpoint, steps combined by max.
    ckpt = os.path.join(out, "checkpoints", "checkpoint_epoch_00001.pyth")
    assert os.path.isfile(ckpt)
    pg = dict(overrides, **{"OUTPUT_DIR": str(tmp_path / "pg")})
    pg.update(
        {
            "TRAIN.ENABLE": False,
            "TEST.CHECKPOINT_FILE_PATH": ckpt,
            "PGT.PG_EVAL": True,
            "PGT.ENSEMBLE_METHOD": "max",
        }
    )
    run_net(pg)
    pg_summary = json.load(open(tmp_path / "pg" / "run_summary.json"))
    cost = pg_summary["test_cost"]
    assert cost["steps"] == 3 and cost["views"] == 2
    # One step (4 frames) costs less than the whole 10-frame clip.
    assert cost["gflops"] < orig["gflops"]
    assert pg_summary["test_checkpoint"] == ckpt
