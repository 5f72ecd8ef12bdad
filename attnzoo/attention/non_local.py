"""Non-local block, embedded-Gaussian form.

Wang, Girshick, Gupta and He, "Non-local Neural Networks", CVPR 2018.
https://arxiv.org/abs/1711.07971

``z = x + BN(W_z y)`` with ``y_i = sum_j softmax_j(theta(x_i)^T phi(x_j)) g(x_j)``:
theta, phi and g are 1x1 convolutions to C/2 channels (``rd_ratio=1/2``),
W_z a 1x1 convolution back to C followed by a BN whose scale starts at zero,
so a freshly inserted block is the identity. The weighted sum runs through
``scaled_dot_product_attention``.

Defaults and choices:

- No 1/sqrt(d) factor on the logits, as in the paper's equation
  (``f = exp(theta^T phi)``). The authors' released code (video-nonlocal-net,
  ``NONLOCAL.USE_SCALE = True``) and mmcv's ``NonLocal2d`` do scale by
  ``d ** -0.5``; ``use_scale=True`` gives that.
- Convolution weights start as N(0, 0.01) with zero biases, as in the
  authors' code.
- phi has no bias: a bias on the keys adds ``theta(x_i)^T b`` to every logit
  of row i, which the softmax cancels, so it could never learn anything.
  W_z has no bias either, since the BN after it has one.
- The paper's optional max-pool subsampling of phi and g is not included.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, is_recording, reduced_channels, softmax_fp32, tokens
from .registry import register_attention

__all__ = ["NonLocal"]


@register_attention(
    "nl",
    family="spatial",
    title="Non-local Neural Networks",
    year=2018,
    paper_url="https://arxiv.org/abs/1711.07971",
    placement="stage",
    map_kind="pairwise",
)
class NonLocal(AttentionModule, nn.Module):
    """x + BN(W_z softmax(theta^T phi) g).

    ``attention_map`` is the weights as a pairwise map (B, HW, H, W): query q (row-major) over the positions.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 2,
        inner_channels: int | None = None,
        use_scale: bool = False,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("nl", "channels", channels)
        width = reduced_channels("nl", channels, rd_ratio)
        d = check_positive_int("nl", "inner_channels", width if inner_channels is None else inner_channels)
        if not isinstance(use_scale, bool):
            raise ValueError(f"attention 'nl': use_scale must be a bool, got {use_scale!r}")
        self.scale = d**-0.5 if use_scale else 1.0
        self.theta = nn.Conv2d(channels, d, 1)
        self.phi = nn.Conv2d(channels, d, 1, bias=False)
        self.g = nn.Conv2d(channels, d, 1)
        self.out = nn.Conv2d(d, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        for conv in (self.theta, self.phi, self.g, self.out):
            nn.init.normal_(conv.weight, std=0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        b, _, h, w = x.shape
        q, k, v = (tokens(conv(x)) for conv in (self.theta, self.phi, self.g))  # (B, HW, d)
        # A head axis of 1: 4-D is the layout every SDPA backend and ONNX exporter accepts.
        y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=self.scale)[:, 0]
        self._record(self.attention_weights(q, k).unflatten(-1, (h, w)) if is_recording() else None)
        y = y.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.norm(self.out(y))

    def attention_weights(self, q: Tensor, k: Tensor) -> Tensor:
        """softmax_j(q_i . k_j * scale) for (B, HW, d) queries and keys, (B, HW, HW); formed only for drawing."""
        return softmax_fp32((q.float() @ k.float().transpose(1, 2)) * self.scale, dim=-1)
