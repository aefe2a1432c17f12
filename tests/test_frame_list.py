"""Frame lists (PySlowFast's Charades/AVA format) and reading their JPEG frames."""

import os

import cv2
import numpy as np
import pytest
import torch

from slowfast.datasets.frame_list import (
    HEADER,
    FrameList,
    load_frames,
    read_frame_list,
    write_frame_list,
)


def _write(tmp_path, text, name="train.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_read_groups_by_video_in_first_seen_order(tmp_path):
    path = _write(
        tmp_path,
        HEADER + "\n"
        "vidB 0 0 vidB/vidB-000001.jpg 3,1\n"
        "vidA 1 0 vidA/vidA-000001.jpg \n"
        "vidB 0 1 vidB/vidB-000002.jpg 2\n"
        "\n"
        'vidA 1 1 vidA/vidA-000002.jpg ""\n'
        'vidA 1 2 vidA/vidA-000003.jpg "0,5"\n',
    )
    fl = read_frame_list(path, prefix="/frames")
    assert isinstance(fl, FrameList)
    assert fl.video_names == ["vidB", "vidA"]
    assert fl.frame_paths == [
        ["/frames/vidB/vidB-000001.jpg", "/frames/vidB/vidB-000002.jpg"],
        [
            "/frames/vidA/vidA-000001.jpg",
            "/frames/vidA/vidA-000002.jpg",
            "/frames/vidA/vidA-000003.jpg",
        ],
    ]
    assert fl.frame_labels == [[[3, 1], [2]], [[], [], [0, 5]]]
    assert fl.line_numbers == [[2, 4], [3, 6, 7]]
    assert len(fl) == 2
    # Without a prefix the paths stay as written.
    assert read_frame_list(path).frame_paths[0][0] == "vidB/vidB-000001.jpg"


def test_line_with_three_fields_names_file_and_line(tmp_path):
    path = _write(tmp_path, HEADER + "\nv 0 0 v/1.jpg 1\nv 0 1 v/2.jpg\nv 0 v/3.jpg\n")
    with pytest.raises(ValueError, match=r"train\.csv:4: expected 5 .*got 3"):
        read_frame_list(path)


def test_path_with_space_is_a_field_count_error(tmp_path):
    path = _write(tmp_path, HEADER + "\nv 0 0 my dir/1.jpg 1\n")
    with pytest.raises(ValueError, match=r"train\.csv:2: expected 5 .*got 6"):
        read_frame_list(path)


def test_non_integer_label_names_file_and_line(tmp_path):
    path = _write(tmp_path, HEADER + "\nv 0 0 v/1.jpg 1\nv 0 1 v/2.jpg 2\nv 0 2 v/3.jpg 4,x\n")
    with pytest.raises(ValueError, match=r"train\.csv:4: label 'x' is not an integer"):
        read_frame_list(path)


def test_missing_header_is_an_error_on_line_1(tmp_path):
    path = _write(tmp_path, "v 0 0 v/1.jpg 1\n")
    with pytest.raises(ValueError, match=r"train\.csv:1: expected the header"):
        read_frame_list(path)
    empty = _write(tmp_path, "", name="empty.csv")
    with pytest.raises(ValueError, match=r"empty\.csv:1"):
        read_frame_list(empty)


def test_missing_file_names_file_and_key(tmp_path):
    missing = str(tmp_path / "nope" / "val.csv")
    with pytest.raises(FileNotFoundError, match=r"nope/val\.csv.*DATA\.PATH_TO_DATA_DIR"):
        read_frame_list(missing, key="DATA.PATH_TO_DATA_DIR")


def test_write_then_read_round_trip(tmp_path):
    rows = [("a", 0, 0, "a/0.jpg", [1, 2]), ("a", 0, 1, "a/1.jpg", []), ("b", 1, 0, "b/0.jpg", [0])]
    for quote in (False, True):
        path = str(tmp_path / f"l{quote}.csv")
        write_frame_list(path, rows, quote_empty=quote)
        text = open(path).read()
        assert ('""' in text) == quote
        fl = read_frame_list(path, prefix="p")
        assert fl.video_names == ["a", "b"]
        assert fl.frame_labels == [[[1, 2], []], [[0]]]
        assert fl.frame_paths[1] == [os.path.join("p", "b/0.jpg")]
    with pytest.raises(ValueError, match="whitespace"):
        write_frame_list(str(tmp_path / "x.csv"), [("a b", 0, 0, "x.jpg", [])])


def _png(path, rgb):
    # PNG is lossless, so the pixels read back are exactly the ones written.
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return str(path)


def test_load_frames_reads_rgb_in_order(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    paths = [_png(tmp_path / f"{i}.png", im) for i, im in enumerate(imgs)]
    out = load_frames([paths[2], paths[0], paths[0], paths[1]])
    assert out.dtype == torch.uint8 and out.shape == (4, 6, 8, 3)
    assert torch.equal(out, torch.from_numpy(np.stack([imgs[2], imgs[0], imgs[0], imgs[1]])))


def test_load_frames_jpeg_colour_is_rgb(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 250
    path = str(tmp_path / "red.jpg")
    assert cv2.imwrite(path, red[..., ::-1].copy())
    out = load_frames([path])[0].float().mean(dim=(0, 1))
    assert out[0] > 200 and out[1] < 40 and out[2] < 40


def test_unreadable_frame_is_an_error_naming_it(tmp_path):
    good = _png(tmp_path / "good.png", np.zeros((4, 4, 3), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(OSError, match=r"broken\.jpg.*decode.*after 2 attempts"):
        load_frames([good, str(broken)], retries=2, retry_wait=0.0)
    with pytest.raises(OSError, match=r"absent\.jpg.*cannot open"):
        load_frames([good, str(tmp_path / "absent.jpg")], retries=1)


def test_load_frames_retries_until_the_file_appears(tmp_path, monkeypatch):
    import slowfast.datasets.frame_list as fl

    target = tmp_path / "late.png"
    real = fl._decode
    calls = []

    def flaky(path):
        calls.append(path)
        if len(calls) == 2:  # appears before the second attempt
            _png(target, np.full((4, 4, 3), 7, np.uint8))
        return real(path)

    monkeypatch.setattr(fl, "_decode", flaky)
    out = load_frames([str(target)], retries=3, retry_wait=0.0)
    assert int(out.max()) == 7 and len(calls) == 2  # failed once, then read


def test_frames_of_different_size_name_both_files(tmp_path):
    a = _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    b = _png(tmp_path / "b.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png is 4x4.*b\.png is 6x4"):
        load_frames([a, b])
    with pytest.raises(ValueError, match="backend"):
        load_frames([a], backend="pil")


def test_probe_frame_and_read_error_attributes(tmp_path):
    from slowfast.datasets.frame_list import FrameReadError, probe_frame

    good = _png(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    assert probe_frame(good) is None
    assert probe_frame(str(tmp_path / "bad.jpg")) == "OpenCV cannot decode it"
    assert probe_frame(str(tmp_path / "none.jpg")).startswith("cannot open")
    with pytest.raises(FrameReadError) as info:
        load_frames([good, str(tmp_path / "bad.jpg")], retries=1)
    assert info.value.path == str(tmp_path / "bad.jpg")
    assert info.value.reason == "OpenCV cannot decode it"
