"""Gather-excite, parameter-free (GE-theta-minus).

Hu, Shen, Albanie, Sun and Vedaldi, "Gather-Excite: Exploiting Feature
Context in Convolutional Neural Networks", NeurIPS 2018.
https://arxiv.org/abs/1810.12348

``x * sigmoid(interpolate(gather(x)))``, with no learnable parameters:

- gather: per-channel average pooling of extent e. ``extent=0`` (the default)
  is the global extent, a global average pool whose (B, C, 1, 1) gate
  broadcasts over the map; for e in {2, 4, 8} the pooling window is
  (2e - 1) x (2e - 1) with stride e, padded by e - 1 with the padding left
  out of the average, so the gathered map is about H/e x W/e.
- excite: nearest-neighbour interpolation back to the input's H x W, then
  sigmoid.

Built on timm's ``GatherExcite`` with ``extra_params=False, use_mlp=False``,
whose pooling is the one above; the forward pass is ours only to record the
gate. timm 1.0.31's ``create_attn('ge', ...)`` raises a TypeError because its
default ``use_mlp=True`` passes ``*dd`` where ``**dd`` is meant; with
``use_mlp=False`` that code is not reached. The paper's parametric variants
(GE-theta, GE-theta-plus: strided depthwise convolutions and an SE-like MLP)
are not provided.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import GatherExcite as TimmGatherExcite
from torch import Tensor

from .base import AttentionModule, check_choice, check_positive_int
from .registry import register_attention

__all__ = ["GatherExcite"]


@register_attention(
    "ge",
    family="spatial",
    title="Gather-Excite: Exploiting Feature Context in Convolutional Neural Networks",
    year=2018,
    paper_url="https://arxiv.org/abs/1810.12348",
    placement="block",
    map_kind="channel",
)
class GatherExcite(AttentionModule, TimmGatherExcite):
    """x * sigmoid(upsampled average pool); ``attention_map`` is the gate, (B, C, 1, 1) for the global
    extent, else (B, C, H, W).

    The registry gives ge the ``channel`` map kind, the default global extent's; a module of another
    extent says ``spatial`` through :attr:`map_kind`, and is drawn as such.
    """

    def __init__(self, channels: int, extent: int = 0) -> None:
        check_positive_int("ge", "channels", channels)
        if isinstance(extent, bool) or not isinstance(extent, int):
            raise ValueError(f"attention 'ge': extent must be one of [0, 2, 4, 8], got {extent!r}")
        check_choice("ge", "extent", extent, [0, 2, 4, 8])
        super().__init__(channels, extent=extent, extra_params=False, use_mlp=False)
        self.channels = channels

    @property
    def map_kind(self) -> str:
        """What ``attention_map`` is: a channel gate at the global extent, else a gate per channel and place."""
        return "channel" if self.extent == 0 else "spatial"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        if self.extent == 0:
            context = x.mean((2, 3), keepdim=True)
        else:
            context = F.avg_pool2d(x, self.gk, stride=self.gs, padding=self.gk // 2, count_include_pad=False)
            context = F.interpolate(context, size=x.shape[-2:], mode="nearest")
        gate = torch.sigmoid(context)
        self._record(gate)
        return x * gate
