"""Asymmetric pyramid non-local block (APNB, from ANN).

Zhu, Xu, Bai, Huang and Bai, "Asymmetric Non-local Neural Networks for
Semantic Segmentation", ICCV 2019. https://arxiv.org/abs/1908.07678

A non-local block whose keys and values are not all HW positions but S
anchors sampled by pyramid pooling: adaptive average pools of sizes
(1, 3, 6, 8), flattened and concatenated, S = 1 + 9 + 36 + 64 = 110. Queries
stay at every position, so the cost is O(HW * S), linear in HW.

As in the authors' code: queries and keys share one 1x1 conv + BN + ReLU
(to ``key_channels``, default C/2 as in the paper's 512 -> 256) and keys are
pooled after it; values are a 1x1 conv (to ``value_channels``, default C/2);
``softmax(Q K^T / sqrt(key_channels)) V`` (here with
``scaled_dot_product_attention``); then a 1x1 output conv back to C. The
value conv is applied after pooling rather than before: average pooling and a
1x1 conv commute exactly, and this way the conv runs on S positions, not HW.

Deviation: the paper fuses the block's output with its input by
concatenation -> 1x1 conv + BN + ReLU (-> dropout), which changes the
features even at initialisation. As a stage block that must start as the
identity, this one returns ``x + BN(out_conv(context))`` with the BN scale
initialised to zero (as the non-local block does). The convs followed by a BN
(query/key, output) have no bias: the BN supplies it (the authors' query/key
conv has one, which BN cancels).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, is_recording, softmax_fp32, tokens
from .registry import register_attention

__all__ = ["AsymmetricNonLocal", "pyramid_pool"]


def pyramid_pool(x: Tensor, sizes: Sequence[int]) -> Tensor:
    """(B, C, H, W) -> (B, C, sum(s * s)): adaptive average pools of each size, flattened and concatenated."""
    return torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in sizes], dim=-1)


@register_attention(
    "ann",
    family="spatial",
    title="Asymmetric Non-local Neural Networks for Semantic Segmentation",
    year=2019,
    paper_url="https://arxiv.org/abs/1908.07678",
    placement="stage",
    map_kind="pairwise",
)
class AsymmetricNonLocal(AttentionModule, nn.Module):
    """x + BN(conv(attention of every position over pyramid-pooled anchors)).

    ``attention_map`` is the weight each position's value gets, as a pairwise map (B, HW, H, W): an
    anchor's value is the average of the values it pools, so query q's weight on an anchor is spread
    evenly over that anchor's positions. Each query's weights sum to 1. :meth:`attention_weights` gives
    the weights over the anchors themselves.
    """

    def __init__(
        self,
        channels: int,
        key_channels: int | None = None,
        value_channels: int | None = None,
        pool_sizes: Sequence[int] = (1, 3, 6, 8),
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("ann", "channels", channels)
        key_channels = max(1, channels // 2) if key_channels is None else key_channels
        value_channels = max(1, channels // 2) if value_channels is None else value_channels
        check_positive_int("ann", "key_channels", key_channels)
        check_positive_int("ann", "value_channels", value_channels)
        if isinstance(pool_sizes, (str, bytes)) or not isinstance(pool_sizes, Sequence) or not pool_sizes:
            raise ValueError(
                f"attention 'ann': pool_sizes must be a non-empty sequence of positive integers, got {pool_sizes!r}"
            )
        self.pool_sizes = tuple(check_positive_int("ann", "pool_sizes entry", s) for s in pool_sizes)
        self.num_anchors = sum(s * s for s in self.pool_sizes)
        self.query_key = nn.Sequential(
            nn.Conv2d(channels, key_channels, 1, bias=False), nn.BatchNorm2d(key_channels), nn.ReLU(inplace=True)
        )
        self.value = nn.Conv2d(channels, value_channels, 1)
        self.proj = nn.Conv2d(value_channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, _, h, w = x.shape
        qk = self.query_key(x)
        q = tokens(qk)  # (B, HW, dk)
        k = pyramid_pool(qk, self.pool_sizes).transpose(1, 2).contiguous()  # (B, S, dk)
        v = tokens(self.value(pyramid_pool(x, self.pool_sizes).unsqueeze(-1)))  # (B, S, dv)
        # A head axis of 1: 4-D is the layout every SDPA backend and ONNX exporter accepts.
        context = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        self._record(self.position_weights(self.attention_weights(q, k), h, w) if is_recording() else None)
        context = context.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.norm(self.proj(context))

    @staticmethod
    def attention_weights(q: Tensor, k: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)), (B, HW, S), anchors in the order of ``pool_sizes``, each pooled grid
        row-major; formed only for drawing."""
        scores = (q.float() @ k.float().transpose(1, 2)) * q.shape[-1] ** -0.5
        return softmax_fp32(scores, dim=-1)

    def position_weights(self, anchor_weights: Tensor, h: int, w: int) -> Tensor:
        """Weights over the S anchors (B, HW, S) as weights over the H x W positions (B, HW, H, W)."""
        positions = torch.eye(h * w, dtype=anchor_weights.dtype, device=anchor_weights.device).view(-1, 1, h, w)
        shares = pyramid_pool(positions, self.pool_sizes)[:, 0]  # (HW, S): 1 / (anchor's area) inside it, else 0
        return (anchor_weights @ shares.T).unflatten(-1, (h, w))
