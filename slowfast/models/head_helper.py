"""Classification heads of the ResNet family.

``ResNetBasicHead`` pools each pathway (spatially, then temporally, with fixed kernels and stride
1), concatenates the pathways' channels and applies ``projection`` (a linear layer) at every
remaining position. In training it returns the logits (the pooled map is 1x1x1 when the input
has the training size). In evaluation it is fully convolutional, as in PySlowFast: the
activation is applied at every position and the probabilities are averaged.

The temporal pooling of each pathway is a :class:`TemporalPool` module (``pathway{p}_tpool``), so
that a wrapper can find it by type and change how time is pooled without touching the head.
"""

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

HEAD_ACTS = ("softmax", "sigmoid", "none")
POOL_TYPES = ("avg", "max")


def _pool3d(mode: str, kernel: Sequence[int]) -> nn.Module:
    if mode == "avg":
        return nn.AvgPool3d(list(kernel), stride=1)
    if mode == "max":
        return nn.MaxPool3d(list(kernel), stride=1)
    raise ValueError(f"MODEL.FINAL_POOL entries must be one of {POOL_TYPES}, got {mode!r}")


class TemporalPool(nn.Module):
    """Pools time with a window of ``kernel_t`` frames and stride 1 (``None``: all frames).

    ``mode`` is "avg" or "max". Input and output are (N, C, T, H, W). Setting ``bins`` to an
    integer switches to adaptive pooling into that many temporal bins, whatever the number of
    frames (a wrapper uses it to evaluate long clips; the module has no parameters, so this
    changes no state-dict key); ``None`` restores the fixed window.
    """

    def __init__(self, kernel_t: Optional[int], mode: str = "avg") -> None:
        super().__init__()
        if mode not in POOL_TYPES:
            raise ValueError(f"MODEL.FINAL_POOL entries must be one of {POOL_TYPES}, got {mode!r}")
        self.kernel_t = kernel_t
        self.mode = mode
        self.bins: Optional[int] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bins is not None:
            size = (int(self.bins), None, None)
            if self.mode == "avg":
                return nn.functional.adaptive_avg_pool3d(x, size)
            return nn.functional.adaptive_max_pool3d(x, size)
        kernel = x.shape[2] if self.kernel_t is None else self.kernel_t
        if self.mode == "avg":
            return nn.functional.avg_pool3d(x, [kernel, 1, 1], stride=1)
        return nn.functional.max_pool3d(x, [kernel, 1, 1], stride=1)

    def extra_repr(self) -> str:
        return f"kernel_t={self.kernel_t}, mode={self.mode}, bins={self.bins}"


def make_activation(act_func: str) -> Optional[nn.Module]:
    """The head's evaluation activation for ``MODEL.HEAD_ACT`` (``None`` for "none")."""
    if act_func == "softmax":
        return nn.Softmax(dim=4)
    if act_func == "sigmoid":
        return nn.Sigmoid()
    if act_func == "none":
        return None
    raise ValueError(f"MODEL.HEAD_ACT must be one of {HEAD_ACTS}, got {act_func!r}")


