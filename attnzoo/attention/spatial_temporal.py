"""Spatial-Temporal Attention (STA) pooling of a clip's frame feature maps.

Fu, Wang, Wei and Huang, "STA: Spatial-Temporal Attention for Large-Scale
Video-based Person Re-Identification", AAAI 2019.
https://arxiv.org/abs/1811.04129

Parameter-free. For T frame maps f_t (C x H x W):

- spatial attention: the activation energy ``g_t(h, w) = ||f_t(:, h, w)||_2``,
  L1-normalised over the positions of each frame;
- each map is cut into K = 4 horizontal parts (uneven heights allowed: the
  first H mod K parts get one more row, as ``torch.tensor_split``); the score
  of part k of frame t is the sum of its energies, L1-normalised over the
  frames for each part -> the (T x K) attention score matrix;
- discriminative map: for each part, that part of the frame with the highest
  score; global map: for each part, the score-weighted sum of that part over
  the frames;
- both maps are global-average-pooled and concatenated
  [discriminative, global] -> a (2C) clip feature.

The paper also adds an inter-frame regulariser to the training loss,
``||g_i - g_j||_F`` between the spatial attention maps of two randomly chosen
frames of a clip, to keep one frame's attention from taking over. The forward
pass returns only the clip feature, so it is a separate method:
``loss = task_loss + lam * sta.inter_frame_regularization(x)`` with the same
input x; it averages the norm over all frame pairs (the expectation of the
paper's random pair), which is deterministic. The attention is computed in
float32, also under autocast. ``attention_map`` is the score matrix (B, T, K).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["SpatialTemporalAttention"]

_EPS = 1e-12


@register_attention(
    "sta",
    family="spatial+temporal",
    title="STA: Spatial-Temporal Attention for Large-Scale Video-based Person Re-Identification",
    year=2019,
    paper_url="https://arxiv.org/abs/1811.04129",
    placement="pool",
    map_kind="items",
)
class SpatialTemporalAttention(AttentionModule, nn.Module):
    """(B, T, C, H, W) -> (B, 2C) [discriminative, global]; ``attention_map`` is the part scores (B, T, K)."""

    def __init__(self, channels: int, num_parts: int = 4) -> None:
        super().__init__()
        self.channels = check_positive_int("sta", "channels", channels)
        self.num_parts = check_positive_int("sta", "num_parts", num_parts)
        self.out_channels = 2 * channels

    def _check(self, x: Tensor) -> None:
        self._check_input(x, self.channels, layout="(B, T, C, H, W)", channel_dim=2)
        if x.shape[3] < self.num_parts:
            raise ValueError(
                f"attention 'sta': the height H={x.shape[3]} must be at least num_parts={self.num_parts} "
                f"(each frame is cut into {self.num_parts} horizontal parts), got input of shape {tuple(x.shape)}"
            )

    def spatial_attention(self, x: Tensor) -> Tensor:
        """Activation energy per position, L1-normalised over each frame's positions, (B, T, H, W), float32."""
        energy = torch.linalg.vector_norm(x.float(), dim=2)
        return energy / energy.sum((-2, -1), keepdim=True).clamp_min(_EPS)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        b, _, c, h, w = x.shape
        feats = x.float()
        energy = self.spatial_attention(feats)
        part_energy = torch.stack([p.sum((-2, -1)) for p in energy.tensor_split(self.num_parts, dim=2)], -1)
        scores = part_energy / part_energy.sum(1, keepdim=True).clamp_min(_EPS)  # (B, T, K)
        # Sums over each part's positions; GAP of a map assembled from parts is their total over H * W.
        part_sums = torch.stack([p.sum((-2, -1)) for p in feats.tensor_split(self.num_parts, dim=3)], -1)
        best = scores.argmax(1)[:, None, None, :].expand(b, 1, c, self.num_parts)
        discriminative = part_sums.gather(1, best).sum((1, 3)) / (h * w)
        global_ = (scores.unsqueeze(2) * part_sums).sum((1, 3)) / (h * w)
        self._record(scores)
        return torch.cat([discriminative, global_], dim=1).to(x.dtype)

    def inter_frame_regularization(self, x: Tensor) -> Tensor:
        """Mean over frame pairs i < j of ||g_i - g_j||_F, averaged over the batch (a scalar; 0 for one frame)."""
        self._check(x)
        maps = self.spatial_attention(x).flatten(2)  # (B, T, HW)
        if maps.shape[1] < 2:
            return maps.new_zeros(())
        i, j = torch.triu_indices(maps.shape[1], maps.shape[1], offset=1, device=x.device)
        return torch.linalg.vector_norm(maps[:, i] - maps[:, j], dim=-1).mean()
