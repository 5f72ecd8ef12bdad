"""Expectation-Maximization Attention (EMA unit).

Li, Zhong, Wu, Yang, Lin and Liu, "Expectation-Maximization Attention Networks
for Semantic Segmentation", ICCV 2019. https://arxiv.org/abs/1907.13426

Attention over a compact set of K = 64 bases instead of all HW positions, so
the cost is linear in HW. 1x1 conv in -> T = 3 EM iterations starting from
bases mu (C x K, L2-normalised over channels, initialised normal(0, sqrt(2/K))):
E-step ``z = softmax_K(x^T mu)``, M-step ``mu = x z / (1e-6 + sum_N z)`` then
L2-normalise each basis -> reconstruction ``x_hat = mu z^T`` -> ReLU -> 1x1 conv
-> BN whose scale starts at zero -> added to the input (identity at init).

The starting bases are a buffer, updated only in training by the moving
average of the authors' code, ``mu0 <- 0.9 mu0 + 0.1 mean_batch(mu_T)`` (no
renormalisation afterwards, as there; mmsegmentation also L2-normalises the
batch mean), and left unchanged in eval. Under DDP the batch mean is averaged
over all ranks first (all-reduce, as the authors' ``reduce_tensor`` and
mmsegmentation do), so every rank keeps the same bases.

Deviations from the authors' code, stated honestly:

- Gradient: the reference runs every EM iteration under ``no_grad``, so the
  reconstruction carries no gradient back to the input conv (mmsegmentation
  freezes that conv explicitly). Here the first T - 1 iterations run under
  ``no_grad`` and the last one with gradient ("one-step gradient", as in
  Hamburger), so the input conv is trained. Forward values are identical.
- The block is exactly the identity at initialisation, the library's
  convention for stage blocks: the output BN's scale starts at zero (the
  authors' code starts every BN scale at one), and there is no ReLU after the
  residual sum (the reference ends with one).

The EM iterations run in float32 (also under autocast). ``attention_map`` is
the final responsibilities z as an assignment map (B, K, H, W): each
position's responsibility of each basis, summing to 1 over the K bases.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_fraction, check_positive_int
from .registry import register_attention

__all__ = ["EMAttention", "em_step"]


def em_step(x: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
    """One EM iteration on x (B, C, N) with bases (B, C, K) -> (responsibilities (B, N, K), new bases (B, C, K))."""
    z = torch.softmax(x.transpose(1, 2) @ bases, dim=-1)
    bases = x @ (z / (1e-6 + z.sum(dim=1, keepdim=True)))
    return z, bases / (1e-6 + bases.norm(dim=1, keepdim=True))


@register_attention(
    "ema",
    family="spatial",
    title="Expectation-Maximization Attention Networks for Semantic Segmentation",
    year=2019,
    paper_url="https://arxiv.org/abs/1907.13426",
    placement="stage",
    map_kind="assignment",
)
class EMAttention(AttentionModule, nn.Module):
    """x + BN(conv(relu(mu z^T))) with bases mu found by EM; ``attention_map`` is z, (B, K, H, W)."""

    def __init__(self, channels: int, num_bases: int = 64, iterations: int = 3, momentum: float = 0.9) -> None:
        super().__init__()
        self.channels = check_positive_int("ema", "channels", channels)
        self.num_bases = check_positive_int("ema", "num_bases", num_bases)
        self.iterations = check_positive_int("ema", "iterations", iterations)
        self.momentum = check_fraction("ema", "momentum", momentum)
        bases = torch.randn(1, channels, num_bases) * math.sqrt(2.0 / num_bases)
        self.register_buffer("bases", bases / (1e-6 + bases.norm(dim=1, keepdim=True)))
        self.conv_in = nn.Conv2d(channels, channels, 1)
        self.conv_out = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, c, h, w = x.shape
        feats = self.conv_in(x)
        with torch.autocast(x.device.type, enabled=False):
            feats = feats.float().flatten(2)
            # With one iteration the step below keeps its starting bases for the
            # backward pass, and the moving average then writes into the buffer in
            # place; a copy of the (1, C, K) buffer is then needed, and only then.
            copy = self.iterations == 1 and self.training and torch.is_grad_enabled()
            bases = self.bases.to(torch.float32, copy=copy).expand(b, -1, -1)
            with torch.no_grad():
                for _ in range(self.iterations - 1):
                    _, bases = em_step(feats, bases)
            z, bases = em_step(feats, bases)
            recon = bases @ z.transpose(1, 2)
        if self.training:
            with torch.no_grad():
                batch_mean = bases.mean(0, keepdim=True)
                if dist.is_available() and dist.is_initialized():  # the authors' reduce_tensor: one mean over all ranks
                    dist.all_reduce(batch_mean)
                    batch_mean /= dist.get_world_size()
                self.bases.mul_(self.momentum).add_(batch_mean, alpha=1.0 - self.momentum)
        self._record(z.transpose(1, 2).unflatten(-1, (h, w)))
        recon = F.relu(recon).to(x.dtype).reshape(b, c, h, w)
        return x + self.norm(self.conv_out(recon))
