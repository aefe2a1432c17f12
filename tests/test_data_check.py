"""tools/check_dataset.py and slowfast.datasets.check: unreadable videos are listed."""

import importlib.util
import shutil

from slowfast.datasets.check import check_splits, probe_video
from slowfast.datasets.synthetic import make_kinetics_dataset


def test_check_lists_bad_videos(tmp_path, repo_root, capsys):
    root = tmp_path / "data"
    make_kinetics_dataset(
        str(root), num_classes=2, videos_per_class=2, eval_videos_per_class=1, num_frames=8
    )
    good = root / "train" / "c000_v0000.mp4"
    assert probe_video(str(good)) is None and probe_video(str(good), "opencv") is None
    (root / "train" / "c000_v0001.mp4").write_bytes(good.read_bytes()[:900])  # corrupt
    (root / "val" / "c001_v0000.mp4").unlink()  # missing
    shutil.copy(good, root / "test" / "c000_v0000.mp4")  # still fine

    spec = importlib.util.spec_from_file_location(
        "check_dataset", repo_root / "tools" / "check_dataset.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = [
        "--cfg",
        "DATA.PATH_TO_DATA_DIR",
        str(root),
        "DATA.PATH_PREFIX",
        str(root),
        "NUM_GPUS",
        "0",
    ]
    assert tool.main(argv) == 1
    out = capsys.readouterr().out
    assert "c000_v0001.mp4" in out and "c001_v0000.mp4" in out and "2 unreadable" in out
    assert tool.main(["--splits", "test"] + argv) == 0


def test_truncated_video_detected(tmp_path):
    """A file whose header promises more frames than it holds."""
    from slowfast.config.defaults import get_cfg

    root = tmp_path / "data"
    make_kinetics_dataset(
        str(root), 1, 1, 0, num_frames=64, container="avi", codec="mpeg4", splits=("train",)
    )
    path = root / "train" / "c000_v0000.avi"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    reason = probe_video(str(path))
    assert reason is not None and "64 frames" in reason
    cfg = get_cfg()
    cfg.DATA.PATH_TO_DATA_DIR = cfg.DATA.PATH_PREFIX = str(root)
    assert [(s, p) for s, p, _ in check_splits(cfg, ["train", "val"])] == [
        ("train", str(path)),
        ("val", ""),  # no val.csv
    ]
