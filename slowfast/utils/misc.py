"""Model statistics (parameters, GFLOPs, activations), memory usage and small run helpers.

FLOPs are counted with fvcore's tracer on one view: a batch of one clip per pathway at the
train or test crop size, the model in eval mode. Two conventions are offered, both as
multiply-accumulates (fvcore's "FLOP", which is what papers in the field report):

- the paper's (``count_bn=False``, the default of ``get_model_stats``): convolutions, matrix
  products (``matmul``, ``mm``, ``bmm``, ``addmm``, ``einsum``) and linear layers only;
- fvcore's default (``count_bn=True``): the above plus the normalisation layers (eval-mode batch
  norm counts one or two operations per element) and the few other ops fvcore knows
  (upsampling, 2D adaptive average pooling, grid sampling). PySlowFast, run with a recent
  fvcore, reports this figure (54.75 GFLOPs instead of 54.52 for Slow 8x8 R50).

Frozen batch norm (``BN.NORM_TYPE frozen_batchnorm``) is an element-wise affine map that neither
convention counts. Counting runs one real forward pass (fvcore traces the model).
"""

from __future__ import annotations

import importlib
import logging
import math
import warnings
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

logger = logging.getLogger(__name__)

# The operators the paper's convention counts (fvcore's handles are used for each).
PAPER_FLOP_OPS = (
    "aten::_convolution",
    "aten::addmm",
    "aten::bmm",
    "aten::einsum",
    "aten::linear",
    "aten::matmul",
    "aten::mm",
)

# Unsupported operators already reported (each is logged once per process, at debug level).
_REPORTED_UNSUPPORTED: set = set()


def check_nan_losses(loss: float) -> None:
    """Raise ``RuntimeError`` if ``loss`` is NaN (PySlowFast's helper)."""
    if math.isnan(loss):
        raise RuntimeError(f"the loss is NaN ({loss})")


def _is_norm_module(module: nn.Module) -> bool:
    """Batch-norm-like layers: torch's norms and our frozen / sub / sync batch norms."""
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return True
    return "BatchNorm" in type(module).__name__


def params_count(model: nn.Module, ignore_bn: bool = False) -> int:
    """Number of parameters of ``model``.

    Args:
        model: the model.
        ignore_bn: leave out the parameters of batch-norm layers (their affine weight and bias).
    """
    if not ignore_bn:
        return int(sum(p.numel() for p in model.parameters()))
    count = 0
    for module in model.modules():
        if _is_norm_module(module):
            continue
        count += sum(p.numel() for p in module.parameters(recurse=False))
    return int(count)


def gpu_mem_usage() -> float:
    """Peak GPU memory allocated by this process on the current device, in GB (0 without CUDA)."""
    if not torch.cuda.is_available():
        return 0.0
    return torch.cuda.max_memory_allocated() / 1024**3


def cpu_mem_usage() -> Tuple[float, float]:
    """System memory in use and in total, in GB."""
    import psutil

    vram = psutil.virtual_memory()
    used = (vram.total - vram.available) / 1024**3
    return used, vram.total / 1024**3


