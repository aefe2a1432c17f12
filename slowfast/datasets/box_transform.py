"""Box-aware transforms of clips for detection (AVA): frames and person boxes move together.

Frames are ``(T, H, W, C)`` arrays (numpy, float32 or uint8); boxes are ``(n, 4)`` float arrays
``[x1, y1, x2, y2]`` in pixels of the current frames, in continuous coordinates: the image spans
``[0, W] x [0, H]`` and pixel column ``i`` covers ``[i, i + 1)``. A box enclosing pixels
``a..b`` is ``[a, b + 1]``; a horizontal flip maps ``x`` to ``W - x`` and resizing multiplies x
by ``W' / W`` and y by ``H' / H``, so a box stays on the same pixels. (PySlowFast clips to
``W - 1`` and flips to ``W - 1 - x``, a one-pixel shift, and scales both axes by the long side's
ratio; RoIAlign with ``aligned=True`` reads continuous coordinates.)

:func:`ava_transform` is PySlowFast's AVA pipeline: train = random short-side scale jitter
(``1 / uniform(1 / max, 1 / min)``), random crop, random flip (``DATA.RANDOM_FLIP``), colour
augmentation (``AVA.TRAIN_USE_COLOR_AUGMENTATION``: brightness / contrast / saturation jitter of
0.4 in random order unless ``AVA.TRAIN_PCA_JITTER_ONLY``, then AlexNet PCA lighting with
``AVA.TRAIN_PCA_EIGVAL`` / ``EIGVEC``, std 0.1); val = short side to ``DATA.TEST_CROP_SIZE`` and
the centre crop; test = short side to ``DATA.TEST_CROP_SIZE``, no crop; ``AVA.TEST_FORCE_FLIP``
flips val and test. Pixels go to [0, 1], then to BGR when ``AVA.BGR``, then ``(x - DATA.MEAN) /
DATA.STD`` per channel of that order (PySlowFast normalises its BGR image with the RGB means
before turning it to RGB; the default means are equal per channel). ``AVA.IMG_PROC_BACKEND``
"cv2" resizes with ``cv2.resize`` (bilinear), "pytorch" with ``torch.nn.functional.interpolate``
(bilinear, ``align_corners=False``); everything else is shared. Random draws use torch's
generator (seeded per DataLoader worker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

BACKENDS = ("cv2", "pytorch")


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()).item())


def _randint(high: int) -> int:
    """Uniform in ``0..high`` inclusive."""
    return int(torch.randint(0, high + 1, ()).item()) if high > 0 else 0


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"AVA.IMG_PROC_BACKEND must be one of {BACKENDS}, got {backend!r}")
    return backend


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def boxes_to_pixels(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalised ``[0, 1]`` boxes -> pixels of a ``height`` x ``width`` frame, clipped."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] *= width
    out[:, [1, 3]] *= height
    return clip_boxes(out, height, width)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip boxes to ``[0, width] x [0, height]`` (in place; returned)."""
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(width))
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(height))
    return boxes


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def resize(images: np.ndarray, height: int, width: int, backend: str = "cv2") -> np.ndarray:
    """Bilinear resize of ``(T, H, W, C)`` frames to float32 ``(T, height, width, C)``."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[1] == height and images.shape[2] == width:
        return images
    if check_backend(backend) == "cv2":
        return np.stack(
            [cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR) for img in images]
        ).reshape(images.shape[0], height, width, images.shape[3])
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def scaled_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """``(new_height, new_width)`` with the short side ``size`` and the long side floored."""
    if width <= height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def short_side_scale(
    images: np.ndarray, boxes: np.ndarray, size: int, backend: str = "cv2"
) -> Tuple[np.ndarray, np.ndarray]:
    """Resize the frames so that the short side is ``size``; boxes follow (x by the width ratio,
    y by the height ratio)."""
    height, width = images.shape[1], images.shape[2]
    new_h, new_w = scaled_size(height, width, size)
    images = resize(images, new_h, new_w, backend)
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    boxes[:, [0, 2]] *= new_w / width
    boxes[:, [1, 3]] *= new_h / height
    return images, boxes


def random_short_side_scale_jitter(
    images: np.ndarray, boxes: np.ndarray, min_size: int, max_size: int, backend: str = "cv2"
) -> Tuple[np.ndarray, np.ndarray]:
    """Short side to ``round(1 / uniform(1 / max_size, 1 / min_size))`` (PySlowFast's AVA
    draw), boxes following."""
    size = int(round(1.0 / _uniform(1.0 / max_size, 1.0 / min_size)))
    return short_side_scale(images, boxes, size, backend)


def crop(
    images: np.ndarray, boxes: np.ndarray, x: int, y: int, size: int
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``size`` x ``size`` window at ``(x, y)``; boxes shifted (not clipped)."""
    height, width = images.shape[1], images.shape[2]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from frames of {height}x{width}")
    boxes = np.asarray(boxes, dtype=np.float32).copy()
    boxes[:, [0, 2]] -= x
    boxes[:, [1, 3]] -= y
    return images[:, y : y + size, x : x + size], boxes


