"""Conditionally parameterised convolution (CondConv).

Yang, Bender, Le and Ngiam, "CondConv: Conditionally Parameterized
Convolutions for Efficient Inference", NeurIPS 2019.
https://arxiv.org/abs/1904.04971

Each example gets its own kernel W(x) = sum_e r_e(x) W_e over E experts
(E = 4 or 8; default 4), with routing r(x) = sigmoid(FC(GAP(x))). The experts
and the per-example grouped convolution are timm's ``CondConv2d``; the
routing function is the paper's, which timm keeps inside its EfficientNet
blocks rather than the layer. Each CondConv here routes from its own input, as
the paper's layer does; the authors' EfficientNet-CondConv code (and timm's
``CondConvResidual``) computes one routing per block, from the block's input,
and shares it among the block's three convolutions.

Where it goes: the paper uses CondConv in the later layers of a network (its
EfficientNet-CondConv, as timm builds it, has it in every convolution of the
blocks of the last three of seven stages); attnzoo's ResNets replace every
convolution of the last stage's blocks, shortcut projection included
(attnzoo/backbones/resnet.py).
"""
from __future__ import annotations

import torch
from timm.layers import CondConv2d
from torch import Tensor, nn

from .base import AttentionModule, check_conv_args, check_positive_int
from .registry import register_attention

__all__ = ["CondConv"]


@register_attention(
    "condconv",
    family="branch",
    title="CondConv: Conditionally Parameterized Convolutions for Efficient Inference",
    year=2019,
    paper_url="https://arxiv.org/abs/1904.04971",
    placement="conv",
    map_kind="routing",
)
class CondConv(AttentionModule, nn.Module):
    """Drop-in for ``nn.Conv2d``; ``attention_map`` is the routing weights (B, E)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = False,
        num_experts: int = 4,
    ) -> None:
        super().__init__()
        out_channels = check_conv_args("condconv", in_channels, out_channels, kernel_size, stride, groups)
        check_positive_int("condconv", "dilation", dilation)
        check_positive_int("condconv", "num_experts", num_experts)
        self.in_channels, self.out_channels, self.num_experts = in_channels, out_channels, num_experts
        self.routing = nn.Linear(in_channels, num_experts)
        self.conv = CondConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation,
            groups=groups,
            bias=bias,
            num_experts=num_experts,
        )

    def routing_weights(self, x: Tensor) -> Tensor:
        """sigmoid(FC(GAP(x))), shape (B, E)."""
        return torch.sigmoid(self.routing(x.mean((2, 3))))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.in_channels)
        weights = self.routing_weights(x)
        self._record(weights)
        return self.conv(x, weights)
