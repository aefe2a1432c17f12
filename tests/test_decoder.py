"""Temporal sampling and decoding: bounds, test views, frame-rate conversion, seeking decodes
the same pixels as a full decode (real clips from ../shared and index-coded synthetic videos)."""

import logging
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from slowfast.datasets.decoder import (
    decode,
    get_start_end_idx,
    opencv_decode_frames,
    pyav_decode_frames,
    pyav_video_info,
    sample_indices,
    temporal_sampling,
)
from slowfast.datasets.synthetic import index_coded_frames, read_index_code, write_video
from slowfast.datasets.video_container import DecodeError, canonical_backend, get_video_container

REAL = [
    "demo_demo.mp4",
    "demo_demo_skeleton.mp4",
    "demo_demo_spatiotemporal_det.mp4",
    "demo_test_video_structuralize.mp4",
    "tests_data_rawvideo_dataset_part_0.mp4",
    "tests_data_test.avi",
    "tests_data_test.mp4",
    "tools_data_skeleton_S001C001P001R001A001_rgb.avi",
]


def _positions(n):
    """Start frames of the 6-frame runs checked per clip: start, middle, end."""
    return sorted({0, n // 2, max(0, n - 6)})


VIEW_KW = dict(num_frames=8, sampling_rate=4, num_clips=2, target_fps=30)


@pytest.fixture(scope="module")
def reference(shared_dir):
    """Frames of every real clip decoded from the start without seeking, at the indices the
    tests look at (the runs of ``_positions`` and the frames of the test views)."""
    out = {}
    for name in REAL:
        path = str(shared_dir / "real_videos" / name)
        with av.open(path) as c:
            info = pyav_video_info(c)
        n = info.num_frames
        wanted = {i for lo in _positions(n) for i in range(lo, min(n, lo + 6))}
        clip_size = VIEW_KW["num_frames"] * VIEW_KW["sampling_rate"] * info.fps / 30
        for clip_idx in range(VIEW_KW["num_clips"]):
            start, end = get_start_end_idx(n, clip_size, clip_idx, VIEW_KW["num_clips"])
            wanted.update(sample_indices(start, end, VIEW_KW["num_frames"], n).tolist())
        frames = {}
        with av.open(path) as c:
            c.streams.video[0].thread_type = "AUTO"
            for i, frame in enumerate(c.decode(video=0)):
                if i in wanted:
                    frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                if i >= max(wanted):
                    break
        out[name] = (n, frames)
    return out


def _stack(frames, index):
    return torch.stack([frames[int(i)] for i in index])


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """Index-coded videos: 300 frames at 30 fps with a key frame every 16 frames (mp4/H.264
    and avi/MPEG-4), and 57 frames at 6 fps."""
    root = tmp_path_factory.mktemp("coded")
    paths = {}
    frames = index_coded_frames(300, 64, 96)
    for name, codec in (("long.mp4", "auto"), ("long.avi", "mpeg4")):
        write_video(frames, str(root / name), 30, codec=codec, gop=16)
        paths[name] = root / name
    write_video(index_coded_frames(57, 64, 96), str(root / "slow.mp4"), 6, gop=8)
    paths["slow.mp4"] = root / "slow.mp4"
    return paths


# ----------------------------------------------------------------------------- sampling


def test_random_start_within_bounds():
    torch.manual_seed(0)
    starts = []
    for _ in range(200):
        start, end = get_start_end_idx(100, 30, -1, 1)
        assert 0 <= start <= 70 and end == pytest.approx(start + 29)
        starts.append(start)
    assert max(starts) - min(starts) > 50  # really random over the range


def test_test_views_evenly_spaced():
    views = [get_start_end_idx(100, 30, i, 5) for i in range(5)]
    starts = np.array([s for s, _ in views])
    np.testing.assert_allclose(np.diff(starts), 70 / 5)  # PySlowFast: delta * i / n
    assert starts[0] == 0
    offset = [get_start_end_idx(100, 30, i, 5, use_offset=True) for i in range(5)]
    # PySlowFast: starts clip_idx * floor(delta / (n - 1)), whole frames
    assert [s for s, _ in offset] == [0, 17, 34, 51, 68] and offset[-1][1] == 97
    assert get_start_end_idx(100, 30, 0, 1, use_offset=True)[0] == 35  # one view: centred
    assert get_start_end_idx(101, 30, 0, 1, use_offset=True)[0] == 35  # floor(71 / 2)
    with pytest.raises(ValueError, match="clip_idx"):
        get_start_end_idx(100, 30, 5, 5)


def test_short_video_repeats_frames():
    start, end = get_start_end_idx(10, 32, -1, 1)
    assert start == 0 and end == 31
    index = sample_indices(start, end, 32, 10)
    assert index.min() == 0 and index.max() == 9
    assert torch.equal(index[:10], torch.arange(10))
    assert (index[10:] == 9).all()  # clamped: the last frame repeats
    frames = torch.arange(10).view(10, 1)
    assert torch.equal(temporal_sampling(frames, start, end, 32).view(-1), index)


def test_sample_indices_bounds_and_count():
    for n, start, end, k in [(50, 0.0, 49.0, 8), (50, 12.3, 40.9, 16), (5, -2.0, 9.0, 7)]:
        index = sample_indices(start, end, k, n)
        assert index.dtype == torch.long and index.numel() == k
        assert 0 <= index.min() and index.max() <= n - 1
        assert (index.diff() >= 0).all()


# ----------------------------------------------------------------------------- decoding


def _readme_table(shared_dir):
    """The README's table: file -> (codec, width, height, fps, frames)."""
    rows = {}
    for line in (shared_dir / "real_videos" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in REAL:
            width, height = (int(v) for v in cells[2].split("x"))
            rows[cells[0]] = (cells[1], width, height, float(cells[3]), int(cells[4]))
    return rows


def test_real_clip_metadata_matches_readme(shared_dir, reference):
    table = _readme_table(shared_dir)
    assert sorted(table) == sorted(REAL)
    for name, (_, width, height, fps, frames) in table.items():
        with av.open(str(shared_dir / "real_videos" / name)) as c:
            info = pyav_video_info(c)
        assert info.fps == pytest.approx(fps, abs=0.01) and info.num_frames == frames, name
        n, decoded = reference[name]
        assert n == frames and decoded[0].shape == (height, width, 3), name


@pytest.mark.parametrize("name", REAL)
def test_seek_matches_full_decode_real(shared_dir, reference, name):
    path = shared_dir / "real_videos" / name
    n, frames = reference[name]
    for lo in _positions(n):
        idx = [i for i in range(lo, lo + 6) if i < n] + [lo]  # a repeated index too
        with av.open(str(path)) as c:
            c.streams.video[0].thread_type = "AUTO"
            got = pyav_decode_frames(c, idx)
        assert torch.equal(got, _stack(frames, idx)), (name, lo)


@pytest.mark.parametrize("name", REAL)
def test_decode_views_real(shared_dir, reference, name):
    """Each test view has NUM_FRAMES frames of the video's size, the same as the full decode."""
    path = str(shared_dir / "real_videos" / name)
    n, frames = reference[name]
    for clip_idx in range(VIEW_KW["num_clips"]):
        got, index = decode(path, clip_idx=clip_idx, multi_thread_decode=True, **VIEW_KW)
        assert got.shape == (8,) + tuple(frames[0].shape) and got.dtype == torch.uint8
        assert index.max() < n
        assert torch.equal(got, _stack(frames, index))


def test_seek_decodes_only_the_span(coded):
    with av.open(str(coded["long.mp4"])) as c:
        stats = {}
        frames = pyav_decode_frames(c, list(range(200, 208)), stats=stats)
    assert read_index_code(frames.numpy(), 9).tolist() == list(range(200, 208))
    # key frames every 16 frames: at most one GOP of lead-in, far from the 208 from the start
    assert stats["decoded_frames"] <= 8 + 16 + 1


@pytest.mark.parametrize("name", ["long.mp4", "long.avi"])
def test_test_views_cover_video(coded, name):
    """Decoded frames carry their index: views are where get_start_end_idx puts them."""
    starts = []
    for clip_idx in range(4):
        frames, index = decode(
            str(coded[name]), num_frames=8, sampling_rate=8, clip_idx=clip_idx, num_clips=4
        )
        shown = read_index_code(frames.numpy(), 9)
        assert shown.tolist() == index.tolist()
        starts.append(shown[0])
        assert shown[-1] - shown[0] == 63  # 8 x 8 frames at 30 fps in a 30 fps video
    assert np.diff(starts).tolist() == [59, 59, 59]  # floor(236 * i / 4) steps
    frames, index = decode(
        str(coded[name]), num_frames=8, sampling_rate=8, clip_idx=3, num_clips=4, use_offset=True
    )
    # PySlowFast's offset sampling: start 3 * floor(236 / 3) = 234, so the clip ends at 297
    assert read_index_code(frames.numpy(), 9).tolist() == [234 + 9 * i for i in range(8)]


def test_fps_conversion(coded, shared_dir):
    """At TARGET_FPS 30, an 8 x 8 clip spans 64 / 30 s: 12.8 frames at 6 fps, 64 at 30 fps."""
    frames, index = decode(str(coded["slow.mp4"]), num_frames=8, sampling_rate=8, clip_idx=0)
    shown = read_index_code(frames.numpy(), 6)
    assert shown.tolist() == index.tolist()
    assert shown.tolist() == torch.linspace(0, 11.8, 8).long().tolist()
    real = shared_dir / "real_videos"
    with av.open(str(real / "demo_demo_spatiotemporal_det.mp4")) as c:
        assert pyav_video_info(c).fps == 6
    _, index6 = decode(
        str(real / "demo_demo_spatiotemporal_det.mp4"), num_frames=8, sampling_rate=8, clip_idx=0
    )
    _, index30 = decode(
        str(real / "tests_data_test.mp4"), num_frames=8, sampling_rate=8, clip_idx=0
    )
    assert index6.tolist() == torch.linspace(0, 8 * 8 * 6 / 30 - 1, 8).long().tolist()
    assert index30.tolist() == torch.linspace(0, 63, 8).long().tolist()
    # the same clip at 15 fps takes every other frame of the 30 fps clip's span, twice as long
    _, index15 = decode(
        str(real / "tests_data_test.mp4"), num_frames=8, sampling_rate=8, clip_idx=0, target_fps=15
    )
    assert index15[-1] == 127


def test_opencv_backend_matches_pyav(shared_dir, reference, coded):
    for name in ("demo_demo.mp4", "tests_data_test.avi"):
        n, frames = reference[name]
        idx = list(range(n // 2, n // 2 + 6))
        cap = get_video_container(str(shared_dir / "real_videos" / name), backend="opencv")
        try:
            got = opencv_decode_frames(cap, idx)
        finally:
            cap.release()
        ref = _stack(frames, idx)
        assert got.shape == ref.shape
        # different YUV -> RGB conversions: close, not bit-exact
        assert (got.float() - ref.float()).abs().mean() < 3.0
    frames, index = decode(
        str(coded["long.mp4"]),
        num_frames=8,
        sampling_rate=4,
        clip_idx=2,
        num_clips=3,
        backend="opencv",
    )
    assert read_index_code(frames.numpy(), 9).tolist() == index.tolist()


def test_multi_thread_and_alias_same_frames(coded):
    kw = dict(num_frames=8, sampling_rate=4, clip_idx=1, num_clips=3)
    a, _ = decode(str(coded["long.mp4"]), **kw)
    b, _ = decode(str(coded["long.mp4"]), multi_thread_decode=True, backend="torchvision", **kw)
    assert torch.equal(a, b)
    assert canonical_backend("TorchVision") == "pyav"
    container = get_video_container(str(coded["long.mp4"]), multi_thread_decode=True)
    try:
        assert container.streams.video[0].thread_type.name == "AUTO"
    finally:
        container.close()
    with pytest.raises(ValueError, match="DATA.DECODING_BACKEND"):
        canonical_backend("decord")


def test_no_timestamps_decodes_all(tmp_path, caplog):
    """A raw H.264 stream has no frame count nor time stamps: decoded whole, and said so."""
    path = tmp_path / "raw.h264"
    frames = index_coded_frames(40, 32, 32)
    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "h264", rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with caplog.at_level(logging.DEBUG, logger="slowfast.datasets.decoder"):
        got, index = decode(str(path), num_frames=4, sampling_rate=2, clip_idx=1, num_clips=2)
    assert "decoding all of it" in caplog.text
    assert read_index_code(got.numpy(), 6).tolist() == index.tolist()


def test_decode_errors_name_the_file(tmp_path, coded):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(DecodeError, match="missing.mp4"):
        decode(str(missing), num_frames=4, sampling_rate=2)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(Path(coded["long.mp4"]).read_bytes()[:1500])
    with pytest.raises(DecodeError, match="corrupt.mp4") as info:
        decode(str(corrupt), num_frames=4, sampling_rate=2)
    assert info.value.path == str(corrupt) and info.value.reason
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(DecodeError, match="no frame"):
        decode(str(empty), num_frames=4, sampling_rate=2)
