"""Synthetic video datasets: scenes of moving shapes rendered to real encoded files.

Three layers, so that other dataset formats (Charades, AVA, long-range tasks) can reuse the
first two:

1. scene description: :class:`MovingShape` and :class:`VideoSpec` (pure data);
2. rendering and encoding: :func:`render_video` -> ``(T, H, W, 3)`` uint8, :func:`write_video`
   (PyAV; H.264 ``libx264`` when the PyAV build has it, else ``mpeg4``);
3. dataset writers: :func:`make_kinetics_dataset` (Kinetics CSVs ``path label``), with the
   class -> scene rule :func:`kinetics_class_spec`; :func:`make_long_range_dataset`, the same
   format for the long-range task of :func:`long_range_class_spec`.

Long-range task (2 classes): a red and a blue flash ``gap`` sampled frames apart on a noisy
background with moving distractors; class 0 is red then blue, class 1 blue then red. With a
gap above 8 sampled frames no 8-frame clip sees both flashes, and an average over clips cannot
tell their order; a long clip (PGT's 36 frames) covers both (benchmarks/long_range.py).

Kinetics classes: class ``c`` moves a shape DOWN (even ``c``) or UP (odd ``c``); the pair
``(2k, 2k + 1)`` shares colour and shape, so telling them apart needs temporal order. The pair
index ``k`` picks the colour, then the shape, then the speed. Motion is vertical because training
flips clips horizontally. Paths in the CSVs are relative to the dataset folder: set
``DATA.PATH_TO_DATA_DIR`` and ``DATA.PATH_PREFIX`` both to it. Output is deterministic for a
seed: each video is drawn from its own generator seeded by (seed, split, class, video), and the
encoders run single-threaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

Color = Tuple[int, int, int]

SHAPES = ("square", "disk", "triangle", "ring")
PALETTE: Tuple[Color, ...] = (
    (230, 40, 40),
    (40, 200, 60),
    (50, 90, 240),
    (240, 220, 40),
    (220, 60, 220),
    (40, 220, 220),
)
SPEEDS = (1.0, 2.0)  # relative; 1.0 travels about a third of the frame height per video
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class MovingShape:
    """A filled shape moving at constant velocity, visible on frames [first_frame, last_frame].

    Positions are pixel coordinates of the centre (x right, y down) at frame 0; ``size`` is the
    half side / radius in pixels.
    """

    shape: str
    color: Color
    size: float
    start: Tuple[float, float]
    velocity: Tuple[float, float]
    first_frame: int = 0
    last_frame: Optional[int] = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {self.shape!r}")


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video."""

    width: int
    height: int
    num_frames: int
    fps: float
    background: Color = (0, 0, 0)
    objects: Tuple[MovingShape, ...] = field(default_factory=tuple)
    noise: float = 0.0  # std of per-pixel Gaussian noise (0 keeps the files small)
    seed: int = 0


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels of ``shape`` of radius ``r`` at offsets ``dx``, ``dy`` from its centre."""
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if shape == "disk":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.5 * r) ** 2)
    # triangle with its apex up, symmetric left-right
    return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)


def render_video(spec: VideoSpec) -> np.ndarray:
    """Render ``spec`` to ``(num_frames, height, width, 3)`` uint8 RGB frames.

    Pixel ``(x, y)`` has its centre at ``(x + 0.5, y + 0.5)``; objects are drawn in order, each
    only within its bounding box (so long videos render fast).
    """
    h, w = spec.height, spec.width
    frames = np.empty((spec.num_frames, h, w, 3), dtype=np.uint8)
    frames[...] = np.asarray(spec.background, dtype=np.uint8)
    for obj in spec.objects:
        color = np.asarray(obj.color, dtype=np.uint8)
        last = spec.num_frames - 1 if obj.last_frame is None else obj.last_frame
        r = float(obj.size)
        for t in range(max(0, obj.first_frame), min(spec.num_frames - 1, last) + 1):
            cx = obj.start[0] + obj.velocity[0] * t
            cy = obj.start[1] + obj.velocity[1] * t
            x0, x1 = max(0, int(np.floor(cx - r - 1))), min(w, int(np.ceil(cx + r + 1)))
            y0, y1 = max(0, int(np.floor(cy - r - 1))), min(h, int(np.ceil(cy + r + 1)))
            if x0 >= x1 or y0 >= y1:
                continue
            dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - np.float32(cx))[None, :]
            dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - np.float32(cy))[:, None]
            frames[t, y0:y1, x0:x1][_shape_mask(obj.shape, dx, dy, r)] = color
    if spec.noise > 0:
        rng = np.random.default_rng(spec.seed)
        noisy = frames.astype(np.float32) + rng.normal(0, spec.noise, frames.shape)
        frames = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return frames


def index_coded_frames(num_frames: int, height: int, width: int, bits: int = 0) -> np.ndarray:
    """Frames that show their own index in binary: ``bits`` horizontal bands (bit 0 at the top),
    white for 1, black for 0; ``(T, H, W, 3)`` uint8. ``bits`` 0 picks just enough for
    ``num_frames``. Survives lossy coding, left-right crops, flips and resizing; read back with
    :func:`read_index_code`. For testing temporal sampling end to end."""
    bits = bits or max(1, int(np.ceil(np.log2(max(num_frames, 2)))))
    if height < 2 * bits:
        raise ValueError(f"height {height} is too small for {bits} bands of 2 rows")
    band = np.minimum(np.arange(height) * bits // height, bits - 1)  # band of each row
    t = np.arange(num_frames)[:, None]
    on = ((t >> band[None, :]) & 1).astype(np.uint8) * 255  # (T, H)
    return np.broadcast_to(on[:, :, None, None], (num_frames, height, width, 3)).copy()


def read_index_code(frames: np.ndarray, bits: int) -> np.ndarray:
    """Frame indices shown by :func:`index_coded_frames` frames of any size, ``(T, H, W)`` or
    ``(T, H, W, C)`` in any intensity scale (thresholded at the mid-range)."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim == 4:
        frames = frames.mean(axis=-1)
    height = frames.shape[1]
    rows = [int((b + 0.5) * height / bits) for b in range(bits)]  # centre row of each band
    level = (frames.max() + frames.min()) / 2
    on = frames[:, rows, :].mean(axis=2) > level  # (T, bits)
    return (on * (1 << np.arange(bits))[None, :]).sum(axis=1).astype(np.int64)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 RGB frame as PyAV's ``yuv420p`` array ``(H * 3 / 2, W)``:
    BT.601 limited range, chroma averaged over 2 x 2 pixels. Done here rather than by the
    library's scaler, whose output is not reproducible from run to run."""
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).ravel()

    flat = np.concatenate([y.ravel(), sub(cb), sub(cr)])
    return np.clip(np.round(flat), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def default_codec() -> str:
    """``libx264`` when this PyAV build can encode H.264 with it, else ``mpeg4``."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(
    frames: np.ndarray,
    path: str,
    fps: float,
    codec: str = "auto",
    gop: Optional[int] = None,
    qp: int = 18,
) -> str:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames to ``path`` (container from the extension).

    Args:
        codec: ``"auto"`` (see :func:`default_codec`), ``"libx264"``, ``"mpeg4"``, ...
        gop: frames between key frames (None: one second).
        qp: H.264 constant quantiser (lower is better; constant QP, unlike CRF rate control
            with B-frames, encodes the same bytes on every run).

    Returns:
        The codec used.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    codec = default_codec() if codec == "auto" else codec
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = int(gop) if gop else max(1, int(round(fps)))
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            # threads=1 and constant QP: the bytes do not depend on timing
            stream.codec_context.options = {"qp": str(qp), "preset": "veryfast", "threads": "1"}
        else:
            stream.codec_context.bit_rate = max(200_000, width * height * int(round(fps)) // 2)
        for array in frames:
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(array), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return codec


def kinetics_class_spec(
    class_id: int,
    rng: np.random.Generator,
    width: int = 64,
    height: int = 64,
    num_frames: int = 64,
    fps: float = 30.0,
) -> VideoSpec:
    """A random video of class ``class_id`` (see the module docstring for the rule)."""
    pair = class_id // 2
    num_pairs = len(PALETTE) * len(SHAPES) * len(SPEEDS)
    if not 0 <= pair < num_pairs:
        raise ValueError(f"class_id must be in [0, {2 * num_pairs}), got {class_id}")
    color = PALETTE[pair % len(PALETTE)]
    shape = SHAPES[(pair // len(PALETTE)) % len(SHAPES)]
    speed = SPEEDS[pair // (len(PALETTE) * len(SHAPES))]
    direction = 1.0 if class_id % 2 == 0 else -1.0
    size = float(rng.uniform(0.09, 0.13) * min(width, height))
    travel = min(0.35 * speed * height, height - 2 * size - 2)
    vy = direction * travel / max(num_frames - 1, 1)
    y_top = float(rng.uniform(size + 1, height - size - 1 - travel))
    y0 = y_top if direction > 0 else y_top + travel
    x0 = float(rng.uniform(size + 1, width - size - 1))
    vx = float(rng.uniform(-0.1, 0.1)) * width / max(num_frames, 1)
    grey = int(rng.integers(0, 60))
    obj = MovingShape(shape, color, size, (x0, y0), (vx, vy))
    return VideoSpec(width, height, num_frames, fps, (grey, grey, grey), (obj,))


def _write_splits(
    out_dir: str,
    splits: Sequence[str],
    num_classes: int,
    videos_per_class: int,
    eval_videos_per_class: int,
    video: Callable[[str, int, int], Tuple[np.ndarray, Optional[dict]]],
    fps: float,
    codec: str,
    gop: Optional[int],
    container: str,
) -> Tuple[Dict[str, int], Dict[str, dict]]:
    """Write each split's videos (``video(split, class_id, index)`` gives the frames and an
    optional record about them) and its Kinetics CSV. Returns the videos per split and the
    records by relative path."""
    counts: Dict[str, int] = {}
    records: Dict[str, dict] = {}
    for split in splits:
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {tuple(SPLIT_IDS)}, got {split!r}")
        per_class = videos_per_class if split == "train" else eval_videos_per_class
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        lines = []
        for class_id in range(num_classes):
            for index in range(per_class):
                frames, record = video(split, class_id, index)
                rel = f"{split}/c{class_id:03d}_v{index:04d}.{container}"
                write_video(frames, os.path.join(out_dir, rel), fps, codec, gop)
                lines.append(f"{rel} {class_id}\n")
                if record is not None:
                    records[rel] = record
        with open(os.path.join(out_dir, f"{split}.csv"), "w") as f:
            f.writelines(lines)
        counts[split] = len(lines)
    return counts, records


def make_kinetics_dataset(
    out_dir: str,
    num_classes: int = 2,
    videos_per_class: int = 8,
    eval_videos_per_class: int = 2,
    num_frames: int = 64,
    fps: float = 30.0,
    width: int = 64,
    height: int = 64,
    codec: str = "auto",
    container: str = "mp4",
    gop: Optional[int] = None,
    seed: int = 0,
    splits: Sequence[str] = ("train", "val", "test"),
) -> Dict[str, object]:
    """Write a Kinetics-format dataset of moving shapes into ``out_dir``.

    Files: ``out_dir/<split>/c<class>_v<video>.<container>`` and ``out_dir/<split>.csv`` with
    ``relative/path label`` lines (use ``DATA.PATH_PREFIX = out_dir``), plus ``synthetic.json``
    with the arguments. ``videos_per_class`` videos per class for train,
    ``eval_videos_per_class`` for val and for test (distinct videos).

    Returns:
        The summary written to ``synthetic.json`` (arguments, codec, number of videos per split).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    codec = default_codec() if codec == "auto" else codec

    def video(split: str, class_id: int, index: int):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], class_id, index])
        return render_video(
            kinetics_class_spec(class_id, rng, width, height, num_frames, fps)
        ), None

    counts, _ = _write_splits(
        out_dir, splits, num_classes, videos_per_class, eval_videos_per_class, video,
        fps, codec, gop, container,
    )  # fmt: skip
    summary = {
        "format": "kinetics",
        "num_classes": num_classes,
        "videos": counts,
        "num_frames": num_frames,
        "fps": fps,
        "width": width,
        "height": height,
        "codec": codec,
        "container": container,
        "gop": gop,
        "seed": seed,
        "path_prefix_note": "set DATA.PATH_TO_DATA_DIR and DATA.PATH_PREFIX to this folder",
    }
    with open(os.path.join(out_dir, "synthetic.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


LONG_RANGE_COLORS: Tuple[Color, Color] = ((230, 40, 40), (50, 90, 240))  # red, blue
# distractor colours: far from red and blue in RGB
_DISTRACTOR_COLORS: Tuple[Color, ...] = ((40, 200, 60), (240, 220, 40), (160, 160, 160))


@dataclass(frozen=True)
class LongRangeEvents:
    """Where the two flashes of a long-range video are, in SAMPLED frames (raw frame =
    sampled frame * ``sampling_rate``): the first flash covers sampled frames
    ``[first, first + duration)``, the second ``[first + gap, first + gap + duration)``."""

    label: int
    first: int
    gap: int
    duration: int
    sampling_rate: int
    first_color: Color
    second_color: Color


def long_range_class_spec(
    class_id: int,
    rng: np.random.Generator,
    width: int = 64,
    height: int = 64,
    num_frames: int = 36,
    gap: int = 10,
    sampling_rate: int = 1,
    duration: int = 2,
    fps: float = 30.0,
    noise: float = 8.0,
    num_distractors: int = 2,
    margin: int = 8,
) -> Tuple[VideoSpec, LongRangeEvents]:
    """A random long-range video of class ``class_id`` (0: red flash then blue flash, 1: blue
    then red) and where its events are.

    ``num_frames``, ``gap`` and ``duration`` count SAMPLED frames; the video has
    ``num_frames * sampling_rate`` raw frames. The first flash starts uniformly at random so
    that both lie at least ``margin`` sampled frames inside the video. The margin is the clip
    length (8): a random training clip then shows either flash at each of its positions equally
    often. Without it (36 frames, gap 10, duration 2), a flash at a clip's first frame is the
    first flash 57 % of the time (the second is rarely that early in the video) and one at its
    last frame 40 %: a cue to the order that a clip baseline can learn (one such run tested at
    64 % on 64 videos; with the margin 53.9 % on 128, chance 50 %). Each flash is a static square (about 55 % of the frame side) at
    its own random position. The background is a random dark grey with ``num_distractors``
    oscillating shapes of other colours (random phase, so time-stationary) and Gaussian
    noise of std ``noise``.
    """
    if class_id not in (0, 1):
        raise ValueError(f"class_id must be 0 or 1, got {class_id}")
    if not 1 <= duration <= gap:
        raise ValueError(f"need 1 <= duration <= gap, got duration {duration}, gap {gap}")
    if gap + duration + 2 * margin > num_frames:
        raise ValueError(
            f"gap + duration + 2 * margin = {gap + duration + 2 * margin} exceeds num_frames "
            f"{num_frames} (gap {gap}, duration {duration}, margin {margin})"
        )
    rate = int(sampling_rate)
    raw = num_frames * rate
    first = int(rng.integers(margin, num_frames - margin - gap - duration + 1))
    colors = LONG_RANGE_COLORS if class_id == 0 else LONG_RANGE_COLORS[::-1]
    side = min(width, height)
    objects = []
    for _ in range(num_distractors):
        # oscillating, with a uniform random phase: the background's statistics do not change
        # with time, so no frame tells how far into the video it is (with constant velocities,
        # shapes leaving the frame would, and a clip showing one flash early in the video would
        # give the order away: the first flash is likelier early, the second late)
        size = float(rng.uniform(0.08, 0.14) * side)
        amp = float(rng.uniform(0.1, 0.25) * side)
        angle = float(rng.uniform(0, 2 * np.pi))
        ax, ay = amp * np.cos(angle), amp * np.sin(angle)
        cx = float(rng.uniform(size + abs(ax), width - size - abs(ax)))
        cy = float(rng.uniform(size + abs(ay), height - size - abs(ay)))
        period = float(rng.uniform(0.3, 1.0)) * raw
        phase = float(rng.uniform(0, 2 * np.pi))
        color = _DISTRACTOR_COLORS[int(rng.integers(len(_DISTRACTOR_COLORS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        for t in range(raw):
            u = np.sin(2 * np.pi * t / period + phase)
            pos = (cx + ax * u, cy + ay * u)
            objects.append(MovingShape(shape, color, size, pos, (0.0, 0.0), t, t))
    for k, color in enumerate(colors):
        size = float(rng.uniform(0.26, 0.3) * side)
        cx = float(rng.uniform(size + 1, width - size - 1))
        cy = float(rng.uniform(size + 1, height - size - 1))
        t0 = (first + k * gap) * rate
        objects.append(
            MovingShape("square", color, size, (cx, cy), (0.0, 0.0), t0, t0 + duration * rate - 1)
        )
    grey = int(rng.integers(10, 70))
    spec = VideoSpec(
        width, height, raw, fps, (grey, grey, grey), tuple(objects), noise, int(rng.integers(2**31))
    )
    events = LongRangeEvents(class_id, first, gap, duration, rate, colors[0], colors[1])
    return spec, events


def make_long_range_dataset(
    out_dir: str,
    videos_per_class: int = 32,
    eval_videos_per_class: int = 16,
    num_frames: int = 36,
    gap: int = 10,
    width: int = 64,
    height: int = 64,
    seed: int = 0,
    sampling_rate: int = 1,
    duration: int = 2,
    fps: float = 30.0,
    noise: float = 8.0,
    codec: str = "auto",
    container: str = "mp4",
    gop: Optional[int] = 1,
    margin: int = 8,
    splits: Sequence[str] = ("train", "val", "test"),
) -> Dict[str, object]:
    """Write a Kinetics-format long-range dataset (2 classes, see :func:`long_range_class_spec`)
    into ``out_dir``, in the layout of :func:`make_kinetics_dataset`; ``num_frames``, ``gap``,
    ``duration`` and ``margin`` count sampled frames (videos have ``num_frames *
    sampling_rate`` frames). ``gop`` 1 (default) codes every frame as a key frame, so that
    coding quality is the same on every frame and tells nothing about the time either.
    ``synthetic.json`` also lists each video's events (``events``: path -> first flash start,
    gap, duration, in sampled frames).
    """
    codec = default_codec() if codec == "auto" else codec

    def video(split: str, class_id: int, index: int):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], class_id, index, 7])
        spec, ev = long_range_class_spec(
            class_id,
            rng,
            width,
            height,
            num_frames,
            gap,
            sampling_rate,
            duration,
            fps,
            noise,
            margin=margin,
        )
        return render_video(spec), {"first": ev.first, "gap": ev.gap, "duration": ev.duration}

    counts, events = _write_splits(
        out_dir, splits, 2, videos_per_class, eval_videos_per_class, video,
        fps, codec, gop, container,
    )  # fmt: skip
    summary = {
        "format": "kinetics",
        "task": "long_range",
        "num_classes": 2,
        "classes": {"0": "red flash then blue flash", "1": "blue flash then red flash"},
        "videos": counts,
        "num_frames": num_frames * sampling_rate,
        "sampled_frames": num_frames,
        "sampling_rate": sampling_rate,
        "gap": gap,
        "duration": duration,
        "margin": margin,
        "fps": fps,
        "width": width,
        "height": height,
        "noise": noise,
        "codec": codec,
        "container": container,
        "gop": gop,
        "seed": seed,
        "path_prefix_note": "set DATA.PATH_TO_DATA_DIR and DATA.PATH_PREFIX to this folder",
        "events": events,
    }
    with open(os.path.join(out_dir, "synthetic.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


__all__ = [
    "MovingShape",
    "VideoSpec",
    "asdict",
    "default_codec",
    "index_coded_frames",
    "read_index_code",
    "kinetics_class_spec",
    "make_kinetics_dataset",
    "LONG_RANGE_COLORS",
    "LongRangeEvents",
    "long_range_class_spec",
    "make_long_range_dataset",
    "render_video",
    "write_video",
]
