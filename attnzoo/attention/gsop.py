"""Global second-order pooling channel attention (GSoP-Net1).

Gao, Xie, Wang and Li, "Global Second-order Pooling Convolutional Networks",
CVPR 2019. https://arxiv.org/abs/1811.12006

ReLU -> 1x1 conv to d = 128 channels (stride ``reduce_stride``, default 1) ->
BN -> ReLU -> channel covariance matrix (d x d, centred, divided by the number
of positions) -> BN over rows -> row-wise convolution (each row of the
covariance mapped to 4 features by a grouped (d x 1) conv) -> 1x1 conv to C ->
sigmoid -> channel-wise scale, as in the authors' code. timm has no GSoP, so
this one is ours.

The authors' ResNet gives the reduction conv stride 2 in the blocks whose
width (``planes``, before the bottleneck expansion) is at most 64, that is in
the first stage, where the maps are largest, and stride 1 elsewhere; a
backbone reproduces that by passing ``reduce_stride=2`` there. The stride only
thins the positions the covariance is estimated from; the gate still scales
every position.

The covariance is formed in float32 (float64 stays float64), also under
autocast, and cast to the parameters' dtype before the row BN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, at_least_fp32, check_positive_int
from .registry import register_attention

__all__ = ["GSoP", "covariance"]


def covariance(z: Tensor) -> Tensor:
    """Channel covariance of (B, d, H, W) over positions, (B, d, d), biased (divided by HW).

    Computed in float32, or float64 for float64 input.
    """
    z = at_least_fp32(z.flatten(2))
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
    map_kind="channel",
)
class GSoP(AttentionModule, nn.Module):
    """Channel gate from second-order statistics; ``attention_map`` is (B, C, 1, 1)."""

    def __init__(self, channels: int, rd_channels: int = 128, row_features: int = 4, reduce_stride: int = 1) -> None:
        super().__init__()
        self.channels = check_positive_int("gsop", "channels", channels)
        d = check_positive_int("gsop", "rd_channels", rd_channels)
        check_positive_int("gsop", "row_features", row_features)
        check_positive_int("gsop", "reduce_stride", reduce_stride)
        self.reduce = nn.Conv2d(channels, d, 1, stride=reduce_stride, bias=True)
        self.bn = nn.BatchNorm2d(d)
        self.row_bn = nn.BatchNorm2d(d)
        self.row_conv = nn.Conv2d(d, row_features * d, kernel_size=(d, 1), groups=d, bias=True)
        self.fc = nn.Conv2d(row_features * d, channels, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        z = F.relu(self.bn(self.reduce(F.relu(x))))
        cov = covariance(z).to(self.row_bn.weight.dtype).unsqueeze(-1)  # (B, d rows, d, 1)
        gate = torch.sigmoid(self.fc(self.row_conv(self.row_bn(cov))))
        self._record(gate)
        return x * gate.to(x.dtype)
