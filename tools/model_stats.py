"""Parameters and GFLOPs of the model a config describes, for one view.

    python tools/model_stats.py --cfg configs/Kinetics/SLOW_8x8_R50.yaml [KEY VALUE ...]

The model is built on the CPU (``NUM_GPUS`` is forced to 0) and counted at
``DATA.TEST_CROP_SIZE`` in eval mode. A table is printed, then, as the last line, one JSON
object: ``{"params", "params_without_bn", "gflops" (conv/matmul/linear, the paper's way),
"gflops_with_bn" (fvcore's default ops, batch norm included), "mactivations", "input"
(per-pathway shapes), "config"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional

from slowfast.utils.parser import load_config, parse_args


def describe_model(cfg: Any) -> str:
    """The model row of the table: registered name, architecture and backbone size."""
    if cfg.MODEL.MODEL_NAME == "RegNet":
        return f"RegNet (RegNet-{cfg.REGNET.DEPTH}-3D)"
    return f"{cfg.MODEL.MODEL_NAME} ({cfg.MODEL.ARCH}, ResNet-{cfg.RESNET.DEPTH})"


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    from slowfast.models import build_model
    from slowfast.utils.misc import model_summary

    args = parse_args(argv)
    args.opts = list(args.opts or []) + ["NUM_GPUS", "0"]
    cfg = load_config(args)
    stats = model_summary(build_model(cfg), cfg, use_train_input=False)
    by_operator = stats.pop("by_operator")
    stats["config"] = " ".join(args.cfg_files)
    rows = [
        ("config", stats["config"]),
        ("model", describe_model(cfg)),
        ("input per pathway", ", ".join("x".join(map(str, s)) for s in stats["input"])),
        ("params", f"{stats['params']:,}"),
        ("params without BN", f"{stats['params_without_bn']:,}"),
        ("GFLOPs (conv/matmul/linear)", f"{stats['gflops']:.2f}"),
        ("GFLOPs with BN (fvcore)", f"{stats['gflops_with_bn']:.2f}"),
        ("activations (M)", f"{stats['mactivations']:.2f}"),
    ]
    rows += [(f"  {op}", f"{v:.3f}") for op, v in by_operator.items()]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps(stats))
    return stats


if __name__ == "__main__":
    main(sys.argv[1:])
