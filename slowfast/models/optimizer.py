"""The optimizer and the per-iteration learning rate.

Parameters are split as PySlowFast splits them: the weights and biases of normalisation layers
("bn params") get ``BN.WEIGHT_DECAY``, every other trainable parameter ``SOLVER.WEIGHT_DECAY``.
The bn group comes first, then the others (empty groups are left out), the order PySlowFast
uses, so that its optimizer states load here.
"""

from __future__ import annotations

import logging
from typing import Dict, List

import torch
from fvcore.common.config import CfgNode
from torch import nn

from slowfast.utils import lr_policy

logger = logging.getLogger(__name__)

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def is_norm_module(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer whose own parameters are "bn params".

    torch's batch/instance norms, group and layer norms, and any class whose name ends with
    ``Norm``/``Norm1d/2d/3d`` or contains ``BatchNorm`` (the models' sub-batch and frozen
    batch norms).
    """
    if isinstance(module, _NORM_TYPES):
        return True
    name = type(module).__name__
    return "BatchNorm" in name or name.rstrip("123d").endswith("Norm")


def split_bn_params(model: nn.Module) -> Dict[str, List[nn.Parameter]]:
    """Trainable parameters of ``model`` split into ``"bn"`` and ``"non_bn"`` lists.

    A parameter belongs to the module that registers it (not to its parents); shared
    parameters are counted once.
    """
    groups: Dict[str, List[nn.Parameter]] = {"bn": [], "non_bn": []}
    seen = set()
    for module in model.modules():
        key = "bn" if is_norm_module(module) else "non_bn"
        for p in module.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            groups[key].append(p)
    return groups


def construct_optimizer(model: nn.Module, cfg: CfgNode) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW (``SOLVER.OPTIMIZING_METHOD``) over ``model``'s trainable params.

    Args:
        model: the model (possibly DDP-wrapped).
        cfg: ``SOLVER.*`` and ``BN.WEIGHT_DECAY``.
    """
    groups = split_bn_params(model)
    param_groups = [
        {"params": groups["bn"], "weight_decay": cfg.BN.WEIGHT_DECAY},
        {"params": groups["non_bn"], "weight_decay": cfg.SOLVER.WEIGHT_DECAY},
    ]
    param_groups = [g for g in param_groups if g["params"]]
    if not param_groups:
        raise ValueError("the model has no trainable parameters to optimise")
    logger.info(
        "optimizer %s: %d bn params (weight decay %g), %d other params (weight decay %g)",
        cfg.SOLVER.OPTIMIZING_METHOD,
        len(groups["bn"]),
        cfg.BN.WEIGHT_DECAY,
        len(groups["non_bn"]),
        cfg.SOLVER.WEIGHT_DECAY,
    )
    method = cfg.SOLVER.OPTIMIZING_METHOD
    if method == "sgd":
        if cfg.SOLVER.NESTEROV and (cfg.SOLVER.MOMENTUM <= 0 or cfg.SOLVER.DAMPENING != 0):
            raise ValueError(
                f"SOLVER.NESTEROV needs SOLVER.MOMENTUM > 0 and SOLVER.DAMPENING 0 (got momentum "
                f"{cfg.SOLVER.MOMENTUM}, dampening {cfg.SOLVER.DAMPENING}); or set NESTEROV False"
            )
        return torch.optim.SGD(
            param_groups,
            lr=cfg.SOLVER.BASE_LR,
            momentum=cfg.SOLVER.MOMENTUM,
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
            dampening=cfg.SOLVER.DAMPENING,
            nesterov=cfg.SOLVER.NESTEROV,
        )
    if method == "adam":
        return torch.optim.Adam(
            param_groups,
            lr=cfg.SOLVER.BASE_LR,
            betas=(0.9, 0.999),
            weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        )
    if method == "adamw":
        return torch.optim.AdamW(
            param_groups, lr=cfg.SOLVER.BASE_LR, eps=1e-8, weight_decay=cfg.SOLVER.WEIGHT_DECAY
        )
    raise ValueError(f"SOLVER.OPTIMIZING_METHOD {method!r} is unknown; use sgd, adam or adamw")


def get_epoch_lr(cur_epoch: float, cfg: CfgNode) -> float:
    """Learning rate at the fractional epoch ``cur_epoch`` (see ``lr_policy``)."""
    return lr_policy.get_lr_at_epoch(cfg, cur_epoch)


def set_lr(optimizer: torch.optim.Optimizer, new_lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = new_lr
