"""Convolutional Block Attention Module (CBAM).

Woo, Park, Lee and Kweon, "CBAM: Convolutional Block Attention Module",
ECCV 2018. https://arxiv.org/abs/1807.06521

Channel attention, then spatial attention, applied in sequence:
- channel: a shared MLP (C -> C/16 -> C, ReLU) on the average- and max-pooled
  vectors, summed, sigmoid;
- spatial: [mean; max] over channels -> 7x7 conv + BN -> sigmoid.
Built on timm's ``CbamModule``; the MLP keeps its biases, as in the authors'
code (timm drops them by default).
"""
from __future__ import annotations

import torch
from timm.layers.cbam import CbamModule
from torch import Tensor

from .base import AttentionModule, check_fraction, check_positive_int
from .registry import register_attention

__all__ = ["CBAM"]


@register_attention(
    "cbam",
    family="channel+spatial",
    title="CBAM: Convolutional Block Attention Module",
    year=2018,
    paper_url="https://arxiv.org/abs/1807.06521",
    placement="block",
    map_kind="spatial",
)
class CBAM(AttentionModule, CbamModule):
    """Channel then spatial gating; ``attention_map`` is the spatial map (B, 1, H, W)."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, spatial_kernel_size: int = 7) -> None:
        check_positive_int("cbam", "channels", channels)
        check_fraction("cbam", "rd_ratio", rd_ratio)
        check_positive_int("cbam", "spatial_kernel_size", spatial_kernel_size)
        if spatial_kernel_size % 2 == 0:
            raise ValueError(f"attention 'cbam': spatial_kernel_size must be odd, got {spatial_kernel_size}")
        super().__init__(channels, rd_ratio=rd_ratio, spatial_kernel_size=spatial_kernel_size, mlp_bias=True)
        self.channels = channels

    def channel_gate(self, x: Tensor) -> Tensor:
        """sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))), shape (B, C, 1, 1)."""
        c = self.channel
        mlp = lambda v: c.fc2(c.act(c.fc1(v)))  # noqa: E731
        return c.gate(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))

    def spatial_gate(self, x: Tensor) -> Tensor:
        """sigmoid(conv7x7([mean_c(x); max_c(x)])), shape (B, 1, H, W)."""
        s = self.spatial
        return s.gate(s.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        x = x * self.channel_gate(x)
        gate = self.spatial_gate(x)
        self._record(gate)
        return x * gate
