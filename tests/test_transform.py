"""Spatial transforms, normalisation and pathway packing."""

import math

import pytest
import torch

from slowfast.config.defaults import get_cfg
from slowfast.datasets import transform
from slowfast.datasets.utils import (
    pack_frames,
    pack_pathway_output,
    slow_pathway_index,
    spatial_sampling,
    tensor_normalize,
)


def _coords(c, t, h, w):
    """(C, T, H, W) frames whose channel 0 is the column, 1 the row, 2 the time."""
    x = torch.zeros(c, t, h, w)
    x[0] = torch.arange(w).view(1, 1, w).float()
    x[1] = torch.arange(h).view(1, h, 1).float()
    x[2] = torch.arange(t).view(t, 1, 1).float()
    return x


@pytest.mark.parametrize("h,w", [(48, 64), (64, 48), (40, 40)])
def test_short_side_scale(h, w):
    out = transform.short_side_scale(torch.rand(3, 2, h, w), 32)
    assert min(out.shape[-2:]) == 32
    long_side = int(math.floor(max(h, w) / min(h, w) * 32))
    assert max(out.shape[-2:]) == long_side
    assert (out.shape[-1] >= out.shape[-2]) == (w >= h)  # orientation kept
    same = torch.rand(3, 2, 32, 50)
    assert transform.short_side_scale(same, 32) is same


def test_jitter_range_and_inverse_sampling():
    torch.manual_seed(0)
    for inverse in (False, True):
        sizes = set()
        for _ in range(100):
            out = transform.random_short_side_scale_jitter(
                torch.rand(3, 1, 20, 30), 24, 32, inverse
            )
            sizes.add(out.shape[-2])
            assert out.shape[-1] == int(math.floor(30 / 20 * out.shape[-2]))
        assert min(sizes) >= 24 and max(sizes) <= 32 and len(sizes) > 4
    # inverse-uniform draws favour small sizes: mean of 1/u is below the uniform mean
    torch.manual_seed(1)
    plain = [
        transform.random_short_side_scale_jitter(torch.rand(1, 1, 8, 8), 100, 300).shape[-2]
        for _ in range(300)
    ]
    torch.manual_seed(1)
    inv = [
        transform.random_short_side_scale_jitter(torch.rand(1, 1, 8, 8), 100, 300, True).shape[-2]
        for _ in range(300)
    ]
    assert sum(inv) / 300 < sum(plain) / 300 - 20


def test_random_crop_is_a_window():
    torch.manual_seed(0)
    x = _coords(3, 2, 30, 40)
    offsets = set()
    for _ in range(50):
        out = transform.random_crop(x, 16)
        assert out.shape == (3, 2, 16, 16)
        x0, y0 = int(out[0, 0, 0, 0]), int(out[1, 0, 0, 0])
        assert torch.equal(out, x[..., y0 : y0 + 16, x0 : x0 + 16])
        offsets.add((x0, y0))
    assert len(offsets) > 10
    assert max(o[0] for o in offsets) <= 24 and max(o[1] for o in offsets) <= 14
    with pytest.raises(ValueError, match="cannot crop"):
        transform.random_crop(x, 31)


@pytest.mark.parametrize("h,w,axis", [(30, 50, 0), (50, 30, 1)])  # landscape, portrait
def test_uniform_crop_positions(h, w, axis):
    x = _coords(3, 1, h, w)
    size = 30
    long_side = max(h, w)
    expected = {0: 0, 1: int(math.ceil((long_side - size) / 2)), 2: long_side - size}
    for idx, offset in expected.items():
        out = transform.uniform_crop(x, size, idx)
        assert out.shape[-2:] == (size, size)
        along_long = out[0, 0, 0, 0] if axis == 0 else out[1, 0, 0, 0]  # first column / row
        along_short = out[1, 0, 0, 0] if axis == 0 else out[0, 0, 0, 0]
        assert int(along_long) == offset and int(along_short) == 0
    with pytest.raises(ValueError, match="spatial_idx"):
        transform.uniform_crop(x, size, 3)


