"""Global context block (GCNet).

Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation
Networks and Beyond", ICCVW 2019. https://arxiv.org/abs/1904.11492

A query-independent non-local block: one context vector per image, pooled
with softmax attention weights over positions (a 1x1 conv C -> 1), passes a
bottleneck transform 1x1 conv C -> C/r -> LayerNorm -> ReLU -> 1x1 conv -> C
and is added to every position: ``x + transform(sum_j softmax_j(W_k x_j) x_j)``.
The paper's configuration: r = 16, fusion by addition only.

Built on timm's ``GlobalContext`` with ``use_attn=True, fuse_add=True,
fuse_scale=False`` (timm's 'gca'), keeping its parameter names
(``conv_attn``, ``mlp_add.fc1/norm/fc2``) so timm's weights load; timm's own
models use r = 8 (its default), so pass ``rd_ratio=1/8`` for those. The
hidden width is round(C/r), but at least min(C, 4): the paper never goes
below C = 256, and a LayerNorm over fewer channels degenerates (over one it
outputs a constant), which matters only for the tiny test networks. The
softmax runs in float32.

Initialisation: ``conv_attn`` Kaiming-normal (fan-in), as timm and the
authors' code. timm zeroes the weight of the last conv of the transform; the
authors' code zeroes its weight and bias, and so does this module, so a fresh
block adds exactly nothing. timm's LayerNorm eps is 1e-6 (the authors' code:
1e-5). The bias of ``conv_attn`` shifts every logit equally, so the softmax
cancels it and its gradient is zero up to rounding; it is kept so weights load.
"""
from __future__ import annotations

from timm.layers import GlobalContext
from torch import Tensor, nn

from .base import AttentionModule, check_fraction, check_positive_int, softmax_fp32
from .registry import register_attention

__all__ = ["GlobalContextBlock"]


@register_attention(
    "gc",
    family="spatial",
    title="GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
    year=2019,
    paper_url="https://arxiv.org/abs/1904.11492",
    placement="block",
    map_kind="spatial",
)
class GlobalContextBlock(AttentionModule, GlobalContext):
    """x + transform(attention-pooled context); ``attention_map`` is the pooling weights (B, 1, H, W)."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_channels: int | None = None) -> None:
        check_positive_int("gc", "channels", channels)
        check_fraction("gc", "rd_ratio", rd_ratio)
        if rd_channels is None:
            # A LayerNorm over one channel outputs only its bias (over two, only a sign), which
            # would make the transform constant; at r = 16 the floor changes nothing from C = 56 up.
            rd_channels = max(int(channels * rd_ratio + 0.5), min(channels, 4))
        check_positive_int("gc", "rd_channels", rd_channels)
        super().__init__(
            channels, use_attn=True, fuse_add=True, fuse_scale=False, rd_ratio=rd_ratio, rd_channels=rd_channels
        )
        self.channels = channels

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.zeros_(self.mlp_add.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, c, h, w = x.shape
        weights = softmax_fp32(self.conv_attn(x).reshape(b, 1, h * w), dim=-1)
        self._record(weights.reshape(b, 1, h, w))
        context = (x.reshape(b, c, h * w) @ weights.transpose(1, 2)).reshape(b, c, 1, 1)
        return x + self.mlp_add(context)
