"""Style-based recalibration module (SRM).

Lee, Kim and Nam, "SRM: A Style-based Recalibration Module for Convolutional
Neural Networks", ICCV 2019. https://arxiv.org/abs/1903.10829

Style pooling (each channel's mean and standard deviation over positions) ->
channel-wise fully connected layer (2 weights per channel, no bias, starting
at zero) -> BN -> sigmoid -> channel-wise scale. 4 parameters per channel.
timm has no SRM, so this one is ours.

The standard deviation is the unbiased one (divided by HW - 1) with no eps, as
in the authors' code (``x.view(N, C, -1).std(dim=2)``); the paper's equation
divides by HW. A constant channel has std 0 and gets a zero gradient through
it. On a 1 x 1 map, where the unbiased std is undefined (the authors' code
gives NaN), the std is taken as 0: one value has no spread.

The statistics are taken in float32 (float64 stays float64), also under
autocast, and cast to the parameters' dtype before the BN.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, at_least_fp32, check_positive_int
from .registry import register_attention

__all__ = ["SRM", "style_pool"]


def style_pool(x: Tensor) -> Tensor:
    """Per-channel (mean, unbiased std) of (B, C, H, W), shape (B, C, 2), in float32 (float64 for float64 input)."""
    flat = at_least_fp32(x.flatten(2))
    # torch.std gives a zero gradient where the std is 0 (sqrt(var) would give NaN).
    std, mean = torch.std_mean(flat, dim=-1, correction=1 if flat.shape[-1] > 1 else 0)
    return torch.stack([mean, std], dim=-1)


@register_attention(
    "srm",
    family="channel",
    title="SRM: A Style-based Recalibration Module for Convolutional Neural Networks",
    year=2019,
    paper_url="https://arxiv.org/abs/1903.10829",
    placement="block",
    map_kind="channel",
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
        z = (style_pool(x) * self.cfc).sum(-1).to(self.bn.weight.dtype)
        gate = torch.sigmoid(self.bn(z[..., None, None]))
        self._record(gate)
        return x * gate.to(x.dtype)
