"""Temporal sampling and clip decoding (PyAV with seeking, or OpenCV).

Frame indices are positions in the video as decoded from its start (presentation order). A clip
of ``num_frames`` frames ``sampling_rate`` apart at ``target_fps`` covers
``clip_size = num_frames * sampling_rate * fps / target_fps`` frames of a video at ``fps``
(PySlowFast's frame-rate conversion); its start is random in training (``clip_idx = -1``) or the
``clip_idx``-th of ``num_clips`` evenly spaced starts in testing. Only the span of the clip is
decoded: PyAV seeks to the key frame before it and decodes forward until past its end, and only
the frames that are sampled are converted to RGB.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from slowfast.datasets.video_container import DecodeError, canonical_backend, get_video_container

logger = logging.getLogger(__name__)


def get_start_end_idx(
    video_size: float,
    clip_size: float,
    clip_idx: int,
    num_clips: int,
    use_offset: bool = False,
) -> Tuple[float, float]:
    """First and last (fractional) frame index of a clip of ``clip_size`` frames.

    Args:
        video_size: frames in the video.
        clip_size: frames the clip spans (at the video's frame rate).
        clip_idx: -1 draws the start uniformly in ``[0, max(video_size - clip_size, 0)]`` (with
            ``torch``'s generator, seeded per DataLoader worker); otherwise the start is the
            ``clip_idx``-th of ``num_clips`` evenly spaced ones: ``delta * clip_idx / num_clips``
            (PySlowFast), or with ``use_offset`` ``clip_idx * floor(delta / (num_clips - 1))``
            so the first view starts at the first frame and the last ends within
            ``num_clips - 1`` frames of the last one (PySlowFast's ``DATA.USE_OFFSET_SAMPLING``;
            one clip starts at ``floor(delta / 2)``).
        num_clips: number of evenly spaced clips.
        use_offset: see ``clip_idx``.
    """
    delta = max(float(video_size) - float(clip_size), 0.0)
    if clip_idx == -1:
        start = float(torch.rand(()).item()) * delta
    elif not 0 <= clip_idx < num_clips:
        raise ValueError(f"clip_idx must be -1 or in [0, {num_clips}), got {clip_idx}")
    elif use_offset:  # PySlowFast floors the centre and the step (whole frames)
        start = (
            math.floor(delta / 2)
            if num_clips == 1
            else clip_idx * math.floor(delta / (num_clips - 1))
        )
    else:
        start = delta * clip_idx / num_clips
    return start, start + float(clip_size) - 1


def sample_indices(
    start_idx: float, end_idx: float, num_samples: int, video_size: int
) -> torch.Tensor:
    """``linspace(start_idx, end_idx, num_samples)`` clamped to ``[0, video_size - 1]``, as longs.

    A video shorter than the clip therefore repeats its last frames (PySlowFast's semantics).
    """
    index = torch.linspace(float(start_idx), float(end_idx), int(num_samples))
    return torch.clamp(index, 0, max(int(video_size) - 1, 0)).long()


def temporal_sampling(
    frames: torch.Tensor, start_idx: float, end_idx: float, num_samples: int
) -> torch.Tensor:
    """Pick ``num_samples`` frames of ``frames`` (first dim is time) between two indices."""
    index = sample_indices(start_idx, end_idx, num_samples, frames.shape[0])
    return torch.index_select(frames, 0, index)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    ``num_frames`` is 0 and ``time_base`` None when the file does not say (then the whole
    video is decoded); ``start_pts`` is the stream's first time stamp.
    """

    fps: float
    num_frames: int
    time_base: Optional[Fraction]
    start_pts: int

    @property
    def seekable(self) -> bool:
        return self.fps > 0 and self.num_frames > 0 and self.time_base is not None


def pyav_video_info(container) -> VideoInfo:
    """Frame rate, frame count and time base of the first video stream of a PyAV container."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    time_base = stream.time_base
    num_frames = int(stream.frames or 0)
    if num_frames <= 0 and fps > 0:
        if stream.duration and time_base:
            num_frames = int(round(float(stream.duration * time_base) * fps))
        elif container.duration:  # in microseconds
            num_frames = int(round(container.duration / 1_000_000 * fps))
    # Reading a packet moves the container; only done where a seek follows.
    start = None
    if fps > 0 and num_frames > 0 and time_base is not None:
        start = _first_packet_pts(container, stream)
    if start is None:
        start = stream.start_time if stream.start_time is not None else 0
    return VideoInfo(fps=fps, num_frames=num_frames, time_base=time_base, start_pts=int(start))


def _first_packet_pts(container, stream) -> Optional[int]:
    """Time stamp of the stream's first packet: the first frame's, where ``start_time`` can be
    off (AVI files stamp their first frame 1 with a start time of 0)."""
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                return int(packet.pts)
            if packet.size:
                return None
    except Exception:  # an unreadable file fails later, with its reason
        return None
    return None


class _RGB:
    """Frames to ``(H, W, 3)`` uint8 RGB through one swscale context for a whole video.

    ``frame.to_ndarray(format="rgb24")`` sets up a new conversion context for every frame, which
    costs more than converting a small frame (0.6 ms vs 0.2 ms a frame at 340 x 256); a reused
    ``VideoReformatter`` keeps its context while the frames' size and format stay the same, and
    converts with the same swscale call, so the pixels are identical.
    """

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter  # PyAV, imported where it is used

        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()


def _fill(
    wanted: Sequence[int], got: Dict[int, np.ndarray], last: Optional[Tuple[int, object]], path: str
) -> List[np.ndarray]:
    """The frame of every wanted index; indices past the last decoded frame get that frame."""
    if last is None:
        raise DecodeError(path, "no frame could be decoded")
    last_idx, last_frame = last
    last_rgb = None
    out = []
    for i in wanted:
        if i in got:
            out.append(got[i])
        elif i > last_idx:
            if last_rgb is None:
                last_rgb = got.get(last_idx)
                if last_rgb is None:
                    last_rgb = _RGB()(last_frame)  # a PyAV frame: OpenCV's are in got
            out.append(last_rgb)
        else:  # cannot happen: indices of decoded frames are consecutive
            raise DecodeError(path, f"frame {i} was not decoded")
    return out


def _pyav_decode_from(container, info: VideoInfo, wanted: Sequence[int], seek_pts: Optional[int]):
    """Seek (to the start when ``seek_pts`` is None) and decode forward up to max(wanted).

    Returns (frames by index, (last index, last frame), frames decoded) or None when the seek
    landed after the first wanted frame or frames carry no time stamp (the caller then decodes
    from the start).
    """
    stream = container.streams.video[0]
    from_start = seek_pts is None
    container.seek(
        info.start_pts if from_start else seek_pts, backward=True, any_frame=False, stream=stream
    )
    wanted_set = set(wanted)
    lo, hi = min(wanted), max(wanted)
    got: Dict[int, np.ndarray] = {}
    to_rgb = _RGB()
    last = None
    idx = None
    count = 0
    for frame in container.decode(stream):
        count += 1
        if idx is None:
            if from_start:
                idx = 0
            elif frame.pts is None:
                return None
            else:
                idx = int(round(float((frame.pts - info.start_pts) * info.time_base) * info.fps))
                if idx > lo:
                    return None
        else:
            idx += 1
        if idx in wanted_set:
            got[idx] = to_rgb(frame)
        last = (idx, frame)
        if idx >= hi:
            break
    return got, last, count


def pyav_decode_frames(
    container,
    indices: Sequence[int],
    info: Optional[VideoInfo] = None,
    path: str = "",
    stats: Optional[Dict[str, int]] = None,
) -> torch.Tensor:
    """Decode the frames at ``indices`` (positions from the start) of an open PyAV container.

    Seeks to the key frame before ``min(indices)`` (one frame of margin), decodes forward until
    ``max(indices)`` and converts only the wanted frames. The first frame after the seek is
    placed by its time stamp and the following ones by decoding order (robust to the shuffled
    time stamps of B-frames in AVI files). A seek that lands too late, or a stream without time
    stamps, falls back to decoding from the start. Indices past the end of the video get the
    last frame. Returns ``(len(indices), H, W, 3)`` uint8 RGB; ``stats`` (when given) receives
    ``last_index``, the index of the last frame decoded (below ``max(indices)`` when the video
    ends earlier than its header says), and ``decoded_frames``, how many frames the final pass
    decoded.
    """
    path = path or str(getattr(container, "name", ""))
    info = info or pyav_video_info(container)
    wanted = [int(i) for i in indices]
    if not wanted:
        raise ValueError("indices must not be empty")
    try:
        result = None
        if info.seekable and min(wanted) > 0:
            frame_pts = 1.0 / (info.fps * float(info.time_base))
            target = info.start_pts + int(math.floor((min(wanted) - 1) * frame_pts))
            if target > info.start_pts:
                result = _pyav_decode_from(container, info, wanted, target)
                if result is None:
                    logger.debug(
                        "%s: seek landed after frame %d; decoding from the start", path, min(wanted)
                    )
        if result is None:
            result = _pyav_decode_from(container, info, wanted, None)
        got, last, count = result
        if stats is not None:
            stats["decoded_frames"] = count
            if last is not None:
                stats["last_index"] = last[0]
        return torch.from_numpy(np.stack(_fill(wanted, got, last, path)))
    except DecodeError:
        raise
    except Exception as err:  # av.error.* while demuxing or decoding, frames of mixed sizes
        raise DecodeError(path, f"{type(err).__name__}: {err}") from err


def pyav_decode_all(container, path: str = "") -> torch.Tensor:
    """Every frame of the first video stream, ``(N, H, W, 3)`` uint8 RGB."""
    path = path or str(getattr(container, "name", ""))
    try:
        to_rgb = _RGB()
        frames = [to_rgb(f) for f in container.decode(container.streams.video[0])]
    except Exception as err:
        raise DecodeError(path, f"{type(err).__name__}: {err}") from err
    if not frames:
        raise DecodeError(path, "no frame could be decoded")
    return torch.from_numpy(np.stack(frames))


def opencv_video_info(capture) -> VideoInfo:
    import cv2

    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return VideoInfo(fps=fps, num_frames=max(num_frames, 0), time_base=Fraction(1, 1), start_pts=0)


def opencv_decode_frames(capture, indices: Sequence[int], path: str = "") -> torch.Tensor:
    """Frames at ``indices`` from an open ``cv2.VideoCapture``: seeks with
    ``CAP_PROP_POS_FRAMES`` to ``min(indices)`` and reads up to ``max(indices)``."""
    import cv2

    wanted = [int(i) for i in indices]
    wanted_set = set(wanted)
    lo, hi = min(wanted), max(wanted)
    if lo > 0 and not capture.set(cv2.CAP_PROP_POS_FRAMES, lo):
        lo = 0
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    got: Dict[int, np.ndarray] = {}
    last = None
    for idx in range(lo, hi + 1):
        ok, bgr = capture.read()
        if not ok:
            break
        if idx in wanted_set or idx == hi:
            got[idx] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        last = (idx, bgr)
    if last is not None and last[0] not in got:
        got[last[0]] = cv2.cvtColor(last[1], cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.stack(_fill(wanted, got, last, path)))


def opencv_decode_all(capture, path: str = "") -> torch.Tensor:
    import cv2

    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not frames:
        raise DecodeError(path, "no frame could be decoded")
    return torch.from_numpy(np.stack(frames))


def decode(
    path: str,
    *,
    num_frames: int,
    sampling_rate: int,
    clip_idx: int = -1,
    num_clips: int = 1,
    target_fps: float = 30,
    backend: str = "pyav",
    multi_thread_decode: bool = False,
    use_offset: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode one clip of ``path``.

    Args:
        path: the video file.
        num_frames: frames of the clip (``DATA.NUM_FRAMES``).
        sampling_rate: stride between them, in frames at ``target_fps`` (``DATA.SAMPLING_RATE``).
        clip_idx: -1 for a random clip, else the index of an evenly spaced clip.
        num_clips: number of evenly spaced clips (``TEST.NUM_ENSEMBLE_VIEWS``).
        target_fps: ``DATA.TARGET_FPS``.
        backend: ``"pyav"`` (``"torchvision"`` is an alias) or ``"opencv"``.
        multi_thread_decode: ``DATA_LOADER.ENABLE_MULTI_THREAD_DECODE`` (PyAV only).
        use_offset: see :func:`get_start_end_idx`.

    Returns:
        ``(frames, indices)``: ``(num_frames, H, W, 3)`` uint8 RGB frames and the frame indices
        they were taken from. Raises :class:`DecodeError` naming the file on failure.
    """
    backend = canonical_backend(backend)
    path = str(path)
    opened = get_video_container(path, multi_thread_decode, backend)
    try:
        if backend == "pyav":
            info = pyav_video_info(opened)
            decode_some = lambda idx: pyav_decode_frames(opened, idx, info, path)  # noqa: E731
            decode_all = lambda: pyav_decode_all(opened, path)  # noqa: E731
        else:
            info = opencv_video_info(opened)
            decode_some = lambda idx: opencv_decode_frames(opened, idx, path)  # noqa: E731
            decode_all = lambda: opencv_decode_all(opened, path)  # noqa: E731
        if info.seekable:
            clip_size = num_frames * sampling_rate * info.fps / target_fps
            start, end = get_start_end_idx(
                info.num_frames, clip_size, clip_idx, num_clips, use_offset
            )
            index = sample_indices(start, end, num_frames, info.num_frames)
            return decode_some(index.tolist()), index
        logger.debug(
            "%s: no usable frame count / time stamps (fps %.3f, frames %d); decoding all of it",
            path,
            info.fps,
            info.num_frames,
        )
        frames = decode_all()
        fps = info.fps if info.fps > 0 else target_fps
        clip_size = num_frames * sampling_rate * fps / target_fps
        start, end = get_start_end_idx(frames.shape[0], clip_size, clip_idx, num_clips, use_offset)
        index = sample_indices(start, end, num_frames, frames.shape[0])
        return frames.index_select(0, index), index
    finally:
        if backend == "pyav":
            opened.close()
        else:
            opened.release()
