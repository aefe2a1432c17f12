"""Synthetic dataset generator: determinism, the class rule, codecs, CLI."""

import importlib.util
import json

import av
import numpy as np
import pytest

from slowfast.datasets.decoder import pyav_decode_all
from slowfast.datasets.synthetic import (
    LONG_RANGE_COLORS,
    PALETTE,
    MovingShape,
    VideoSpec,
    index_coded_frames,
    kinetics_class_spec,
    long_range_class_spec,
    make_kinetics_dataset,
    read_index_code,
    render_video,
    write_video,
)


def _decode(path):
    with av.open(str(path)) as c:
        return pyav_decode_all(c).numpy()


def _centroid_y(frames, color):
    """Row of the centre of the pixels close to ``color``, per frame."""
    dist = np.abs(frames.astype(int) - np.asarray(color)).sum(-1)
    ys = []
    for mask in dist < 90:
        rows = np.nonzero(mask)[0]
        ys.append(rows.mean() if rows.size else np.nan)
    return np.array(ys)


def test_same_args_same_bytes(tmp_path):
    kw = dict(num_classes=2, videos_per_class=2, eval_videos_per_class=1, num_frames=16)
    a = make_kinetics_dataset(str(tmp_path / "a"), seed=3, **kw)
    make_kinetics_dataset(str(tmp_path / "b"), seed=3, **kw)
    make_kinetics_dataset(str(tmp_path / "c"), seed=4, **kw)
    assert a["videos"] == {"train": 4, "val": 2, "test": 2}
    for rel in ("train.csv", "val.csv", "test.csv", "train/c001_v0001.mp4", "test/c000_v0000.mp4"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a/train/c000_v0000.mp4").read_bytes() != (
        tmp_path / "c/train/c000_v0000.mp4"
    ).read_bytes()
    lines = (tmp_path / "a" / "train.csv").read_text().splitlines()
    assert lines[0] == "train/c000_v0000.mp4 0" and lines[-1] == "train/c001_v0001.mp4 1"


def test_class_pairs_differ_only_in_direction(tmp_path):
    """Classes 0 and 1: same colour and shape, moving down vs up; class 2: another colour."""
    rng = np.random.default_rng(0)
    specs = [kinetics_class_spec(c, rng, 64, 64, 32) for c in range(3)]
    a, b, c = (s.objects[0] for s in specs)
    assert a.color == b.color and a.shape == b.shape and c.color != a.color
    assert a.velocity[1] > 0 > b.velocity[1]
    for class_id, spec in enumerate(specs[:2]):
        path = tmp_path / f"{class_id}.mp4"
        write_video(render_video(spec), str(path), spec.fps)
        ys = _centroid_y(_decode(path), PALETTE[0])
        assert not np.isnan(ys).any()  # always in the frame
        moved = ys[-1] - ys[0]
        assert (moved > 5) if class_id == 0 else (moved < -5)
    with pytest.raises(ValueError, match="class_id"):
        kinetics_class_spec(10_000, rng)


def test_render_objects_and_visibility():
    obj = MovingShape("square", (255, 0, 0), 3, (10, 10), (1, 0), first_frame=2, last_frame=3)
    frames = render_video(VideoSpec(32, 24, 5, 30, (0, 0, 0), (obj,)))
    assert frames.shape == (5, 24, 32, 3) and frames.dtype == np.uint8
    red = (frames[..., 0] == 255).sum(axis=(1, 2))
    assert red[0] == red[1] == red[4] == 0 and red[2] == red[3] > 0
    cols = np.nonzero(frames[3, 10, :, 0])[0]
    assert cols.min() == 10 and cols.max() == 15  # centre x = 10 + 3 at frame 3, half side 3
    with pytest.raises(ValueError, match="shape"):
        MovingShape("hexagon", (0, 0, 0), 1, (0, 0), (0, 0))


@pytest.mark.parametrize("codec,ext", [("mpeg4", "avi"), ("auto", "mkv")])
def test_codecs_and_containers(tmp_path, codec, ext):
    frames = index_coded_frames(24, 32, 32)
    path = tmp_path / f"v.{ext}"
    used = write_video(frames, str(path), 25, codec=codec)
    assert used in ("mpeg4", "libx264")
    decoded = _decode(path)
    assert decoded.shape == frames.shape
    assert read_index_code(decoded, 5).tolist() == list(range(24))
    with av.open(str(path)) as c:
        assert float(c.streams.video[0].average_rate) == 25


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(np.zeros((2, 31, 32, 3), np.uint8), str(tmp_path / "x.mp4"), 30)
    with pytest.raises(ValueError, match="uint8"):
        write_video(np.zeros((2, 32, 32, 3), np.float32), str(tmp_path / "x.mp4"), 30)


