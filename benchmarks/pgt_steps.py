#!/usr/bin/env python3
"""Per-step test accuracy of a trained PGT model: batch norm's running statistics vs batch ones.

PG long scores every step of a test clip with the eval-mode network, whose batch norms use the
running statistics (those of precise BN, when BN.USE_PRECISE_STATS). Training normalised each
step with its own batch's statistics. Where the steps' features differ in distribution (a
``max`` cache accumulates the largest activations step after step), one set of running
statistics fits some steps and not others. This script measures it on a finished run_net run:
it loads ``OUTPUT_DIR/config.yaml`` and the newest checkpoint, runs the test split step by step
(``slowfast.pgt.progressive_forward``) twice, side by side:

  running : the model in eval mode (what run_net's PG-long test computes);
  batch   : the same, but every batch norm normalising with the statistics of the batch of
            the step being run (train-mode batch norm with momentum 0: running statistics
            unchanged), on shuffled batches of TRAIN.BATCH_SIZE clips, as in training;

  per-step: eval mode, but step k of every clip normalises with statistics of step k alone,
            estimated as precise BN estimates them (the average over --calib-batches shuffled
            training batches of each batch norm's batch mean and variance at step k, earlier
            steps already normalised with theirs): what statistics kept per step would give;

and prints the top-1 of each step and of the steps combined (PGT.ENSEMBLE_METHOD). Single-label
datasets (Kinetics format), one view per video.

    python benchmarks/pgt_steps.py --run output/demo/LONG_RANGE_PGT [--data DIR] [--calib-batches 10]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def load(run: str, data: str | None):
    from slowfast.models import build_model
    from slowfast.utils import checkpoint as cu
    from slowfast.utils.parser import load_config, parse_args

    opts = ["NUM_GPUS", "0"]
    if data:
        opts += ["DATA.PATH_TO_DATA_DIR", data, "DATA.PATH_PREFIX", data]
    cfg = load_config(parse_args(["--cfg", os.path.join(run, "config.yaml"), *opts]))
    if not cfg.PGT.ENABLE:
        raise SystemExit(f"{run}/config.yaml: PGT.ENABLE is off; this script is for PGT runs")
    if cfg.DETECTION.ENABLE or cfg.DATA.MULTI_LABEL:
        raise SystemExit(
            f"{run}/config.yaml: DETECTION.ENABLE / DATA.MULTI_LABEL: this script scores "
            "single-label top-1 (Kinetics-format datasets)"
        )
    ckpt = cu.get_last_checkpoint(run)  # the newest, as a resumed run or a test would pick
    if ckpt is None:
        raise SystemExit(f"no checkpoint in {run}/checkpoints")
    model = build_model(cfg)
    cu.load_checkpoint(ckpt, model)
    return cfg, model, ckpt


def batch_norms(model) -> dict:
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    }


def _clip_inputs(batch):
    return batch[0] if isinstance(batch[0], list) else [batch[0]]


class PerStepStats:
    """Batch-norm statistics per PGT step: before each step's forward (the runner has told the
    caches the step), every batch norm gets the statistics estimated for that step."""

    def __init__(self, model) -> None:
        from slowfast.pgt.caches import cache_states

        self.bns = batch_norms(model)
        self.states = cache_states(model)
        self.stats = []  # per step: {batch norm name: (mean, var)}
        self.calibrating = None  # the step whose statistics are being estimated
        self.sums = {}
        model.register_forward_pre_hook(self._model_pre_hook)
        for name, bn in self.bns.items():
            bn.register_forward_pre_hook(self._bn_pre_hook(name))

    def _step(self) -> int:
        return self.states[0].step

    def _model_pre_hook(self, module, args) -> None:
        k = self._step()
        if k is None:  # a whole-clip forward: the model's own statistics
            return
        for name, bn in self.bns.items():
            if k == self.calibrating:  # batch statistics, running ones untouched
                bn.train()
                bn.momentum = 0.0
                continue
            bn.eval()
            if k < len(self.stats):
                mean, var = self.stats[k][name]
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)

    def _bn_pre_hook(self, name: str):
        def hook(module, args) -> None:
            if self.calibrating is None or self._step() != self.calibrating:
                return
            x = args[0].detach().float()
            dims = [d for d in range(x.dim()) if d != 1]
            mean, var = x.mean(dims), x.var(dims, unbiased=True)
            acc = self.sums.setdefault(name, [0.0, 0.0, 0])
            acc[0], acc[1], acc[2] = acc[0] + mean, acc[1] + var, acc[2] + 1

        return hook

    @torch.no_grad()
    def calibrate(self, model, cfg, batches: int) -> None:
        from slowfast.datasets import build_dataset
        from slowfast.pgt import progressive_forward

        dataset = build_dataset(cfg.TRAIN.DATASET, cfg, "train")
        model.eval()
        for k in range(cfg.PGT.STEPS):
            self.calibrating, self.sums = k, {}
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_size=cfg.TRAIN.BATCH_SIZE,
                shuffle=True,
                generator=torch.Generator().manual_seed(k),
                num_workers=0,
            )
            for i, batch in enumerate(loader):
                if i == batches:
                    break
                progressive_forward(model, _clip_inputs(batch), cfg)
            self.stats.append({n: (a[0] / a[2], a[1] / a[2]) for n, a in self.sums.items()})
        self.calibrating = None


def accuracy(cfg, model, batch_stats: bool) -> dict:
    from slowfast.datasets import build_dataset
    from slowfast.pgt import progressive_forward
    from slowfast.pgt.runner import combine_steps

    model.eval()
    if batch_stats:
        for m in batch_norms(model).values():
            m.train()
            m.momentum = 0.0  # normalise with the batch's statistics, keep the running ones
    dataset = build_dataset(cfg.TEST.DATASET, cfg, "test")
    size = cfg.TRAIN.BATCH_SIZE if batch_stats else cfg.TEST.BATCH_SIZE
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=size,
        shuffle=batch_stats,  # a test list is often sorted by class: mixed batches, as trained
        generator=torch.Generator().manual_seed(0),
        num_workers=0,
    )
    correct, combined, n = None, 0, 0
    with torch.no_grad():
        for batch in loader:
            labels = batch[1]
            outs = progressive_forward(model, _clip_inputs(batch), cfg)
            hits = torch.tensor([int((o.argmax(1) == labels).sum()) for o in outs])
            correct = hits if correct is None else correct + hits
            joint = combine_steps(outs, cfg.PGT.ENSEMBLE_METHOD)  # as the PG-long test does
            combined += int((joint.argmax(1) == labels).sum())
            n += len(labels)
    return {
        "videos": n,
        "per_step": [100.0 * c / n for c in correct.tolist()],
        "combined": 100.0 * combined / n,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True, help="a run_net OUTPUT_DIR of a PGT run")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's)")
    p.add_argument(
        "--calib-batches", type=int, default=10, help="training batches per step (per-step)"
    )
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for mode in ("running", "batch", "per-step"):
        cfg, model, ckpt = load(args.run, args.data)  # a fresh model per mode
        torch.manual_seed(0)
        if mode == "per-step":
            PerStepStats(model).calibrate(model, cfg, args.calib_batches)
        results[mode] = accuracy(cfg, model, batch_stats=mode == "batch")
    steps = len(results["running"]["per_step"])
    print(f"{ckpt}: PGT {list(cfg.PGT.STEP_LEN)} x {steps} steps, cache {cfg.PGT.CACHE}, "
          f"{results['running']['videos']} test videos, one view each")  # fmt: skip
    head = " | ".join(f"step {k}" for k in range(steps))
    print(f"| batch-norm statistics | {head} | steps combined ({cfg.PGT.ENSEMBLE_METHOD}) |")
    print("| --- " * (steps + 2) + "|")
    for mode, r in results.items():
        cells = " | ".join(f"{a:.2f}" for a in r["per_step"])
        print(f"| {mode} | {cells} | {r['combined']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
