"""Meters: timing, running statistics and the final metrics of training, validation and test.

Each meter logs PySlowFast-style ``json_stats: {...}`` lines (``_type`` ``train_iter``,
``train_epoch``, ``val_iter``, ``val_epoch``; ``split`` ``test_iter``, ``test_final``) and
returns the epoch's stats as a dict for the caller (tensorboard, the run summary).
"""

from __future__ import annotations

import datetime
import logging
from collections import deque
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from fvcore.common.config import CfgNode
from fvcore.common.timer import Timer

from slowfast.utils import metrics
from slowfast.utils.env import cpu_mem_usage_gb, gpu_mem_usage_gb
from slowfast.utils.logging import log_json_stats
from slowfast.utils.metrics import get_map  # noqa: F401  (PySlowFast's meters.get_map)

logger = logging.getLogger(__name__)


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def _memory_stats() -> Dict[str, str]:
    used, total = cpu_mem_usage_gb()
    return {"gpu_mem": f"{gpu_mem_usage_gb():.2f}G", "RAM": f"{used:.2f}/{total:.2f}G"}


class ScalarMeter:
    """A scalar tracked over a sliding window and over all its values."""

    def __init__(self, window_size: int) -> None:
        self.deque: deque = deque(maxlen=max(1, window_size))
        self.total = 0.0
        self.count = 0

    def reset(self) -> None:
        self.deque.clear()
        self.total = 0.0
        self.count = 0

    def add_value(self, value: float) -> None:
        self.deque.append(value)
        self.count += 1
        self.total += value

    def get_win_median(self) -> float:
        return float(np.median(self.deque)) if self.deque else 0.0

    def get_win_avg(self) -> float:
        return float(np.mean(self.deque)) if self.deque else 0.0

    def get_global_avg(self) -> float:
        return self.total / self.count if self.count else 0.0


class _TimedMeter:
    """Iteration, data and network timers shared by the meters."""

    def __init__(self) -> None:
        self.iter_timer = Timer()
        self.data_timer = Timer()
        self.net_timer = Timer()
        self.reset_timing()

    def reset_timing(self) -> None:
        """Forget the accumulated per-iteration times (at the start of an epoch)."""
        self._sums = {"dt": 0.0, "dt_data": 0.0, "dt_net": 0.0}
        self._timed_iters = 0

    def iter_tic(self) -> None:
        """Start timing an iteration (its data loading first)."""
        self.iter_timer.reset()
        self.data_timer.reset()

    def data_toc(self) -> None:
        """The batch has arrived: stop the data timer, start the network timer."""
        self.data_timer.pause()
        self.net_timer.reset()

    def iter_toc(self) -> None:
        """The iteration is over."""
        self.iter_timer.pause()
        self.net_timer.pause()
        for key, value in self._timing_stats().items():
            self._sums[key] += value
        self._timed_iters += 1

    def _timing_stats(self) -> Dict[str, float]:
        """Times of the last iteration, in seconds."""
        return {
            "dt": self.iter_timer.seconds(),
            "dt_data": self.data_timer.seconds(),
            "dt_net": self.net_timer.seconds(),
        }

    def _mean_timing_stats(self) -> Dict[str, float]:
        """Mean times per iteration since ``reset_timing``, in seconds."""
        n = max(self._timed_iters, 1)
        return {key: value / n for key, value in self._sums.items()}


