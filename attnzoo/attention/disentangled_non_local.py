"""Disentangled non-local block (DNL).

Yin, Yao, Cao, Li, Zhang, Lin and Hu, "Disentangled Non-Local Neural
Networks", ECCV 2020. https://arxiv.org/abs/2006.06668

The non-local attention split into two terms that are learned separately:

- whitened pairwise: ``softmax_j((q_i - mean q) . (k_j - mean k) / (sqrt(d) T))``,
  queries and keys being 1x1 convolutions to d = C/2 channels and each
  channel's mean taken over positions (the authors' ``whiten_type:
  ['channel']``), so the term only sees how two positions differ from the
  average, not how salient the key is;
- unary: ``softmax_j(W_m x_j)``, a 1x1 convolution to one channel, the same
  for every query (the key saliency the whitening removed).

Both terms weight the same values v = g(x). Two forms of the output (``form``):

- ``"bn"`` (default): ``z = x + BN(W_z (pairwise v + unary v))``, values
  reduced to C/2 channels, W_z a 1x1 convolution back to C and the BN's
  scale starting at zero: the non-local block's output transform, as in
  mmseg's ``DNLHead``. mmseg applies its conv + BN to each term separately
  and adds the two; here one conv + BN takes their sum, since in training a
  BN of the (B, C, 1, 1) unary term alone normalises over the batch only
  (and fails at batch 1).
- ``"authors"``: the authors' code (yinmh17/DNL-Semantic-Segmentation,
  ``model/seg/ops/nonlocal_block.py`` with ``use_out: False, out_bn: False,
  with_gc: True``): ``z = x + gamma (pairwise v) + unary v``, values a 1x1
  convolution C -> C without bias, no W_z, no BN, and a scalar gamma, zero
  at first, on the pairwise term only. The paper's Fig. 3 draws the same
  block without gamma.

The default is ``"bn"`` because its zero BN scale makes it start exactly as
the identity, which a stage block inserted into a pretrained backbone needs;
in the authors' code the unary term is added unscaled, so
their block does not start as the identity (it follows a freshly initialised
convolution in a segmentation head). ``"authors"`` starts the value
convolution at zero instead of N(0, 0.01) so that it starts as the identity
too: the function and the parameters are theirs, only that initial value is
not.

Defaults and choices:

- Temperature ``T = 0.05`` on top of the 1/sqrt(d) scaling, as in the
  authors' Cityscapes configuration for this block
  (``configs/seg/cityscapes/NLin_fcn_cityscapes_seg.conf``: ``temp: 0.05``;
  their ADE20K, Pascal Context and VOC configurations use 0.1) and in mmseg's
  ``DNLHead`` (``use_scale=True, temperature=0.05``).
- Convolution weights start as N(0, 0.01) with zero biases, as in the
  authors' code and mmseg (but for the ``"authors"`` values, above).
- theta, phi and W_m have no bias (the authors' have zero-initialised ones):
  the mean subtraction removes a bias on queries or keys and the softmax over
  positions removes one on W_m, so none of them could learn anything. W_z
  has none either, since the BN has one.
- The authors' optional 2x2 max-pool of the keys and values (off in their
  DNL configurations) is not included.
- The command the authors' README gives runs another block,
  ``nonlocal_block_nowd.py`` with ``NLnowd_ln_fcn_cityscapes_seg.conf``: the
  same "authors" form, but whitened by one mean over all channels and
  positions (``ln_nostd``), with no 1/sqrt(d) scaling or temperature, and no
  weight decay on W_q and W_k. It is not implemented: subtracting one scalar
  is not the paper's whitening, it largely leaves the mean query's product with
  each key (the unary part the whitening is meant to remove) in the pairwise
  term.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_choice, check_positive_int, is_recording, reduced_channels, softmax_fp32, tokens
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
    map_kind="pairwise",
)
class DisentangledNonLocal(AttentionModule, nn.Module):
    """x + BN(W_z (pairwise + unary) v), or x + gamma pairwise v + unary v with ``form="authors"``.

    ``attention_map`` is the whitened pairwise weights (B, HW, H, W): query q (row-major) over the positions.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 2,
        inner_channels: int | None = None,
        temperature: float = 0.05,
        form: str = "bn",
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("dnl", "channels", channels)
        width = reduced_channels("dnl", channels, rd_ratio)
        d = check_positive_int("dnl", "inner_channels", width if inner_channels is None else inner_channels)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"attention 'dnl': temperature must be a positive number, got {temperature!r}")
        self.form = check_choice("dnl", "form", form, ("bn", "authors"))
        self.scale = 1.0 / (d**0.5 * temperature)
        self.theta = nn.Conv2d(channels, d, 1, bias=False)
        self.phi = nn.Conv2d(channels, d, 1, bias=False)
        self.unary = nn.Conv2d(channels, 1, 1, bias=False)
        for conv in (self.theta, self.phi, self.unary):
            nn.init.normal_(conv.weight, std=0.01)
        if form == "bn":
            self.g = nn.Conv2d(channels, d, 1)
            self.out = nn.Conv2d(d, channels, 1, bias=False)
            self.norm = nn.BatchNorm2d(channels)
            for conv in (self.g, self.out):
                nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(self.g.bias)
            nn.init.zeros_(self.norm.weight)
        else:
            self.g = nn.Conv2d(channels, channels, 1, bias=False)
            nn.init.zeros_(self.g.weight)  # the authors draw N(0, 0.01): zero makes the block start as the identity
            self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, _, h, w = x.shape
        q, k, v = (tokens(conv(x)) for conv in (self.theta, self.phi, self.g))  # (B, HW, d), values (B, HW, d or C)
        # A head axis of 1: 4-D is the layout every SDPA backend and ONNX exporter accepts.
        y = F.scaled_dot_product_attention(_whiten(q)[:, None], _whiten(k)[:, None], v[:, None], scale=self.scale)[:, 0]
        self._record(self.pairwise_weights(q, k).unflatten(-1, (h, w)) if is_recording() else None)
        unary = softmax_fp32(self.unary(x).flatten(2), dim=-1) @ v  # (B, 1, d or C), the same for every query
        if self.form == "authors":
            return x + (self.gamma * y + unary).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.norm(self.out((y + unary).transpose(1, 2).reshape(b, -1, h, w)))

    def pairwise_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """Whitened pairwise term for raw (B, HW, d) queries and keys, (B, HW, HW); formed only for drawing."""
        logits = _whiten(q.float()) @ _whiten(k.float()).transpose(1, 2)
        return softmax_fp32(logits * self.scale, dim=-1)
