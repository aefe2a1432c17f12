"""Frame-level AVA mAP of a detection CSV, with the official ActivityNet protocol.

    python tools/eval_ava.py --labelmap ava_action_list_v2.2_for_activitynet_2019.pbtxt \\
        --groundtruth ava_val_v2.2.csv --detections detections.csv \\
        [--exclusions ava_val_excluded_timestamps_v2.2.csv]

Prints a per-class table, then, as the last line, one JSON object:
``{"mAP": float, "per_class_AP": {"<class id>": float}}`` (the classes with ground truth,
those averaged; ``null`` for a mAP without any). See ``slowfast/utils/ava_eval_helper.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Dict, List, Optional

from slowfast.utils.ava_eval_helper import evaluate_ava_from_files, format_per_class_table


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labelmap", required=True, help="label map (.pbtxt)")
    parser.add_argument("--groundtruth", required=True, help="ground-truth CSV")
    parser.add_argument("--detections", required=True, help="detection CSV (with scores)")
    parser.add_argument("--exclusions", default=None, help="excluded timestamps CSV")
    args = parser.parse_args(argv)

    tic = time.perf_counter()
    try:
        result = evaluate_ava_from_files(
            args.labelmap, args.groundtruth, args.detections, args.exclusions
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    categories = result.pop("categories")
    print(f"label map {args.labelmap}: {len(categories)} classes")
    print(format_per_class_table(result, categories))
    print(f"evaluated in {time.perf_counter() - tic:.2f} s")
    mean = result["mAP"]
    print(
        json.dumps(
            {
                "mAP": None if math.isnan(mean) else mean,
                "per_class_AP": {str(k): v for k, v in sorted(result["per_class_AP"].items())},
            }
        )
    )
    return result


if __name__ == "__main__":
    main()