def analysis_input_shapes(cfg: Any, use_train_input: bool) -> List[List[int]]:
    """Shapes ``[1, C, T_p, H, W]`` of the one-view input of each pathway.

    The Fast pathway (or the only one) gets ``DATA.NUM_FRAMES`` frames; the Slow pathway of a
    SlowFast model gets ``NUM_FRAMES // SLOWFAST.ALPHA`` (PySlowFast's ``pack_pathway_output``).
    ``H = W = DATA.TRAIN_CROP_SIZE`` when ``use_train_input`` else ``DATA.TEST_CROP_SIZE``.
    """
    size = cfg.DATA.TRAIN_CROP_SIZE if use_train_input else cfg.DATA.TEST_CROP_SIZE
    frames = cfg.DATA.NUM_FRAMES
    channels = list(cfg.DATA.INPUT_CHANNEL_NUM)
    if cfg.MODEL.ARCH in cfg.MODEL.MULTI_PATHWAY_ARCH:
        if frames % cfg.SLOWFAST.ALPHA != 0:
            raise ValueError(
                f"DATA.NUM_FRAMES ({frames}) must be divisible by SLOWFAST.ALPHA "
                f"({cfg.SLOWFAST.ALPHA}) for a SlowFast input"
            )
        time = [frames // cfg.SLOWFAST.ALPHA, frames]
    else:
        time = [frames]
    if len(channels) < len(time):
        raise ValueError(
            f"DATA.INPUT_CHANNEL_NUM {channels} needs {len(time)} values for MODEL.ARCH "
            f"{cfg.MODEL.ARCH!r}"
        )
    return [[1, c, t, size, size] for c, t in zip(channels, time)]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _get_model_analysis_input(
    cfg: Any, use_train_input: bool, device: Optional[torch.device] = None
) -> Tuple[Any, ...]:
    """The positional arguments of one forward on one view (batch size 1).

    With ``DETECTION.ENABLE`` one box covering the frame is added (``[batch_idx, x1, y1, x2,
    y2]``), so a detection model is counted for one proposal.
    """
    device = device if device is not None else torch.device("cpu")
    inputs = [
        torch.rand(shape, device=device) for shape in analysis_input_shapes(cfg, use_train_input)
    ]
    if cfg.DETECTION.ENABLE:
        size = inputs[0].shape[-1]
        boxes = torch.tensor([[0.0, 0.0, 0.0, size - 1.0, size - 1.0]], device=device)
        return (inputs, boxes)
    return (inputs,)


def _fvcore_nn() -> Any:
    """``fvcore.nn``, imported without the deprecation warning its ``focal_loss`` module raises
    (it calls ``torch.jit.script`` at import time)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*torch.jit.script.*", category=DeprecationWarning
        )
        import fvcore.nn
    return fvcore.nn


def _fvcore_default_flop_handles() -> Dict[str, Any]:
    """fvcore's default FLOP handles (a copy; fvcore's own table is left untouched)."""
    _fvcore_nn()
    # ``fvcore.nn.flop_count`` is the function (the package re-exports it); take the module.
    module = importlib.import_module("fvcore.nn.flop_count")
    return dict(module._DEFAULT_SUPPORTED_OPS)


def _keyed_handle(op: str, handle: Any) -> Any:
    """Wrap an fvcore op handle so that its count is reported under the full op name."""

    def counted(inputs: List[Any], outputs: List[Any]) -> Counter:
        value = handle(inputs, outputs)
        if isinstance(value, Counter):
            value = sum(value.values())
        return Counter({op: value})

    return counted


def _report_unsupported(ops: Sequence[str], what: str) -> None:
    new = sorted(set(ops) - _REPORTED_UNSUPPORTED)
    if new:
        _REPORTED_UNSUPPORTED.update(new)
        logger.debug("%s: operators not counted: %s", what, ", ".join(new))


def _run_analysis(analysis: Any, what: str) -> Any:
    """Silence fvcore's per-call warnings; report the unsupported operators once at debug."""
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    analysis.total()  # runs the trace
    _report_unsupported(list(analysis.unsupported_ops().keys()), what)
    return analysis


class _EvalMode:
    """Put a model in eval mode and back; no gradients inside."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.was_training = model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> nn.Module:
        self.model.eval()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def flop_breakdown(model: nn.Module, cfg: Any, use_train_input: bool) -> Dict[str, float]:
    """GFLOPs of one view per fvcore operator (``aten::_convolution``, ``aten::batch_norm``...),
    with every operator fvcore has a handle for; the model is traced once, in eval mode.
    """
    fvnn = _fvcore_nn()
    defaults = _fvcore_default_flop_handles()
    handles = {op: _keyed_handle(op, h) for op, h in defaults.items() if h}
    with _EvalMode(model):
        inputs = _get_model_analysis_input(cfg, use_train_input, _model_device(model))
        analysis = fvnn.FlopCountAnalysis(model, inputs)
        analysis.clear_op_handles()
        analysis.set_op_handle(**handles)
        _run_analysis(analysis, "FLOP count")
        by_op = analysis.by_operator()
    return {op: count / 1e9 for op, count in by_op.items()}


def sum_flops(breakdown: Dict[str, float], count_bn: bool) -> float:
    """Total GFLOPs of a ``flop_breakdown``: the paper's operators only, or all of them."""
    if count_bn:
        return float(sum(breakdown.values()))
    return float(sum(v for op, v in breakdown.items() if op in PAPER_FLOP_OPS))


def get_flops(model: nn.Module, cfg: Any, use_train_input: bool, count_bn: bool = False) -> float:
    """GFLOPs of one view (see the module docstring for ``count_bn``)."""
    return sum_flops(flop_breakdown(model, cfg, use_train_input), count_bn)


