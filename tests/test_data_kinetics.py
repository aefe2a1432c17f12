"""Kinetics dataset, decode-failure handling, CSV parsing, loaders (synthetic data)."""

import logging
import os
import shutil

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from slowfast.config.defaults import get_cfg
from slowfast.datasets import DATASET_REGISTRY, build_dataset, construct_loader, shuffle_dataset
from slowfast.datasets.kinetics import Kinetics, read_labelled_list
from slowfast.datasets.loader import per_process_batch_size
from slowfast.datasets.synthetic import (
    index_coded_frames,
    make_kinetics_dataset,
    read_index_code,
    write_video,
)

NUM_FRAMES = 32  # frames per synthetic video


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    make_kinetics_dataset(
        str(root), num_classes=2, videos_per_class=3, eval_videos_per_class=1,
        num_frames=NUM_FRAMES, width=48, height=32,
    )  # fmt: skip
    return root


def make_cfg(data_dir, arch="slowfast", **overrides):
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = str(data_dir)
    cfg.DATA.PATH_PREFIX = str(data_dir)
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 16, 2
    cfg.DATA.TRAIN_JITTER_SCALES = [32, 40]
    cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE = 28, 32
    cfg.MODEL.ARCH, cfg.SLOWFAST.ALPHA = arch, 4
    cfg.TRAIN.BATCH_SIZE, cfg.TEST.BATCH_SIZE = 4, 4
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 2, 3
    cfg.NUM_GPUS, cfg.DATA_LOADER.NUM_WORKERS = 0, 0
    for key, value in overrides.items():
        node, name = key.rsplit("__", 1) if "__" in key else (None, key)
        (cfg[node] if node else cfg)[name] = value
    return cfg


def test_registry_and_build(data_dir):
    assert "Kinetics" in DATASET_REGISTRY
    ds = build_dataset("KINETICS", make_cfg(data_dir), "train")
    assert isinstance(ds, Kinetics) and ds.num_videos == 6 and len(ds) == 6
    with pytest.raises(KeyError, match="Kinetics"):
        build_dataset("charadez", make_cfg(data_dir), "train")
    with pytest.raises(ValueError, match="split"):
        Kinetics(make_cfg(data_dir), "training")


def test_train_item(data_dir):
    torch.manual_seed(0)
    ds = Kinetics(make_cfg(data_dir), "train")
    for index in (0, 5):
        frames, label, idx, meta = ds[index]
        assert [f.shape for f in frames] == [(3, 4, 28, 28), (3, 16, 28, 28)]
        assert frames[0].dtype == torch.float32
        assert idx == index and label == (0 if index < 3 else 1)
        assert meta == {"decode_failures": []}
        # normalised: background grey and coloured shape in (0 - 0.45) / 0.225 .. (1 - 0.45) / 0.225
        assert frames[1].min() >= -0.45 / 0.225 - 1e-4 and frames[1].max() <= 0.55 / 0.225 + 1e-4


