#!/usr/bin/env python3
"""Write a synthetic Kinetics-format dataset of moving shapes (see slowfast.datasets.synthetic).

Example:
    python tools/make_synthetic_dataset.py --out /tmp/synthetic --num-classes 4
    python tools/run_net.py --cfg configs/Synthetic/... \
        DATA.PATH_TO_DATA_DIR /tmp/synthetic DATA.PATH_PREFIX /tmp/synthetic
"""

import argparse
import sys
import time

from slowfast.datasets.synthetic import make_kinetics_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--num-classes", type=int, default=2)
    p.add_argument("--videos-per-class", type=int, default=8, help="train videos per class")
    p.add_argument(
        "--eval-videos-per-class", type=int, default=2, help="val and test videos per class"
    )
    p.add_argument("--num-frames", type=int, default=64, help="frames per video")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--codec", default="auto", help="auto (libx264 if available, else mpeg4)")
    p.add_argument("--container", default="mp4", help="file extension: mp4, avi, mkv")
    p.add_argument("--gop", type=int, default=None, help="frames between key frames (1 s)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    summary = make_kinetics_dataset(
        args.out,
        num_classes=args.num_classes,
        videos_per_class=args.videos_per_class,
        eval_videos_per_class=args.eval_videos_per_class,
        num_frames=args.num_frames,
        fps=args.fps,
        width=args.width,
        height=args.height,
        codec=args.codec,
        container=args.container,
        gop=args.gop,
        seed=args.seed,
    )
    took = time.perf_counter() - start
    print(f"wrote {summary['videos']} videos ({summary['codec']}) to {args.out} in {took:.1f}s")
    print(f"use: DATA.PATH_TO_DATA_DIR {args.out} DATA.PATH_PREFIX {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
