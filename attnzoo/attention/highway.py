"""Highway gating.

Srivastava, Greff and Schmidhuber, "Training Very Deep Networks",
NeurIPS 2015. https://arxiv.org/abs/1507.06228

y = T(x) * H(x) + (1 - T(x)) * x, with the transform gate
T(x) = sigmoid(W_T * x + b_T) computed per channel and position by a
convolution with H's kernel size (``gate_kernel_size``, default 3, zero
padding keeps H x W), as the paper's convolutional highway layers give T the
same receptive field as H. The default H is a 3x3 conv -> BN -> ReLU. In
attnzoo's ResNets the gate replaces the residual add: 3x3 in basic blocks, as
their convs, and 1x1 in bottlenecks, whose 4 x planes channels would make a
3x3 gate several times the block's own size (docs/backbones.md). The gate bias starts negative (default -2, the paper uses -1
to -3) so the layer starts close to carrying its input through.
"""
from __future__ import annotations

import torch
from timm.layers import ConvNormAct
from torch import Tensor, nn

from .base import AttentionModule, check_positive_int
from .registry import register_attention

__all__ = ["Highway"]


@register_attention(
    "highway",
    family="branch",
    title="Training Very Deep Networks (Highway Networks)",
    year=2015,
    paper_url="https://arxiv.org/abs/1507.06228",
    placement="gate",
    map_kind="gate",
)
class Highway(AttentionModule, nn.Module):
    """Gate between ``transform(x)`` and ``x``; ``attention_map`` is T(x), (B, C, H, W).

    ``transform`` must map (B, C, H, W) to the same shape; it defaults to a
    3x3 conv -> BN -> ReLU. Pass ``nn.Identity()`` when the caller supplies
    ``h`` to :meth:`forward` itself (as a gated residual block does).
    ``gate_kernel_size`` (odd) is the gate conv's kernel size.
    """

    def __init__(
        self,
        channels: int,
        transform: nn.Module | None = None,
        gate_bias: float = -2.0,
        gate_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("highway", "channels", channels)
        if transform is not None and not isinstance(transform, nn.Module):
            raise ValueError(f"attention 'highway': transform must be an nn.Module, got {type(transform).__name__}")
        check_positive_int("highway", "gate_kernel_size", gate_kernel_size)
        if gate_kernel_size % 2 == 0:
            raise ValueError(
                f"attention 'highway': gate_kernel_size must be odd (padding keeps H x W), got {gate_kernel_size}"
            )
        self.transform = transform if transform is not None else ConvNormAct(channels, channels, 3)
        self.gate = nn.Conv2d(channels, channels, gate_kernel_size, padding=gate_kernel_size // 2, bias=True)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """Gate between ``x`` and ``h``, by default ``h = transform(x)``.

        A backbone passes ``h`` itself: the gated residual block's branch output,
        with ``x`` its (projected) shortcut.
        """
        self._check_input(x, self.channels)
        if h is None:
            h = self.transform(x)
        if h.shape != x.shape:
            raise ValueError(
                f"attention 'highway': the transform must keep the input shape {tuple(x.shape)}, got {tuple(h.shape)}"
            )
        t = torch.sigmoid(self.gate(x))
        self._record(t)
        return t * h + (1 - t) * x
