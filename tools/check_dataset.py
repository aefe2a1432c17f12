#!/usr/bin/env python3
"""Open every video of a dataset's splits and list the unreadable ones (file and reason).

Usage:
    python tools/check_dataset.py --cfg CFG [--splits train val test] [KEY VALUE ...]
Exit status: 0 when every video reads, 1 otherwise.
AVA (``TRAIN.DATASET ava``): frame lists, box CSVs and label map parse and agree with
MODEL.NUM_CLASSES, listed frames exist and decode, val/test ground truth and exclusions parse.
Charades (``TRAIN.DATASET charades``): the frame lists parse (class ids < MODEL.NUM_CLASSES) and
every listed frame exists and decodes; a bad frame is printed with its frame list and line.
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
    where = cfg.DATA.PATH_TO_DATA_DIR
    if "ava" in (cfg.TRAIN.DATASET.lower(), cfg.TEST.DATASET.lower()):
        where = f"AVA.FRAME_DIR {cfg.AVA.FRAME_DIR}, AVA.ANNOTATION_DIR {cfg.AVA.ANNOTATION_DIR}"
    print(f"{len(bad)} unreadable in splits {known.splits} of {where}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
