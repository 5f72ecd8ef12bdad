"""Global second-order pooling channel attention (GSoP-Net1).

Gao, Xie, Wang and Li, "Global Second-order Pooling Convolutional Networks",
CVPR 2019. https://arxiv.org/abs/1811.12006

ReLU -> 1x1 conv to d = 128 channels -> BN -> ReLU -> channel covariance
matrix (d x d, centred, divided by the number of positions) -> BN over rows ->
row-wise convolution (each row of the covariance mapped to 4 features by a
grouped (d x 1) conv) -> 1x1 conv to C -> sigmoid -> channel-wise scale, as in
the authors' code. timm has no GSoP, so this one is ours. The covariance is
formed in float32, also under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["GSoP", "covariance"]


def covariance(z: Tensor) -> Tensor:
    """Channel covariance of (B, d, H, W) over positions, (B, d, d), in float32 (biased: divided by HW)."""
    z = z.flatten(2).float()
    z = z - z.mean(-1, keepdim=True)
    with torch.autocast(z.device.type, enabled=False):
        return z @ z.transpose(1, 2) / z.shape[-1]


@register_attention(
    "gsop",
    family="channel",
    title="Global Second-order Pooling Convolutional Networks",
    year=2019,
    paper_url="https://arxiv.org/abs/1811.12006",
    placement="block",
)
class GSoP(AttentionModule, nn.Module):
    """Channel gate from second-order statistics; ``attention_map`` is (B, C, 1, 1)."""

    def __init__(self, channels: int, rd_channels: int = 128, row_features: int = 4) -> None:
        super().__init__()
        self.channels = check_positive_int("gsop", "channels", channels)
        d = check_positive_int("gsop", "rd_channels", rd_channels)
        check_positive_int("gsop", "row_features", row_features)
        self.reduce = nn.Conv2d(channels, d, 1, bias=True)
        self.bn = nn.BatchNorm2d(d)
        self.row_bn = nn.BatchNorm2d(d)
        self.row_conv = nn.Conv2d(d, row_features * d, kernel_size=(d, 1), groups=d, bias=True)
        self.fc = nn.Conv2d(row_features * d, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        z = F.relu(self.bn(self.reduce(F.relu(x))))
        cov = self.row_bn(covariance(z).unsqueeze(-1))  # (B, d rows, d, 1)
        gate = torch.sigmoid(self.fc(self.row_conv(cov)))
        self._record(gate)
        return x * gate.to(x.dtype)
