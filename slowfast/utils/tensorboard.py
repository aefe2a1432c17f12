"""Tensorboard (``TENSORBOARD.ENABLE``): scalars, and PySlowFast's validation plots
(``TENSORBOARD.CONFUSION_MATRIX`` / ``TENSORBOARD.HISTOGRAM``, see
``slowfast.utils.eval_plots``). The writer and matplotlib are imported only when enabled."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional

from fvcore.common.config import CfgNode

from slowfast.utils.eval_plots import (
    EvalPlots,
    figure_to_image,
    load_categories,
    load_class_names,
    load_subset,
)

logger = logging.getLogger(__name__)


def log_dir(cfg: CfgNode) -> str:
    """``TENSORBOARD.LOG_DIR`` (relative ones under OUTPUT_DIR), else
    ``OUTPUT_DIR/runs-<TRAIN.DATASET>``."""
    if cfg.TENSORBOARD.LOG_DIR:
        return os.path.join(cfg.OUTPUT_DIR, cfg.TENSORBOARD.LOG_DIR)
    return os.path.join(cfg.OUTPUT_DIR, f"runs-{cfg.TRAIN.DATASET}")


def eval_plots_from_cfg(cfg: CfgNode) -> Optional[EvalPlots]:
    """The validation plots ``cfg`` asks for, with their class-name, subset and category files
    read and checked; ``None`` when none applies.

    The plots need ``TENSORBOARD.ENABLE`` and apply to single-label classification only (not
    ``DATA.MULTI_LABEL`` nor ``DETECTION.ENABLE``): otherwise a warning says why they are not
    drawn. Without ``TENSORBOARD.CLASS_NAMES_PATH`` the classes are named by their ids "0",
    "1", ..., which is then what a subset file's lines must say.

    Raises:
        FileNotFoundError, DataError: a file named by a key is missing or wrong (the message
            names the key, the file and, for a subset, the line).
    """
    tb = cfg.TENSORBOARD
    wanted = [f"TENSORBOARD.{k}.ENABLE" for k in ("CONFUSION_MATRIX", "HISTOGRAM") if tb[k].ENABLE]
    if not wanted:
        return None
    keys = " and ".join(wanted)
    if not tb.ENABLE:
        logger.warning("%s: no plot without TENSORBOARD.ENABLE True", keys)
        return None
    if cfg.DETECTION.ENABLE or cfg.DATA.MULTI_LABEL:
        logger.warning(
            "%s: the confusion matrix and the prediction histograms apply to single-label "
            "classification only, not to %s; not plotted",
            keys,
            "detection (DETECTION.ENABLE)" if cfg.DETECTION.ENABLE else "DATA.MULTI_LABEL",
        )
        return None
    num_classes = int(cfg.MODEL.NUM_CLASSES)
    names_key = "TENSORBOARD.CLASS_NAMES_PATH"
    if tb.CLASS_NAMES_PATH:
        names, class_to_id = load_class_names(tb.CLASS_NAMES_PATH, num_classes, names_key)
    else:
        names = [str(i) for i in range(num_classes)]
        class_to_id = {n: i for i, n in enumerate(names)}
        names_key += f" (unset: the classes are named by their ids, 0..{num_classes - 1})"
    cm, hist = tb.CONFUSION_MATRIX, tb.HISTOGRAM
    plots = EvalPlots(num_classes=num_classes, class_names=names)
    if cm.ENABLE:
        plots.confusion_matrix = True
        plots.cm_figsize = tuple(cm.FIGSIZE)
        if cm.SUBSET_PATH:
            key = "TENSORBOARD.CONFUSION_MATRIX.SUBSET_PATH"
            plots.cm_subset = load_subset(cm.SUBSET_PATH, class_to_id, key, names_key)
        if tb.CATEGORIES_PATH:
            key = "TENSORBOARD.CATEGORIES_PATH"
            plots.categories = load_categories(tb.CATEGORIES_PATH, class_to_id, key, names_key)
    if hist.ENABLE:
        plots.histogram = True
        plots.hist_topk = int(hist.TOPK)
        plots.hist_figsize = tuple(hist.FIGSIZE)
        if hist.SUBSET_PATH:
            key = "TENSORBOARD.HISTOGRAM.SUBSET_PATH"
            plots.hist_subset = load_subset(hist.SUBSET_PATH, class_to_id, key, names_key)
    return plots


class TensorboardWriter:
    """Writes numeric scalars and the validation plots; a no-op when tensorboard is disabled
    or on non-master ranks.

    The plots' files are read on every rank (``enabled`` or not), so that a bad file stops
    every rank at construction, and ``wants_eval_predictions`` tells every rank alike to gather
    the validation predictions.
    """

    def __init__(self, cfg: CfgNode, enabled: Optional[bool] = None) -> None:
        self.writer: Any = None
        self.plots = eval_plots_from_cfg(cfg)
        if enabled is None:
            enabled = bool(cfg.TENSORBOARD.ENABLE)
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        path = log_dir(cfg)
        self.writer = SummaryWriter(log_dir=path)
        logger.info("tensorboard: writing to %s", path)

    def add_scalars(self, scalars: Dict[str, Any], global_step: int) -> None:
        """Write every numeric value of ``scalars`` (others are skipped)."""
        if self.writer is None:
            return
        for key, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step)

    @property
    def wants_eval_predictions(self) -> bool:
        """Whether validation should gather its predictions and labels for ``plot_eval``."""
        return self.plots is not None

    def plot_eval(self, preds: Any, labels: Any, global_step: int) -> None:
        """Add the validation figures (``eval_plots_from_cfg``) as images at ``global_step``.

        Args:
            preds: predicted class ids ``(N,)`` or scores ``(N, C)`` of the whole validation set.
            labels: its class ids ``(N,)``.
        """
        if self.writer is None or self.plots is None:
            return
        start = time.perf_counter()
        count = 0
        for tag, fig in self.plots.figures(preds, labels):
            self.writer.add_image(tag, figure_to_image(fig), global_step, dataformats="HWC")
            count += 1
        logger.info(
            "tensorboard: %d validation figure(s) of %d videos in %.1f s",
            count,
            len(labels),
            time.perf_counter() - start,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
