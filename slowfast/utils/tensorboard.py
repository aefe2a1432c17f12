"""Tensorboard scalars (``TENSORBOARD.ENABLE``); the writer is imported only when enabled."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from fvcore.common.config import CfgNode

logger = logging.getLogger(__name__)


def log_dir(cfg: CfgNode) -> str:
    """``TENSORBOARD.LOG_DIR`` (relative ones under OUTPUT_DIR), else
    ``OUTPUT_DIR/runs-<TRAIN.DATASET>``."""
    if cfg.TENSORBOARD.LOG_DIR:
        return os.path.join(cfg.OUTPUT_DIR, cfg.TENSORBOARD.LOG_DIR)
    return os.path.join(cfg.OUTPUT_DIR, f"runs-{cfg.TRAIN.DATASET}")


class TensorboardWriter:
    """Writes numeric scalars; a no-op when tensorboard is disabled or on non-master ranks."""

    def __init__(self, cfg: CfgNode, enabled: Optional[bool] = None) -> None:
        self.writer: Any = None
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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
