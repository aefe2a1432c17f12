"""Model registry and ``build_model``."""

from typing import Optional

import torch
import torch.nn as nn
from fvcore.common.registry import Registry

MODEL_REGISTRY = Registry("MODEL")
MODEL_REGISTRY.__doc__ = """
Registry of video models, looked up by ``cfg.MODEL.MODEL_NAME``.

A registered object is called as ``obj(cfg)`` and returns an ``nn.Module`` whose forward takes
``inputs: List[Tensor]`` with one (N, C, T_p, H, W) tensor per pathway (and, for detection
models, ``bboxes``: (B, 5) boxes as [batch index, x1, y1, x2, y2]) and returns (N, NUM_CLASSES):
logits in train mode, the head activation averaged over positions in eval mode. The object only
reads ``cfg``; it must not move itself to a device nor wrap itself for distributed training.
"""


def build_model(cfg, gpu_id: Optional[int] = None) -> nn.Module:
    """Build ``cfg.MODEL.MODEL_NAME`` from ``MODEL_REGISTRY``.

    With ``PGT.ENABLE`` the Markov caches are attached (``slowfast.pgt``; state-dict keys are
    unchanged). The model is moved to ``cuda:gpu_id`` (``gpu_id`` None: the current CUDA device) only when
    ``cfg.NUM_GPUS > 0``; it is never wrapped in DistributedDataParallel (the engine does that).

    Raises:
        KeyError: for a name that is not registered, listing the registered names.
        RuntimeError: ``cfg.NUM_GPUS`` exceeds the visible GPUs.
    """
    # Importing the package registers the models.
    import slowfast.models  # noqa: F401

    name = cfg.MODEL.MODEL_NAME
    if name not in MODEL_REGISTRY:
        known = sorted(k for k, _ in MODEL_REGISTRY)
        raise KeyError(f"MODEL.MODEL_NAME {name!r} is not a registered model; known: {known}")
    model = MODEL_REGISTRY.get(name)(cfg)
    if cfg.get("PGT") is not None and cfg.PGT.ENABLE:
        from slowfast.pgt import attach_from_cfg

        attach_from_cfg(model, cfg)
    if cfg.NUM_GPUS > 0:
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"NUM_GPUS is {cfg.NUM_GPUS} but CUDA is not available; set NUM_GPUS 0 for CPU"
            )
        if cfg.NUM_GPUS > torch.cuda.device_count():
            raise RuntimeError(
                f"NUM_GPUS is {cfg.NUM_GPUS} but only {torch.cuda.device_count()} GPU(s) are "
                "visible"
            )
        device = torch.device("cuda", torch.cuda.current_device() if gpu_id is None else gpu_id)
        model = model.to(device)
    return model
