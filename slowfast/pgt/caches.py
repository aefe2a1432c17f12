"""Markov caches, attached to a built model by module type (surgery; the models know nothing).

Which modules carry a cache (one per pathway each): a stem whose temporal kernel is > 1
(``ResNetBasicStem``), every residual block (``ResBlock``, ``RegNetBottleneck``), and, when
``head`` is on, the head on each pathway's feature maps as it receives them: the spatial pooling
of a ``ResNetBasicHead`` (which pools space, then time), the ``TemporalPool`` of a RoI head
(which pools time first). The head's cache is thus of full (C, H, W) maps, as in the release:
with ``max`` caches, or a spatial max pool, pooling over time does not commute with pooling over
space, so a cache taken after the spatial pooling would carry something else. The state
of a module lives on the module object as ``module.pgt_state`` (a :class:`CacheState`: not a
buffer, so state-dict keys are unchanged); the hooks are module-level functions.

The runner tells the caches which step they are in with :func:`set_step`; ``None`` (the
default) is a whole-clip forward: no cache is read or written. On step 0 the old caches are
dropped; on a step k >= 1 a module's input becomes ``X = concat(cache, x)`` along time, the new
cache is computed from ``X`` (``last``: its last ``o`` frames; ``avg`` / ``max``: ``X`` pooled
to ``o`` temporal bins), blended with the old one by the momentum (in fp32), detached unless
``keep_graph``, and stems and blocks drop the first ``o`` frames of their output.

Memory: a residual block's output is its final ReLU's output, which the ReLU saves for
backward. Concatenating the next block's cache to it would save a second copy of nearly the
same frames. When two blocks follow each other directly (consecutive blocks of a ``ResStage``
pathway or of an ``nn.Sequential``, and across stages in single-pathway models), the first one builds the second one's input *before* its
final ReLU instead: ``relu(concat(cache, out[o:]))`` equals ``concat(cache, relu(out)[o:])``
because every cache of such a block is non-negative (the last frames, averages, maxima or
blends of ReLU outputs). The ReLU's saved output is then the next block's input itself.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from slowfast.models.head_helper import ResNetBasicHead, ResNetRoIHead, TemporalPool
from slowfast.models.regnet import RegNetBottleneck
from slowfast.models.resnet_helper import ResBlock, ResStage
from slowfast.models.stem_helper import ResNetBasicStem
from slowfast.models.video_model_builder import FuseFastToSlow

CACHE_MODES = ("last", "avg", "max")
_PATHWAY = re.compile(r"(?:pathway|\bs)(\d+)_(?:stem|res\d+|tpool)$")


class CacheState:
    """The Markov cache of one module and where the progressive forward is.

    Attributes:
        overlap: ``o``, frames carried between steps.
        mode: "last", "avg" or "max".
        momentum: ``m``: from step 1 on, ``cache = (1 - m) * new + m * old``.
        keep_graph: keep the cache in the autograd graph (``PGT.TRUNCATE_GRAD: True``).
        drop_output: drop the first ``o`` output frames on steps >= 1 (stems, blocks).
        step: the current step, ``None`` for a whole-clip forward.
        cache: the carried tensor (a detached copy, or a graph-connected copy).
        successor: the state of the block whose input is this block's output, if any.
    """

    def __init__(
        self,
        overlap: int,
        mode: str = "last",
        momentum: float = 0.0,
        keep_graph: bool = False,
        drop_output: bool = True,
    ) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"PGT.CACHE must be one of {CACHE_MODES}, got {mode!r}")
        if overlap < 1:
            raise ValueError(f"PGT.OVERLAP must be >= 1 for a Markov cache, got {overlap}")
        self.overlap = int(overlap)
        self.mode = mode
        self.momentum = float(momentum)
        self.keep_graph = bool(keep_graph)
        self.drop_output = bool(drop_output)
        self.successor: Optional[CacheState] = None
        self.step: Optional[int] = None
        self.clear()

    def clear(self) -> None:
        self.cache: Optional[torch.Tensor] = None
        self._pending: Optional[torch.Tensor] = None
        self._prefilled: Optional[torch.Tensor] = None
        self._output_prefilled = False

    def new_cache(self, x: torch.Tensor) -> torch.Tensor:
        """The cache computed from the module's (concatenated) input ``x``: a copy, never a
        view (a view would keep the whole step's input alive)."""
        o = self.overlap
        if self.mode == "last":
            new = x[:, :, -o:]
        elif self.mode == "avg":
            new = F.adaptive_avg_pool3d(x, (o, None, None))
        else:
            new = F.adaptive_max_pool3d(x, (o, None, None))
        if self.momentum > 0 and new.dtype in (torch.float16, torch.bfloat16):
            new = new.float()  # blended in fp32 under autocast (in its own dtype otherwise)
        if not self.keep_graph:
            new = new.detach()
        return new.clone(memory_format=torch.contiguous_format)

    def input_for_step(self, x: torch.Tensor) -> torch.Tensor:
        """``X``: ``x`` on step 0, ``concat(cache, x)`` on later steps (or ``x`` itself when
        the preceding block already built it)."""
        if self.step == 0:
            self.cache = None
            return x
        if self._prefilled is not None:
            prefilled, self._prefilled = self._prefilled, None
            if x is not prefilled:
                raise RuntimeError(
                    "PGT: a block's input is not the tensor its preceding block built for it; "
                    "a module between two consecutive residual blocks changed it"
                )
            return x
        if self.cache is None:
            raise RuntimeError(
                f"PGT: step {self.step} has no cache; the steps of a clip must run in order "
                "from step 0 (slowfast.pgt.progressive_forward)"
            )
        return torch.cat([self.cache.to(x.dtype), x], dim=2)

    def commit(self) -> None:
        """Replace the cache by the one computed during this step's forward."""
        new, self._pending = self._pending, None
        if self.step and self.momentum > 0 and self.cache is not None:
            new = (1.0 - self.momentum) * new + self.momentum * self.cache.to(new.dtype)
        self.cache = new


def _pre_hook(module: nn.Module, args: tuple):
    state: CacheState = module.pgt_state
    if state.step is None:
        return None
    x = state.input_for_step(args[0])
    state._pending = state.new_cache(x)
    return (x,) + tuple(args[1:])


def _post_hook(module: nn.Module, args: tuple, output: torch.Tensor):
    state: CacheState = module.pgt_state
    if state.step is None:
        return None
    state.commit()
    if state._output_prefilled:
        state._output_prefilled = False
        state.successor._prefilled = output
        return output
    if state.step > 0 and state.drop_output:
        return output[:, :, state.overlap :]
    return output


def _final_relu_pre_hook(relu: nn.Module, args: tuple):
    """On steps >= 1, build the successor's input before the block's final ReLU."""
    state: CacheState = relu.pgt_owner
    succ = state.successor
    if state.step is None or state.step == 0 or succ is None or succ.cache is None:
        return None
    out = args[0]
    state._output_prefilled = True
    return (torch.cat([succ.cache.to(out.dtype), out[:, :, state.overlap :]], dim=2),)


class BinsState:
    """How the head's temporal pooling bins time: 1 bin during progressive steps, ``tpool``
    bins for a whole-clip forward in eval mode, the model's own window otherwise.

    A detection head's pooling (``window`` set: ``(start, end, frames)`` of the last step's
    ``T'`` frames in a long clip of ``frames``) instead pools that window into 1 bin on a
    whole-clip forward in eval mode: orig long on AVA scores the keyframe's boxes, which lie at
    the centre of the last step, on features computed over the whole clip (as the release does).
    """

    def __init__(self, tpool: int, window: Optional[Tuple[int, int, int]] = None) -> None:
        self.tpool = int(tpool)
        self.window = window
        self.step: Optional[int] = None


def _bins_pre_hook(pool: TemporalPool, args: tuple):
    state: BinsState = pool.pgt_bins
    if state.step is not None:
        pool.bins = 1
    elif pool.training:
        pool.bins = None
    elif state.window is not None:
        pool.bins = 1
        x = args[0]
        start, end, frames = state.window
        t = x.shape[2]  # the features' frames: scale the window to them
        a, b = (start * t) // frames, max((end * t) // frames, (start * t) // frames + 1)
        return (x[:, :, a:b],) + tuple(args[1:])
    else:
        pool.bins = state.tpool
    return None


class TrimState:
    """A lateral fusion whose output has more frames than the Slow features drops its first
    ``overlap`` frames (steps >= 1)."""

    def __init__(self, overlap: int) -> None:
        self.overlap = int(overlap)
        self.step: Optional[int] = None
        self.slow_frames: Optional[int] = None


def _fuse_pre_hook(fuse: FuseFastToSlow, args: tuple):
    fuse.pgt_trim.slow_frames = int(args[0][0].shape[2])
    return None


def _lateral_post_hook(module: nn.Module, args: tuple, output: torch.Tensor):
    state: TrimState = module.pgt_trim
    if state.step and state.slow_frames is not None and output.shape[2] > state.slow_frames:
        return output[:, :, state.overlap :]
    return None


def _pathway_of(name: str) -> int:
    match = _PATHWAY.search(name)
    return int(match.group(1)) if match else 0


def _per_pathway(values: Sequence[int], p: int) -> int:
    values = list(values)
    return int(values[p] if p < len(values) else values[-1])


def _block_sequences(model: nn.Module) -> List[List[nn.Module]]:
    """Chains of blocks each feeding the next directly: the modules of a ``ResStage``
    pathway or of an ``nn.Sequential``; in a single-pathway ResNet without pooling between
    stages, and in RegNet, one chain runs through all stages."""
    stages = [model._modules[n] for n in getattr(model, "stage_names", [])]
    pools = getattr(model, "pool_names", [None])
    if stages and all(isinstance(s, (ResStage, nn.Sequential)) for s in stages[1:]):
        single = all(getattr(s, "num_pathways", 1) == 1 for s in stages[1:])
        if single and all(p is None for p in pools):
            chain: List[nn.Module] = []
            for stage in stages:
                if isinstance(stage, ResStage):
                    chain += [stage._modules[n] for n in stage.pathway_module_names[0]]
                elif isinstance(stage, nn.Sequential):
                    chain += list(stage.children())
                else:
                    chain.append(stage)
            return [chain]
    chains: List[List[nn.Module]] = []
    for m in model.modules():
        if isinstance(m, ResStage):
            for names in m.pathway_module_names:
                chains.append([m._modules[n] for n in names])
        elif isinstance(m, nn.Sequential):
            chains.append(list(m.children()))
    return chains


def _head_input(head: nn.Module, tpool: TemporalPool, p: int) -> nn.Module:
    """The head's module that first receives pathway ``p``'s feature maps: a basic head's
    spatial pooling (it pools space before time), else the temporal pooling ``tpool``."""
    if isinstance(head, ResNetBasicHead):
        return head._modules[f"pathway{p}_spool"]
    return tpool


def _final_relu(block: nn.Module) -> Optional[nn.Module]:
    relu = getattr(block, "relu_final" if isinstance(block, RegNetBottleneck) else "relu", None)
    return relu if isinstance(relu, nn.ReLU) else None


def attach_markov_caches(
    model: nn.Module,
    overlap: Sequence[int],
    mode: str = "last",
    momentum: float = 0.0,
    head: bool = True,
    keep_graph: bool = False,
    tpool_size: Sequence[int] = (4,),
    roi_window: Optional[Sequence[Tuple[int, int, int]]] = None,
) -> nn.Module:
    """Attach the Markov caches to ``model`` (in place; returns it).

    Args:
        model: a built model, not wrapped in DistributedDataParallel.
        overlap: ``o`` per pathway (``PGT.OVERLAP``).
        mode: ``PGT.CACHE``.
        momentum: ``PGT.CACHE_MOMENTUM``.
        head: a cache in the head, on each pathway's feature maps (``PGT.HEAD``).
        keep_graph: ``PGT.TRUNCATE_GRAD`` (True: gradients cross steps).
        tpool_size: per pathway, the head's temporal bins of a whole-clip evaluation
            (``PGT.TPOOL_SIZE``).
        roi_window: per pathway, ``(start, end, frames)``: the last step's frames in the long
            clip, which a detection head (``ResNetRoIHead``) pools on a whole-clip forward in
            eval mode (see :class:`BinsState`); unused by other heads.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise TypeError("attach the PGT caches before wrapping the model in DDP")
    if getattr(model, "pgt_states", None) is not None:
        return model
    states: list = []

    def make(p: int, drop: bool) -> CacheState:
        return CacheState(_per_pathway(overlap, p), mode, momentum, keep_graph, drop)

    head_module = getattr(model, "head", None)
    for name, m in model.named_modules():
        p = _pathway_of(name)
        if isinstance(m, ResNetBasicStem) and m.temporal_kernel > 1:
            m.pgt_state = make(p, drop=True)
        elif isinstance(m, (ResBlock, RegNetBottleneck)):
            m.pgt_state = make(p, drop=True)
        elif isinstance(m, TemporalPool) and head_module is not None:
            if not any(m is h for h in head_module.modules()):
                continue
            window = None
            if isinstance(head_module, ResNetRoIHead) and roi_window is not None:
                window = tuple(roi_window[min(p, len(roi_window) - 1)])
            m.pgt_bins = BinsState(_per_pathway(tpool_size, p), window)
            m.register_forward_pre_hook(_bins_pre_hook)
            states.append(m.pgt_bins)
            if not head:
                continue
            m = _head_input(head_module, m, p)
            m.pgt_state = make(p, drop=False)
        elif isinstance(m, FuseFastToSlow):
            lateral = m.relu or m.bn or m.conv_f2s
            lateral.pgt_trim = m.pgt_trim = TrimState(_per_pathway(overlap, 0))
            m.register_forward_pre_hook(_fuse_pre_hook)
            lateral.register_forward_hook(_lateral_post_hook)
            states.append(m.pgt_trim)
            continue
        else:
            continue
        if hasattr(m, "pgt_state"):
            m.register_forward_pre_hook(_pre_hook)
            m.register_forward_hook(_post_hook)
            states.append(m.pgt_state)
    for chain in _block_sequences(model):
        for a, b in zip(chain, chain[1:]):
            relu = _final_relu(a)
            if hasattr(a, "pgt_state") and hasattr(b, "pgt_state") and relu is not None:
                a.pgt_state.successor = b.pgt_state
                relu.pgt_owner = a.pgt_state
                relu.register_forward_pre_hook(_final_relu_pre_hook)
    # A plain list attribute: not a submodule, buffer or parameter.
    model.pgt_states = states
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (or the model)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def cache_states(model: nn.Module) -> list:
    """The PGT states attached to ``model`` (empty for a model without caches)."""
    return list(getattr(unwrap(model), "pgt_states", None) or [])


def has_caches(model: nn.Module) -> bool:
    return bool(cache_states(model))


def set_step(model: nn.Module, step: Optional[int]) -> None:
    """Tell every cache of ``model`` the current step (``None``: whole-clip forward). Step 0
    and ``None`` clear the caches."""
    for state in cache_states(model):
        state.step = step
        if step is None or step == 0:
            if isinstance(state, CacheState):
                state.clear()
