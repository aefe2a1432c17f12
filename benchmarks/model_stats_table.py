"""GFLOPs per view of the paper's baselines: computed here vs PySlowFast's counts vs the paper.

    python benchmarks/model_stats_table.py [--only SUBSTRING] [--device cpu|cuda] [--markdown]

Each row builds a config of ``configs/`` (with the overrides shown), counts one view at
``DATA.TEST_CROP_SIZE`` (256 x 256) with ``slowfast.utils.misc`` and prints the parameters, the
GFLOPs the paper's way (convolutions, matrix products, linear layers) and with fvcore's default
ops (batch norm included), the expected figure (PySlowFast's own count, from the issue), the
ratio computed / expected, and the paper's figure. Tracing full-size R101 models on a CPU takes
minutes; the script is not part of CI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]

T6_SLOW = ("RESNET.NUM_BLOCK_TEMP_KERNEL", "[[3], [4], [6], [3]]")
T6_FAST = ("RESNET.NUM_BLOCK_TEMP_KERNEL", "[[3, 3], [4, 4], [6, 6], [3, 3]]")
FUSION7 = ("SLOWFAST.FUSION_KERNEL_SZ", "7")
FUSION5 = ("SLOWFAST.FUSION_KERNEL_SZ", "5")


class Row(NamedTuple):
    name: str
    config: str
    overrides: Tuple[str, ...]
    expected: Optional[float]  # PySlowFast's count (the figure)
    paper: Optional[float]
    expected_params: Optional[int] = None


ROWS = [
    Row("K400 Slow 8x8 R50", "Kinetics/SLOW_8x8_R50.yaml", (), 54.52, 54.5, 32_454_096),
    Row(
        "K400 SlowFast 8x8 R50, fusion kernel 7 (PySlowFast, shipped)",
        "Kinetics/SLOWFAST_8x8_R50.yaml",
        (),
        65.71,
        65.7,
        34_566_488,
    ),
    Row(
        "K400 SlowFast 8x8 R50, fusion kernel 5 (release)",
        "Kinetics/SLOWFAST_8x8_R50.yaml",
        FUSION5,
        None,
        None,
    ),
    Row("K400 Slow 8x8 R101, 6 res4 temporal", "Kinetics/SLOW_8x8_R101.yaml", T6_SLOW, 93.31, None),
    Row(
        "K400 Slow 8x8 R101, 23 res4 temporal (shipped)",
        "Kinetics/SLOW_8x8_R101.yaml",
        (),
        111.56,
        110,
    ),
    Row(
        "K400 SlowFast 8x8 R101, 23 res4 temporal (shipped)",
        "Kinetics/SLOWFAST_8x8_R101.yaml",
        (),
        125.91,
        126,
    ),
    Row("Charades Slow 16x8 R50", "Charades/SLOW_16x8_R50.yaml", (), 109.04, 109),
    Row(
        "Charades SlowFast 16x8 R50, fusion kernel 7 (release, shipped)",
        "Charades/SLOWFAST_16x8_R50.yaml",
        (),
        None,
        None,
    ),
    Row(
        "Charades SlowFast 16x8 R50, fusion kernel 5",
        "Charades/SLOWFAST_16x8_R50.yaml",
        FUSION5,
        130.60,
        130,
    ),
    Row(
        "Charades Slow 16x8 R101, 6 res4 temporal",
        "Charades/SLOW_16x8_R101.yaml",
        T6_SLOW,
        186.61,
        187,
    ),
    Row(
        "Charades Slow 16x8 R101, 23 res4 temporal (shipped)",
        "Charades/SLOW_16x8_R101.yaml",
        (),
        223.12,
        None,
    ),
    # PySlowFast's Charades SlowFast has a fusion kernel of 7; the release's R101 (shipped) 5.
    Row(
        "Charades SlowFast 16x8 R101, 6 res4 temporal, fusion kernel 7",
        "Charades/SLOWFAST_16x8_R101.yaml",
        (*T6_FAST, *FUSION7),
        213.84,
        213,
    ),
    Row(
        "Charades SlowFast 16x8 R101, 6 res4 temporal, fusion kernel 5",
        "Charades/SLOWFAST_16x8_R101.yaml",
        T6_FAST,
        None,
        213,
    ),
    Row(
        "Charades SlowFast 16x8 R101, 23 res4 temporal, fusion kernel 7",
        "Charades/SLOWFAST_16x8_R101.yaml",
        FUSION7,
        252.63,
        None,
    ),
    Row(
        "Charades SlowFast 16x8 R101, 23 res4 temporal, fusion kernel 5 (shipped)",
        "Charades/SLOWFAST_16x8_R101.yaml",
        (),
        None,
        None,
    ),
    Row("AVA Slow 8x8 R50 (one box)", "AVA/SLOW_8x8_R50.yaml", (), None, None),
    Row("AVA SlowFast 32x2 R50 (one box)", "AVA/SLOWFAST_32x2_R50.yaml", (), None, None),
]


def measure(row: Row, device: str) -> dict:
    import torch

    from slowfast.models import build_model
    from slowfast.utils.misc import model_summary
    from slowfast.utils.parser import load_config, parse_args

    argv = ["--cfg", str(REPO / "configs" / row.config), *row.overrides, "NUM_GPUS", "0"]
    cfg = load_config(parse_args(argv))
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    start = time.perf_counter()
    stats = model_summary(model, cfg, use_train_input=False, activations=False)
    stats["seconds"] = time.perf_counter() - start
    return stats


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="only the rows whose name contains this")
    parser.add_argument("--device", default="cpu", help="where to trace (cpu or cuda)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    rows = [r for r in ROWS if args.only.lower() in r.name.lower()]
    header = ("model", "params", "GFLOPs", "w/ BN", "expected", "ratio", "paper", "s")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("  ".join(f"{c:>{12 if i else 72}}" for i, c in enumerate(header)))
    results = []
    for row in rows:
        stats = measure(row, args.device)
        ratio = stats["gflops"] / row.expected if row.expected else None
        if row.expected_params is not None and stats["params"] != row.expected_params:
            print(f"# {row.name}: params {stats['params']:,} != expected {row.expected_params:,}")
        overrides = " ".join(row.overrides)
        results.append(
            {
                "name": row.name,
                "config": f"configs/{row.config}" + (f" {overrides}" if overrides else ""),
                "params": stats["params"],
                "gflops": round(stats["gflops"], 2),
                "gflops_with_bn": round(stats["gflops_with_bn"], 2),
                "expected": row.expected,
                "ratio": None if ratio is None else round(ratio, 4),
                "paper": row.paper,
            }
        )
        cells = (
            row.name,
            f"{stats['params']:,}",
            f"{stats['gflops']:.2f}",
            f"{stats['gflops_with_bn']:.2f}",
            _fmt(row.expected, ".2f"),
            _fmt(ratio, ".4f"),
            _fmt(row.paper, "g"),
            f"{stats['seconds']:.0f}",
        )
        if args.markdown:
            print("| " + " | ".join(cells) + " |", flush=True)
        else:
            print("  ".join(f"{c:>{12 if i else 72}}" for i, c in enumerate(cells)), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