class TrainMeter(_TimedMeter):
    """Training statistics: loss, learning rate, top-1/top-5 errors (single-label)."""

    def __init__(self, epoch_iters: int, cfg: CfgNode) -> None:
        super().__init__()
        self._cfg = cfg
        self.epoch_iters = epoch_iters
        self.max_iter = cfg.SOLVER.MAX_EPOCH * epoch_iters
        self.log_period = max(1, cfg.LOG_PERIOD)
        self.loss = ScalarMeter(self.log_period)
        self.mb_top1_err = ScalarMeter(self.log_period)
        self.mb_top5_err = ScalarMeter(self.log_period)
        self.reset()

    def reset(self) -> None:
        self.reset_timing()
        self.loss.reset()
        self.mb_top1_err.reset()
        self.mb_top5_err.reset()
        self.loss_total = 0.0
        self.lr: Optional[float] = None
        self.num_top1_mis = 0.0
        self.num_top5_mis = 0.0
        self.num_samples = 0
        self.extra: Dict[str, float] = {}

    def update_stats(
        self,
        top1_err: Optional[float],
        top5_err: Optional[float],
        loss: float,
        lr: float,
        mb_size: int,
    ) -> None:
        """Add one mini-batch (errors in percent; ``None`` where not computed)."""
        self.loss.add_value(loss)
        self.lr = lr
        self.loss_total += loss * mb_size
        self.num_samples += mb_size
        if top1_err is not None:
            self.mb_top1_err.add_value(top1_err)
            self.num_top1_mis += top1_err * mb_size
        if top5_err is not None:
            self.mb_top5_err.add_value(top5_err)
            self.num_top5_mis += top5_err * mb_size

    def log_iter_stats(self, cur_epoch: int, cur_iter: int) -> Optional[Dict]:
        """Log every ``LOG_PERIOD`` iterations; return the stats logged (or None)."""
        if (cur_iter + 1) % self.log_period != 0:
            return None
        done = cur_epoch * self.epoch_iters + cur_iter + 1
        stats = {
            "_type": "train_iter",
            "epoch": f"{cur_epoch + 1}/{self._cfg.SOLVER.MAX_EPOCH}",
            "iter": f"{cur_iter + 1}/{self.epoch_iters}",
            **self._timing_stats(),
            "eta": _eta(self.iter_timer.seconds() * (self.max_iter - done)),
            "loss": self.loss.get_win_median(),
            "lr": self.lr,
            "gpu_mem": _memory_stats()["gpu_mem"],
        }
        if self.mb_top1_err.count:
            stats["top1_err"] = self.mb_top1_err.get_win_median()
        if self.mb_top5_err.count:
            stats["top5_err"] = self.mb_top5_err.get_win_median()
        log_json_stats(stats, logger)
        return stats

    def log_epoch_stats(self, cur_epoch: int) -> Dict:
        """Log and return the epoch's averages."""
        done = (cur_epoch + 1) * self.epoch_iters
        n = max(self.num_samples, 1)
        timing = self._mean_timing_stats()
        stats = {
            "_type": "train_epoch",
            "epoch": f"{cur_epoch + 1}/{self._cfg.SOLVER.MAX_EPOCH}",
            **timing,
            "eta": _eta(timing["dt"] * (self.max_iter - done)),
            "loss": self.loss_total / n,
            "lr": self.lr,
            **_memory_stats(),
            **self.extra,
        }
        if self.mb_top1_err.count:
            stats["top1_err"] = self.num_top1_mis / n
        if self.mb_top5_err.count:
            stats["top5_err"] = self.num_top5_mis / n
        log_json_stats(stats, logger)
        return stats