def random_crop(images: np.ndarray, boxes: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """A ``size`` crop at a uniformly drawn position (every position possible)."""
    height, width = images.shape[1], images.shape[2]
    return crop(images, boxes, _randint(width - size), _randint(height - size), size)


def center_crop(images: np.ndarray, boxes: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """The centred ``size`` crop (offsets ``ceil((H - size) / 2)``, as PySlowFast's val)."""
    height, width = images.shape[1], images.shape[2]
    x = int(math.ceil((width - size) / 2))
    y = int(math.ceil((height - size) / 2))
    return crop(images, boxes, x, y, size)


def horizontal_flip(images: np.ndarray, boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: column ``i`` -> ``W - 1 - i``, box ``[x1, x2]`` -> ``[W - x2, W - x1]``."""
    width = images.shape[2]
    boxes = np.asarray(boxes, dtype=np.float32)
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return images[:, :, ::-1], flipped


# --------------------------------------------------------------------------------------------
# Colour (float RGB frames in [0, 1], (T, H, W, 3))
# --------------------------------------------------------------------------------------------


def _gray(images: np.ndarray) -> np.ndarray:
    """Luma ``0.299 R + 0.587 G + 0.114 B``, ``(T, H, W, 1)``."""
    weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return (images * weights).sum(axis=-1, keepdims=True)


def color_jitter(
    images: np.ndarray, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4
) -> np.ndarray:
    """PySlowFast's colour jitter of a clip: brightness, contrast and saturation (those > 0) in
    a random order, each blending with black / the frame's mean grey / the grey frame by a factor
    ``1 + uniform(-v, v)`` drawn once per clip."""
    ops = [(n, v) for n, v in (("b", brightness), ("c", contrast), ("s", saturation)) if v > 0]
    for i in torch.randperm(len(ops)).tolist():
        name, var = ops[i]
        alpha = np.float32(1.0 + _uniform(-var, var))
        if name == "b":
            other = np.zeros_like(images)
        elif name == "c":
            other = np.broadcast_to(_gray(images).mean(axis=(1, 2, 3), keepdims=True), images.shape)
        else:
            other = _gray(images)
        images = images * alpha + other * (1 - alpha)
    return images.astype(np.float32)


def lighting(
    images: np.ndarray,
    eigval: Sequence[float],
    eigvec: Sequence[Sequence[float]],
    alphastd: float = 0.1,
    alpha: Optional[np.ndarray] = None,
) -> np.ndarray:
    """AlexNet PCA lighting: add ``eigvec @ (alpha * eigval)`` to the RGB channels, ``alpha ~
    N(0, alphastd)`` per clip (or the given ``alpha``, 3 values)."""
    if alphastd == 0 and alpha is None:
        return images
    if alpha is None:
        alpha = (torch.randn(3) * alphastd).numpy()
    vec = np.asarray(eigvec, dtype=np.float32).reshape(3, 3)
    val = np.asarray(eigval, dtype=np.float32).reshape(3)
    rgb = vec @ (np.asarray(alpha, dtype=np.float32).reshape(3) * val)
    return (images + rgb.astype(np.float32)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The AVA pipeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AvaTransformParams:
    """What :func:`ava_transform` does for one split (see :func:`params_from_cfg`)."""

    split: str
    jitter_scales: Tuple[int, int] = (256, 320)
    train_crop_size: int = 224
    test_crop_size: int = 256
    random_flip: bool = True
    test_force_flip: bool = False
    color_augmentation: bool = False
    pca_jitter_only: bool = True
    pca_eigval: Tuple[float, ...] = (0.225, 0.224, 0.229)
    pca_eigvec: Tuple[Tuple[float, ...], ...] = (
        (-0.5675, 0.7192, 0.4009),
        (-0.5808, -0.0045, -0.8140),
        (-0.5836, -0.6948, 0.4203),
    )
    mean: Tuple[float, ...] = (0.45, 0.45, 0.45)
    std: Tuple[float, ...] = (0.225, 0.225, 0.225)
    bgr: bool = False
    backend: str = "cv2"

    def __post_init__(self) -> None:
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {self.split!r}")
        check_backend(self.backend)
        lo, hi = self.jitter_scales
        if self.split == "train" and not self.train_crop_size <= lo <= hi:
            raise ValueError(
                f"DATA.TRAIN_JITTER_SCALES {[lo, hi]} must be [min, max] with min >= "
                f"DATA.TRAIN_CROP_SIZE = {self.train_crop_size}"
            )


def params_from_cfg(cfg, split: str) -> AvaTransformParams:
    """The transform of ``split`` from ``DATA.*`` and ``AVA.*``."""
    return AvaTransformParams(
        split=split,
        jitter_scales=tuple(int(s) for s in cfg.DATA.TRAIN_JITTER_SCALES),
        train_crop_size=int(cfg.DATA.TRAIN_CROP_SIZE),
        test_crop_size=int(cfg.DATA.TEST_CROP_SIZE),
        random_flip=bool(cfg.DATA.RANDOM_FLIP),
        test_force_flip=bool(cfg.AVA.TEST_FORCE_FLIP),
        color_augmentation=bool(cfg.AVA.TRAIN_USE_COLOR_AUGMENTATION),
        pca_jitter_only=bool(cfg.AVA.TRAIN_PCA_JITTER_ONLY),
        pca_eigval=tuple(float(v) for v in cfg.AVA.TRAIN_PCA_EIGVAL),
        pca_eigvec=tuple(tuple(float(v) for v in row) for row in cfg.AVA.TRAIN_PCA_EIGVEC),
        mean=tuple(float(v) for v in cfg.DATA.MEAN),
        std=tuple(float(v) for v in cfg.DATA.STD),
        bgr=bool(cfg.AVA.BGR),
        backend=check_backend(str(cfg.AVA.IMG_PROC_BACKEND)),
    )


def ava_transform(
    frames, boxes: np.ndarray, params: AvaTransformParams
) -> Tuple[torch.Tensor, np.ndarray]:
    """Transform a clip and its boxes.

    Args:
        frames: ``(T, H, W, 3)`` RGB frames, uint8 (0..255), numpy or torch.
        boxes: ``(n, 4)`` boxes normalised to ``[0, 1]`` of the original frames.
        params: the split's transform.
    Returns:
        ``(clip, boxes)``: float32 ``(3, T, H', W')`` normalised frames (RGB, or BGR with
        ``bgr``) and float32 ``(n, 4)`` boxes in pixels of ``clip``, clipped to it.
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {tuple(frames.shape)}")
    height, width = frames.shape[1], frames.shape[2]
    boxes = boxes_to_pixels(boxes, height, width)
    p = params
    if p.split == "train":
        frames, boxes = random_short_side_scale_jitter(
            frames, boxes, p.jitter_scales[0], p.jitter_scales[1], p.backend
        )
        frames, boxes = random_crop(frames, boxes, p.train_crop_size)
        if p.random_flip and float(torch.rand(()).item()) < 0.5:
            frames, boxes = horizontal_flip(frames, boxes)
    else:
        frames, boxes = short_side_scale(frames, boxes, p.test_crop_size, p.backend)
        if p.split == "val":
            frames, boxes = center_crop(frames, boxes, p.test_crop_size)
        if p.test_force_flip:
            frames, boxes = horizontal_flip(frames, boxes)
    frames = np.asarray(frames, dtype=np.float32) / np.float32(255.0)
    if p.split == "train" and p.color_augmentation:
        if not p.pca_jitter_only:
            frames = color_jitter(frames, 0.4, 0.4, 0.4)
        frames = lighting(frames, p.pca_eigval, p.pca_eigvec, alphastd=0.1)
    if p.bgr:
        frames = frames[..., ::-1]
    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    frames = (frames - mean) / std
    clip = torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))
    boxes = clip_boxes(np.asarray(boxes, dtype=np.float32), clip.shape[2], clip.shape[3])
    return clip, boxes
