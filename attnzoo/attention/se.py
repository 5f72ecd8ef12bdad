"""Squeeze-and-Excitation (SE).

Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
https://arxiv.org/abs/1709.01507

GAP -> FC (C/r) -> ReLU -> FC (C) -> sigmoid -> channel-wise scale, with
reduction r = 16. Built on timm's ``SEModule`` (same parameter names, so timm's
``seresnet`` weights load), with the hidden width exactly round(C/r) as in the
paper rather than rounded to a multiple of 8.
"""
from __future__ import annotations

from timm.layers import SEModule
from torch import Tensor

from .base import AttentionModule, check_fraction, check_positive_int
from .registry import register_attention

__all__ = ["SqueezeExcite"]


@register_attention(
    "se",
    family="channel",
    title="Squeeze-and-Excitation Networks",
    year=2018,
    paper_url="https://arxiv.org/abs/1709.01507",
    placement="block",
    map_kind="channel",
)
class SqueezeExcite(AttentionModule, SEModule):
    """Channel gate ``sigmoid(W2 relu(W1 GAP(x)))``; ``attention_map`` is (B, C, 1, 1)."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_channels: int | None = None) -> None:
        check_positive_int("se", "channels", channels)
        check_fraction("se", "rd_ratio", rd_ratio)
        if rd_channels is not None:
            check_positive_int("se", "rd_channels", rd_channels)
        super().__init__(channels, rd_ratio=rd_ratio, rd_channels=rd_channels, rd_divisor=1)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        gate = self.gate(self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True))))))
        self._record(gate)
        return x * gate