def test_cli(tmp_path, repo_root, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_dataset", repo_root / "tools" / "make_synthetic_dataset.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "syn"
    argv = ["--out", str(out), "--num-classes", "3", "--videos-per-class", "1"]
    assert tool.main(argv + ["--eval-videos-per-class", "1", "--num-frames", "8"]) == 0
    assert len((out / "train.csv").read_text().splitlines()) == 3
    assert len(_decode(out / "train" / "c002_v0000.mp4")) == 8
    assert f"DATA.PATH_PREFIX {out}" in capsys.readouterr().out


def _flash_frames(frames, color, min_pixels=40):
    """Indices of the frames with at least ``min_pixels`` pixels close to ``color``."""
    dist = np.abs(frames.astype(int) - np.asarray(color)).sum(-1)
    return np.nonzero((dist < 90).sum(axis=(1, 2)) >= min_pixels)[0]


def test_long_range_dataset(tmp_path, repo_root, capsys):
    """The CLI's long-range task: decodable videos, balanced CSVs, and the flashes where
    synthetic.json says, in the order the label says, ``gap`` sampled frames apart."""
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_dataset", repo_root / "tools" / "make_synthetic_dataset.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "lr"
    rate, gap, sampled, margin = 2, 9, 31, 8
    argv = ["--out", str(out), "--task", "long_range", "--gap", str(gap), "--sampling-rate"]
    argv += [str(rate), "--num-frames", str(sampled), "--width", "32", "--height", "32"]
    assert tool.main(argv + ["--videos-per-class", "3", "--eval-videos-per-class", "1"]) == 0
    assert f"DATA.PATH_PREFIX {out}" in capsys.readouterr().out
    info = json.loads((out / "synthetic.json").read_text())
    assert info["num_classes"] == 2 and info["num_frames"] == sampled * rate
    red, blue = LONG_RANGE_COLORS
    firsts = []
    for split, per_class in (("train", 3), ("val", 1), ("test", 1)):
        rows = [line.split() for line in (out / f"{split}.csv").read_text().splitlines()]
        labels = [int(label) for _, label in rows]
        assert sorted(labels) == [0] * per_class + [1] * per_class
        for rel, label in rows:
            frames = _decode(out / rel)
            assert frames.shape == (sampled * rate, 32, 32, 3)
            r, b = _flash_frames(frames, red), _flash_frames(frames, blue)
            assert len(r) == len(b) == 2 * rate  # each flash: 2 sampled frames
            assert np.all(np.diff(r) == 1) and np.all(np.diff(b) == 1)
            first, second = (r, b) if int(label) == 0 else (b, r)
            assert second[0] - first[0] == gap * rate  # the order the label says
            assert first[0] == info["events"][rel]["first"] * rate
            firsts.append(first[0])
            # both flashes at least ``margin`` sampled frames inside the video
            assert first[0] >= margin * rate and second[-1] < (sampled - margin) * rate
    assert len(set(firsts)) > 2  # the events are at random times


def test_long_range_spec_checks():
    rng = np.random.default_rng(0)
    spec, ev = long_range_class_spec(1, rng, 32, 32, num_frames=36, gap=10, sampling_rate=2)
    assert spec.num_frames == 72 and ev.first_color == LONG_RANGE_COLORS[1]
    assert 8 <= ev.first and ev.first + ev.gap + ev.duration <= 36 - 8
    with pytest.raises(ValueError, match="class_id"):
        long_range_class_spec(2, rng)
    with pytest.raises(ValueError, match="exceeds"):
        long_range_class_spec(0, rng, num_frames=10, gap=10)
    with pytest.raises(ValueError, match="margin 8"):  # 10 + 2 + 16 = 28 frames needed
        long_range_class_spec(0, rng, num_frames=27, gap=10)
    spec, ev = long_range_class_spec(0, rng, num_frames=12, gap=10, margin=0)
    assert ev.first == 0
