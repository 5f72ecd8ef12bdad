"""Hard (local) attention pooling: keep the top-k items.

Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
Visual Attention", ICML 2015 ("hard" attention attends to a subset).
https://arxiv.org/abs/1502.03044

Each of N items gets a learned score (the same additive scorer as soft
attention); the k best-scoring items get weight 1, the rest 0, and the output
is the mean of the kept items. Selection is not differentiable, so the
scorer is trained with a straight-through estimator: the forward pass uses
the 0/1 mask, the backward pass the gradient of sigmoid(score). Cheaper than
soft attention at inference, at the risk of dropping a useful item.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_fraction, check_positive_int
from .registry import register_attention
from .soft_attention import additive_scorer

__all__ = ["HardAttentionPool"]


@register_attention(
    "hard",
    family="generic",
    title="Show, Attend and Tell: Neural Image Caption Generation with Visual Attention (hard attention)",
    year=2015,
    paper_url="https://arxiv.org/abs/1502.03044",
    placement="pool",
)
class HardAttentionPool(AttentionModule, nn.Module):
    """(B, N, D) -> (B, D) keeping exactly k items; ``attention_map`` is the 0/1 mask (B, N).

    Give either ``k`` (a count) or ``ratio`` (a fraction of N, rounded, at
    least 1); the default keeps half the items.
    """

    def __init__(self, channels: int, k: int | None = None, ratio: float | None = None, hidden: int | None = None):
        super().__init__()
        self.channels = check_positive_int("hard", "channels", channels)
        if k is not None and ratio is not None:
            raise ValueError(f"attention 'hard': give k or ratio, not both (got k={k!r}, ratio={ratio!r})")
        self.k = None if k is None else check_positive_int("hard", "k", k)
        self.ratio = None if k is not None else check_fraction("hard", "ratio", 0.5 if ratio is None else ratio)
        hidden = check_positive_int("hard", "hidden", channels if hidden is None else hidden)
        self.score = additive_scorer(channels, hidden)

    def num_kept(self, n: int) -> int:
        """How many of ``n`` items are kept."""
        if self.k is None:
            return max(1, round(self.ratio * n))
        if self.k > n:
            raise ValueError(f"attention 'hard': k={self.k} is more than the {n} items in the input")
        return self.k

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels, layout="(B, N, D)", channel_dim=2)
        k = self.num_kept(x.shape[1])
        scores = self.score(x).squeeze(-1).float()
        mask = torch.zeros_like(scores).scatter_(1, scores.topk(k, dim=1).indices, 1.0)
        surrogate = torch.sigmoid(scores)
        weights = mask + surrogate - surrogate.detach()  # value: mask; gradient: d sigmoid(score)
        self._record(mask)
        return ((weights.unsqueeze(-1) * x).sum(1) / k).to(x.dtype)
