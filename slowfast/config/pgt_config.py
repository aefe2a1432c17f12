"""The ``PGT`` config node: progressive training on long videos (Pang et al., CVPR 2021).

Defaults are those of the paper's released code, so its configs mean the same here.
``STEP_LEN``, ``OVERLAP`` and ``TPOOL_SIZE`` hold one entry per pathway (Slow, then Fast).
"""

from slowfast.config.node import CfgNode


def add_pgt_config(cfg: CfgNode) -> None:
    """Add the ``PGT`` node to ``cfg`` (in place)."""
    cfg.PGT = CfgNode()
    # Train and evaluate progressively (the model is wrapped with Markov caches).
    cfg.PGT.ENABLE = False
    # Frames per step, T', per pathway.
    cfg.PGT.STEP_LEN = [8]
    # Number of steps, P, per clip.
    cfg.PGT.STEPS = 5
    # Frames carried over between two steps, o, per pathway.
    cfg.PGT.OVERLAP = [1]
    # Step the optimiser once per clip (True) or after every step (False).
    cfg.PGT.TRAIN_TOGETHER = False
    # Markov cache operator: "last" (MCO), "avg" or "max" (cascade operators).
    cfg.PGT.CACHE = "last"
    # Momentum m of the cache: cache = (1 - m) * new + m * old from step 1 on (PMCO when > 0).
    cfg.PGT.CACHE_MOMENTUM = 0.0
    # Evaluate progressively ("PG long"); False evaluates the whole long clip at once.
    cfg.PGT.PG_EVAL = False
    # How PG-long evaluation combines the steps' outputs: "sum" or "max".
    cfg.PGT.ENSEMBLE_METHOD = "sum"
    # Temporal bins of the head in whole-clip ("orig long") evaluation, per pathway.
    cfg.PGT.TPOOL_SIZE = [4]
    # Keep a Markov cache in the head's temporal pooling.
    cfg.PGT.HEAD = True
    # The release's name, inverted: True lets gradients cross steps through the caches.
    cfg.PGT.TRUNCATE_GRAD = False
    # Dynamic progressive regularisation (paper section 3.4): "" (off), "A" or "B".
    cfg.PGT.DPR = ""
