#!/usr/bin/env python3
"""Write a synthetic Kinetics-format dataset of moving shapes (see slowfast.datasets.synthetic).

Example:
    python tools/make_synthetic_dataset.py --out /tmp/synthetic --num-classes 4
    python tools/make_synthetic_dataset.py --out /tmp/long_range --task long_range --gap 10 \
        --num-frames 36 --sampling-rate 2 --width 40 --height 40   # 2 classes: flash order
    python tools/make_synthetic_dataset.py --out /tmp/charades --task charades --num-classes 4
        # JPEG frames + frame lists; multi-label: a class = a coloured shape, visible at times
    python tools/make_synthetic_dataset.py --out /tmp/ava --task ava   # AVA-format detection
    python tools/run_net.py --cfg configs/Synthetic/... \
        DATA.PATH_TO_DATA_DIR /tmp/synthetic DATA.PATH_PREFIX /tmp/synthetic
"""

import argparse
import sys
import time

from slowfast.datasets.synthetic import make_kinetics_dataset, make_long_range_dataset


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument(
        "--task",
        choices=("kinetics", "long_range", "charades", "ava"),
        default="kinetics",
        help="kinetics: moving shapes; long_range: order of two flashes (2 classes); "
        "charades: JPEG frames + frame lists, a class per shape shown at times (multi-label); "
        "ava: JPEG frames, frame lists, box CSVs, proposals, label map (person detection)",
    )
    p.add_argument("--num-classes", type=int, default=2, help="kinetics task only")
    p.add_argument("--videos-per-class", type=int, default=8, help="train videos per class")
    p.add_argument(
        "--eval-videos-per-class", type=int, default=2, help="val and test videos per class"
    )
    p.add_argument(
        "--num-frames",
        type=int,
        default=64,
        help="frames per video (long_range: sampled frames; the video has this x sampling rate)",
    )
    p.add_argument(
        "--gap", type=int, default=10, help="long_range: flash distance in sampled frames"
    )
    p.add_argument("--sampling-rate", type=int, default=1, help="long_range: DATA.SAMPLING_RATE")
    p.add_argument(
        "--duration", type=int, default=2, help="long_range: flash length in sampled frames"
    )
    p.add_argument(
        "--margin",
        type=int,
        default=8,
        help="long_range: sampled frames kept free of flashes "
        "at each end (the clip length; see long_range_class_spec)",
    )
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--codec", default="auto", help="auto (libx264 if available, else mpeg4)")
    p.add_argument("--container", default="mp4", help="file extension: mp4, avi, mkv")
    p.add_argument(
        "--gop", type=int, default=None, help="frames between key frames (1 s; long_range: 1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-videos", type=int, default=32, help="charades: train videos")
    p.add_argument("--val-videos", type=int, default=16, help="charades: val (= test) videos")
    p.add_argument("--min-frames", type=int, default=60, help="charades: shortest video")
    p.add_argument("--max-frames", type=int, default=80, help="charades: longest video")
    p.add_argument("--ava-train-videos", type=int, default=4, help="ava: train videos")
    p.add_argument("--ava-val-videos", type=int, default=2, help="ava: val (= test) videos")
    p.add_argument(
        "--ava-first-sec", type=int, default=902, help="ava: first annotated second (>= 902)"
    )
    p.add_argument("--ava-num-secs", type=int, default=8, help="ava: annotated seconds per video")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.task == "ava":
        from slowfast.datasets.synthetic_ava import make_ava_dataset

        summary = make_ava_dataset(
            args.out,
            train_videos=args.ava_train_videos,
            val_videos=args.ava_val_videos,
            first_sec=args.ava_first_sec,
            num_secs=args.ava_num_secs,
            width=args.width,
            height=args.height,
            seed=args.seed,
        )
        took = time.perf_counter() - start
        print(f"wrote {summary['videos']} AVA-format videos to {args.out} in {took:.1f}s")
        print("use: " + " ".join(summary["overrides"]))
        return 0
    if args.task == "charades":
        from slowfast.datasets.synthetic_charades import FRAME_DIR, make_charades_dataset

        summary = make_charades_dataset(
            args.out,
            num_classes=args.num_classes,
            train_videos=args.train_videos,
            val_videos=args.val_videos,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            width=args.width,
            height=args.height,
            fps=args.fps,
            seed=args.seed,
        )
        took = time.perf_counter() - start
        print(f"wrote {summary['videos']} Charades-format videos to {args.out} in {took:.1f}s")
        print(f"use: DATA.PATH_TO_DATA_DIR {args.out} DATA.PATH_PREFIX {args.out}/{FRAME_DIR}")
        return 0
    if args.task == "long_range":
        summary = make_long_range_dataset(
            args.out,
            videos_per_class=args.videos_per_class,
            eval_videos_per_class=args.eval_videos_per_class,
            num_frames=args.num_frames,
            gap=args.gap,
            width=args.width,
            height=args.height,
            seed=args.seed,
            sampling_rate=args.sampling_rate,
            duration=args.duration,
            fps=args.fps,
            codec=args.codec,
            container=args.container,
            gop=args.gop or 1,
            margin=args.margin,
        )
    else:
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
