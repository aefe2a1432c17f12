"""Progressive training on long videos (PGT, Pang et al., CVPR 2021).

- ``caches``: Markov caches attached to a built model by module type (``attach_markov_caches``,
  ``set_step``); ``slowfast.models.build_model`` attaches them when ``PGT.ENABLE``;
- ``schedule``: the step tiling of a long clip and DPR's draws;
- ``runner``: the ``progressive`` step runner, ``progressive_forward`` and ``train_step``.
"""

from slowfast.pgt.caches import attach_markov_caches, has_caches, set_step  # noqa: F401
from slowfast.pgt.runner import (  # noqa: F401
    ProgressiveStepRunner,
    combine_steps,
    progressive_forward,
    schedule_from_cfg,
    train_step,
)
from slowfast.pgt.schedule import Schedule, dpr_schedule, split_steps, step_bounds  # noqa: F401


def attach_from_cfg(model, cfg):
    """Attach the caches of ``cfg.PGT`` to ``model`` (the only place here that reads cfg)."""
    tpool = list(cfg.PGT.TPOOL_SIZE)
    schedule = schedule_from_cfg(cfg)
    roi_window = []
    for t_step, o in zip(schedule.step_len, schedule.overlap):
        frames = (t_step - o) * (schedule.steps - 1) + t_step
        roi_window.append((frames - t_step, frames, frames))
    return attach_markov_caches(
        model,
        overlap=list(cfg.PGT.OVERLAP),
        mode=str(cfg.PGT.CACHE),
        momentum=float(cfg.PGT.CACHE_MOMENTUM),
        head=bool(cfg.PGT.HEAD),
        keep_graph=bool(cfg.PGT.TRUNCATE_GRAD),
        tpool_size=tpool,
        roi_window=roi_window,
    )
