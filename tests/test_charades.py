"""Charades: frame-list datasets, clip sampling and multi-hot targets, PGT per-step targets,
multi-view test indexing, mAP (``slowfast.utils.meters.get_map``), the Charades configs, the
synthetic Charades-format set, the dataset check and tiny end-to-end runs of tools/run_net.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.datasets import build_dataset
from slowfast.datasets.charades import clip_frame_indices, step_spans
from slowfast.datasets.frame_list import HEADER, write_frame_list
from slowfast.datasets.synthetic_charades import (
    FRAME_DIR,
    class_look,
    make_charades_dataset,
)
from slowfast.utils.parser import load_config, parse_args

REPO = Path(__file__).resolve().parents[1]
STEP = 4  # pixel value step between frames: frame i is grey 4 i (constant: JPEG keeps it)

pytestmark = pytest.mark.usefixtures("one_thread")


def _write_video(root: Path, name: str, num_frames: int, size=(16, 16), ramp=False):
    """Frames whose grey level codes their index (green channel = STEP * i); with ``ramp``, red
    grows along x (to tell crops apart). Returns the relative frame paths."""
    h, w = size
    folder = root / "frames" / name
    folder.mkdir(parents=True, exist_ok=True)
    rels = []
    for i in range(num_frames):
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 1] = STEP * i
        if ramp:
            rgb[..., 0] = np.linspace(0, 255, w, dtype=np.float32)[None, :].astype(np.uint8)
        rel = f"{name}/{name}-{i + 1:06d}.png"  # PNG: exact pixels; the loader reads any image
        assert cv2.imwrite(str(root / "frames" / rel), np.ascontiguousarray(rgb[..., ::-1]))
        rels.append(rel)
    return rels


def _dataset_dir(tmp_path, videos, size=(16, 16), ramp=False):
    """``videos``: name -> per-frame label lists; train.csv and val.csv list the same videos."""
    rows = []
    for vid, (name, labels) in enumerate(videos.items()):
        rels = _write_video(tmp_path, name, len(labels), size, ramp)
        rows += [(name, vid, i, rel, lab) for i, (rel, lab) in enumerate(zip(rels, labels))]
    for split in ("train", "val"):
        write_frame_list(str(tmp_path / f"{split}.csv"), rows)
    return tmp_path


def _cfg(root, **overrides):
    cfg = get_cfg()
    cfg.TRAIN.DATASET = cfg.TEST.DATASET = "charades"
    cfg.NUM_GPUS = 0
    cfg.MODEL.ARCH = "slow"
    cfg.MODEL.NUM_CLASSES = 4
    cfg.MODEL.LOSS_FUNC = "bce_logit"
    cfg.MODEL.HEAD_ACT = "sigmoid"
    cfg.DATA.MULTI_LABEL = True
    cfg.DATA.INPUT_CHANNEL_NUM = [3]
    cfg.DATA.PATH_TO_DATA_DIR = str(root)
    cfg.DATA.PATH_PREFIX = str(root / "frames")
    cfg.DATA.MEAN = [0.0, 0.0, 0.0]
    cfg.DATA.STD = [1.0, 1.0, 1.0]
    cfg.DATA.TRAIN_JITTER_SCALES = [16, 16]
    cfg.DATA.TRAIN_CROP_SIZE = 16
    cfg.DATA.TEST_CROP_SIZE = 16
    cfg.DATA.NUM_FRAMES = 4
    cfg.DATA.SAMPLING_RATE = 3
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 3
    cfg.TEST.NUM_SPATIAL_CROPS = 1
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return assert_and_infer_cfg(cfg)


def _frame_ids(frames: torch.Tensor) -> list:
    """Frame indices coded in the green channel of (C, T, H, W) frames in [0, 1]."""
    green = frames[1].mean(dim=(1, 2)) * 255.0 / STEP
    return [int(round(float(g))) for g in green]


def _labels(n, on):
    """Per-frame labels of ``n`` frames: ``on`` maps class -> frames showing it."""
    out = [[] for _ in range(n)]
    for c, frames in on.items():
        for t in frames:
            out[t].append(c)
    return out


# ---------------------------------------------------------------------------- bad input


def test_bad_line_names_file_and_line(tmp_path):
    root = _dataset_dir(tmp_path, {"a": _labels(5, {})})
    with open(root / "train.csv", "a") as f:
        f.write("a 0 5 a/a-000006.png 1,two\n")
    with pytest.raises(ValueError, match=r"train\.csv:7: label 'two'"):
        build_dataset("charades", _cfg(root), "train")
    (root / "val.csv").write_text(HEADER + "\na 0 0\n")
    with pytest.raises(ValueError, match=r"val\.csv:2: expected 5"):
        build_dataset("charades", _cfg(root), "test")


def test_class_id_outside_num_classes_names_file_line_and_key(tmp_path):
    root = _dataset_dir(tmp_path, {"a": _labels(5, {1: [0]}), "b": _labels(6, {4: [2]})})
    # frame 2 of video b is line 1 (header) + 5 frames of a + 3 = line 9
    with pytest.raises(ValueError, match=r"train\.csv:9: class id 4 .*MODEL\.NUM_CLASSES = 4"):
        build_dataset("charades", _cfg(root), "train")
    ds = build_dataset("charades", _cfg(root, MODEL__NUM_CLASSES=5), "train")
    assert ds.num_videos == 2


def test_missing_split_file_names_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"val\.csv.*DATA\.PATH_TO_DATA_DIR"):
        build_dataset("charades", _cfg(tmp_path), "val")


# ---------------------------------------------------------------------------- sampling


def test_clip_frame_indices_by_hand():
    # span (4 - 1) * 3 + 1 = 10 of a 40-frame video; test views spread the starts over 0..30
    assert clip_frame_indices(40, 4, 3, 0, 3) == [0, 3, 6, 9]
    assert clip_frame_indices(40, 4, 3, 1, 3) == [15, 18, 21, 24]
    assert clip_frame_indices(40, 4, 3, 2, 3) == [30, 33, 36, 39]
    assert clip_frame_indices(40, 4, 3, 0, 1) == [0, 3, 6, 9]
    # a clip longer than the video: clamped to the last frame
    assert clip_frame_indices(5, 4, 3, 1, 2) == [0, 3, 4, 4]
    # random starts stay in [0, L - span] (or [L - span, 0] for a longer clip)
    gen = torch.Generator().manual_seed(0)
    starts = {clip_frame_indices(12, 4, 3, -1, 1, gen)[0] for _ in range(200)}
    assert starts == {0, 1, 2}
    seqs = [clip_frame_indices(5, 4, 3, -1, 1, gen) for _ in range(200)]
    assert {s[0] for s in seqs} == {0}  # starts -5..0 clamp to frame 0
    # start 0: 0, 3, 6 -> 4, 9 -> 4; start -5: -5 -> 0, -2 -> 0, 1, 4
    assert {tuple(s) for s in seqs} >= {(0, 3, 4, 4), (0, 0, 1, 4)}


def test_train_clip_frames_and_union_target(tmp_path):
    on = {0: [2], 1: [7, 8], 2: [12], 3: [20]}
    root = _dataset_dir(tmp_path, {"v": _labels(21, on)})
    ds = build_dataset("charades", _cfg(root), "train")
    assert (len(ds), ds.num_videos, ds.num_clips) == (1, 1, 1)
    seen_starts = set()
    for seed in range(40):
        torch.manual_seed(seed)
        frames, target, index, meta = ds[0]
        ids = _frame_ids(frames[0])
        start = ids[0]
        assert ids == [start + 3 * i for i in range(4)] and 0 <= start <= 11
        seen_starts.add(start)
        # union of the labels of every frame from the first sampled to the last (PySlowFast)
        want = torch.zeros(4)
        for c, ts in on.items():
            if any(ids[0] <= t <= ids[-1] for t in ts):
                want[c] = 1.0
        assert torch.equal(target, want), (ids, target)
        assert target.dtype == torch.float32 and index == 0 and meta["decode_failures"] == []
    assert len(seen_starts) > 5


def test_val_and_test_target_is_the_video_labels(tmp_path):
    on = {0: [2], 3: [39]}
    root = _dataset_dir(tmp_path, {"v": _labels(40, on)})
    for split in ("val", "test"):
        ds = build_dataset("charades", _cfg(root), split)
        for i in range(len(ds)):
            assert ds[i][1].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_test_views_and_crops_indexing(tmp_path):
    videos = {"a": _labels(40, {0: [0]}), "b": _labels(25, {1: [3]})}
    root = _dataset_dir(tmp_path, videos, size=(16, 24), ramp=True)
    ds = build_dataset("charades", _cfg(root, TEST__NUM_SPATIAL_CROPS=3), "test")
    assert (ds.num_videos, ds.num_clips, len(ds)) == (2, 9, 18)
    starts = {"a": [0, 15, 30], "b": [0, 8, 15]}  # gap (L - 10) / 2, rounded
    for index in range(len(ds)):
        frames, target, got_index, _ = ds[index]
        video, clip = divmod(index, 9)
        view, crop = divmod(clip, 3)
        name = ds.video_names[video]
        assert got_index == index
        start = starts[name][view]
        assert _frame_ids(frames[0]) == [start + 3 * i for i in range(4)], (index, name)
        assert frames[0].shape == (3, 4, 16, 16)
        red = float(frames[0][0].mean())
        if crop == 0:
            left = red
        elif crop == 1:
            centre = red
        else:
            assert left < centre < red  # left, centre, right crops of the wide frames
        assert target.tolist() == ([1.0, 0, 0, 0] if name == "a" else [0, 1.0, 0, 0])


def test_single_crop_test_is_the_centre(tmp_path):
    root = _dataset_dir(tmp_path, {"a": _labels(30, {})}, size=(16, 24), ramp=True)
    ds = build_dataset("charades", _cfg(root, TEST__NUM_SPATIAL_CROPS=1), "test")
    assert len(ds) == 3
    red = float(ds[0][0][0][0].mean()) * 255
    # centre 16 of 24 columns of a 0..255 ramp: mean about 127.5
    assert abs(red - 127.5) < 6


# ---------------------------------------------------------------------------- PGT targets


def test_step_spans_by_hand():
    # Charades 16x8 PGT: T' = 16, o = 1, P = 5 -> 76 frames
    spans = step_spans(16, 1, 5)
    assert spans == [(0, 15), (15, 30), (30, 45), (45, 60), (60, 75)]
    # o = 1: last = k (T' - o) + T' - o, DESIGN's formula
    assert all(b == k * 15 + 15 for k, (_, b) in enumerate(spans))
    # SlowFast's Fast pathway, T' = 64, o = 4: all 4 carried frames, the last step ends at 303
    assert step_spans(64, 4, 5)[-1] == (240, 303) and step_spans(64, 4, 5)[1] == (60, 123)


def test_pgt_per_step_targets_by_hand(tmp_path):
    # T' = 4, o = 1, P = 3 -> 10 frames at rate 1 over a 10-frame video: seq = 0..9, spans
    # (0, 3), (3, 6), (6, 9). Frame 3 is step 0's last and step 1's carried frame, frame 6 step
    # 1's last and step 2's carried frame.
    on = {0: [3], 1: [6], 2: [8], 3: [0]}
    root = _dataset_dir(tmp_path, {"v": _labels(10, on)})
    pgt = dict(
        PGT__ENABLE=True,
        PGT__STEP_LEN=[4],
        PGT__OVERLAP=[1],
        PGT__STEPS=3,
        DATA__NUM_FRAMES=10,
        DATA__SAMPLING_RATE=1,
    )
    ds = build_dataset("charades", _cfg(root, **pgt), "train")
    frames, target, _, _ = ds[0]
    assert _frame_ids(frames[0]) == list(range(10))
    want = torch.tensor([[1.0, 0, 0, 1], [1, 1, 0, 0], [0, 1, 1, 0]])
    assert torch.equal(target, want)
    # val / test: the video's labels, one row
    assert build_dataset("charades", _cfg(root, **pgt), "val")[0][1].tolist() == [1.0] * 4


def test_pgt_per_step_targets_slowfast_follow_the_fast_steps(tmp_path):
    # Fast T' = 4, o = 2 (Slow 2, 1, ALPHA 2), P = 3 -> 8 fast frames: spans (0,3), (2,5), (4,7)
    on = {0: [1], 1: [2], 2: [5], 3: [7]}
    root = _dataset_dir(tmp_path, {"v": _labels(8, on)})
    cfg = _cfg(
        root,
        MODEL__ARCH="slowfast",
        SLOWFAST__ALPHA=2,
        DATA__INPUT_CHANNEL_NUM=[3, 3],
        PGT__ENABLE=True,
        PGT__STEP_LEN=[2, 4],
        PGT__OVERLAP=[1, 2],
        PGT__STEPS=3,
        DATA__NUM_FRAMES=8,
        DATA__SAMPLING_RATE=1,
        RESNET__NUM_BLOCK_TEMP_KERNEL=[[3, 3], [4, 4], [6, 6], [3, 3]],
        RESNET__SPATIAL_STRIDES=[[1, 1], [2, 2], [2, 2], [2, 2]],
        RESNET__SPATIAL_DILATIONS=[[1, 1], [1, 1], [1, 1], [1, 1]],
        NONLOCAL__LOCATION=[[[], []], [[], []], [[], []], [[], []]],
        NONLOCAL__GROUP=[[1, 1], [1, 1], [1, 1], [1, 1]],
    )
    ds = build_dataset("charades", cfg, "train")
    (slow, fast), target, _, _ = ds[0]
    assert _frame_ids(fast) == list(range(8)) and _frame_ids(slow) == [0, 2, 4, 6]
    want = torch.tensor([[1.0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    assert torch.equal(target, want)
    assert torch.equal(target.amax(dim=0), torch.ones(4))  # rows' union = the clip's target


# ---------------------------------------------------------------------------- mAP


def test_get_map_by_hand():
    from slowfast.utils import meters, metrics

    assert meters.get_map is metrics.get_map  # PySlowFast's import path
    preds = np.array(
        [[0.9, 0.1, 0.5, 0.3], [0.8, 0.6, 0.5, 0.2], [0.3, 0.7, 0.2, 0.9], [0.1, 0.2, 0.2, 0.4]]
    )
    labels = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    # class 0: ranks 1 (+), 2 (-), 3 (+): AP = (1/1 + 2/3) / 2
    # class 1: its two positives first: AP = 1
    # class 2: the top score 0.5 is shared by a positive and a negative: precision 1/2 there
    # class 3: no positive -> left out of the mean
    want = ((1 + 2 / 3) / 2 + 1.0 + 0.5) / 3
    assert meters.get_map(preds, labels) == pytest.approx(want, abs=1e-12)
    got_t = meters.get_map(torch.tensor(preds), torch.tensor(labels))
    assert got_t == pytest.approx(want, abs=1e-12)
    # the ranking matters, not the scale
    assert meters.get_map(preds * 10 - 3, labels) == pytest.approx(want, abs=1e-12)
    # a perfect scorer
    assert meters.get_map(labels[:, :3] + 0.0, labels[:, :3]) == pytest.approx(1.0)


def test_get_map_errors():
    from slowfast.utils.meters import get_map

    with pytest.raises(ValueError, match="no class has a positive"):
        get_map(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        get_map(np.zeros((3, 2)), np.zeros((3, 3)))


# ---------------------------------------------------------------------------- configs

CHARADES_PGT = {
    "SLOW_16x8_R50_PGT": ("slow", 50, [16], [1], 76, 8),
    "SLOW_16x8_R101_PGT": ("slow", 101, [16], [1], 76, 8),
    "SLOWFAST_16x8_R50_PGT": ("slowfast", 50, [16, 64], [1, 4], 304, 2),
    "SLOWFAST_16x8_R101_PGT": ("slowfast", 101, [16, 64], [1, 4], 304, 2),
}


@pytest.mark.parametrize("name", sorted(CHARADES_PGT))
def test_charades_pgt_configs(name):
    arch, depth, step_len, overlap, frames, rate = CHARADES_PGT[name]
    path = REPO / "configs" / "Charades" / f"{name}.yaml"
    cfg = load_config(parse_args(["--cfg", str(path), "NUM_GPUS", "0"]))  # assert_and_infer_cfg
    base = load_config(parse_args(["--cfg", str(path).replace("_PGT", ""), "NUM_GPUS", "0"]))
    assert (cfg.MODEL.ARCH, cfg.RESNET.DEPTH) == (arch, depth)
    assert cfg.TRAIN.DATASET == cfg.TEST.DATASET == "charades"
    assert cfg.PGT.ENABLE and cfg.PGT.STEPS == 5 and cfg.PGT.PG_EVAL and cfg.PGT.TRAIN_TOGETHER
    assert list(cfg.PGT.STEP_LEN) == step_len and list(cfg.PGT.OVERLAP) == overlap
    assert cfg.PGT.ENSEMBLE_METHOD == "max" and cfg.DATA.ENSEMBLE_METHOD == "max"
    assert cfg.PGT.CACHE == "max" and cfg.PGT.CACHE_MOMENTUM == 0.25
    # DESIGN: T = (T' - o)(P - 1) + T'; 16x8 -> 76; the Fast pathway (ALPHA 4) -> 304
    assert cfg.DATA.NUM_FRAMES == frames == (step_len[-1] - overlap[-1]) * 4 + step_len[-1]
    assert cfg.DATA.SAMPLING_RATE == rate == base.DATA.SAMPLING_RATE
    # the step is the baseline's clip
    assert cfg.PGT.STEP_LEN[-1] == base.DATA.NUM_FRAMES
    assert cfg.MODEL.NUM_CLASSES == 157 and cfg.DATA.MULTI_LABEL
    assert cfg.MODEL.LOSS_FUNC == "bce_logit"
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (2, 3)
    assert step_spans(step_len[-1], overlap[-1], 5)[-1][1] == frames - 1


def test_release_charades_pgt_frame_counts(shared_dir):
    # The release's configs give the same long clips (its SlowFast OVERLAP is [1, 1]).
    folder = shared_dir / "compat/pgt_configs/Charades"
    for release, ours in (
        ("SLOW_PROG_76x8_R50_K400.yaml", "SLOW_16x8_R50_PGT"),
        ("SLOWFAST_PROG_76x8_R50_K400.yaml", "SLOWFAST_16x8_R50_PGT"),
    ):
        text = (folder / release).read_text()
        frames = CHARADES_PGT[ours][4]
        assert f"NUM_FRAMES: {frames}" in text and "ENSEMBLE_METHOD: max" in text


# ---------------------------------------------------------------------------- synthetic set


def test_synthetic_labels_are_what_the_frames_show(tmp_path):
    out = tmp_path / "syn"
    summary = make_charades_dataset(
        str(out), num_classes=5, train_videos=6, val_videos=3, min_frames=20, max_frames=30
    )
    assert summary["videos"] == {"train": 6, "val": 3}
    cfg = _cfg(out, MODEL__NUM_CLASSES=5)
    cfg.DATA.PATH_PREFIX = str(out / FRAME_DIR)
    ds = build_dataset("charades", cfg, "train")
    assert ds.num_videos == 6
    positives = 0
    checked = 0
    for v in range(ds.num_videos):
        for path, labels in zip(ds.frame_paths[v], ds.frame_list.frame_labels[v]):
            rgb = cv2.imread(path)[..., ::-1].astype(np.int32)
            for c in range(5):
                color = np.array(class_look(c)[1])
                shown = (np.abs(rgb - color).max(axis=-1) < 40).sum() >= 20
                assert shown == (c in labels), (path, c, labels)
                checked += 1
            positives += len(labels)
    assert positives > 0 and checked > 500
    # deterministic for a seed
    again = make_charades_dataset(
        str(tmp_path / "b"), num_classes=5, train_videos=6, val_videos=3, min_frames=20,
        max_frames=30,
    )  # fmt: skip
    assert again["intervals"] == summary["intervals"]
    assert (out / "val.csv").read_text().splitlines()[0] == HEADER


def test_make_synthetic_dataset_tool_charades(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_dataset", REPO / "tools" / "make_synthetic_dataset.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "c"
    argv = ["--out", str(out), "--task", "charades", "--num-classes", "3", "--train-videos", "2"]
    argv += ["--val-videos", "1", "--min-frames", "12", "--max-frames", "12"]
    assert tool.main(argv) == 0
    assert f"DATA.PATH_PREFIX {out}/{FRAME_DIR}" in capsys.readouterr().out
    lines = (out / "train.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 12 and json.load(open(out / "synthetic.json"))["num_classes"] == 3


def test_check_dataset_reports_missing_and_bad_frames(tmp_path, capsys):
    root = _dataset_dir(tmp_path, {"a": _labels(6, {0: [1]}), "b": _labels(5, {})})
    (root / "frames" / "a" / "a-000003.png").unlink()
    (root / "frames" / "b" / "b-000002.png").write_bytes(b"\x89PNG broken")
    spec = importlib.util.spec_from_file_location(
        "check_dataset", REPO / "tools" / "check_dataset.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = ["--splits", "train", "val", "--cfg", str(REPO / "configs/Synthetic/CHARADES_SLOW.yaml")]
    argv += ["DATA.PATH_TO_DATA_DIR", str(root), "DATA.PATH_PREFIX", str(root / "frames")]
    assert tool.main(argv) == 1
    out = capsys.readouterr().out
    # frame a-000003 is line 4 of the lists, b-000002 line 9
    assert "a-000003.png\tcannot open" in out and "train.csv:4" in out and "val.csv:4" in out
    assert "b-000002.png\tOpenCV cannot decode it" in out and "train.csv:9" in out
    assert "4 unreadable" in out
    (root / "frames" / "b" / "b-000002.png").write_bytes(
        (root / "frames/b/b-000001.png").read_bytes()
    )
    (root / "frames" / "a" / "a-000003.png").write_bytes(
        (root / "frames/a/a-000001.png").read_bytes()
    )
    assert tool.main(argv) == 0


def test_unreadable_frame_in_train_is_replaced_and_reported(tmp_path):
    root = _dataset_dir(tmp_path, {"a": _labels(10, {0: [1]}), "b": _labels(10, {1: [1]})})
    for path in (root / "frames" / "a").iterdir():
        path.write_bytes(b"junk")
    ds = build_dataset("charades", _cfg(root, DATA__SAMPLING_RATE=1), "train")
    torch.manual_seed(0)
    frames, target, index, meta = ds[0]
    assert index == 1 and target.tolist() == [0, 1.0, 0, 0]  # video b stands in
    assert meta["decode_failures"][0][0].startswith(str(root / "frames" / "a" / "a-0000"))
    assert ds.decode_failures and ds[1][2] == 1
    test = build_dataset("charades", _cfg(root, DATA__SAMPLING_RATE=1), "test")
    with pytest.raises(RuntimeError, match=r"test clip 0 of video 'a'.*a-0000\d\d\.png"):
        test[0]


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("charades_e2e")
    summary = make_charades_dataset(
        str(out), num_classes=3, train_videos=24, val_videos=12, min_frames=36, max_frames=44,
        width=32, height=32, present_prob=0.5, seed=1,
    )  # fmt: skip
    return out, summary


E2E = [
    "MODEL.NUM_CLASSES", "3",
    "DATA.TRAIN_JITTER_SCALES", "[32, 36]",
    "DATA.TRAIN_CROP_SIZE", "32",
    "DATA.TEST_CROP_SIZE", "32",
    "TRAIN.BATCH_SIZE", "4",
    "TEST.BATCH_SIZE", "12",
    "TRAIN.EVAL_PERIOD", "100",
    "TRAIN.CHECKPOINT_PERIOD", "100",
    "SOLVER.BASE_LR", "0.05",
    "SOLVER.WARMUP_EPOCHS", "0.5",
    "MODEL.DROPOUT_RATE", "0.0",
    "BN.NUM_BATCHES_PRECISE", "2",
    "DATA_LOADER.NUM_WORKERS", "0",
    "LOG_MODEL_INFO", "False",
    "LOG_PERIOD", "100",
]  # fmt: skip


def _run_net(cfg_name, data, out, extra=()):
    argv = [sys.executable, "tools/run_net.py", "--cfg", f"configs/Synthetic/{cfg_name}.yaml"]
    argv += ["DATA.PATH_TO_DATA_DIR", str(data), "DATA.PATH_PREFIX", str(data / FRAME_DIR)]
    argv += ["OUTPUT_DIR", str(out), *E2E, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.load(open(out / "run_summary.json")), (out / "stdout.log").read_text()


# PG long with a shorter long clip (4, 3, 1 -> 10 frames at rate 4), steps combined by max
PGT_TINY = ["PGT.STEP_LEN", "[4]", "PGT.STEPS", "3", "DATA.NUM_FRAMES", "10"]
PGT_TINY += ["DATA.SAMPLING_RATE", "4"]


@pytest.mark.parametrize(
    "cfg_name, extra",
    [
        # 240 SGD steps (test mAP 0.84-0.87 against a chance of 0.53 with RNG_SEED 0, 1, 2)
        ("CHARADES_SLOW", ["SOLVER.MAX_EPOCH", "40"]),
        # 3 supervised steps per clip: half the epochs suffice (0.82-0.97 with seeds 0-2)
        ("CHARADES_SLOW_PGT", ["SOLVER.MAX_EPOCH", "20", *PGT_TINY]),
    ],
    ids=["clip", "pgt"],
)
def test_run_net_trains_and_tests_above_chance(tiny_set, tmp_path, cfg_name, extra):
    data, summary = tiny_set
    result, log = _run_net(cfg_name, data, tmp_path / "out", extra)
    assert '"_type": "train_epoch"' in log and '"split": "test_final"' in log
    test_map = result["test_map"]
    # a random scorer's AP of a class is about its positive rate
    chance = summary["video_positive_rate"]["val"]
    assert test_map > chance + 0.15, (test_map, chance)
    if cfg_name.endswith("PGT"):
        assert "test cost per video (PG long)" in log
        assert result["test_cost"]["steps"] == 3