class ResNetBasicHead(nn.Module):
    """Pooling, dropout, linear projection; fully convolutional in evaluation.

    Args:
        dim_in: channels of each pathway.
        num_classes: outputs.
        pool_size: per pathway, [T, H, W] pooling kernel (the training feature-map size), or
            ``None`` to pool the whole map.
        pool_type: [spatial, temporal] pooling, "avg" or "max" each (``MODEL.FINAL_POOL``).
        dropout_rate: dropout before the projection (none when 0).
        act_func: "softmax", "sigmoid" or "none", applied per position in evaluation.
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        num_classes: int,
        pool_size: Sequence[Optional[Sequence[int]]],
        pool_type: Sequence[str] = ("avg", "avg"),
        dropout_rate: float = 0.0,
        act_func: str = "softmax",
    ) -> None:
        super().__init__()
        if len(pool_size) != len(dim_in):
            raise ValueError(
                f"ResNetBasicHead: {len(dim_in)} pathway(s) in dim_in but {len(pool_size)} "
                "pool sizes"
            )
        if len(pool_type) != 2:
            raise ValueError(f"MODEL.FINAL_POOL must be [spatial, temporal], got {pool_type}")
        self.num_pathways = len(dim_in)
        for p, size in enumerate(pool_size):
            if size is None:
                spatial = (
                    nn.AdaptiveAvgPool3d((None, 1, 1))
                    if pool_type[0] == "avg"
                    else nn.AdaptiveMaxPool3d((None, 1, 1))
                )
                kernel_t = None
            else:
                spatial = _pool3d(pool_type[0], [1, size[1], size[2]])
                kernel_t = int(size[0])
            self.add_module(f"pathway{p}_spool", spatial)
            self.add_module(f"pathway{p}_tpool", TemporalPool(kernel_t, pool_type[1]))
        if dropout_rate > 0.0:
            self.dropout = nn.Dropout(dropout_rate)
        else:
            self.dropout = None
        self.projection = nn.Linear(sum(dim_in), num_classes, bias=True)
        self.act = make_activation(act_func)

    def pool(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """Pool each pathway and concatenate: (N, sum(C), T', H', W')."""
        pooled = []
        for p, x in enumerate(inputs):
            x = self._modules[f"pathway{p}_spool"](x)
            pooled.append(self._modules[f"pathway{p}_tpool"](x))
        return torch.cat(pooled, 1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout and projection at every position of the pooled map, then (in evaluation)
        the activation per position averaged over positions. Returns (N, num_classes).

        Raises:
            ValueError: in training, when the pooled map has more than one position.
        """
        if self.training and x.shape[2:].numel() != 1:
            raise ValueError(
                f"ResNetBasicHead: in training the pooled features must be 1x1x1, got "
                f"{tuple(x.shape[2:])}; the training clip must have DATA.NUM_FRAMES frames of "
                "DATA.TRAIN_CROP_SIZE pixels (larger clips are for evaluation)"
            )
        x = x.permute(0, 2, 3, 4, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.projection(x)
        if not self.training:
            if self.act is not None:
                x = self.act(x)
            x = x.mean([1, 2, 3])
        return x.reshape(x.shape[0], -1)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != self.num_pathways:
            raise ValueError(f"expected {self.num_pathways} pathway input(s), got {len(inputs)}")
        return self.classify(self.pool(inputs))


class ResNetRoIHead(nn.Module):
    """Detection head (AVA): per pathway, temporal average pooling of the whole clip
    (``s{p}_tpool``), RoIAlign of each box (``s{p}_roi``) and spatial max pooling of the
    aligned grid (``s{p}_spool``); then dropout, ``projection`` and the activation (in train and
    eval mode, as in PySlowFast).

    Args:
        dim_in: channels of each pathway.
        num_classes: outputs.
        pool_size: per pathway, [T, 1, 1]: the temporal pooling window (the clip's frames).
        resolution: per pathway, the RoIAlign output [h, w] (``DETECTION.ROI_XFORM_RESOLUTION``).
        scale_factor: per pathway, the feature stride (``DETECTION.SPATIAL_SCALE_FACTOR``).
        dropout_rate: dropout before the projection.
        act_func: "softmax", "sigmoid" or "none".
        aligned: RoIAlign with the half-pixel offset (``DETECTION.ALIGNED``).

    ``forward(inputs, bboxes)`` takes ``bboxes`` (K, 5) as [clip index, x1, y1, x2, y2] in input
    pixels and returns (K, num_classes).
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        num_classes: int,
        pool_size: Sequence[Sequence[int]],
        resolution: Sequence[Sequence[int]],
        scale_factor: Sequence[float],
        dropout_rate: float = 0.0,
        act_func: str = "softmax",
        aligned: bool = True,
    ) -> None:
        super().__init__()
        from slowfast.models.roi_align import ROIAlign

        if not len(dim_in) == len(pool_size) == len(resolution) == len(scale_factor):
            raise ValueError(
                "ResNetRoIHead: dim_in, pool_size, resolution and scale_factor need one entry "
                "per pathway"
            )
        self.num_pathways = len(dim_in)
        for p in range(self.num_pathways):
            self.add_module(f"s{p}_tpool", TemporalPool(int(pool_size[p][0]), "avg"))
            roi = ROIAlign(
                resolution[p],
                spatial_scale=1.0 / scale_factor[p],
                sampling_ratio=0,
                aligned=aligned,
            )
            self.add_module(f"s{p}_roi", roi)
            self.add_module(f"s{p}_spool", nn.MaxPool2d(list(resolution[p]), stride=1))
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0.0 else None
        self.projection = nn.Linear(sum(dim_in), num_classes, bias=True)
        self.act = make_activation(act_func)

    def forward(self, inputs: List[torch.Tensor], bboxes: torch.Tensor) -> torch.Tensor:
        if len(inputs) != self.num_pathways:
            raise ValueError(f"expected {self.num_pathways} pathway input(s), got {len(inputs)}")
        pooled = []
        for p, x in enumerate(inputs):
            x = self._modules[f"s{p}_tpool"](x)
            if x.shape[2] != 1:
                raise ValueError(
                    f"ResNetRoIHead: pathway {p} has {x.shape[2]} frames left after temporal "
                    "pooling; the clip must have the frames the head was built for"
                )
            x = self._modules[f"s{p}_roi"](x.squeeze(2), bboxes)
            pooled.append(self._modules[f"s{p}_spool"](x))
        x = torch.cat(pooled, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.projection(x.reshape(x.shape[0], -1))
        if self.act is not None:
            # Softmax over classes: the projection output is (K, classes) here.
            x = torch.softmax(x, dim=1) if isinstance(self.act, nn.Softmax) else self.act(x)
        return x
