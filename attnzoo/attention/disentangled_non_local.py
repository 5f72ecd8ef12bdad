"""Disentangled non-local block (DNL).

Yin, Yao, Cao, Li, Zhang, Lin and Hu, "Disentangled Non-Local Neural
Networks", ECCV 2020. https://arxiv.org/abs/2006.06668

The non-local attention split into two terms that are learned separately:

- whitened pairwise: ``softmax_j((q_i - mean q) . (k_j - mean k) / (sqrt(d) T))``,
  queries and keys being 1x1 convolutions to C/2 channels and the means taken
  over positions, so the term only sees how two positions differ from the
  average, not how salient the key is;
- unary: ``softmax_j(W_m x_j)``, a 1x1 convolution to one channel, the same
  for every query (the key saliency the whitening removed).

``z = x + BN(W_z ((pairwise + unary) g(x)))``, where g (values) is a 1x1
convolution to C/2 channels, W_z a 1x1 convolution back to C, and the BN's
scale starts at zero, so a freshly inserted block is the identity.

Defaults and choices:

- Temperature ``T = 0.05`` on top of the 1/sqrt(d) scaling, as in the
  authors' code (yinmh17/DNL-Semantic-Segmentation, ``temp: 0.05``) and in
  mmseg's ``DNLHead`` (``use_scale=True, temperature=0.05``).
- Both terms are summed before W_z and the BN, as in the authors' code;
  mmseg instead applies its conv + BN to each term separately and adds both.
- Convolution weights start as N(0, 0.01) with zero biases, as in the
  authors' code.
- theta, phi and W_m have no bias: the mean subtraction removes a bias on
  queries or keys and the softmax over positions removes one on W_m, so none
  of them could learn anything. W_z has none either, since the BN has one.
- The authors' optional 2x2 max-pool of the keys and values is not included.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, is_recording, reduced_channels, softmax_fp32, tokens
from .registry import register_attention

__all__ = ["DisentangledNonLocal"]


def _whiten(t: Tensor) -> Tensor:
    """Subtract the mean over positions of (B, HW, d) embeddings, computed in float32."""
    t32 = t.float()
    return (t32 - t32.mean(1, keepdim=True)).to(t.dtype)


@register_attention(
    "dnl",
    family="spatial",
    title="Disentangled Non-Local Neural Networks",
    year=2020,
    paper_url="https://arxiv.org/abs/2006.06668",
    placement="stage",
)
class DisentangledNonLocal(AttentionModule, nn.Module):
    """x + BN(W_z (whitened pairwise + unary) g); ``attention_map`` is the pairwise weights (B, HW, HW)."""

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 2,
        inner_channels: int | None = None,
        temperature: float = 0.05,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("dnl", "channels", channels)
        width = reduced_channels("dnl", channels, rd_ratio)
        d = check_positive_int("dnl", "inner_channels", width if inner_channels is None else inner_channels)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"attention 'dnl': temperature must be a positive number, got {temperature!r}")
        self.scale = 1.0 / (d**0.5 * temperature)
        self.theta = nn.Conv2d(channels, d, 1, bias=False)
        self.phi = nn.Conv2d(channels, d, 1, bias=False)
        self.g = nn.Conv2d(channels, d, 1)
        self.unary = nn.Conv2d(channels, 1, 1, bias=False)
        self.out = nn.Conv2d(d, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        for conv in (self.theta, self.phi, self.g, self.unary, self.out):
            nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(self.g.bias)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, _, h, w = x.shape
        q, k, v = (tokens(conv(x)) for conv in (self.theta, self.phi, self.g))  # (B, HW, d)
        # A head axis of 1: 4-D is the layout every SDPA backend and ONNX exporter accepts.
        y = F.scaled_dot_product_attention(_whiten(q)[:, None], _whiten(k)[:, None], v[:, None], scale=self.scale)[:, 0]
        self._record(self.pairwise_weights(q, k) if is_recording() else None)
        unary = softmax_fp32(self.unary(x).flatten(2), dim=-1)  # (B, 1, HW), shared by every query
        y = y + unary @ v
        y = y.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.norm(self.out(y))

    def pairwise_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """Whitened pairwise term for raw (B, HW, d) queries and keys, (B, HW, HW); formed only for drawing."""
        logits = _whiten(q.float()) @ _whiten(k.float()).transpose(1, 2)
        return softmax_fp32(logits * self.scale, dim=-1)
