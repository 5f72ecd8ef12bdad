"""Point-wise spatial attention (PSANet), bi-directional.

Zhao, Zhang, Liu, Shi, Loy, Lin and Jia, "PSANet: Point-wise Spatial
Attention Network for Scene Parsing", ECCV 2018.
https://doi.org/10.1007/978-3-030-01240-3_17 (no arXiv version)

Two branches, collect and distribute. Each reduces C -> C_r (1x1 conv + BN +
ReLU; C_r = C/4, at least 1, as the paper's 2048 -> 512), then an adaptation
(1x1 conv + BN + ReLU, 1x1 conv without bias) predicts at every position
(i, j) an "over-completed" map of (2h-1) x (2w-1) values. The h x w window of
that map centred on (i, j) (map centre (h-1, w-1) on (i, j)) gives one value
for every position of the feature map:
- collect: (i, j) gathers from every position with its own window;
- distribute: (i, j) sends to every position with its own window, so the
  weights a position receives come from the other positions' maps.
The weights are normalised by a softmax over source positions for each
target, and each branch aggregates its own reduced features. This follows the
authors' released models (Caffe ``is_softmax: true`` with normalisation
factor 1, and the PyTorch ``psa_softmax=True``), not the paper's text, which
writes a plain 1/N average of the predicted values. The two aggregates are
concatenated (2 C_r) and projected back to C by a 1x1 conv + BN.

Working size: the number of predicted channels, (2h-1)(2w-1), fixes the
feature size h x w, as in the paper (which trains and tests on fixed crops).
So the block has a ``feature_size`` (default 14 x 14: res4 of a ResNet at
224 x 224, where a stage block usually sits). Reduced features of any other
size are resized to it (bilinear, ``align_corners=True``, as the authors'
code does for its ``shrink_factor``), attended there, and the aggregate is
resized back to the input's size.

Deviation: the paper fuses by concatenating the projection (conv + BN +
ReLU) with the input. As a stage block that must start as the identity, this
one returns ``x + BN(proj(...))`` with the BN scale initialised to zero and
no ReLU after it (a ReLU at zero would pass no gradient to the BN scale).

Memory: PSA forms h*w x h*w weights per branch by design (every position
predicts a weight for every other one); this is inherent to the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_fraction, check_positive_int, softmax_fp32
from .registry import register_attention

__all__ = ["PointwiseSpatialAttention", "point_wise_maps"]


def point_wise_maps(over_completed: Tensor) -> Tensor:
    """(B, (2h-1)(2w-1), h, w) -> (B, hw, hw): entry [b, a, p] is the value position p's map gives position a.

    Position p = (i, j) reads channel ``(r - i + h - 1) * (2w - 1) + (s - j + w - 1)`` of its own map for
    position a = (r, s): its h x w window centred on p.
    """
    b, m, h, w = over_completed.shape
    if m != (2 * h - 1) * (2 * w - 1):
        raise ValueError(f"attention 'psa': a {h} x {w} map needs {(2 * h - 1) * (2 * w - 1)} channels, got {m}")
    rows = torch.arange(h, device=over_completed.device).repeat_interleave(w)
    cols = torch.arange(w, device=over_completed.device).repeat(h)
    index = (rows[:, None] - rows + h - 1) * (2 * w - 1) + (cols[:, None] - cols + w - 1)
    return over_completed.flatten(2).gather(1, index.expand(b, -1, -1))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


def _resize(t: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(t.shape[-2:]) == size:
        return t
    return F.interpolate(t, size=size, mode="bilinear", align_corners=True)


class _Branch(nn.Module):
    """Reduce, bring to the working size, predict every position's over-completed map."""

    def __init__(self, channels: int, hidden: int, feature_size: tuple[int, int]) -> None:
        super().__init__()
        self.feature_size = feature_size
        h, w = feature_size
        self.reduce = _conv_bn_relu(channels, hidden)
        self.adapt = _conv_bn_relu(hidden, hidden)
        self.predict = nn.Conv2d(hidden, (2 * h - 1) * (2 * w - 1), 1, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Reduced features (B, C_r, h, w) and point-wise maps (B, hw, hw) as in :func:`point_wise_maps`."""
        z = _resize(self.reduce(x), self.feature_size)
        return z, point_wise_maps(self.predict(self.adapt(z)))


@register_attention(
    "psa",
    family="spatial",
    title="PSANet: Point-wise Spatial Attention Network for Scene Parsing",
    year=2018,
    paper_url="https://doi.org/10.1007/978-3-030-01240-3_17",
    placement="stage",
    map_kind="pairwise",
)
class PointwiseSpatialAttention(AttentionModule, nn.Module):
    """x + BN(proj([collect; distribute])).

    ``attention_map`` is the collect weights at the working size h x w (``feature_size``), as a pairwise map
    (B, hw, h, w): target position t (row-major) over its sources; each target's weights sum to 1.
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 4, feature_size: int | tuple[int, int] = 14) -> None:
        super().__init__()
        self.channels = check_positive_int("psa", "channels", channels)
        hidden = max(1, int(channels * check_fraction("psa", "rd_ratio", rd_ratio)))
        if isinstance(feature_size, int):
            feature_size = (feature_size, feature_size)
        if not isinstance(feature_size, (tuple, list)) or len(feature_size) != 2:
            raise ValueError(f"attention 'psa': feature_size must be an int or a pair of ints, got {feature_size!r}")
        self.feature_size = tuple(check_positive_int("psa", "feature_size", s) for s in feature_size)
        self.collect = _Branch(channels, hidden, self.feature_size)
        self.distribute = _Branch(channels, hidden, self.feature_size)
        self.proj = nn.Conv2d(2 * hidden, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        z_col, maps_col = self.collect(x)
        z_dis, maps_dis = self.distribute(x)
        # Both as [b, target, source], normalised over sources. Collect: the target's own map;
        # distribute: each source's map, read at the target.
        attn_col = softmax_fp32(maps_col.transpose(1, 2), dim=-1)
        attn_dis = softmax_fp32(maps_dis, dim=-1)
        self._record(attn_col.unflatten(-1, self.feature_size))
        out = torch.cat([z_col.flatten(2) @ attn_col.transpose(1, 2), z_dis.flatten(2) @ attn_dis.transpose(1, 2)], 1)
        out = _resize(out.unflatten(2, self.feature_size), tuple(x.shape[-2:]))
        return x + self.norm(self.proj(out))
