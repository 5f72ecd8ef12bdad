"""Soft (global) attention pooling.

Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
Visual Attention", ICML 2015 (deterministic "soft" attention).
https://arxiv.org/abs/1502.03044

Each of N items gets a learned score (an additive scorer,
Linear -> tanh -> Linear); the weights are the softmax of the scores over the
items, in (0, 1) and summing to 1; the output is the weighted sum of the items.
Used to pool frames, regions or tokens into one vector.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, softmax_fp32
from .registry import register_attention

__all__ = ["SoftAttentionPool", "additive_scorer"]


def additive_scorer(channels: int, hidden: int) -> nn.Module:
    """score(x) = w^T tanh(W x + b) + c for items of ``channels`` features."""
    return nn.Sequential(nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, 1))


@register_attention(
    "soft",
    family="generic",
    title="Show, Attend and Tell: Neural Image Caption Generation with Visual Attention (soft attention)",
    year=2015,
    paper_url="https://arxiv.org/abs/1502.03044",
    placement="pool",
    map_kind="items",
)
class SoftAttentionPool(AttentionModule, nn.Module):
    """(B, N, D) -> (B, D); ``attention_map`` is the weights (B, N)."""

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        self.channels = check_positive_int("soft", "channels", channels)
        hidden = check_positive_int("soft", "hidden", channels if hidden is None else hidden)
        self.score = additive_scorer(channels, hidden)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels, layout="(B, N, D)", channel_dim=2)
        weights = softmax_fp32(self.score(x).squeeze(-1).float(), dim=1)
        self._record(weights)
        return (weights.unsqueeze(-1) * x).sum(1).to(x.dtype)