def test_test_split_views_and_indices(data_dir):
    cfg = make_cfg(data_dir, arch="slow")
    ds = Kinetics(cfg, "test")
    num_clips = 2 * 3
    assert ds.num_videos == 2 and ds.num_clips == num_clips and len(ds) == 2 * num_clips
    for index in range(len(ds)):
        temporal, spatial, lo, hi, crop = ds._view(index)
        clip = index % num_clips
        assert (temporal, spatial) == (clip // 3, clip % 3)
        assert lo == hi == crop == 32
        assert ds.video_path(index) == ds.video_paths[index // num_clips]
    frames, label, idx, _ = ds[7]
    assert idx == 7 and label == 1 and frames[0].shape == (3, 16, 32, 32)
    cfg.TEST.NUM_SPATIAL_CROPS = 1
    assert Kinetics(cfg, "test")._view(1)[1] == 1  # one crop: the centre one


def test_single_crop_scales_to_train_jitter_min(data_dir):
    """PySlowFast: with one spatial crop the short side goes to TRAIN_JITTER_SCALES[0] (e.g.
    256) and the centre TEST_CROP_SIZE (e.g. 224) is cropped; with 3 crops it goes to
    TEST_CROP_SIZE."""
    cfg = make_cfg(data_dir, arch="slow")
    cfg.DATA.TRAIN_JITTER_SCALES = [40, 48]
    cfg.DATA.TEST_CROP_SIZE = 24
    cfg.DATA.MEAN, cfg.DATA.STD = [0.0] * 3, [1.0] * 3
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 1, 1
    ds = Kinetics(cfg, "test")
    assert ds._view(0)[1:] == (1, 40, 40, 24)
    (frames,), _, _, _ = ds[0]
    assert frames.shape == (3, 16, 24, 24)
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    ds3 = Kinetics(cfg, "test")
    assert ds3._view(1)[1:] == (1, 24, 24, 24)
    (centre3,), _, _, _ = ds3[1]
    # the single-crop view is a zoomed-in centre: not the 3-crop centre view of the same clip
    assert centre3.shape == frames.shape and not torch.allclose(centre3, frames, atol=1e-3)


def test_crop_larger_than_scale_names_keys(data_dir):
    with pytest.raises(ValueError, match=r"TRAIN_JITTER_SCALES\[0\] = 32 .*TRAIN_CROP_SIZE = 36"):
        Kinetics(make_cfg(data_dir, DATA__TRAIN_CROP_SIZE=36), "train")
    with pytest.raises(ValueError, match=r"\[min, max\]"):
        Kinetics(make_cfg(data_dir, DATA__TRAIN_JITTER_SCALES=[40, 32]), "val")
    cfg = make_cfg(data_dir, DATA__TEST_CROP_SIZE=36)
    Kinetics(cfg, "test")  # 3 crops: scaled to the crop size itself
    cfg.TEST.NUM_SPATIAL_CROPS = 1
    with pytest.raises(ValueError, match=r"NUM_SPATIAL_CROPS 1 .*TEST_CROP_SIZE = 36"):
        Kinetics(cfg, "test")


def test_test_views_end_to_end(tmp_path):
    """Index-coded video: the test views of the dataset show evenly spaced frames."""
    write_video(index_coded_frames(120, 32, 48), str(tmp_path / "clock.mp4"), 30, gop=10)
    (tmp_path / "test.csv").write_text("clock.mp4 3\n")
    cfg = make_cfg(tmp_path, arch="slow")
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 8, 4
    cfg.DATA.MEAN, cfg.DATA.STD = [0.0] * 3, [1.0] * 3
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 4, 1
    ds = Kinetics(cfg, "test")
    starts = []
    for index in range(4):
        (frames,), label, _, _ = ds[index]
        shown = read_index_code(frames.permute(1, 2, 3, 0).numpy(), 7)
        assert label == 3 and shown[-1] - shown[0] == 31  # 8 x 4 frames at 30 fps
        starts.append(int(shown[0]))
    assert starts == [int(88 * i / 4) for i in range(4)]


def test_path_with_spaces_and_separator(data_dir, tmp_path):
    folder = tmp_path / "a folder with spaces"
    folder.mkdir()
    shutil.copy(data_dir / "train" / "c001_v0000.mp4", folder / "my video.mp4")
    (tmp_path / "train.csv").write_text("a folder with spaces/my video.mp4,1\n\n")
    cfg = make_cfg(tmp_path, DATA__PATH_LABEL_SEPARATOR=",")
    ds = Kinetics(cfg, "train")
    frames, label, _, meta = ds[0]
    assert label == 1 and not meta["decode_failures"]
    assert ds.video_paths == [os.path.join(str(tmp_path), "a folder with spaces/my video.mp4")]
    # the default space separator splits at the last space
    (tmp_path / "train.csv").write_text("a folder with spaces/my video.mp4 1\n")
    assert Kinetics(make_cfg(tmp_path), "train")[0][1] == 1


def test_malformed_lines_name_file_and_line(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("a.mp4 0\nb.mp4 1\nc.mp4\n")
    with pytest.raises(ValueError, match=r"train.csv:3"):
        read_labelled_list(str(csv), " ")
    csv.write_text("a.mp4 0\nb.mp4 one\n")
    with pytest.raises(ValueError, match=r"train.csv:2: label 'one'"):
        read_labelled_list(str(csv), " ")
    with pytest.raises(FileNotFoundError, match="val.csv"):
        Kinetics(make_cfg(tmp_path), "val")


@pytest.fixture()
def broken_dir(data_dir, tmp_path):
    """Two good videos per class plus a corrupt, a missing and a zero-frame file."""
    good = [f"train/c{c:03d}_v{v:04d}.mp4" for c in (0, 1) for v in (0, 1)]
    (tmp_path / "train").mkdir()
    for rel in good:
        shutil.copy(data_dir / rel, tmp_path / rel)
    (tmp_path / "train" / "corrupt.mp4").write_bytes((data_dir / good[0]).read_bytes()[:1200])
    import av

    with av.open(str(tmp_path / "train" / "zero.avi"), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    bad = ["train/corrupt.mp4", "train/missing.mp4", "train/zero.avi"]
    lines = [f"{g} {i // 2}" for i, g in enumerate(good)] + [f"{b} 0" for b in bad]
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return tmp_path, [str(tmp_path / b) for b in bad]


def test_decode_failures_retried_logged_counted(broken_dir, caplog):
    root, bad = broken_dir
    torch.manual_seed(0)
    ds = Kinetics(make_cfg(root), "train")
    with caplog.at_level(logging.WARNING, logger="slowfast.datasets.kinetics"):
        for index in (4, 5, 6, 4):  # the bad ones, one of them twice
            frames, label, idx, meta = ds[index]
            assert idx < 4 and label == idx // 2  # replaced by a good video, with its label
            assert frames[1].shape == (3, 16, 28, 28)
            assert meta["decode_failures"][0][0] == bad[index - 4]
    assert sorted(ds.decode_failures) == sorted(bad)
    assert "No such file" in ds.decode_failures[bad[1]] or "not" in ds.decode_failures[bad[1]]
    assert "no frame" in ds.decode_failures[bad[2]]
    for path in bad:  # each logged once, with its name
        assert sum(path in r.getMessage() for r in caplog.records) == 1


def test_too_many_failures_stop_with_list(broken_dir):
    root, bad = broken_dir
    ds = Kinetics(make_cfg(root, DATA_LOADER__MAX_DECODE_FAILURES=1), "train")
    ds[4]
    with pytest.raises(RuntimeError, match="MAX_DECODE_FAILURES") as info:
        ds[5]
    assert bad[0] in str(info.value) and bad[1] in str(info.value)


def test_no_hang_when_everything_fails(tmp_path):
    (tmp_path / "train.csv").write_text("nope1.mp4 0\nnope2.mp4 1\n")
    ds = Kinetics(make_cfg(tmp_path, DATA_LOADER__NUM_RETRIES=3), "train")
    with pytest.raises(RuntimeError, match="no decodable video after 3 attempts"):
        ds[0]


def test_test_split_fails_clearly(broken_dir):
    root, bad = broken_dir
    ds = Kinetics(make_cfg(root, DATA_LOADER__NUM_RETRIES=2), "test")
    frames, label, idx, _ = ds[0]  # good ones decode
    with pytest.raises(RuntimeError, match="corrupt.mp4") as info:
        ds[4 * 6]  # first clip of the corrupt video: never replaced by another video
    assert "after 2 attempts" in str(info.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches(data_dir, workers):
    cfg = make_cfg(data_dir, DATA_LOADER__NUM_WORKERS=workers)
    loader = construct_loader(cfg, "train")
    assert loader.batch_size == 4 and loader.drop_last
    batches = list(loader)
    assert len(batches) == 1  # 6 videos, batch 4, last partial batch dropped
    inputs, labels, index, meta = batches[0]
    assert [x.shape for x in inputs] == [(4, 3, 4, 28, 28), (4, 3, 16, 28, 28)]
    assert labels.shape == (4,) and labels.dtype == torch.long and index.shape == (4,)
    assert meta["decode_failures"] == []
    test_loader = construct_loader(cfg, "test")
    assert len(test_loader.dataset) == 12 and len(test_loader) == 3
    seen = torch.cat([b[2] for b in test_loader])
    assert seen.tolist() == list(range(12))  # in order, every clip once


def test_loader_gathers_failures_across_workers(broken_dir, caplog):
    root, bad = broken_dir
    cfg = make_cfg(root, DATA_LOADER__NUM_WORKERS=2)
    cfg.TRAIN.BATCH_SIZE = 1
    loader = construct_loader(cfg, "train")
    with caplog.at_level(logging.WARNING, logger="slowfast.datasets.loader"):
        n = sum(1 for _ in loader)
    assert n == 7 and sorted(loader.decode_failures) == sorted(bad)
    assert loader.epoch_decode_failures >= len(bad)  # each bad item fails at least once
    for path in bad:
        assert sum(path in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="slowfast.datasets.loader"):
        assert sum(1 for _ in loader) == 7
    # a second pass counts its own failures again, without logging the files again
    assert loader.epoch_decode_failures >= len(bad) and len(loader.decode_failures) == 3
    assert not any(path in r.getMessage() for r in caplog.records for path in bad)
    cfg.DATA_LOADER.MAX_DECODE_FAILURES = 2
    with pytest.raises(RuntimeError, match="MAX_DECODE_FAILURES"):
        list(construct_loader(cfg, "train"))


def test_batch_size_and_shuffle(data_dir):
    assert per_process_batch_size(64, 8, 1) == 8
    assert per_process_batch_size(64, 0, 4) == 16  # CPU processes
    assert per_process_batch_size(64, 0, 1) == 64
    with pytest.raises(ValueError, match="BATCH_SIZE"):
        per_process_batch_size(6, 4, 1)
    ds = Kinetics(make_cfg(data_dir), "train")
    loader = torch.utils.data.DataLoader(ds, sampler=DistributedSampler(ds, 2, 0, shuffle=True))
    orders = []
    for epoch in (0, 1, 0):
        shuffle_dataset(loader, epoch)
        orders.append(list(loader.sampler))
    assert orders[0] == orders[2] and orders[0] != orders[1]


def test_collate_multi_hot_and_meta():
    from slowfast.datasets.loader import collate_clips

    items = [
        ([torch.zeros(3, 2, 4, 4), torch.ones(3, 8, 4, 4)], torch.tensor([1.0, 0, 1]), 5,
         {"decode_failures": [["a.mp4", "bad"]], "time": torch.tensor([0.5])}),
        ([torch.zeros(3, 2, 4, 4), torch.ones(3, 8, 4, 4)], torch.tensor([0.0, 1, 0]), 6,
         {"decode_failures": [], "time": torch.tensor([1.5])}),
    ]  # fmt: skip
    inputs, labels, index, meta = collate_clips(items)
    assert [x.shape for x in inputs] == [(2, 3, 2, 4, 4), (2, 3, 8, 4, 4)]
    assert labels.tolist() == [[1, 0, 1], [0, 1, 0]] and index.tolist() == [5, 6]
    assert meta["decode_failures"] == [["a.mp4", "bad"]]
    assert meta["time"].tolist() == [[0.5], [1.5]]


def test_pin_memory_only_with_cuda(data_dir):
    loader = construct_loader(make_cfg(data_dir, DATA_LOADER__PIN_MEMORY=True), "val")
    assert loader.pin_memory == torch.cuda.is_available()
    assert not loader.drop_last and not loader.sampler.shuffle
    assert [i for i, _ in loader.sampler] == list(range(len(loader.dataset)))
