"""Hamburger: global context by non-negative matrix factorisation (NMF).

Geng, Guo, Chen, Li, Wei and Lin, "Is Attention Better Than Matrix
Decomposition?", ICLR 2021. https://arxiv.org/abs/2109.04553

Lower bread (1x1 conv + ReLU, which makes the features non-negative) -> ham:
the (C x HW) feature matrix X is factorised as X ~ D C^T with rank
R = min(64, C) bases D (C x R) and coefficients C (HW x R) by Lee-Seung
multiplicative updates, 6 steps in training and 7 in eval, and replaced by its
low-rank reconstruction D C^T -> upper bread (1x1 conv -> BN whose scale
starts at zero) -> added to the input (identity at init). Cost is linear in HW.

As in the authors' code (HamburgerV1 with NMF2D): the coefficients start as
``softmax(X^T D)`` over the R bases; every step updates the coefficients, then
the bases, all under ``no_grad``; then one more coefficient update runs with
gradient (the paper's "one-step gradient"), and that is what the gradient
flows through. The bases start random (uniform, L2-normalised over channels),
freshly drawn at each training forward as in the authors' code; in eval they
start from one fixed draw kept as a buffer (``init_bases``, saved with the
weights), so that inference is deterministic. The factorisation runs in
float32, also under autocast.

Deviations from the authors' code, both so that the block is exactly the
identity at initialisation, the library's convention for stage blocks:

- The upper bread's BN scale starts at zero; the authors' ``_init_weight``
  starts every BN scale at one.
- No ReLU after the residual sum (the reference ends with one).

``decompose(x, steps, bases)`` exposes the factorisation itself.
``attention_map`` is the final coefficients as an assignment map (B, R, H, W):
each position's (non-negative) coefficient on each of the R bases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["Hamburger"]

_EPS = 1e-6


def _update_coef(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """Multiplicative update of C in ||X - D C^T||: C <- C * (X^T D) / (C D^T D)."""
    return coef * (x.transpose(1, 2) @ bases) / (coef @ (bases.transpose(1, 2) @ bases) + _EPS)


def _update_bases(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """Multiplicative update of D in ||X - D C^T||: D <- D * (X C) / (D C^T C)."""
    return bases * (x @ coef) / (bases @ (coef.transpose(1, 2) @ coef) + _EPS)


@register_attention(
    "ham",
    family="spatial",
    title="Is Attention Better Than Matrix Decomposition?",
    year=2021,
    paper_url="https://arxiv.org/abs/2109.04553",
    placement="stage",
    map_kind="assignment",
)
class Hamburger(AttentionModule, nn.Module):
    """x + BN(conv(NMF_R(relu(conv(x))))); ``attention_map`` is the NMF coefficients, (B, R, H, W)."""

    def __init__(self, channels: int, rank: int = 64, train_steps: int = 6, eval_steps: int = 7) -> None:
        super().__init__()
        self.channels = check_positive_int("ham", "channels", channels)
        self.rank = min(check_positive_int("ham", "rank", rank), channels)
        self.train_steps = check_positive_int("ham", "train_steps", train_steps)
        self.eval_steps = check_positive_int("ham", "eval_steps", eval_steps)
        self.lower = nn.Conv2d(channels, channels, 1)
        self.upper = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)
        self.register_buffer("init_bases", F.normalize(torch.rand(1, channels, self.rank), dim=1))

    @torch.no_grad()
    def decompose(self, x: Tensor, steps: int, bases: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """NMF of non-negative x (B, C, N) ~ bases (B, C, R) @ coef (B, N, R)^T after ``steps`` updates.

        ``bases`` gives the starting bases (default: the fixed ``init_bases``).
        No gradient flows through the result.
        """
        if bases is None:
            bases = self.init_bases.to(x.dtype).expand(x.shape[0], -1, -1)
        coef = torch.softmax(x.transpose(1, 2) @ bases, dim=-1)
        for _ in range(steps):
            coef = _update_coef(x, bases, coef)
            bases = _update_bases(x, bases, coef)
        return bases, coef

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, c, h, w = x.shape
        feats = F.relu(self.lower(x))
        with torch.autocast(x.device.type, enabled=False):
            feats = feats.float().flatten(2)
            if self.training:
                bases = F.normalize(torch.rand(b, c, self.rank, device=x.device), dim=1)
                bases, coef = self.decompose(feats, self.train_steps, bases)
            else:
                bases, coef = self.decompose(feats, self.eval_steps)
            coef = _update_coef(feats, bases, coef)  # the one step with gradient
            recon = bases @ coef.transpose(1, 2)
        self._record(coef.transpose(1, 2).unflatten(-1, (h, w)))
        return x + self.norm(self.upper(recon.to(x.dtype).reshape(b, c, h, w)))
