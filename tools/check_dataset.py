#!/usr/bin/env python3
"""Open every video of a dataset's splits and list the unreadable ones (file and reason).

Usage:
    python tools/check_dataset.py --cfg CFG [--splits train val test] [KEY VALUE ...]
Exit status: 0 when every video reads, 1 otherwise.
"""

import argparse
import sys

from slowfast.datasets.check import check_splits
from slowfast.utils.parser import load_config, parse_args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    known, rest = pre.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print(__doc__)
    cfg = load_config(parse_args(rest))
    bad = check_splits(cfg, known.splits)
    for split, path, reason in bad:
        print(f"{split}\t{path}\t{reason}")
    print(f"{len(bad)} unreadable in splits {known.splits} of {cfg.DATA.PATH_TO_DATA_DIR}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
