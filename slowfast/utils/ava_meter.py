"""``AVAMeter``: training statistics and frame-level AVA mAP of the val / test sets.

Model output column k is AVA action id k + 1 (PySlowFast's convention). Detections of classes
outside the label map (``AVA.LABEL_MAP_FILE``) are dropped, so an 80-class model is scored on
the label map's 60 classes; the evaluation is the official protocol
(``slowfast.utils.ava_eval_helper``) against the whole ground truth ``AVA.GROUNDTRUTH_FILE`` with
the excluded timestamps of ``AVA.EXCLUSION_FILE`` (all under ``AVA.ANNOTATION_DIR``).
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence

import torch
from fvcore.common.config import CfgNode

AVAMeter = None  # placeholder while slowfast.utils.meters imports this module (see the end)

from slowfast.utils import ava_eval_helper as ava  # noqa: E402
from slowfast.utils import distributed as du  # noqa: E402
from slowfast.utils import meters as _meters  # noqa: E402
from slowfast.utils.logging import log_json_stats  # noqa: E402
from slowfast.utils.meters import ScalarMeter, _eta, _memory_stats, _TimedMeter  # noqa: E402

logger = logging.getLogger(__name__)

_MODES = ("train", "val", "test")


class AVAMeter(_TimedMeter):  # noqa: F811
    """Measure AVA train, val and test statistics (PySlowFast's ``AVAMeter`` interface).

    Args:
        overall_iters: iterations of one epoch (for the ETA).
        cfg: the config (``AVA.*``, ``LOG_PERIOD``, ``SOLVER.MAX_EPOCH``, ``OUTPUT_DIR``).
        mode: "train", "val" or "test".
        video_names: video index -> video id (as in the ground-truth CSV); may also be given
            later with ``set_video_names``.
        write_detections: write ``detections_<mode>.csv`` (official format) to
            ``cfg.OUTPUT_DIR`` in ``finalize_metrics`` (on the root process); default: in test
            mode.
    """

    def __init__(
        self,
        overall_iters: int,
        cfg: CfgNode,
        mode: str,
        video_names: Optional[Sequence[str]] = None,
        write_detections: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"AVAMeter mode must be one of {_MODES}, got {mode!r}")
        self.cfg = cfg
        self.mode = mode
        self.overall_iters = overall_iters
        self.log_period = max(1, cfg.LOG_PERIOD)
        self.loss = ScalarMeter(self.log_period)
        self.output_dir = cfg.OUTPUT_DIR
        self.write_detections = mode == "test" if write_detections is None else write_detections
        self.video_names: Optional[List[str]] = None
        if video_names is not None:
            self.set_video_names(video_names)
        self.full_map: Optional[float] = None
        self.per_class_ap: Dict[int, float] = {}
        self.stats: Dict = {}
        if mode != "train":
            ann = cfg.AVA.ANNOTATION_DIR
            self.label_map_file = os.path.join(ann, cfg.AVA.LABEL_MAP_FILE)
            self.categories, self.class_whitelist = ava.read_labelmap(self.label_map_file)
            exclusions = cfg.AVA.EXCLUSION_FILE
            self.excluded_keys = ava.read_exclusions(
                os.path.join(ann, exclusions) if exclusions else None
            )
            self.groundtruth_file = os.path.join(ann, cfg.AVA.GROUNDTRUTH_FILE)
            self.full_groundtruth = ava.read_csv(self.groundtruth_file, self.class_whitelist)
        self.reset()

    def set_video_names(self, video_names: Sequence[str]) -> None:
        """Video index (``metadata[:, 0]``) -> video id."""
        self.video_names = [str(v) for v in video_names]

    def reset(self) -> None:
        """Forget the epoch's losses, timings and predictions."""
        self.reset_timing()
        self.loss.reset()
        self.lr: Optional[float] = None
        self.all_preds: List[torch.Tensor] = []
        self.all_ori_boxes: List[torch.Tensor] = []
        self.all_metadata: List[torch.Tensor] = []

    def update_stats(
        self,
        preds: torch.Tensor,
        ori_boxes: torch.Tensor,
        metadata: torch.Tensor,
        loss: Optional[float] = None,
        lr: Optional[float] = None,
    ) -> None:
        """Add one mini-batch.

        Args:
            preds: (K, NUM_CLASSES) scores of the K boxes.
            ori_boxes: (K, 4) normalised ``[x1, y1, x2, y2]`` (or PySlowFast's (K, 5) with the
                batch index first).
            metadata: (K, 2) ``[video index, timestamp second]``.
            loss, lr: training loss and learning rate.
        """
        if self.mode != "train":
            preds = torch.as_tensor(preds).detach().float().cpu()
            boxes = torch.as_tensor(ori_boxes).detach().double().cpu()
            meta = torch.as_tensor(metadata).detach().cpu()
            if boxes.dim() == 2 and boxes.shape[1] == 5:
                boxes = boxes[:, 1:]
            if preds.dim() != 2 or boxes.shape != (len(preds), 4) or meta.shape != (len(preds), 2):
                raise ValueError(
                    f"AVAMeter.update_stats: preds {tuple(preds.shape)}, ori_boxes "
                    f"{tuple(boxes.shape)} and metadata {tuple(meta.shape)} must be (K, C), "
                    "(K, 4) and (K, 2)"
                )
            self.all_preds.append(preds)
            self.all_ori_boxes.append(boxes)
            self.all_metadata.append(meta)
        if loss is not None:
            self.loss.add_value(float(loss))
        if lr is not None:
            self.lr = lr

    def log_iter_stats(self, cur_epoch: int, cur_iter: int) -> Optional[Dict]:
        """Log every ``LOG_PERIOD`` iterations; return the stats logged (or None)."""
        if (cur_iter + 1) % self.log_period != 0:
            return None
        stats = {"_type": f"{self.mode}_iter"}
        if self.mode != "test":
            stats["cur_epoch"] = f"{cur_epoch + 1}/{self.cfg.SOLVER.MAX_EPOCH}"
        stats.update(
            cur_iter=f"{cur_iter + 1}",
            eta=_eta(self.iter_timer.seconds() * (self.overall_iters - cur_iter - 1)),
            **self._timing_stats(),
            mode=self.mode,
        )
        if self.mode == "train":
            stats.update(loss=self.loss.get_win_median(), lr=self.lr)
        log_json_stats(stats, logger)
        return stats

    def finalize_metrics(self, log: bool = True) -> float:
        """Frame mAP@0.5 of the predictions gathered since ``reset``; stored in
        ``self.full_map`` (and the per-class APs in ``self.per_class_ap``)."""
        if self.mode == "train":
            raise RuntimeError("AVAMeter: no mAP in train mode (the meter keeps no predictions)")
        if self.video_names is None:
            raise RuntimeError(
                "AVAMeter: video names are unknown; pass video_names= or call set_video_names"
            )
        if not self.all_preds:
            raise RuntimeError("AVAMeter.finalize_metrics: no predictions were added")
        preds = torch.cat(self.all_preds).numpy()
        boxes = torch.cat(self.all_ori_boxes).numpy()
        metadata = torch.cat(self.all_metadata).numpy()
        num_model = preds.shape[1]
        evaluated = sorted(i for i in self.class_whitelist if i <= num_model)
        logger.info(
            "AVA frame mAP: %d boxes, %d model classes, %d evaluated (label map %s, %d classes); "
            "ground truth %s",
            len(preds),
            num_model,
            len(evaluated),
            self.label_map_file,
            len(self.class_whitelist),
            self.groundtruth_file,
        )
        detections = ava.detections_from_predictions(
            preds, boxes, metadata, self.video_names, self.class_whitelist
        )
        if self.write_detections and self.output_dir and du.is_root_proc():
            ava.write_detections_csv(
                os.path.join(self.output_dir, f"detections_{self.mode}.csv"), detections
            )
        result = ava.evaluate_ava(
            self.full_groundtruth, detections, self.categories, self.excluded_keys
        )
        self.full_map = result["mAP"]
        self.per_class_ap = result["per_class_AP"]
        self.stats = {"mode": self.mode, "map": self.full_map}
        if log:
            log_json_stats(self.stats, logger)
        return self.full_map

    def log_epoch_stats(self, cur_epoch: int) -> Dict:
        """Log and return the epoch's stats: loss/lr (train) or mAP (val/test)."""
        stats = {"_type": f"{self.mode}_epoch", "cur_epoch": f"{cur_epoch + 1}", "mode": self.mode}
        timing = self._mean_timing_stats()
        if self.mode == "train":
            stats.update(
                loss=self.loss.get_global_avg(),
                lr=self.lr,
                **timing,
                eta=_eta(
                    timing["dt"] * self.overall_iters * (self.cfg.SOLVER.MAX_EPOCH - cur_epoch - 1)
                ),
            )
        else:
            stats["map"] = self.finalize_metrics(log=False)
        stats.update(_memory_stats())
        log_json_stats(stats, logger)
        return stats


# ``slowfast.utils.meters`` re-exports AVAMeter with an import on its last line; when this module
# is imported first, that import ran while AVAMeter was still the placeholder above: set it now.
_meters.AVAMeter = AVAMeter
