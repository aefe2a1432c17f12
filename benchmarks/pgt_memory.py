#!/usr/bin/env python3
"""Activation memory and time of one training iteration: PGT 8x5 vs plain 8- and 36-frame clips.

Slow R50 (configs/Kinetics/SLOW_8x8_R50.yaml, full width), batch 1, random input, SGD,
cross-entropy, fixed seed. Three modes, each measured in a fresh Python process (this script
with ``--mode X --json``):

  clip8  : one plain training iteration on an 8-frame clip (PGT off)
  pgt    : one PGT iteration (slowfast.pgt.train_step) on the 36-frame long clip,
           STEP_LEN [8], OVERLAP [1], STEPS 5, TRAIN_TOGETHER True (one optimizer step per clip)
  clip36 : one plain training iteration on the whole 36-frame clip (PGT off)

With --amp also clip8_amp and pgt_amp: the same under TRAIN.MIXED_PRECISION (fp16 autocast and
a GradScaler on CUDA, bfloat16 autocast on a CPU), for the AMP speed-up and AMP's activations.
Every iteration goes through the engine's seams (the step runner's autocast, scaled backward and
unscale/step/update), so what is timed is what training runs.

Per mode: activation memory = bytes saved for backward (``saved_tensors_hooks``; each storage
counted once, by data_ptr; parameter storages and the input clip's storage left out, the input
is data, not activation); for PGT the peak over the steps of the bytes packed during one step's
forward (each step's graph is freed by its backward). Also the peak RSS growth over the first
(warm-up) iteration (ru_maxrss), the wall time of one iteration (best of --repeats after the
warm-up, best over --rounds runs of the three modes), and on CUDA the
torch.cuda.max_memory_allocated growth.

The time ratio is measured side by side (``--mode paired``, one more process): a clip8 and a
PGT model, optimizer and input in one process, then --pairs times five clip8 iterations and one
PGT iteration back to back, in alternating order; each pair gives a ratio, and the median of
the pairs is the figure. Times of separate processes drift with the load of a shared machine
(PGT's best per round ranged 4.7-6.5 s against a steady clip8 on one 2-core machine); a pair
shares its moment.

The parent prints the table and the ratios activations PGT / clip8 (goal <= 1.05),
clip36 / PGT (goal >= 4.0) and PGT time / (5 x clip8 time) (goal <= 0.93), with PASS/FAIL;
with --amp the speed-ups fp32 / AMP time of clip8 and PGT (figures, no goal); exit 0 unless
--strict. On CUDA the defaults are crops 128 and 224, 1 round of 10 timed iterations, 10 pairs.

    python benchmarks/pgt_memory.py [--crop 128 [224]] [--repeats 2] [--rounds 3] [--pairs 6]
                                    [--amp] [--tiny] [--strict]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from statistics import median

MODES = ("clip8", "pgt", "clip36")
AMP_MODES = ("clip8_amp", "pgt_amp")
GOALS = (
    ("activations PGT / clip8", "act_pgt_clip8", "<=", 1.05),
    ("activations clip36 / PGT", "act_clip36_pgt", ">=", 4.0),
    ("time PGT / (5 x clip8)", "time_pgt_5clip8", "<=", 0.93),
)
CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "configs", "Kinetics", "SLOW_8x8_R50.yaml"
)
MIB = 2.0**20


def build_cfg(mode: str, crop: int, tiny: bool, cuda: bool):
    from slowfast.config.defaults import assert_and_infer_cfg, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    amp = mode.endswith("_amp")
    mode = mode.removesuffix("_amp")
    frames = 8 if mode == "clip8" else 36
    opts = [
        "NUM_GPUS", 1 if cuda else 0,
        "TRAIN.BATCH_SIZE", 1,
        "DATA.NUM_FRAMES", frames,
        "DATA.TRAIN_CROP_SIZE", crop,
        "DATA.TRAIN_JITTER_SCALES", [crop, crop],
        "RNG_SEED", 0,
        "PGT.ENABLE", mode == "pgt",
        "TRAIN.MIXED_PRECISION", amp,
    ]  # fmt: skip
    if mode == "pgt":
        opts += ["PGT.STEP_LEN", [8], "PGT.OVERLAP", [1], "PGT.STEPS", 5]
        opts += ["PGT.TRAIN_TOGETHER", True]
    if tiny:
        opts += ["RESNET.WIDTH_PER_GROUP", 8]
    cfg.merge_from_list(opts)
    return assert_and_infer_cfg(cfg)


class SavedBytes:
    """Pack hook: bytes saved for backward per forward of the model (one bucket per forward)."""

    def __init__(self, skip_ptrs):
        self.skip = set(skip_ptrs)
        self.buckets = []  # per forward: {storage data_ptr: nbytes}

    def new_forward(self, module, args):
        self.buckets.append({})

    def pack(self, t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr and ptr not in self.skip and self.buckets:
            self.buckets[-1].setdefault(ptr, storage.nbytes())
        return t

    @staticmethod
    def unpack(t):
        return t

    def per_forward(self):
        return [sum(b.values()) for b in self.buckets]


def setup(mode: str, args, cuda: bool) -> dict:
    """Model, optimizer, input and one training iteration of ``mode``, as training runs it."""
    import torch

    from slowfast.engine.steps import ClipStepRunner
    from slowfast.models import build_model
    from slowfast.models.losses import get_loss_func
    from slowfast.models.optimizer import construct_optimizer

    cfg = build_cfg(mode, args.crop, args.tiny, cuda)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    optimizer = construct_optimizer(model, cfg)
    loss_fun = get_loss_func(cfg.MODEL.LOSS_FUNC)(reduction="mean")
    device = torch.device("cuda") if cuda else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    shape = (1, 3, cfg.DATA.NUM_FRAMES, args.crop, args.crop)
    inputs = [torch.randn(shape, generator=g).to(device)]
    labels = torch.randint(0, cfg.MODEL.NUM_CLASSES, (1,), generator=g).to(device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    opt_times = []  # clip modes: the optimizer step's share of an iteration
    if cfg.PGT.ENABLE:
        from slowfast.pgt import ProgressiveStepRunner, has_caches

        assert has_caches(model), "build_model attached no Markov caches with PGT.ENABLE"
        runner = ProgressiveStepRunner(cfg)

        def iteration():
            return runner.progressive_train(model, optimizer, inputs, labels, {}, None, loss_fun)
    else:
        runner = ClipStepRunner(cfg)

        def iteration():
            optimizer.zero_grad(set_to_none=True)
            with runner.autocast():
                preds = model(inputs)
                loss = loss_fun(preds, labels)
            runner.backward(loss)
            sync()
            opt_start = time.perf_counter()
            runner.optimizer_step(model, optimizer)
            sync()
            opt_times.append(time.perf_counter() - opt_start)
            return preds.detach(), loss.detach()

    return dict(
        cfg=cfg, model=model, inputs=inputs, runner=runner, iteration=iteration, sync=sync,
        opt_times=opt_times,
    )  # fmt: skip


def timed(run: dict, n: int) -> float:
    """Seconds of ``n`` back-to-back iterations of a ``setup`` result (CUDA synchronised)."""
    run["sync"]()
    start = time.perf_counter()
    for _ in range(n):
        run["iteration"]()
    run["sync"]()
    return time.perf_counter() - start


def measure(args) -> dict:
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "paired":
        return measure_paired(args, cuda)
    run = setup(args.mode, args, cuda)
    cfg, model, inputs, runner = run["cfg"], run["model"], run["inputs"], run["runner"]
    iteration, sync, opt_times = run["iteration"], run["sync"], run["opt_times"]

    skip = [p.untyped_storage().data_ptr() for p in model.parameters()]
    skip += [x.untyped_storage().data_ptr() for x in inputs]
    saved = SavedBytes(skip)
    handle = model.register_forward_pre_hook(saved.new_forward)
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # warm-up iteration, counted: saved bytes, peak RSS (and CUDA) growth
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        _, loss = iteration()
    sync()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    handle.remove()
    per_forward = saved.per_forward()
    expected = cfg.PGT.STEPS if cfg.PGT.ENABLE else 1
    assert len(per_forward) == expected, f"{len(per_forward)} forwards, expected {expected}"
    result = {
        "mode": args.mode,
        "crop": args.crop,
        "frames": int(cfg.DATA.NUM_FRAMES),
        "forwards": len(per_forward),
        "activation_bytes": max(per_forward),
        "activation_bytes_per_forward": per_forward,
        "rss_growth_bytes": (rss_after - rss_before) * 1024,  # Linux: KiB
        "loss": float(loss),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "amp_dtype": str(runner.amp_dtype).removeprefix("torch.") if runner.amp else None,
    }
    if cuda:
        result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated() - cuda_base
    times = [timed(run, 1) for _ in range(args.repeats)]
    result["time_s"] = min(times)
    result["times_s"] = times
    if opt_times:
        result["optimizer_step_s"] = min(opt_times[1:] or opt_times)
    return result


def measure_paired(args, cuda: bool) -> dict:
    """The time ratio side by side in one process: ``--pairs`` times, five clip8 iterations and
    one PGT iteration back to back (in alternating order, so that a slow spell of a shared
    machine or a drift hits both), each pair giving its own ratio."""
    import torch

    clip, pgt = setup("clip8", args, cuda), setup("pgt", args, cuda)
    timed(clip, 1)  # warm-up
    timed(pgt, 1)
    pairs = []
    for i in range(args.pairs):
        if i % 2:
            t_pgt, t_clip = timed(pgt, 1), timed(clip, 5)
        else:
            t_clip, t_pgt = timed(clip, 5), timed(pgt, 1)
        pairs.append({"pgt_s": t_pgt, "clip8x5_s": t_clip, "ratio": t_pgt / t_clip})
    return {
        "mode": "paired",
        "crop": args.crop,
        "pairs": pairs,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "threads": torch.get_num_threads(),
    }


def run_child(mode: str, crop: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode, "--json"]
    cmd += ["--crop", str(crop), "--repeats", str(args.repeats), "--threads", str(args.threads)]
    cmd += ["--pairs", str(args.pairs)]
    cmd += ["--tiny"] if args.tiny else []
    cmd += ["--cpu"] if args.cpu else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"mode {mode} crop {crop} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(crop: int, results: dict, paired: dict) -> dict:
    cuda = "cuda_peak_bytes" in results["clip8"]
    head = "| mode | frames | forwards | activations MiB | peak RSS growth MiB |"
    head += " CUDA peak MiB |" if cuda else ""
    print(f"\ncrop {crop}, {results['clip8']['device']}, {results['clip8']['threads']} threads")
    print(head + " time s |")
    print("| --- " * (head.count("|") - 0) + "|")
    for mode in results:
        r = results[mode]
        row = (
            f"| {mode} | {r['frames']} | {r['forwards']} | {r['activation_bytes'] / MIB:.1f} "
            f"| {r['rss_growth_bytes'] / MIB:.1f} |"
        )
        row += f" {r['cuda_peak_bytes'] / MIB:.1f} |" if cuda else ""
        print(row + f" {r['time_s']:.2f} |")
    steps = results["pgt"]["activation_bytes_per_forward"]
    print("PGT activations per step MiB: " + ", ".join(f"{b / MIB:.1f}" for b in steps))
    act = {m: results[m]["activation_bytes"] for m in MODES}
    pair_ratios = [pair["ratio"] for pair in paired["pairs"]]
    ratios = {
        "act_pgt_clip8": act["pgt"] / act["clip8"],
        "act_clip36_pgt": act["clip36"] / act["pgt"],
        "time_pgt_5clip8": median(pair_ratios),
        "time_pgt_5clip8_pairs": pair_ratios,
        "time_pgt_5clip8_separate": results["pgt"]["time_s"] / (5 * results["clip8"]["time_s"]),
    }
    if cuda:
        cp = {m: results[m]["cuda_peak_bytes"] for m in MODES}
        print(
            f"CUDA peak: PGT / clip8 {cp['pgt'] / cp['clip8']:.3f}, "
            f"clip36 / PGT {cp['clip36'] / cp['pgt']:.3f}"
        )
    c8, opt = results["clip8"]["time_s"], results["clip8"]["optimizer_step_s"]
    print(
        f"clip8: optimizer step {opt:.3f}s of {c8:.2f}s; 5 clip8 iterations sharing one "
        f"optimizer step would take {(5 * (c8 - opt) + opt) / (5 * c8):.3f} x 5 clip8"
    )
    print(
        f"time PGT / (5 x clip8) in {len(pair_ratios)} pairs in one process: "
        + ", ".join(f"{r:.3f}" for r in pair_ratios)
        + f" (median {ratios['time_pgt_5clip8']:.3f}); from the separate processes' best times "
        f"{ratios['time_pgt_5clip8_separate']:.3f}"
    )
    ok = True
    for name, key, op, goal in GOALS:
        value = ratios[key]
        passed = value <= goal if op == "<=" else value >= goal
        ok &= passed
        print(f"ratio {name}: {value:.3f} (goal {op} {goal}) {'PASS' if passed else 'FAIL'}")
    if "pgt_amp" in results:
        dtype = results["pgt_amp"]["amp_dtype"]
        for mode in ("clip8", "pgt"):
            key = f"amp_speedup_{mode}"
            ratios[key] = results[mode]["time_s"] / results[f"{mode}_amp"]["time_s"]
            print(f"AMP ({dtype}) speed-up {mode}: time fp32 / AMP {ratios[key]:.3f}")
        ratios["act_amp_pgt_clip8"] = (
            results["pgt_amp"]["activation_bytes"] / results["clip8_amp"]["activation_bytes"]
        )
        ratios["act_pgt_fp32_amp"] = act["pgt"] / results["pgt_amp"]["activation_bytes"]
        print(
            f"AMP activations: PGT / clip8 {ratios['act_amp_pgt_clip8']:.3f}, "
            f"PGT fp32 / AMP {ratios['act_pgt_fp32_amp']:.3f}"
        )
    return dict(ratios, crop=crop, passed=ok)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--mode", choices=MODES + AMP_MODES + ("paired",), help="measure one mode in this process"
    )
    p.add_argument("--json", action="store_true", help="print the mode's result as JSON")
    p.add_argument("--crop", type=int, nargs="+", help="crop sizes (default 128; 128 224 on CUDA)")
    p.add_argument("--repeats", type=int, help="timed iterations after the warm-up (2; CUDA 10)")
    p.add_argument("--rounds", type=int, help="runs of the modes, best time (3; CUDA 1)")
    p.add_argument(
        "--pairs", type=int, help="paired timings, 5 clip8 + 1 PGT iterations (6; CUDA 10)"
    )
    p.add_argument(
        "--amp",
        action="store_true",
        help="also clip8 and PGT with MIXED_PRECISION (for GPUs: bfloat16 autocast on a CPU "
        "without bf16 instructions runs some 40x slower than float32)",
    )
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--tiny", action="store_true", help="WIDTH_PER_GROUP 8, crop 64 (smoke run)")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even with CUDA")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    p.add_argument("--summary", default=None, help="also write the ratios per crop (JSON) here")
    args = p.parse_args(argv)

    if args.mode:
        args.repeats = args.repeats or 2
        args.pairs = args.pairs or 6
        args.crop = (args.crop or [64 if args.tiny else 128])[0]
        result = measure(args)
        print(json.dumps(result) if args.json else result)
        return 0

    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if args.crop is None:
        args.crop = [64] if args.tiny else ([128, 224] if cuda else [128])
    # A GPU's iteration times are steady over repeats; a shared CPU's need rounds.
    args.repeats = args.repeats or (10 if cuda else 2)
    args.rounds = args.rounds or (1 if cuda else 3)
    args.pairs = args.pairs or (10 if cuda else 6)
    modes = MODES + (AMP_MODES if args.amp else ())
    print(f"Slow R50{' (tiny: WIDTH_PER_GROUP 8)' if args.tiny else ''}, batch 1, "
          f"PGT STEP_LEN 8 OVERLAP 1 STEPS 5 (36 frames), {os.cpu_count()} CPUs, "
          f"one fresh process per mode")  # fmt: skip
    summaries = []
    for crop in args.crop:
        results = {}
        for rnd in range(args.rounds):  # rounds of the three modes: best time per mode
            for mode in modes:
                t0 = time.perf_counter()
                r = run_child(mode, crop, args)
                print(f"  round {rnd + 1} {mode} crop {crop}: {r['time_s']:.2f}s per iteration "
                      f"({time.perf_counter() - t0:.1f}s in all)", flush=True)  # fmt: skip
                if mode in results:
                    assert r["activation_bytes"] == results[mode]["activation_bytes"]
                    for key in ("time_s", "optimizer_step_s"):
                        if key in r:
                            r[key] = min(r[key], results[mode][key])
                results[mode] = r
        t0 = time.perf_counter()
        paired = run_child("paired", crop, args)
        print(f"  {args.pairs} paired timings crop {crop}: median PGT / (5 x clip8) "
              f"{median([p['ratio'] for p in paired['pairs']]):.3f} "
              f"({time.perf_counter() - t0:.1f}s in all)", flush=True)  # fmt: skip
        summaries.append(report(crop, results, paired))
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summaries, f, indent=1)
    ok = all(s["passed"] for s in summaries)
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
