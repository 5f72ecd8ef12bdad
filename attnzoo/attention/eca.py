"""Efficient Channel Attention (ECA).

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020. https://arxiv.org/abs/1910.03151

GAP -> 1-D convolution across channels (no bias) -> sigmoid -> scale. The
kernel size adapts to C: k = |log2(C) / gamma + b / gamma|, rounded up to odd
(at least 3), gamma = 2, b = 1. Built on timm's ``EcaModule``.
"""
from __future__ import annotations

from timm.layers import EcaModule
from torch import Tensor

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["EfficientChannelAttention"]


@register_attention(
    "eca",
    family="channel",
    title="ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
    year=2020,
    paper_url="https://arxiv.org/abs/1910.03151",
    placement="block",
    map_kind="channel",
)
class EfficientChannelAttention(AttentionModule, EcaModule):
    """Channel gate from a 1-D conv over pooled channels; ``attention_map`` is (B, C, 1, 1).

    ``kernel_size`` overrides the adaptive choice (it must be odd).
    """

    def __init__(self, channels: int, gamma: float = 2, beta: float = 1, kernel_size: int | None = None) -> None:
        check_positive_int("eca", "channels", channels)
        if not gamma > 0:
            raise ValueError(f"attention 'eca': gamma must be positive, got {gamma!r}")
        if kernel_size is not None:
            check_positive_int("eca", "kernel_size", kernel_size)
            if kernel_size % 2 == 0:
                raise ValueError(f"attention 'eca': kernel_size must be odd, got {kernel_size}")
            super().__init__(None, kernel_size=kernel_size)
        else:
            super().__init__(channels, gamma=gamma, beta=beta)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b = x.shape[0]
        gate = self.gate(self.conv(x.mean((2, 3)).view(b, 1, -1))).view(b, -1, 1, 1)
        self._record(gate)
        return x * gate
