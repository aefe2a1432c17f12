"""A tiny model and dataset for the engine tests, and a ``run_net`` entry that registers them.

Not a test module: imported by ``tests/test_engine.py`` / ``tests/test_distributed.py`` and run
as a script (``python tests/engine_tiny.py --cfg CFG ...``, also under ``torchrun``), where it
registers ``TinyNet`` and ``TinySynth`` and then runs ``slowfast.engine.run.main``.

Environment hooks (test-only): ``TINY_FAIL_RANK`` / ``TINY_FAIL_AT`` make that rank's dataset
raise on its ``TINY_FAIL_AT``-th item; ``TINY_NAN_INDEX`` fills that item with NaN.
After training, each rank saves its final weights to ``OUTPUT_DIR/final_rank{r}.pt``; then the
test runs when ``TEST.ENABLE``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import torch
import yaml
from torch import nn

from slowfast.datasets.build import DATASET_REGISTRY
from slowfast.models.build import MODEL_REGISTRY

NUM_TRAIN = 8
NUM_VAL = 6
NUM_TEST_VIDEOS = 3
SIZE = 8


class TinyNet(nn.Module):
    """conv (1x3x3) -> tanh (smooth: no ReLU kink to amplify rounding) -> global average ->
    linear; no batch statistics. Eval mode applies
    ``MODEL.HEAD_ACT``."""

    last: Optional[TinyNet] = None

    def __init__(self, cfg) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cfg.DATA.INPUT_CHANNEL_NUM[0], 4, (1, 3, 3), padding=(0, 1, 1))
        self.fc = nn.Linear(4, cfg.MODEL.NUM_CLASSES)
        self.act = {"softmax": nn.Softmax(dim=1), "sigmoid": nn.Sigmoid()}.get(
            cfg.MODEL.HEAD_ACT, nn.Identity()
        )
        TinyNet.last = self

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        x = torch.tanh(self.conv(inputs[0])).mean(dim=(2, 3, 4))
        x = self.fc(x)
        return x if self.training else self.act(x)


class TinySynth(torch.utils.data.Dataset):
    """Deterministic noise clips whose class shifts one channel; test split: clip index
    ``video * num_views + view``."""

    def __init__(self, cfg, split: str) -> None:
        self.split = split
        self.num_classes = cfg.MODEL.NUM_CLASSES
        self.multi_label = bool(cfg.DATA.MULTI_LABEL)
        self.frames = cfg.DATA.NUM_FRAMES
        self.num_clips = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
        if split == "test":
            self.num_videos = NUM_TEST_VIDEOS
            self._len = NUM_TEST_VIDEOS * self.num_clips
        else:
            self._len = NUM_TRAIN if split == "train" else NUM_VAL
            self.num_videos = self._len
        self._calls = 0

    def __len__(self) -> int:
        return self._len

    def _label(self, video: int) -> Any:
        if not self.multi_label:
            return video % self.num_classes
        target = torch.zeros(self.num_classes)
        target[video % self.num_classes] = 1.0
        target[(video + 1) % self.num_classes] = 1.0
        return target

    def __getitem__(self, index: int):
        self._calls += 1
        if os.environ.get("TINY_FAIL_RANK") is not None:
            import torch.distributed as dist

            rank = dist.get_rank() if dist.is_initialized() else 0
            fail_rank = int(os.environ["TINY_FAIL_RANK"])
            if rank == fail_rank and self._calls >= int(os.environ.get("TINY_FAIL_AT", "1")):
                raise RuntimeError(f"TinySynth: injected failure on rank {rank}")
        video = index // self.num_clips if self.split == "test" else index
        gen = torch.Generator().manual_seed(1000 * (self.split == "test") + index)
        x = torch.randn(3, self.frames, SIZE, SIZE, generator=gen) * 0.5
        x[video % self.num_classes % 3] += 1.0
        if os.environ.get("TINY_NAN_INDEX") == str(index) and self.split == "train":
            x.fill_(float("nan"))
        meta = {}
        if os.environ.get("TINY_DECODE_FAIL_INDEX") == str(index) and self.split == "train":
            # as Kinetics reports a file it replaced with another video
            meta = {"decode_failures": [["tiny_bad.mp4", "injected failure"]]}
        return [x], self._label(video), index, meta


def register() -> None:
    if "TinyNet" not in MODEL_REGISTRY:
        MODEL_REGISTRY.register(TinyNet)
    if "TinySynth" not in DATASET_REGISTRY:
        DATASET_REGISTRY.register(TinySynth)


def tiny_cfg_dict(output_dir: str, **overrides: Any) -> Dict[str, Any]:
    """The YAML content of a tiny run (nested dict); ``overrides`` as ``"TRAIN.X": v``."""
    cfg: Dict[str, Any] = {
        "TRAIN": {
            "DATASET": "tinysynth",
            "BATCH_SIZE": NUM_TRAIN,
            "EVAL_PERIOD": 1,
            "CHECKPOINT_PERIOD": 1,
        },
        "TEST": {
            "ENABLE": False,
            "DATASET": "tinysynth",
            "BATCH_SIZE": 2,
            "NUM_ENSEMBLE_VIEWS": 2,
            "NUM_SPATIAL_CROPS": 1,
        },
        "MODEL": {"MODEL_NAME": "TinyNet", "ARCH": "slow", "NUM_CLASSES": 3},
        "DATA": {"NUM_FRAMES": 2, "INPUT_CHANNEL_NUM": [3], "TRAIN_CROP_SIZE": SIZE},
        "SOLVER": {"BASE_LR": 0.5, "MAX_EPOCH": 2, "LR_POLICY": "cosine", "COSINE_END_LR": 0.01},
        "DATA_LOADER": {"NUM_WORKERS": 0, "PIN_MEMORY": False},
        "NUM_GPUS": 0,
        "DIST_BACKEND": "gloo",
        "LOG_MODEL_INFO": False,
        "LOG_PERIOD": 1,
        "RNG_SEED": 0,
        "OUTPUT_DIR": output_dir,
    }
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def write_cfg(path: str, output_dir: str, **overrides: Any) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(tiny_cfg_dict(output_dir, **overrides), f)
    return path


def _save_final_weights(cfg) -> None:
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    if TinyNet.last is not None:
        state = {k: v.detach().clone() for k, v in TinyNet.last.state_dict().items()}
        torch.save(state, os.path.join(cfg.OUTPUT_DIR, f"final_rank{rank}.pt"))


def train_and_save(cfg) -> None:
    """``train(cfg)``, then save this rank's final weights."""
    from slowfast.engine.trainer import train

    train(cfg)
    _save_final_weights(cfg)


def main(argv: Optional[List[str]] = None) -> int:
    """``tools/run_net.py`` with ``train_and_save`` as the training loop."""
    from slowfast.engine.run import main as run_main

    register()
    return run_main(argv, train_func=train_and_save)


register()

if __name__ == "__main__":
    from slowfast.engine.run import run_and_exit

    register()
    run_and_exit(train_func=train_and_save)


def fail_on_rank_one(cfg) -> None:
    """Rank 1 raises; the others wait for it in a barrier (that would never return)."""
    from slowfast.utils import distributed as du

    if du.get_rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    du.synchronize()
