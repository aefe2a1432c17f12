"""Progressive data loading: with PGT the Kinetics dataset reads the long clip of T frames,
SlowFast's Slow pathway takes every alpha-th Fast frame, and the test views tile the video
with NUM_ENSEMBLE_VIEWS long clips (index-coded videos show which frames were read)."""

from test_data_kinetics import make_cfg

from slowfast.config.defaults import assert_and_infer_cfg
from slowfast.datasets.kinetics import Kinetics
from slowfast.datasets.synthetic import index_coded_frames, read_index_code, write_video
from slowfast.pgt import schedule_from_cfg, split_steps


def _pgt_cfg(root, arch):
    cfg = make_cfg(root, arch=arch)
    cfg.DATA.MEAN, cfg.DATA.STD = [0.0] * 3, [1.0] * 3
    cfg.DATA.SAMPLING_RATE = 2
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 2, 1
    cfg.PGT.ENABLE, cfg.PGT.STEPS = True, 3
    if arch == "slowfast":
        cfg.DATA.INPUT_CHANNEL_NUM = [3, 3]
        cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP = [2, 8], [1, 4]
        cfg.DATA.NUM_FRAMES = 16
    else:
        cfg.PGT.STEP_LEN, cfg.PGT.OVERLAP = [6], [1]
        cfg.DATA.NUM_FRAMES = 16
    return assert_and_infer_cfg(cfg)


def _shown(x):
    return read_index_code(x.permute(1, 2, 3, 0).numpy(), 7).tolist()


def test_long_clips_and_tiling_views(tmp_path):
    write_video(index_coded_frames(120, 32, 48), str(tmp_path / "clock.mp4"), 30, gop=10)
    (tmp_path / "test.csv").write_text("clock.mp4 1\n")
    for arch in ("slow", "slowfast"):
        cfg = _pgt_cfg(tmp_path, arch)
        ds = Kinetics(cfg, "test")
        views = []
        for index in range(2):
            frames, _, _, _ = ds[index]
            fast = _shown(frames[-1])
            assert len(fast) == 16 and fast[-1] - fast[0] == 31  # 16 frames x rate 2
            if arch == "slowfast":
                assert _shown(frames[0]) == fast[::4]
                # Each slow step covers the time of its fast step.
                steps = split_steps([f[None] for f in frames], schedule_from_cfg(cfg))
                for slow_step, fast_step in steps:
                    assert _shown(slow_step[0])[0] == _shown(fast_step[0])[0]
            views.append(fast)
        # The long clips are spread over the video as PySlowFast spreads its views: starts at
        # i * (frames - span) / NUM_ENSEMBLE_VIEWS.
        assert [v[0] for v in views] == [int(88 * i / 2) for i in range(2)]