def test_horizontal_flip():
    x = _coords(3, 1, 4, 6)
    assert torch.equal(transform.horizontal_flip(1.0, x)[0, 0, 0], torch.arange(5, -1, -1).float())
    assert torch.equal(transform.horizontal_flip(0.0, x), x)
    torch.manual_seed(0)
    flips = sum(bool(transform.horizontal_flip(0.5, x)[0, 0, 0, 0] == 5) for _ in range(200))
    assert 70 < flips < 130


def test_spatial_sampling_train_and_test():
    torch.manual_seed(0)
    x = torch.rand(3, 4, 48, 64)
    out = spatial_sampling(x, -1, 40, 56, 32, True)
    assert out.shape == (3, 4, 32, 32)
    for idx in (0, 1, 2):
        out = spatial_sampling(x, idx, 40, 40, 40)
        assert out.shape == (3, 4, 40, 40)
    # test: the short side goes to the crop size, so the crop spans the full short side
    left = spatial_sampling(_coords(3, 1, 48, 64), 0, 24, 24, 24)
    right = spatial_sampling(_coords(3, 1, 48, 64), 2, 24, 24, 24)
    assert left[0].mean() < right[0].mean()
    with pytest.raises(ValueError, match="min_scale == max_scale"):
        spatial_sampling(x, 1, 40, 48, 40)


def test_tensor_normalize():
    x = torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8).view(2, 1, 2).expand(2, 1, 2)
    x = torch.stack([x[..., 0]] * 3, dim=-1)  # (2, 1, 3) channels last
    out = tensor_normalize(x, [0.5, 0.0, 0.2], [0.5, 1.0, 0.1])
    v = x.float() / 255
    expected = torch.stack([(v[..., 0] - 0.5) / 0.5, v[..., 1], (v[..., 2] - 0.2) / 0.1], dim=-1)
    assert torch.allclose(out, expected)
    cthw = x.permute(2, 0, 1).unsqueeze(-1)  # channels first
    out0 = tensor_normalize(cthw, [0.5, 0.0, 0.2], [0.5, 1.0, 0.1], channel_dim=0)
    assert torch.allclose(out0, expected.permute(2, 0, 1).unsqueeze(-1))


def test_slow_pathway_indices():
    index = slow_pathway_index(32, 4)
    assert index.tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert index.tolist() == [int(i * 31 / 7) for i in range(8)]
    assert slow_pathway_index(8, 8).tolist() == [0]
    with pytest.raises(ValueError, match="SLOWFAST.ALPHA"):
        slow_pathway_index(4, 8)


def test_pack_frames_and_config():
    x = _coords(3, 32, 4, 4)
    slow, fast = pack_frames(x, 2, 4)
    assert fast is x and slow.shape == (3, 8, 4, 4)
    assert slow[2, :, 0, 0].long().tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    (only,) = pack_frames(x, 1, 4)
    assert only is x
    (bgr,) = pack_frames(x, 1, 4, reverse_channels=True)
    assert torch.equal(bgr[0], x[2]) and torch.equal(bgr[2], x[0])
    cfg = get_cfg()
    cfg.MODEL.ARCH, cfg.SLOWFAST.ALPHA = "slowfast", 4
    assert [p.shape[1] for p in pack_pathway_output(cfg, x)] == [8, 32]
    cfg.MODEL.ARCH = "slow"
    assert [p.shape[1] for p in pack_pathway_output(cfg, x)] == [32]


def test_pgt_slow_pathway_is_strided():
    """PGT SlowFast 8x8 (alpha 4): 144 fast frames, slow frame j = fast frame 4 j, so the slow
    step [8 + 7 (k - 1), 8 + 7 k) spans the fast step [32 + 28 (k - 1), 32 + 28 k)."""
    x = _coords(3, 144, 2, 2)
    slow, fast = pack_frames(x, 2, 4, strided_slow=True)
    assert slow[2, :, 0, 0].long().tolist() == list(range(0, 144, 4))
    plain, _ = pack_frames(x, 2, 4)
    assert plain.shape[1] == 36 and plain[2, -1, 0, 0] == 143  # linspace ends on the last frame
    cfg = get_cfg()
    cfg.MODEL.ARCH, cfg.SLOWFAST.ALPHA, cfg.PGT.ENABLE = "slowfast", 4, True
    assert torch.equal(pack_pathway_output(cfg, x)[0], slow)
