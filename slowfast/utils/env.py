"""The environment of a run: versions, devices, memory."""

from __future__ import annotations

import os
import platform
import sys
from typing import Tuple

import torch

# distribution names (their versions are read without importing them)
_PACKAGES = (
    "numpy",
    "fvcore",
    "iopath",
    "av",
    "opencv-python-headless",
    "simplejson",
    "scikit-learn",
    "tensorboard",
    "submitit",
)


def collect_env_info() -> str:
    """A multi-line description of Python, torch, devices and the optional packages."""
    lines = [
        f"Python: {sys.version.split()[0]} ({platform.platform()})",
        f"torch: {torch.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
        f"CPU cores: {os.cpu_count()}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"GPU {i}: {torch.cuda.get_device_name(i)}")
    from importlib import metadata

    for name in _PACKAGES:
        try:
            lines.append(f"{name}: {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{name}: not installed")
    return "\n".join(lines)


def gpu_mem_usage_gb() -> float:
    """Peak GPU memory allocated by torch on the current device, in GiB (0 on CPU)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return 0.0
    return torch.cuda.max_memory_allocated() / 1024**3


def cpu_mem_usage_gb() -> Tuple[float, float]:
    """(used, total) system memory in GiB."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return (vm.total - vm.available) / 1024**3, vm.total / 1024**3
    except ImportError:
        return 0.0, 0.0


def peak_rss_gb() -> float:
    """Peak resident memory of this process, in GiB."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # kilobytes on Linux, bytes on macOS
        return peak / (1024**3 if sys.platform == "darwin" else 1024**2)
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 1024**3
