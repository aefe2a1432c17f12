"""AVA data: CSV / label-map parsing and its errors, keyframe clips, box-aware transforms, the
detection collate, and PGT's per-step boxes and labels (on tiny generated folders)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slowfast.config.defaults import assert_and_infer_cfg, get_cfg
from slowfast.datasets import ava_helper, box_transform
from slowfast.datasets.ava_dataset import Ava, clip_indices
from slowfast.datasets.check import check_ava_split
from slowfast.datasets.frame_list import write_frame_list
from slowfast.datasets.loader import detection_collate
from slowfast.datasets.synthetic import index_coded_frames, read_index_code
from slowfast.datasets.synthetic_ava import (
    LABEL_MAP,
    NUM_CLASSES,
    TRAIN_GT,
    make_ava_dataset,
)

REPO = Path(__file__).resolve().parents[1]
LABEL_MAP_TEXT = 'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 3\n}\n'


def _cfg(root, *opts, config="AVA_SLOW.yaml"):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Synthetic" / config))
    cfg.merge_from_list(
        [
            "AVA.FRAME_DIR",
            os.path.join(root, "frames"),
            "AVA.FRAME_LIST_DIR",
            os.path.join(root, "frame_lists"),
            "AVA.ANNOTATION_DIR",
            os.path.join(root, "annotations"),
            "DATA_LOADER.NUM_WORKERS",
            0,
            *opts,
        ]
    )
    return assert_and_infer_cfg(cfg)


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("ava_syn")
    summary = make_ava_dataset(str(root), train_videos=2, val_videos=1, num_secs=4)
    return str(root), summary


# ------------------------------------------------------------------------------------ parsing


def _write(path, text):
    Path(path).write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("v1,0902,0.1,0.2,zero,0.4,1,0", "box coordinate 'zero' is not a number"),
        ("v1,09x2,0.1,0.2,0.3,0.4,1,0", "second '09x2' is not an integer"),
        ("v1,0902,0.1,0.2,0.3,0.4,1", "expected 8 comma-separated fields"),
        ("v1,0902,0.1,0.2,0.3,0.4,walk,0.9", "action id 'walk' is not an integer"),
        ("v1,0902,10,20,30,40,1,0.9", "not normalised to [0, 1]"),
        ("v1,0902,0.1,0.2,0.3,0.4,0,0.9", "action id 0 is not a class id"),
    ],
)
def test_box_csv_errors_name_file_and_line(tmp_path, bad, message):
    good = "v1,0902,0.1,0.2,0.3,0.4,1,0.95\n\n"  # a blank line is skipped, lines still count
    path = _write(tmp_path / "pred.csv", good + good + bad + "\n")
    with pytest.raises(ValueError) as err:
        ava_helper.parse_bboxes_file([path], [False], 0.5)
    assert f"{path}:5:" in str(err.value) and message in str(err.value)


def test_boxes_are_merged_thresholded_and_unlabelled(tmp_path):
    gt = _write(
        tmp_path / "gt.csv",
        "v1,0902,0.1,0.2,0.3,0.4,5,0\n"
        "v1,0902,0.1,0.2,0.3,0.4,7,0\n"  # same box: labels merge
        "v1,0902,0.5,0.2,0.7,0.4,2\n"  # 7 columns in a ground-truth file are fine
        "v2,0903,0.1,0.1,0.2,0.2,,1\n",  # empty action: no label
    )
    pred = _write(
        tmp_path / "pred.csv",
        "v1,0902,0.100,0.2,0.3,0.4,-1,0.95\n"  # same box as the gt's (as numbers)
        "v1,0902,0.0,0.0,0.1,0.1,3,0.89\n"  # below the threshold: dropped
        "v1,0904,0.0,0.0,0.1,0.1,3,0.90\n",  # at the threshold: kept
    )
    table, count, unique = ava_helper.parse_bboxes_file([gt, pred], [True, False], 0.9)
    assert table["v1"][902] == [
        [[0.1, 0.2, 0.3, 0.4], [5, 7, -1]],
        [[0.5, 0.2, 0.7, 0.4], [2]],
    ]
    assert table["v2"][903] == [[[0.1, 0.1, 0.2, 0.2], [-1]]]
    assert table["v1"][904] == [[[0.0, 0.0, 0.1, 0.1], [3]]]
    assert (count, unique) == (4, 4)


def test_action_ids_above_num_classes_name_the_files(tmp_path):
    a = _write(tmp_path / "a.csv", "v1,0902,0.1,0.2,0.3,0.4,5,0\nv1,0903,0.1,0.2,0.3,0.4,81,0\n")
    b = _write(tmp_path / "b.csv", "v1,0902,0.1,0.2,0.3,0.4,90,0.95\n")
    ok = _write(tmp_path / "ok.csv", "v1,0902,0.1,0.2,0.3,0.4,80,0.95\n")
    with pytest.raises(ValueError) as err:
        ava_helper.parse_bboxes_file([a, ok, b], [True, False, False], 0.9, num_classes=80)
    text = str(err.value)
    assert f"{a}:2" in text and f"{b}:1" in text and "largest action id 90" in text
    assert "MODEL.NUM_CLASSES = 80" in text and ok not in text


def test_label_map_reads_and_errors_name_file_and_line(tmp_path):
    path = _write(
        tmp_path / "map.pbtxt",
        '# comment\nitem {\n  name: "bend/bow (at the waist)"\n  id: 1\n  label_type: PERSON\n}\n'
        'item {\n  name: "carry # hold"\n  label_id: 3\n}\n',
    )
    assert dict(ava_helper.read_label_map(path)) == {
        1: "bend/bow (at the waist)",
        3: "carry # hold",
    }
    for text, line, message in [
        ('item {\n  name: "a"\n  id: one\n}\n', 3, "id 'one' is not an integer"),
        ('item {\n  name: "a"\n}\n', 1, "item without an 'id'"),
        ("item {\n  id: 1\n}\nitem {\n  id: 1\n}\n", 4, "id 1 repeats the item of line 1"),
        ("item {\n  id: 1\n}\nname garbage\n", 4, "unexpected text 'name'"),
        ("", None, "the label map has no item"),
        ("item {\n  id: 1\n", 1, "not closed"),
    ]:
        bad = _write(tmp_path / "bad.pbtxt", text)
        where = f"{bad}:{line}: " if line else f"{bad}: "
        with pytest.raises(ValueError, match=f"{where}.*{message}"):
            ava_helper.read_label_map(bad)
    with pytest.raises(FileNotFoundError, match="AVA.LABEL_MAP_FILE"):
        ava_helper.read_label_map(str(tmp_path / "missing.pbtxt"))
    with pytest.raises(ValueError) as err:
        ava_helper.check_label_map({1: "a", 81: "b"}, path, 80)
    assert path in str(err.value) and "MODEL.NUM_CLASSES" in str(err.value) and "[81]" in str(err)


def test_exclusions_errors_name_file_and_line(tmp_path):
    ok = _write(tmp_path / "ex.csv", "v1,0902\nv2,1000\n")
    assert ava_helper.read_exclusions(ok) == {"v1,0902", "v2,1000"}
    bad = _write(tmp_path / "bad.csv", "v1,0902\nv1,09a2\n")
    with pytest.raises(ValueError, match=f"{bad}:2: timestamp '09a2'"):
        ava_helper.read_exclusions(bad)
    with pytest.raises(FileNotFoundError, match="AVA.EXCLUSION_FILE"):
        ava_helper.read_exclusions(str(tmp_path / "missing.csv"))


def test_dataset_num_classes_mismatch_names_the_files(syn):
    root, _ = syn
    gt = os.path.join(root, "annotations", TRAIN_GT)
    with pytest.raises(ValueError) as err:
        Ava(_cfg(root, "MODEL.NUM_CLASSES", 5), "train")
    # The label map (ids 1, 2, 4, 5) fits in 5 classes; the annotations have action 6.
    assert gt in str(err.value) and "MODEL.NUM_CLASSES = 5" in str(err.value)
    with pytest.raises(ValueError) as err:
        Ava(_cfg(root, "MODEL.NUM_CLASSES", 4), "train")
    assert os.path.join(root, "annotations", LABEL_MAP) in str(err.value)
    assert "MODEL.NUM_CLASSES" in str(err.value)


# ------------------------------------------------------------------------------- keyframes


def _clock_folder(root, num_frames=150, size=32):
    """One video whose frames show their index; boxes at seconds 902 and 904."""
    frames = index_coded_frames(num_frames, size, size, bits=8)
    rows = []
    os.makedirs(os.path.join(root, "frames", "clock"), exist_ok=True)
    for i, img in enumerate(frames):
        rel = f"clock/clock_{i + 1:06d}.jpg"
        cv2.imwrite(os.path.join(root, "frames", rel), img)
        rows.append(("clock", 0, i, rel, []))
    os.makedirs(os.path.join(root, "frame_lists"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations", "props"), exist_ok=True)
    for name in ("train.csv", "val.csv"):
        write_frame_list(os.path.join(root, "frame_lists", name), rows, quote_empty=True)
    _write(os.path.join(root, "annotations", LABEL_MAP), LABEL_MAP_TEXT)
    text = "clock,0902,0.25,0.25,0.75,0.75,1,0.95\nclock,0904,0.1,0.1,0.5,0.5,3,0.95\n"
    _write(os.path.join(root, "annotations", "props", "val.csv"), text)


def test_clip_is_centred_on_the_keyframe_and_clamped(tmp_path):
    _clock_folder(str(tmp_path))
    opts = ["AVA.TEST_PREDICT_BOX_LISTS", ["props/val.csv"], "DATA.TEST_CROP_SIZE", 32]
    opts += ["DATA.MEAN", [0.0] * 3, "DATA.STD", [1.0 / 255] * 3, "DATA.SAMPLING_RATE", 20]
    ds = Ava(_cfg(str(tmp_path), *opts), "test")
    assert len(ds) == 2 and ds.num_videos == 1 and ds.video_names == ["clock"]
    shown = []
    for i in range(2):
        frames, labels, _, meta = ds[i]
        shown.append(read_index_code(frames[0].permute(1, 2, 3, 0).numpy(), 8).tolist())
        assert meta["metadata"].tolist() == [[0, 902 + 2 * i]]
        assert labels.tolist() == [[1.0, 0, 0, 0, 0, 0]] if i == 0 else [[0, 0, 1.0, 0, 0, 0]]
    # Second 902 = frame 60 at position T // 2 = 4; 904 = frame 120; clamped to 0..149.
    assert shown[0] == [0, 0, 20, 40, 60, 80, 100, 120]
    assert shown[1] == [40, 60, 80, 100, 120, 140, 149, 149]
    assert clip_indices(60, 4, 8, 20, 150) == shown[0]
    # PGT (T' 8, o 1, P 5: T 36): the keyframe is the centre of the last step, position 32.
    pgt = _cfg(str(tmp_path), *opts, "DATA.SAMPLING_RATE", 2, config="AVA_SLOW_PGT.yaml")
    ds = Ava(pgt, "test")
    fast = read_index_code(ds[1][0][0].permute(1, 2, 3, 0).numpy(), 8).tolist()
    assert len(fast) == 36 and fast[32] == 120 and fast[0] == 120 - 64 and fast[-1] == 126


def test_val_keeps_every_fourth_second_unless_full_test_on_val(syn):
    root, _ = syn
    secs = {k[2] for k in Ava(_cfg(root, "AVA.FULL_TEST_ON_VAL", False), "val")._keyframe_indices}
    assert secs == {904}
    secs = {k[2] for k in Ava(_cfg(root), "val")._keyframe_indices}
    assert secs == {902, 903, 904, 905}


# ------------------------------------------------------------------------------ transforms


def _rect_clip(height=48, width=64, x=(10, 30), y=(5, 25), color=(255, 255, 255), t=3):
    frames = np.zeros((t, height, width, 3), dtype=np.uint8)
    frames[:, y[0] : y[1], x[0] : x[1]] = color
    box = np.array([[x[0] / width, y[0] / height, x[1] / width, y[1] / height]], np.float32)
    return frames, box


def _assert_box_encloses(clip, box, margin=1.5):
    """Pixels well inside the box are bright, pixels well outside are dark."""
    img = clip.mean(dim=(0, 1)).numpy()  # (H, W), normalised with mean 0, std 1
    h, w = img.shape
    cx, cy = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x1, y1, x2, y2 = box
    inside = (cx > x1 + margin) & (cx < x2 - margin) & (cy > y1 + margin) & (cy < y2 - margin)
    outside = (cx < x1 - margin) | (cx > x2 + margin) | (cy < y1 - margin) | (cy > y2 + margin)
    if inside.any():
        assert img[inside].min() > 0.6, (box, img[inside].min())
    assert img[outside].max() < 0.4, (box, img[outside].max())
    return bool(inside.any())


@pytest.mark.parametrize("backend", ["cv2", "pytorch"])
def test_box_transforms_keep_boxes_on_the_same_pixels(backend):
    frames, box = _rect_clip()
    common = dict(mean=(0.0,) * 3, std=(1.0,) * 3, backend=backend)
    torch.manual_seed(0)
    seen = 0
    for _ in range(12):
        p = box_transform.AvaTransformParams(
            split="train", jitter_scales=(40, 80), train_crop_size=40, **common
        )
        clip, boxes = box_transform.ava_transform(frames, box, p)
        assert clip.shape[:2] == (3, 3) and clip.shape[2:] == (40, 40)
        seen += _assert_box_encloses(clip, boxes[0])
    assert seen >= 6  # most crops keep a good part of the rectangle
    for split, size in (("val", 32), ("test", 32), ("test", 96)):
        p = box_transform.AvaTransformParams(split=split, test_crop_size=size, **common)
        clip, boxes = box_transform.ava_transform(frames, box, p)
        expect = (size, size) if split == "val" else (size, size * 64 // 48)
        assert tuple(clip.shape[2:]) == expect
        assert _assert_box_encloses(clip, boxes[0])
    # Forced flip: the rectangle's columns 10..29 of 64 become 34..53.
    p = box_transform.AvaTransformParams(
        split="test", test_crop_size=48, test_force_flip=True, **common
    )
    clip, boxes = box_transform.ava_transform(frames, box, p)
    np.testing.assert_allclose(boxes[0], [34, 5, 54, 25], atol=1e-5)
    assert _assert_box_encloses(clip, boxes[0], margin=0.5)


def test_bgr_normalisation_and_colour_augmentation():
    frames, box = _rect_clip(color=(200, 100, 0))
    base = dict(split="test", test_crop_size=48, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    rgb, _ = box_transform.ava_transform(frames, box, box_transform.AvaTransformParams(**base))
    bgr, _ = box_transform.ava_transform(
        frames, box, box_transform.AvaTransformParams(**base, bgr=True)
    )
    r = (200 / 255 - 0.1) / 0.5
    assert rgb[0, 0, 10, 15].item() == pytest.approx(r, abs=1e-5)
    assert bgr[2, 0, 10, 15].item() == pytest.approx((200 / 255 - 0.3) / 0.5, abs=1e-5)
    assert bgr[0, 0, 10, 15].item() == pytest.approx((0 - 0.1) / 0.5, abs=1e-5)
    # PCA lighting adds eigvec @ (alpha * eigval) to the RGB channels.
    vec, val = np.eye(3)[::-1], np.array([1.0, 2.0, 3.0])
    lit = box_transform.lighting(np.zeros((1, 2, 2, 3), np.float32), val, vec, alpha=[1, 1, 0.5])
    np.testing.assert_allclose(lit[0, 0, 0], [1.5, 2.0, 1.0])
    # Colour jitter: brightness alone scales by 1 + u, u in [-0.4, 0.4], the same for all pixels.
    img = np.full((2, 4, 4, 3), 0.5, np.float32)
    out = box_transform.color_jitter(img, 0.4, 0.0, 0.0)
    assert 0.3 - 1e-6 <= out.min() == out.max() <= 0.7 + 1e-6
    p = box_transform.AvaTransformParams(
        split="train",
        jitter_scales=(48, 48),
        train_crop_size=48,
        color_augmentation=True,
        pca_jitter_only=False,
    )
    torch.manual_seed(1)
    clip, boxes = box_transform.ava_transform(frames, box, p)
    assert clip.shape == (3, 3, 48, 48) and torch.isfinite(clip).all() and boxes.shape == (1, 4)
    with pytest.raises(ValueError, match="AVA.IMG_PROC_BACKEND"):
        box_transform.AvaTransformParams(split="test", backend="pil")


# --------------------------------------------------------------------------- items, collate


def _gt_rows(root):
    rows = {}
    with open(os.path.join(root, "annotations", TRAIN_GT)) as f:
        for r in csv.reader(f):
            key = (r[0], int(r[1]))
            boxes = rows.setdefault(key, {})
            boxes.setdefault(tuple(float(v) for v in r[2:6]), []).append(int(r[6]))
    return rows


def test_items_and_detection_collate(syn):
    root, _ = syn
    cfg = _cfg(root, "AVA.TRAIN_PREDICT_BOX_LISTS", [])
    ds = Ava(cfg, "train")
    gt = _gt_rows(root)
    assert len(ds) == 2 * 4 and ds.num_videos == 2 and len(gt) == len(ds)
    items = [ds[i] for i in range(3)]
    for frames, labels, _, meta in items:
        video, sec = meta["metadata"][0].tolist()
        expected = gt[(ds.video_names[video], sec)]
        torch.testing.assert_close(
            meta["ori_boxes"], torch.tensor(list(expected), dtype=meta["ori_boxes"].dtype)
        )
        hot = torch.zeros(len(expected), NUM_CLASSES)
        for i, actions in enumerate(expected.values()):
            hot[i, [a - 1 for a in actions]] = 1
        assert torch.equal(labels, hot) and labels.dtype == torch.float32
        assert meta["boxes"].dtype == torch.float32 and meta["metadata"].dtype == torch.long
        assert frames[0].shape == (3, 8, 64, 64)
    inputs, labels, indices, meta = detection_collate(items)
    n = [len(item[1]) for item in items]
    assert inputs[0].shape == (3, 3, 8, 64, 64) and labels.shape == (sum(n), NUM_CLASSES)
    assert meta["boxes"].shape == (sum(n), 5) and meta["ori_boxes"].shape == (sum(n), 4)
    assert meta["boxes"][:, 0].tolist() == sum(([float(i)] * k for i, k in enumerate(n)), [])
    assert torch.equal(meta["boxes"][:, 1:], torch.cat([it[3]["boxes"] for it in items]))
    assert meta["metadata"].shape == (sum(n), 2) and indices.tolist() == [0, 1, 2]
    assert meta["decode_failures"] == []


def test_pgt_step_boxes_and_labels_by_hand(syn):
    root, summary = syn
    # T' 8, o 1, P 3 -> T 22, keyframe at position 4 + 2 * 7 = 18, step centres 4, 11, 18;
    # at rate 5 the centres are 70 and 35 frames before the keyframe.
    opts = ["AVA.TRAIN_PREDICT_BOX_LISTS", [], "PGT.STEPS", 3, "DATA.NUM_FRAMES", 22]
    opts += ["DATA.SAMPLING_RATE", 5, "DATA.TRAIN_JITTER_SCALES", [64, 64]]
    cfg = _cfg(root, *opts, config="AVA_SLOW_PGT.yaml")
    ds = Ava(cfg, "train")
    # Hand computation, keyframe second s at frame f = (s - 900) * 30:
    # 902 (f 60): frames 0 -> 900 and 25 -> 901 have no box -> 902, 902, 902
    # 903 (f 90): 20 -> 901 (none) -> 903; 55 -> 902; then 903
    # 904 (f 120): 50 -> 902; 85 -> 903; 904.   905 (f 150): 80 -> 903; 115 -> 904; 905
    want = {902: [902, 902, 902], 903: [903, 902, 903], 904: [902, 903, 904], 905: [903, 904, 905]}
    persons = summary["persons"]
    torch.manual_seed(3)
    for index in range(len(ds)):
        video, _, sec, _ = ds._keyframe_indices[index]
        name = ds.video_names[video]
        assert ds.step_seconds(index) == want[sec]
        _, labels, _, meta = ds[index]
        assert len(meta["step_boxes"]) == 3
        assert torch.equal(meta["step_labels"][-1], labels)
        assert torch.equal(meta["step_boxes"][-1], meta["boxes"])
        flip = None
        for k, s in enumerate(want[sec]):
            assert meta["step_metadata"][k].tolist() == [[video, s]] * len(persons[name])
            hot = torch.zeros(len(persons[name]), NUM_CLASSES)
            for i, person in enumerate(persons[name]):
                hot[i, [a - 1 for a in person["actions"][str(s)]]] = 1
            assert torch.equal(meta["step_labels"][k], hot)
            # One spatial transform per item: 64x64 frames, no scale or crop; flip or not.
            ori, pix = meta["step_ori_boxes"][k], meta["step_boxes"][k]
            plain = ori * 64
            mirrored = torch.stack(
                [64 - plain[:, 2], plain[:, 1], 64 - plain[:, 0], plain[:, 3]], 1
            )
            this = bool(torch.allclose(pix, mirrored, atol=1e-4))
            assert this or torch.allclose(pix, plain, atol=1e-4)
            flip = this if flip is None else flip
            assert flip == this
    items = [ds[i] for i in range(3)]
    _, _, _, meta = detection_collate(items)
    for k in range(3):
        n = [len(it[3]["step_boxes"][k]) for it in items]
        assert meta["step_boxes"][k].shape == (sum(n), 5)
        assert meta["step_boxes"][k][:, 0].tolist() == sum(
            ([float(i)] * m for i, m in enumerate(n)), []
        )
        assert meta["step_labels"][k].shape == (sum(n), NUM_CLASSES)
        assert meta["step_ori_boxes"][k].shape == (sum(n), 4)
        assert meta["step_metadata"][k].dtype == torch.long


def test_unreadable_frames_are_named(tmp_path):
    root = str(tmp_path)
    make_ava_dataset(root, train_videos=1, val_videos=1, num_secs=2)
    bad = os.path.join(root, "frames", "syn_val_00", "syn_val_00_000061.jpg")  # second 902
    _write(bad, "not a jpeg")
    cfg = _cfg(root)
    ds = Ava(cfg, "val")
    with pytest.raises(RuntimeError, match="syn_val_00_000061.jpg"):
        ds[0]
    problems = check_ava_split(cfg, "val")
    assert problems == []  # 061 is neither first, middle nor last; decoding is sampled
    os.remove(bad)
    problems = check_ava_split(cfg, "val")
    assert [(p, "missing" in r) for p, r in problems] == [(bad, True)]
