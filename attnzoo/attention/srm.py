"""Style-based recalibration module (SRM).

Lee, Kim and Nam, "SRM: A Style-based Recalibration Module for Convolutional
Neural Networks", ICCV 2019. https://arxiv.org/abs/1903.10829

Style pooling (each channel's mean and standard deviation over positions,
sigma = sqrt(var + eps) with the biased variance of the paper's equation) ->
channel-wise fully connected layer (2 weights per channel, no bias, starting
at zero) -> BN -> sigmoid -> channel-wise scale. 4 parameters per channel.
timm has no SRM, so this one is ours; the statistics are taken in float32.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["SRM", "style_pool"]


def style_pool(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-channel (mean, std) of (B, C, H, W), shape (B, C, 2), in float32."""
    flat = x.flatten(2).float()
    var, mean = torch.var_mean(flat, dim=-1, correction=0)
    return torch.stack([mean, (var + eps).sqrt()], dim=-1)


@register_attention(
    "srm",
    family="channel",
    title="SRM: A Style-based Recalibration Module for Convolutional Neural Networks",
    year=2019,
    paper_url="https://arxiv.org/abs/1903.10829",
    placement="block",
)
class SRM(AttentionModule, nn.Module):
    """Channel gate from style statistics; ``attention_map`` is (B, C, 1, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_positive_int("srm", "channels", channels)
        self.cfc = nn.Parameter(torch.zeros(channels, 2))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        z = (style_pool(x) * self.cfc.float()).sum(-1)[..., None, None]
        gate = torch.sigmoid(self.bn(z))
        self._record(gate)
        return x * gate.to(x.dtype)
