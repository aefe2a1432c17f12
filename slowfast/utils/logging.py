"""Rank-aware logging.

``setup_logging(output_dir)`` sends rank 0's records to the console and every rank's records to
its own file in ``output_dir`` (rank 0: ``stdout.log``, rank r: ``stdout_rank{r}.log``, appended
to, so a resumed run keeps its history). Other ranks print only errors to the console.
``print`` is left alone. ``log_json_stats`` writes PySlowFast's ``json_stats: {...}`` lines.
"""

from __future__ import annotations

import decimal
import logging
import os
import sys
from typing import Any, Dict, Optional

import simplejson

_FORMAT = "[%(asctime)s][%(levelname)s] %(name)s:%(lineno)d: %(message)s"
_DATE = "%m/%d %H:%M:%S"
# Handlers installed by setup_logging, removed again when it is called a second time.
_OWN_HANDLERS: list = []


def _current_rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def log_file_name(rank: int) -> str:
    """``stdout.log`` for rank 0, ``stdout_rank{rank}.log`` for the others."""
    return "stdout.log" if rank == 0 else f"stdout_rank{rank}.log"


def setup_logging(output_dir: Optional[str] = None, rank: Optional[int] = None) -> None:
    """Configure the root logger for this process (idempotent).

    Args:
        output_dir: folder of the log files (created); ``None``: console only.
        rank: this process's global rank (default: from ``torch.distributed`` or ``$RANK``).
    """
    rank = _current_rank() if rank is None else rank
    root = logging.getLogger()
    for handler in _OWN_HANDLERS:
        root.removeHandler(handler)
        handler.close()
    _OWN_HANDLERS.clear()
    root.setLevel(logging.INFO)
    prefix = "" if rank == 0 else f"[rank {rank}]"
    formatter = logging.Formatter(prefix + _FORMAT, datefmt=_DATE)

    console = logging.StreamHandler(sys.stdout if rank == 0 else sys.stderr)
    console.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    console.setFormatter(formatter)
    handlers = [console]
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, log_file_name(rank)), "a")
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(formatter)
        handlers.append(file_handler)
    for handler in handlers:
        root.addHandler(handler)
        _OWN_HANDLERS.append(handler)


def get_logger(name: str) -> logging.Logger:
    """The logger named ``name`` (configured through the root logger)."""
    return logging.getLogger(name)


def format_json_stats(stats: Dict[str, Any], precision: int = 5) -> str:
    """``json_stats: {...}`` with floats written to ``precision`` decimals, keys sorted."""
    out = {
        k: decimal.Decimal(f"{v:.{precision}f}") if isinstance(v, float) else v
        for k, v in stats.items()
    }
    return "json_stats: " + simplejson.dumps(out, sort_keys=True, use_decimal=True)


def log_json_stats(stats: Dict[str, Any], logger: Optional[logging.Logger] = None) -> None:
    """Log ``stats`` as one PySlowFast-style ``json_stats: {...}`` line."""
    (logger or logging.getLogger(__name__)).info(format_json_stats(stats))
