"""Hard (stochastic) attention pooling: sample k items, average them.

Xu et al., "Show, Attend and Tell: Neural Image Caption Generation with
Visual Attention", ICML 2015 (stochastic "hard" attention).
https://arxiv.org/abs/1502.03044

Each of N items gets a learned score s_n (the additive scorer of soft
attention), and p = softmax(s) is a distribution over the items. In training
the module samples k items from p without replacement and outputs their mean;
in eval it takes the k most probable items (for k = 1 the argmax, Xu et al.'s
test-time choice). ``attention_map`` is the 0/1 mask of the selected items.

- Sampling is Gumbel-top-k (Kool, van Hoof and Welling, "Stochastic Beams and
  Where to Find Them", ICML 2019): the k largest s_n + g_n, with g_n i.i.d.
  Gumbel(0, 1), are a draw of k items without replacement from p; for k = 1
  this is the Gumbel-max trick, one draw from p.
- Gradient: the forward value is exactly the mean of the sampled items; the
  backward pass takes the gradient of a continuous relaxation of the same
  draw (straight-through). For k = 1 the relaxation is the Gumbel-softmax
  softmax((s + g) / tau) (Jang, Gu and Poole, ICLR 2017; Maddison, Mnih and
  Teh, ICLR 2017); for k > 1 its extension to subsets, the sum of k softmaxes
  that each mask out the mass of the ones before (Xie and Ermon,
  "Reparameterizable Subset Sampling via Continuous Relaxations", IJCAI 2019).

Defaults and deviations:

- ``k = 1``: Xu et al. sample one location. ``k`` or ``ratio`` (a fraction of
  N, rounded, at least 1) keeps more; the output is then the mean of the k
  sampled items.
- ``tau = 1``, torch's ``gumbel_softmax`` default; lower values make the
  relaxation closer to the hard draw, with higher-variance gradients.
- Xu et al. train the scorer with a score-function (REINFORCE) estimator: the
  gradient of log p(sampled location) weighted by the caption log-likelihood,
  with a moving-average baseline and an entropy bonus, and with probability
  0.5 they replace the sample by the expectation (soft attention). That needs
  the loss as a reward and cannot live inside a module; the Gumbel
  straight-through estimator stands in for it (biased, lower variance).
- ``selection="topk"`` is a different, deterministic method kept as an
  option: the top k items by score in training as in eval, as the top-k node
  selection of gPool (Gao and Ji, "Graph U-Nets", ICML 2019); gPool gates the
  kept items by sigmoid(score) in the forward pass, here sigmoid(score) only
  gives the backward pass, a straight-through estimator (Bengio, Leonard and
  Courville, 2013, arXiv:1308.3432).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_choice, check_fraction, check_positive_int
from .registry import register_attention
from .soft_attention import additive_scorer

__all__ = ["HardAttentionPool"]

# Keeps log(1 - a) finite where the relaxed one-hot a reaches 1 (Xie and Ermon use the same bound), and the
# Gumbel noise -log(e) finite for an exponential draw e of 0.
_TINY = torch.finfo(torch.float32).tiny


def _top_k_mask(scores: Tensor, k: int) -> Tensor:
    """0/1 mask (B, N) of the k largest scores of each row."""
    return torch.zeros_like(scores).scatter_(1, scores.topk(k, dim=1).indices, 1.0)


def _relaxed_top_k(logits: Tensor, k: int, tau: float) -> Tensor:
    """Continuous k-hot relaxation of top-k over dim 1: k successive softmaxes, each masking the mass already taken."""
    khot = torch.zeros_like(logits)
    onehot = torch.zeros_like(logits)
    for _ in range(k):
        logits = logits + torch.log((1 - onehot).clamp_min(_TINY))
        onehot = torch.softmax(logits / tau, dim=1)
        khot = khot + onehot
    return khot


@register_attention(
    "hard",
    family="generic",
    title="Show, Attend and Tell: Neural Image Caption Generation with Visual Attention (hard attention)",
    year=2015,
    paper_url="https://arxiv.org/abs/1502.03044",
    placement="pool",
    map_kind="items",
)
class HardAttentionPool(AttentionModule, nn.Module):
    """(B, N, D) -> (B, D), the mean of k selected items; ``attention_map`` is the 0/1 mask (B, N).

    ``selection="sample"`` (default): k items drawn from softmax(score) in
    training, the k most probable in eval. ``selection="topk"``: the k
    best-scoring items in both modes.
    """

    def __init__(
        self,
        channels: int,
        k: int | None = None,
        ratio: float | None = None,
        hidden: int | None = None,
        tau: float = 1.0,
        selection: str = "sample",
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("hard", "channels", channels)
        if k is not None and ratio is not None:
            raise ValueError(f"attention 'hard': give k or ratio, not both (got k={k!r}, ratio={ratio!r})")
        if k is None and ratio is None:
            k = 1
        self.k = None if k is None else check_positive_int("hard", "k", k)
        self.ratio = None if ratio is None else check_fraction("hard", "ratio", ratio)
        hidden = check_positive_int("hard", "hidden", channels if hidden is None else hidden)
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f"attention 'hard': tau must be a positive number, got {tau!r}")
        self.tau = float(tau)
        self.selection = check_choice("hard", "selection", selection, ("sample", "topk"))
        self.score = additive_scorer(channels, hidden)

    def num_kept(self, n: int) -> int:
        """How many of ``n`` items are selected."""
        if self.k is None:
            return max(1, round(self.ratio * n))
        if self.k > n:
            raise ValueError(f"attention 'hard': k={self.k} is more than the {n} items in the input")
        return self.k

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels, layout="(B, N, D)", channel_dim=2)
        k = self.num_kept(x.shape[1])
        scores = self.score(x).squeeze(-1).float()
        if self.selection == "topk":
            mask = _top_k_mask(scores, k)
            surrogate = torch.sigmoid(scores)
        else:
            if self.training:
                # Gumbel(0, 1) noise (-log of Exp(1)): the top k of scores + noise are a draw from softmax(scores).
                scores = scores - torch.empty_like(scores).exponential_().clamp_min(_TINY).log()
            mask = _top_k_mask(scores, k)
            surrogate = _relaxed_top_k(scores, k, self.tau)
        # surrogate - surrogate.detach() is exactly zero: the value is the mask, the gradient the surrogate's.
        weights = mask + (surrogate - surrogate.detach())
        self._record(mask)
        return ((weights.unsqueeze(-1) * x).sum(1) / k).to(x.dtype)
