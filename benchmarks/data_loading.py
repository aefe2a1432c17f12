#!/usr/bin/env python3
"""Clips per second: the Kinetics dataset (seeking decoder + transforms) vs bare PyAV.

Writes a synthetic Kinetics set (default: 8 videos of 10 s at 30 fps, 320x240, a key frame
every 2 s), then reads the test views of every video (TEST.NUM_ENSEMBLE_VIEWS evenly spaced
clips of DATA.NUM_FRAMES x DATA.SAMPLING_RATE, one crop) three ways, on one process (no
DataLoader workers):

  dataset : slowfast.datasets Kinetics[index] (decode + scale + crop + normalise + pack)
  seek    : slowfast.datasets.decoder.decode alone (seek to the key frame before the clip)
  naive   : bare PyAV decoding from the start of the file up to the clip's last frame,
            converting the sampled frames (what a decoder without seeking does)

and prints the rates and the ratio dataset / naive, measured side by side in this run.

    python benchmarks/data_loading.py [--videos 8] [--seconds 10] [--views 10] [--gop 60]
"""

import argparse
import os
import sys
import tempfile
import time

import av
import numpy as np
import torch

from slowfast.config.defaults import get_cfg
from slowfast.datasets.decoder import decode, get_start_end_idx, sample_indices
from slowfast.datasets.kinetics import Kinetics
from slowfast.datasets.synthetic import make_kinetics_dataset


def naive_clip(path: str, index: list) -> np.ndarray:
    """Decode from the first frame up to max(index); keep the sampled frames."""
    wanted, last = set(index), max(index)
    got = {}
    with av.open(path) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return np.stack([got[min(i, max(got))] for i in index])


def timed(fn, jobs) -> float:
    start = time.perf_counter()
    for job in jobs:
        fn(job)
    return len(jobs) / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--gop", type=int, default=60, help="frames between key frames")
    p.add_argument("--views", type=int, default=10, help="TEST.NUM_ENSEMBLE_VIEWS")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--sampling-rate", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="best of N passes per method")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        num_frames_video = int(round(args.seconds * args.fps))
        make_kinetics_dataset(
            root, num_classes=2, videos_per_class=1, eval_videos_per_class=args.videos // 2,
            num_frames=num_frames_video, fps=args.fps, width=args.width, height=args.height,
            gop=args.gop, splits=("test",),
        )  # fmt: skip
        print(f"wrote {args.videos} videos of {num_frames_video} frames "
              f"{args.width}x{args.height}, key frame every {args.gop}, in "
              f"{time.perf_counter() - t0:.1f}s")  # fmt: skip

        cfg = get_cfg()
        cfg.DATA.PATH_TO_DATA_DIR = cfg.DATA.PATH_PREFIX = root
        cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = args.num_frames, args.sampling_rate
        # one crop: short side scaled to TRAIN_JITTER_SCALES[0], here the frames' own (no resize)
        cfg.DATA.TEST_CROP_SIZE = min(args.width, args.height)
        cfg.DATA.TRAIN_JITTER_SCALES = [cfg.DATA.TEST_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE]
        cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = args.views, 1
        cfg.MODEL.ARCH = "slow"
        dataset = Kinetics(cfg, "test")
        jobs = list(range(len(dataset)))

        clip_size = args.num_frames * args.sampling_rate * args.fps / cfg.DATA.TARGET_FPS
        segments = []
        for index in jobs:
            start, end = get_start_end_idx(
                num_frames_video, clip_size, index % args.views, args.views
            )
            segments.append((dataset.video_path(index), sample_indices(start, end, args.num_frames, num_frames_video).tolist()))  # fmt: skip

        def seek(job):
            decode(job[0], num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                   clip_idx=job[1], num_clips=args.views)  # fmt: skip

        seek_jobs = [(dataset.video_path(i), i % args.views) for i in jobs]
        # the three decoders agree on the frames
        for (path, index), (_, view) in zip(segments[:3], seek_jobs[:3]):
            frames, idx = decode(path, num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                                 clip_idx=view, num_clips=args.views)  # fmt: skip
            assert idx.tolist() == index and np.array_equal(frames.numpy(), naive_clip(path, index))

        rates = {"dataset": 0.0, "seek": 0.0, "naive": 0.0}
        for _ in range(args.repeats):  # interleaved, best of N: robust to a busy machine
            rates["dataset"] = max(rates["dataset"], timed(dataset.__getitem__, jobs))
            rates["seek"] = max(rates["seek"], timed(seek, seek_jobs))
            rates["naive"] = max(rates["naive"], timed(lambda s: naive_clip(*s), segments))

    print(f"{len(jobs)} clips ({args.views} views x {args.videos} videos), "
          f"{args.num_frames}x{args.sampling_rate} at {cfg.DATA.TARGET_FPS} fps, 1 process, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    for name, rate in rates.items():
        print(f"  {name:8s} {rate:8.1f} clips/s")
    print(f"ratio dataset / naive PyAV: {rates['dataset'] / rates['naive']:.2f}x")
    print(f"ratio seek / naive PyAV:    {rates['seek'] / rates['naive']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
