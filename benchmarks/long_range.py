#!/usr/bin/env python3
"""Long-range task: an 8-frame clip baseline vs PGT (8 x 5 steps) under the same budget.

The label of a video (slowfast.datasets.synthetic.make_long_range_dataset) is the ORDER of two
flashes, red then blue (0) or blue then red (1), ``--gap`` sampled frames apart at a random
time. No 8-frame clip spans both flashes, and averaging the baseline's test views cannot tell
their order, so it should stay near chance (50 %); PGT's 36-frame long clip covers both, and its
caches carry the first flash's evidence over the step borders. ``--cache`` runs PGT once per
cache mode listed (default: the config's, CMCO-max; ``--cache max,last`` adds MCO).

Both runs use tools/run_net.py (a subprocess each, CPU, NUM_GPUS 0), the same videos, epochs,
batch size (so the same number of iterations) and solver; each reads its
``OUTPUT_DIR/run_summary.json`` (``test_top1_acc``).

    python benchmarks/long_range.py                  # clip vs PGT (max): about 12 min, 2 cores
    python benchmarks/long_range.py --cache max,last # and MCO: about 20 min (benchmarks/README)
    python benchmarks/long_range.py --cache avg --momentum 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from slowfast.datasets.synthetic import make_long_range_dataset  # noqa: E402

CONFIGS = {
    "clip": "configs/Synthetic/LONG_RANGE_CLIP.yaml",
    "pgt": "configs/Synthetic/LONG_RANGE_PGT.yaml",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=30, help="training epochs (both runs)")
    p.add_argument("--videos", type=int, default=256, help="train videos per class")
    p.add_argument("--eval-videos", type=int, default=64, help="val and test videos per class")
    p.add_argument("--gap", type=int, default=10, help="flash distance in sampled frames")
    p.add_argument("--sampling-rate", type=int, default=2, help="DATA.SAMPLING_RATE")
    p.add_argument("--size", type=int, default=20, help="video width and height (crop: 16)")
    p.add_argument(
        "--cache", default=None, help="PGT.CACHE, or several: max,last (default: the config's)"
    )
    p.add_argument("--momentum", type=float, default=None, help="PGT.CACHE_MOMENTUM")
    p.add_argument("--lr", type=float, default=None, help="SOLVER.BASE_LR of both runs")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (RNG_SEED too)")
    p.add_argument("--workers", type=int, default=1, help="DATA_LOADER.NUM_WORKERS")
    p.add_argument("--only", choices=sorted(CONFIGS), default=None, help="run one config")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    return p.parse_args(argv)


def runs(args: argparse.Namespace) -> List[Tuple[str, str, Optional[str]]]:
    """(run name, config key, PGT.CACHE or None for the config's) of each run, in order."""
    caches = [None] if args.cache is None else [c.strip() for c in args.cache.split(",")]
    pgt = [(f"pgt-{c}" if c else "pgt", "pgt", c) for c in caches]
    todo = [("clip", "clip", None)] + pgt
    return [r for r in todo if args.only is None or r[1] == args.only]


def train(name: str, config: str, cache: Optional[str], data: str, work: str, args) -> dict:
    out = os.path.join(work, name)
    opts = [
        "DATA.PATH_TO_DATA_DIR", data, "DATA.PATH_PREFIX", data,
        "DATA.SAMPLING_RATE", str(args.sampling_rate),
        "SOLVER.MAX_EPOCH", str(args.epochs),
        "NUM_GPUS", "0", "DATA_LOADER.NUM_WORKERS", str(args.workers),
        "RNG_SEED", str(args.seed), "OUTPUT_DIR", out,
    ]  # fmt: skip
    if args.lr is not None:
        opts += ["SOLVER.BASE_LR", str(args.lr), "SOLVER.WARMUP_START_LR", str(args.lr / 10)]
    if config == "pgt" and cache is not None:
        opts += ["PGT.CACHE", cache]
    if config == "pgt" and args.momentum is not None:
        opts += ["PGT.CACHE_MOMENTUM", str(args.momentum)]
    cmd = [sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", CONFIGS[config]]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    with open(os.path.join(work, f"{name}.log"), "w") as log:
        proc = subprocess.run(cmd + opts, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} run failed (rc {proc.returncode}); see {log.name}")
    with open(os.path.join(out, "run_summary.json")) as f:
        summary = json.load(f)
    return {"top1": summary["test_top1_acc"], "seconds": took, "setting": setting(out)}


def setting(out: str) -> str:
    """What a run trained with, read back from the config it wrote (OUTPUT_DIR/config.yaml)."""
    from slowfast.config.defaults import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(out, "config.yaml"))
    text = f"lr {cfg.SOLVER.BASE_LR:g}, {cfg.TEST.NUM_ENSEMBLE_VIEWS} test view(s)"
    if cfg.PGT.ENABLE:
        text += f", cache {cfg.PGT.CACHE}, momentum {cfg.PGT.CACHE_MOMENTUM:g}"
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.out or tempfile.mkdtemp(prefix="long_range_")
    data = os.path.join(work, "data")
    frames = 36  # the PGT long clip: (8 - 1) * 4 + 8 sampled frames = the whole video
    start = time.perf_counter()
    info = make_long_range_dataset(
        data,
        videos_per_class=args.videos,
        eval_videos_per_class=args.eval_videos,
        num_frames=frames,
        gap=args.gap,
        width=args.size,
        height=args.size,
        seed=args.seed,
        sampling_rate=args.sampling_rate,
    )
    print(
        f"dataset: {info['videos']} videos of {frames} sampled frames (x{args.sampling_rate}), "
        f"flashes {args.gap} sampled frames apart, {info['duration']} long, "
        f"in {time.perf_counter() - start:.0f}s at {data}",
        flush=True,
    )
    results = {}
    for name, config, cache in runs(args):
        results[name] = train(name, config, cache, data, work, args)
        r = results[name]
        print(
            f"{name}: top-1 {r['top1']:.2f} % in {r['seconds']:.0f}s ({r['setting']})", flush=True
        )
    print()
    print(f"events' distance {args.gap} sampled frames (8-frame clip; PGT 8 x 5 = 36 frames); "
          f"{args.epochs} epochs, {2 * args.videos} train videos")  # fmt: skip
    print("| model | setting | test top-1 (%) | chance (%) | train+test time (s) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['setting']} | {r['top1']:.2f} | 50.00 | {r['seconds']:.0f} |")
    clip = results.get("clip", {}).get("top1", 0)
    for name, r in results.items():
        if name != "clip" and clip > 0:
            print(f"ratio {name} / clip top-1: {r['top1'] / clip:.2f}x")
    print(f"total {time.perf_counter() - start:.0f}s; logs in {work}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
