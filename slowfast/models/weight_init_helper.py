"""PySlowFast's weight initialisation for the ResNet family."""

import torch.nn as nn
from fvcore.nn.weight_init import c2_msra_fill

from slowfast.models.batchnorm_helper import FrozenBatchNorm3d, SubBatchNorm3d

# Attribute that marks the last norm of a residual transform (and of a non-local block).
FINAL_BN_ATTR = "transform_final_bn"


def _fill_norm(m: nn.Module, weight: float) -> None:
    with_weight = getattr(m, "weight", None)
    with_bias = getattr(m, "bias", None)
    if with_weight is not None:
        with_weight.data.fill_(weight)
    if with_bias is not None:
        with_bias.data.zero_()


def init_weights(model: nn.Module, fc_init_std: float = 0.01, zero_init_final_bn: bool = True):
    """Initialise ``model`` in place as PySlowFast does.

    Convolutions: Caffe2's MSRA fill (Kaiming normal, fan-out) and zero bias. Norms: gamma 1 and
    beta 0, except gamma 0 for the norms marked ``transform_final_bn`` when
    ``zero_init_final_bn`` (so each residual branch starts as zero). Linear layers: weights from
    N(0, ``fc_init_std``), zero bias.

    Unlike PySlowFast, the zero initialisation also applies to ``SubBatchNorm3d`` and
    ``FrozenBatchNorm3d`` (PySlowFast only touches ``nn.BatchNorm3d``).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            c2_msra_fill(m)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, SubBatchNorm3d, FrozenBatchNorm3d)):
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.affine:
                continue
            final = bool(getattr(m, FINAL_BN_ATTR, False)) and zero_init_final_bn
            _fill_norm(m, 0.0 if final else 1.0)
        elif isinstance(m, nn.Linear):
            m.weight.data.normal_(mean=0.0, std=fc_init_std)
            if m.bias is not None:
                m.bias.data.zero_()
