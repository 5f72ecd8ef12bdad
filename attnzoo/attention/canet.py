"""Concatenated attention (CANet's attention block).

"Concatenated Attention Neural Network for Image Restoration", arXiv
2006.11162, 2020. https://arxiv.org/abs/2006.11162

The paper applies pixel-wise and channel-wise attention in each block and
joins features by concatenation with a 1x1 "feature selection" conv. Its
text does not spell out the block, and no code was published, so this is a
reconstruction from those two named parts (stated here so nobody takes it
for the authors' layer):
- pixel attention (as in PAN, Zhao et al. 2020): x * sigmoid(conv1x1(x)),
  one weight per channel and position;
- channel attention (as in RCAN, Zhang et al. 2018): x * sigmoid(
  conv1x1(ReLU(conv1x1(GAP(x))))) with reduction 16;
- both branches in parallel, concatenated (2C) and fused back to C by a 1x1
  conv.
The network-level stacking (blocks joined by concatenation) belongs to the
restoration backbone.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, reduced_channels
from .registry import register_attention

__all__ = ["ConcatenatedAttention"]


@register_attention(
    "canet",
    family="channel+spatial",
    title="Concatenated Attention Neural Network for Image Restoration",
    year=2020,
    paper_url="https://arxiv.org/abs/2006.11162",
    placement="block",
)
class ConcatenatedAttention(AttentionModule, nn.Module):
    """fuse([x * pixel(x); x * channel(x)]); ``attention_map`` is the pixel map (B, C, H, W)."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16) -> None:
        super().__init__()
        self.channels = check_positive_int("canet", "channels", channels)
        hidden = reduced_channels("canet", channels, rd_ratio)
        self.pixel = nn.Conv2d(channels, channels, 1)
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        pixel_gate = torch.sigmoid(self.pixel(x))
        channel_gate = torch.sigmoid(self.channel(x))
        self._record(pixel_gate)
        return self.fuse(torch.cat([x * pixel_gate, x * channel_gate], dim=1))
