"""Multi-head self-attention over the positions of a feature map.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
https://arxiv.org/abs/1706.03762

Every position attends to every other: queries, keys and values are 1x1
convolutions, the attention is ``scaled_dot_product_attention`` (fused,
memory-efficient kernels where available), heads are merged by a 1x1 conv.
Plain self-attention ignores position, so a fixed 2-D sine-cosine encoding
(timm's) is added to the input of the queries and keys by default; it is
computed for the input's H x W, so any size works. As a stage block the
result passes through a BN whose scale starts at zero and is added to the
input: a freshly inserted block is the identity.
"""
from __future__ import annotations

import torch.nn.functional as F
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from torch import Tensor, nn

from .base import AttentionModule, check_choice, check_positive_int, is_recording, softmax_fp32
from .registry import register_attention

__all__ = ["SelfAttention2d"]


@register_attention(
    "self",
    family="generic",
    title="Attention Is All You Need (multi-head self-attention)",
    year=2017,
    paper_url="https://arxiv.org/abs/1706.03762",
    placement="stage",
    map_kind="pairwise",
)
class SelfAttention2d(AttentionModule, nn.Module):
    """x + BN(proj(MHSA(x))).

    ``attention_map`` is the head-averaged weights (B, HW, H, W): query q (row-major) over the positions.
    """

    def __init__(self, channels: int, num_heads: int = 8, pos_embed: str | None = "sincos", qkv_bias: bool = False):
        super().__init__()
        self.channels = check_positive_int("self", "channels", channels)
        self.num_heads = check_positive_int("self", "num_heads", num_heads)
        if channels % num_heads:
            raise ValueError(f"attention 'self': num_heads={num_heads} must divide channels={channels}")
        self.pos_embed = check_choice("self", "pos_embed", pos_embed, ["sincos", None])
        if pos_embed == "sincos" and channels % 4:
            raise ValueError(f"attention 'self': the 2-D sincos encoding needs channels divisible by 4, got {channels}")
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        if self.pos_embed == "sincos":
            # The projection is linear, so encoding the input of q and k equals
            # adding the projected encoding, which is computed once per H x W.
            pos = build_sincos2d_pos_embed((h, w), dim=c, device=x.device, dtype=x.dtype).t().reshape(1, c, h, w)
            q_pos, k_pos = F.conv2d(pos, self.qkv.weight[: 2 * c].to(q.dtype)).chunk(2, dim=1)
            q, k = q + q_pos, k + k_pos
        # (B, heads, HW, d) with unit stride on d: the fused CPU/CUDA kernels require it.
        heads = lambda t: t.reshape(b, self.num_heads, c // self.num_heads, h * w).transpose(-1, -2).contiguous()  # noqa: E731
        q, k, v = heads(q), heads(k), heads(v)
        out = F.scaled_dot_product_attention(q, k, v)
        self._record(self.attention_weights(q, k).unflatten(-1, (h, w)) if is_recording() else None)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.norm(self.proj(out))

    def attention_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) averaged over heads, (B, HW, HW); formed only for drawing."""
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        return softmax_fp32(scores, dim=-1).mean(1)
