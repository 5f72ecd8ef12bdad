"""Global Reasoning unit (GloRe).

Chen, Rohrbach, Yan, Yan, Feng and Kalantidis, "Graph-Based Global Reasoning
Networks", CVPR 2019. https://arxiv.org/abs/1811.12814

Coordinate space -> interaction space -> graph convolution -> back:

- states: 1x1 conv C -> S = C/2 channels; projection: 1x1 conv C -> N = C/4
  node weights B (no softmax, as in the authors' code). These ratios are the
  authors' settings (``num_state = 2 * num_mid``, ``num_node = num_mid`` with
  ``num_mid`` the bottleneck width C/4 of the ResNet stage).
- nodes V = X_state B^T / HW, (S x N);
- graph conv: ``V + node_conv(V)`` (a 1-D conv over the nodes: the learned
  adjacency, ``(I - A_g) V`` with the sign folded into the weights), ReLU,
  then a 1-D conv over the states (``W_g``), in the order of the authors' code;
- reprojection Y = V' B, (S x HW) -> 1x1 conv S -> C -> BN whose scale starts
  at zero (eps 1e-4, as there) -> added to the input (identity at init).

Cost is linear in HW. The node features are divided by HW (the authors' code
does so only with ``normalize=True``, its setting for inputs of varying size):
any H x W must work here, and without it the node features grow with the
image size. ``attention_map`` is the projection B, (B, N, H, W).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, reduced_channels
from .registry import register_attention

__all__ = ["GlobalReasoning"]


@register_attention(
    "glore",
    family="spatial",
    title="Graph-Based Global Reasoning Networks",
    year=2019,
    paper_url="https://arxiv.org/abs/1811.12814",
    placement="stage",
    map_kind="assignment",
)
class GlobalReasoning(AttentionModule, nn.Module):
    """x + BN(conv(GCN(X_state B^T / HW) B)); ``attention_map`` is the projection B, (B, N, H, W)."""

    def __init__(self, channels: int, state_ratio: float = 1 / 2, node_ratio: float = 1 / 4) -> None:
        super().__init__()
        self.channels = check_positive_int("glore", "channels", channels)
        self.num_states = reduced_channels("glore", channels, state_ratio, "state_ratio")
        self.num_nodes = reduced_channels("glore", channels, node_ratio, "node_ratio")
        self.conv_state = nn.Conv2d(channels, self.num_states, 1)
        self.conv_proj = nn.Conv2d(channels, self.num_nodes, 1)
        self.node_conv = nn.Conv1d(self.num_nodes, self.num_nodes, 1)
        self.state_conv = nn.Conv1d(self.num_states, self.num_states, 1, bias=False)
        self.conv_extend = nn.Conv2d(self.num_states, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels, eps=1e-4)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, _, h, w = x.shape
        states = self.conv_state(x).flatten(2)  # (B, S, HW)
        proj = self.conv_proj(x).flatten(2)  # (B, N, HW)
        nodes = states @ proj.transpose(1, 2) * (1.0 / (h * w))  # (B, S, N)
        nodes = nodes + self.node_conv(nodes.transpose(1, 2)).transpose(1, 2)
        nodes = self.state_conv(F.relu(nodes))
        out = (nodes @ proj).reshape(b, self.num_states, h, w)
        self._record(proj.reshape(b, self.num_nodes, h, w))
        return x + self.norm(self.conv_extend(out))
