"""Project-specific config keys; add new nodes here rather than in ``defaults.py``."""

from slowfast.config.node import CfgNode


def add_custom_config(cfg: CfgNode) -> None:
    """Add this project's own keys to ``cfg`` (in place)."""
    # Bound on the number of videos that may fail to decode before a run stops.
    cfg.DATA_LOADER.MAX_DECODE_FAILURES = 100
    # Retries with another index when a video fails to decode.
    cfg.DATA_LOADER.NUM_RETRIES = 10
    # Test views: first starts at the first frame, last ends at the last (newer PySlowFast's key;
    # False keeps PySlowFast's starts at delta * i / NUM_ENSEMBLE_VIEWS).
    cfg.DATA.USE_OFFSET_SAMPLING = False
