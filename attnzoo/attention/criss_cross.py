"""Criss-cross attention (CCNet), recurrent.

Huang, Wang, Huang, Huang, Wei and Liu, "CCNet: Criss-Cross Attention for
Semantic Segmentation", ICCV 2019. https://arxiv.org/abs/1811.11721

Queries and keys are 1x1 convolutions to C/8 channels (at least 1), values a
1x1 convolution to C. Each position attends to the H + W - 1 positions of its
own row and column: the energies against its column (H) and its row (W) are
concatenated and share one softmax (in float32), with the position itself
counted once by masking it out of the column energies, as the authors' code
does. No 1/sqrt(d) scaling, as in the paper. The block returns
``x + gamma * aggregated`` with a learnable scalar ``gamma`` that starts at 0,
so a freshly inserted block is the identity.

Recurrence R = 2 by default: the same module (same weights) is applied twice,
so information reaches every position from every other one. Energies are
formed per row and per column with ``einsum``: memory is O(HW (H + W)), and
no (HW) x (HW) matrix is built, but for the map recorded for a picture inside
``attnzoo.viz.record()``.

Scope: this is the criss-cross module itself. The paper's RCCA head around it
(3x3 conv reduction before, 3x3 conv after, concatenation with the input and
a bottleneck) belongs to a segmentation head, not to a stage block.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_fraction, check_positive_int, is_recording, softmax_fp32
from .registry import register_attention

__all__ = ["CrissCrossAttention", "criss_cross_pairwise"]


def criss_cross_pairwise(attn: Tensor) -> Tensor:
    """Criss-cross weights (B, H, W, H + W) as a pairwise map (B, HW, H, W), zero off each query's cross.

    For query (i, j), entries [:H] of ``attn`` weigh column j (row r at index r) and entries [H:] row i
    (column s at index H + s).
    """
    b, h, w, _ = attn.shape
    column, row = attn.split([h, w], dim=-1)
    eye_h = torch.eye(h, dtype=attn.dtype, device=attn.device)
    eye_w = torch.eye(w, dtype=attn.dtype, device=attn.device)
    dense = torch.einsum("bijr,js->bijrs", column, eye_w) + torch.einsum("bijs,ir->bijrs", row, eye_h)
    return dense.reshape(b, h * w, h, w)


@register_attention(
    "cc",
    family="spatial",
    title="CCNet: Criss-Cross Attention for Semantic Segmentation",
    year=2019,
    paper_url="https://arxiv.org/abs/1811.11721",
    placement="stage",
    map_kind="pairwise",
)
class CrissCrossAttention(AttentionModule, nn.Module):
    """x + gamma * criss-cross aggregation, applied ``recurrence`` times with shared weights.

    ``attention_map`` is the last recurrence's weights as a pairwise map (B, HW, H, W):
    query (i, j), at index i W + j, weighs the H + W - 1 positions of its column j and
    row i, and nothing else; each query's weights sum to 1.
    """

    def __init__(self, channels: int, recurrence: int = 2, rd_ratio: float = 1 / 8) -> None:
        super().__init__()
        self.channels = check_positive_int("cc", "channels", channels)
        self.recurrence = check_positive_int("cc", "recurrence", recurrence)
        qk_channels = max(1, int(channels * check_fraction("cc", "rd_ratio", rd_ratio)))
        self.query = nn.Conv2d(channels, qk_channels, 1)
        self.key = nn.Conv2d(channels, qk_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        out, attn = x, None
        for _ in range(self.recurrence):
            out, attn = self._criss_cross(out)
        self._record(criss_cross_pairwise(attn) if is_recording() else None)
        return out

    def _criss_cross(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, w = x.shape[-2:]
        q, k, v = self.query(x), self.key(x), self.value(x)
        # energy_col[b, i, j, r] = q(i, j) . k(r, j); energy_row[b, i, j, s] = q(i, j) . k(i, s).
        energy_col = torch.einsum("bcij,bcrj->bijr", q, k)
        energy_row = torch.einsum("bcij,bcis->bijs", q, k)
        # (i, j) is in both its row and its column: drop it from the column so it counts once.
        # An index comparison rather than torch.eye(dtype=bool), which onnxruntime cannot run.
        rows = torch.arange(h, device=x.device)
        self_in_col = (rows[:, None] == rows).unsqueeze(1)  # (i, 1, r)
        energy_col = energy_col.masked_fill(self_in_col, float("-inf"))
        attn = softmax_fp32(torch.cat([energy_col, energy_row], dim=-1), dim=-1)
        attn_col, attn_row = attn.split([h, w], dim=-1)
        agg = torch.einsum("bijr,bcrj->bcij", attn_col, v) + torch.einsum("bijs,bcis->bcij", attn_row, v)
        return x + self.gamma * agg, attn