def get_activations(model: nn.Module, cfg: Any, use_train_input: bool) -> float:
    """Activations (outputs of convolutions and linear layers) of one view, in millions."""
    with _EvalMode(model):
        inputs = _get_model_analysis_input(cfg, use_train_input, _model_device(model))
        analysis = _run_analysis(
            _fvcore_nn().ActivationCountAnalysis(model, inputs), "activation count"
        )
        total = analysis.total()
    return total / 1e6


def get_model_stats(
    model: nn.Module, cfg: Any, mode: str, use_train_input: bool, count_bn: bool = False
) -> float:
    """PySlowFast's model statistics on one view.

    Args:
        model: the model (its mode is restored afterwards; it is analysed in eval mode).
        cfg: the config (``DATA.*`` crop sizes and frames, ``SLOWFAST.ALPHA``, ``MODEL.ARCH``,
            ``DETECTION.ENABLE``).
        mode: ``"flop"`` (GFLOPs) or ``"activation"`` (millions of activations).
        use_train_input: use ``DATA.TRAIN_CROP_SIZE`` (else ``DATA.TEST_CROP_SIZE``).
        count_bn: for ``"flop"``, also count batch norm and the other ops fvcore's defaults
            count; the default (False) is the paper's convention.
    """
    if mode == "flop":
        return get_flops(model, cfg, use_train_input, count_bn=count_bn)
    if mode == "activation":
        return get_activations(model, cfg, use_train_input)
    raise ValueError(f"get_model_stats: mode must be 'flop' or 'activation', got {mode!r}")


def model_summary(
    model: nn.Module, cfg: Any, use_train_input: bool = False, activations: bool = True
) -> Dict[str, Any]:
    """Parameters, GFLOPs (both conventions, one trace), activations and input shapes of one view.

    Returns:
        ``{"params", "params_without_bn", "gflops" (the paper's), "gflops_with_bn" (fvcore's
        default ops), "mactivations" (None when ``activations`` is False), "input" (one
        ``[1, C, T, H, W]`` per pathway), "by_operator" (GFLOPs per fvcore operator)}``.
    """
    breakdown = flop_breakdown(model, cfg, use_train_input)
    return {
        "params": params_count(model),
        "params_without_bn": params_count(model, ignore_bn=True),
        "gflops": sum_flops(breakdown, count_bn=False),
        "gflops_with_bn": sum_flops(breakdown, count_bn=True),
        "mactivations": get_activations(model, cfg, use_train_input) if activations else None,
        "input": analysis_input_shapes(cfg, use_train_input),
        "by_operator": dict(sorted(breakdown.items())),
    }


def log_model_info(model: nn.Module, cfg: Any, use_train_input: bool = True) -> None:
    """Log the model, its parameter count, GFLOPs (both conventions), activations and memory."""
    logger.info("Model:\n%s", model)
    logger.info("Params: %s", f"{params_count(model):,}")
    logger.info("Mem: %.3f GB (GPU peak)", gpu_mem_usage())
    try:
        breakdown = flop_breakdown(model, cfg, use_train_input)
        activations = get_activations(model, cfg, use_train_input)
    except Exception as e:  # statistics must not stop a run; say why they are missing
        logger.warning("model statistics could not be computed: %s: %s", type(e).__name__, e)
        return
    logger.info(
        "Flops: %.2f G (conv/matmul/linear), %.2f G with batch norm (fvcore default)",
        sum_flops(breakdown, count_bn=False),
        sum_flops(breakdown, count_bn=True),
    )
    logger.info("Activations: %.2f M", activations)


def is_eval_epoch(cfg: Any, cur_epoch: int, multigrid_schedule: Optional[list] = None) -> bool:
    """Whether to evaluate after epoch ``cur_epoch`` (0-based): every ``TRAIN.EVAL_PERIOD``
    epochs and after the last one (PySlowFast's rule; ``multigrid_schedule`` as PySlowFast's
    ``[(..., end_epoch), ...]`` spreads ``MULTIGRID.EVAL_FREQ`` evaluations over each cycle).
    """
    if cur_epoch + 1 == cfg.SOLVER.MAX_EPOCH:
        return True
    if multigrid_schedule is not None:
        prev_end = 0
        for stage in multigrid_schedule:
            end = stage[-1]
            if cur_epoch < end:
                period = max((end - prev_end) // cfg.MULTIGRID.EVAL_FREQ + 1, 1)
                return (end - 1 - cur_epoch) % period == 0
            prev_end = end
    return (cur_epoch + 1) % cfg.TRAIN.EVAL_PERIOD == 0