class ValMeter(_TimedMeter):
    """Validation statistics: top-1/top-5 errors, or mAP for multi-label data."""

    def __init__(self, max_iter: int, cfg: CfgNode) -> None:
        super().__init__()
        self._cfg = cfg
        self.max_iter = max_iter
        self.log_period = max(1, cfg.LOG_PERIOD)
        self.multi_label = bool(cfg.DATA.MULTI_LABEL)
        self.mb_top1_err = ScalarMeter(self.log_period)
        self.mb_top5_err = ScalarMeter(self.log_period)
        self.min_top1_err = 100.0
        self.min_top5_err = 100.0
        self.max_map = 0.0
        self.reset()

    def reset(self) -> None:
        self.reset_timing()
        self.mb_top1_err.reset()
        self.mb_top5_err.reset()
        self.num_top1_mis = 0.0
        self.num_top5_mis = 0.0
        self.num_samples = 0
        self.all_preds: List[torch.Tensor] = []
        self.all_labels: List[torch.Tensor] = []

    def update_stats(self, top1_err: float, top5_err: Optional[float], mb_size: int) -> None:
        self.mb_top1_err.add_value(top1_err)
        self.num_top1_mis += top1_err * mb_size
        if top5_err is not None:
            self.mb_top5_err.add_value(top5_err)
            self.num_top5_mis += top5_err * mb_size
        self.num_samples += mb_size

    def update_predictions(self, preds: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep the predictions (for mAP)."""
        self.all_preds.append(preds.detach().cpu())
        self.all_labels.append(labels.detach().cpu())

    def log_iter_stats(self, cur_epoch: int, cur_iter: int) -> Optional[Dict]:
        if (cur_iter + 1) % self.log_period != 0:
            return None
        stats = {
            "_type": "val_iter",
            "epoch": f"{cur_epoch + 1}/{self._cfg.SOLVER.MAX_EPOCH}",
            "iter": f"{cur_iter + 1}/{self.max_iter}",
            "time_diff": self.iter_timer.seconds(),
            "eta": _eta(self.iter_timer.seconds() * (self.max_iter - cur_iter - 1)),
            "gpu_mem": _memory_stats()["gpu_mem"],
        }
        if self.mb_top1_err.count:
            stats["top1_err"] = self.mb_top1_err.get_win_median()
        if self.mb_top5_err.count:
            stats["top5_err"] = self.mb_top5_err.get_win_median()
        log_json_stats(stats, logger)
        return stats

    def log_epoch_stats(self, cur_epoch: int) -> Dict:
        """Log and return the epoch's metrics (``top1_err``/``top5_err`` or ``map``)."""
        stats = {
            "_type": "val_epoch",
            "epoch": f"{cur_epoch + 1}/{self._cfg.SOLVER.MAX_EPOCH}",
            "time_diff": self._mean_timing_stats()["dt"],
            **_memory_stats(),
        }
        if self.multi_label:
            value = metrics.get_map(torch.cat(self.all_preds), torch.cat(self.all_labels))
            self.max_map = max(self.max_map, value)
            stats.update(map=value, max_map=self.max_map)
        else:
            n = max(self.num_samples, 1)
            top1 = self.num_top1_mis / n
            self.min_top1_err = min(self.min_top1_err, top1)
            stats.update(top1_err=top1, min_top1_err=self.min_top1_err)
            if self.mb_top5_err.count:
                top5 = self.num_top5_mis / n
                self.min_top5_err = min(self.min_top5_err, top5)
                stats.update(top5_err=top5, min_top5_err=self.min_top5_err)
        log_json_stats(stats, logger)
        return stats


class IncompleteViewsError(RuntimeError):
    """Some videos did not receive all their test views."""


class TestMeter(_TimedMeter):
    """Multi-view testing: combine the clip (view) predictions of each video, then score.

    Clip ``i`` belongs to video ``i // num_clips``. Views are combined by ``ensemble_method``:
    ``sum`` adds the clips' scores, ``max`` keeps the element-wise maximum.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        num_videos: int,
        num_clips: int,
        num_cls: int,
        overall_iters: int,
        multi_label: bool = False,
        ensemble_method: str = "sum",
    ) -> None:
        super().__init__()
        if ensemble_method not in ("sum", "max"):
            raise ValueError(
                f"ensemble method (DATA.ENSEMBLE_METHOD) must be 'sum' or 'max', "
                f"got {ensemble_method!r}"
            )
        self.num_videos = num_videos
        self.num_clips = num_clips
        self.num_cls = num_cls
        self.overall_iters = overall_iters
        self.multi_label = multi_label
        self.ensemble_method = ensemble_method
        self.reset()

    def reset(self) -> None:
        self.video_preds = torch.zeros((self.num_videos, self.num_cls))
        if self.multi_label:
            self.video_labels = torch.zeros((self.num_videos, self.num_cls))
        else:
            self.video_labels = torch.zeros(self.num_videos, dtype=torch.long)
        self.clip_count = torch.zeros(self.num_videos, dtype=torch.long)
        # clips already added (a distributed sampler pads the last batches with repeats)
        self._seen = torch.zeros(self.num_videos * self.num_clips, dtype=torch.bool)
        self.duplicate_clips = 0
        self.stats: Dict = {}

    def update_stats(
        self, preds: torch.Tensor, labels: torch.Tensor, clip_ids: torch.Tensor
    ) -> None:
        """Add the predictions of a batch of clips.

        A clip index seen before (a distributed sampler's padding) is skipped and counted in
        ``duplicate_clips``.

        Args:
            preds: (N, num_cls) clip scores.
            labels: (N,) class indices, or (N, num_cls) multi-hot targets.
            clip_ids: (N,) clip indices, ``video_index * num_clips + view_index``.
        """
        preds = preds.detach().float().cpu()
        labels = labels.detach().cpu()
        clip_ids = clip_ids.detach().cpu().view(-1)
        if preds.shape != (clip_ids.numel(), self.num_cls):
            raise ValueError(
                f"preds of shape {tuple(preds.shape)} for {clip_ids.numel()} clips of "
                f"{self.num_cls} classes"
            )
        for i in range(clip_ids.numel()):
            vid = int(clip_ids[i]) // self.num_clips
            if not 0 <= int(clip_ids[i]) < self.num_videos * self.num_clips:
                raise ValueError(
                    f"clip index {int(clip_ids[i])} is video {vid}, outside the "
                    f"{self.num_videos} videos of the test set"
                )
            clip = int(clip_ids[i])
            if self._seen[clip]:
                self.duplicate_clips += 1
                continue
            self._seen[clip] = True
            label = labels[i].to(self.video_labels.dtype)
            if self.clip_count[vid] > 0 and not torch.equal(self.video_labels[vid], label):
                raise ValueError(
                    f"clips of video {vid} have different labels "
                    f"({self.video_labels[vid].tolist()} and {label.tolist()})"
                )
            self.video_labels[vid] = label
            if self.clip_count[vid] == 0:
                self.video_preds[vid] = preds[i]
            elif self.ensemble_method == "sum":
                self.video_preds[vid] += preds[i]
            else:
                self.video_preds[vid] = torch.maximum(self.video_preds[vid], preds[i])
            self.clip_count[vid] += 1

    def log_iter_stats(self, cur_iter: int) -> Dict:
        stats = {
            "split": "test_iter",
            "cur_iter": cur_iter + 1,
            "eta": _eta(self.iter_timer.seconds() * (self.overall_iters - cur_iter - 1)),
            "time_diff": self.iter_timer.seconds(),
        }
        log_json_stats(stats, logger)
        return stats

    def check_complete(self) -> None:
        """Raise ``IncompleteViewsError`` naming the videos without exactly ``num_clips``
        views."""
        bad = torch.nonzero(self.clip_count != self.num_clips).view(-1).tolist()
        if not bad:
            return
        shown = ", ".join(f"{v} ({int(self.clip_count[v])} views)" for v in bad[:20])
        more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise IncompleteViewsError(
            f"{len(bad)} of {self.num_videos} test videos do not have exactly "
            f"{self.num_clips} views (TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS): "
            f"video indices {shown}{more}"
        )

    def finalize_metrics(self, ks: Sequence[int] = (1, 5)) -> Dict:
        """Check that every video got all its views, then log and return the final metrics:
        ``top{k}_acc`` (percent, for each ``k`` <= num_cls) or ``map``."""
        if self.duplicate_clips:
            logger.info("%d repeated test clips were counted once", self.duplicate_clips)
        self.check_complete()
        self.stats = {"split": "test_final"}
        if self.multi_label:
            self.stats["map"] = metrics.get_map(self.video_preds, self.video_labels)
        else:
            ks = [k for k in ks if k <= self.num_cls]
            accs = metrics.topk_accuracies(self.video_preds, self.video_labels, ks)
            for k, acc in zip(ks, accs):
                self.stats[f"top{k}_acc"] = float(acc)
        log_json_stats(self.stats, logger)
        return self.stats


from slowfast.utils.ava_meter import AVAMeter  # noqa: E402,F401  (re-export, PySlowFast's name)
