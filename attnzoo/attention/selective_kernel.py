"""Selective Kernel convolution (SK).

Li, Wang, Hu and Yang, "Selective Kernel Networks", CVPR 2019.
https://arxiv.org/abs/1903.06586

Split: M = 2 paths, a 3x3 and a dilated 3x3 (the paper's 5x5), each
conv -> BN -> ReLU with G groups. Fuse: sum of the paths -> GAP -> FC to
d = max(C / r, L) (r = 16, L = 32) -> BN -> ReLU. Select: an FC per path and a
softmax across paths, per channel; the output is the weighted sum of the paths.
Built on timm's ``SelectiveKernel`` (same parameter names as timm's SK
networks), with the paper's d instead of timm's rounding, and the input fed
whole to every path (``split_input=False``) as in the paper.

As a ``conv`` mechanism it replaces a convolution together with the BN and
ReLU that follow it: each path already carries its own.
"""
from __future__ import annotations

import torch
from timm.layers import SelectiveKernel as _TimmSelectiveKernel
from torch import Tensor

from attnzoo._checks import check_int

from .base import AttentionModule, check_conv_args, check_fraction, check_positive_int, is_recording, softmax_fp32
from .registry import register_attention

__all__ = ["SelectiveKernel"]


@register_attention(
    "sk",
    family="branch",
    title="Selective Kernel Networks",
    year=2019,
    paper_url="https://arxiv.org/abs/1903.06586",
    placement="conv",
    map_kind="paths",
)
class SelectiveKernel(AttentionModule, _TimmSelectiveKernel):
    """Drop-in for a k x k conv (+BN+ReLU); ``attention_map`` is the path weights (B, M, C_out).

    Path m is a 3x3 conv of dilation m + 1, so the paths come from the smallest receptive field to the
    largest, as the ``paths`` map kind has them; the weights sum to 1 over the paths.
    """

    # Backbones drop the BN and ReLU after the conv this replaces: every path has its own.
    replaces_norm_act = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        num_paths: int = 2,
        rd_ratio: float = 1 / 16,
        min_rd_channels: int = 32,
        rd_channels: int | None = None,
        split_input: bool = False,
    ) -> None:
        name = "sk"
        if kernel_size != 3:
            raise ValueError(
                f"attention 'sk': kernel_size must be 3 (its paths are 3x3 convs with dilation 1..M), got {kernel_size!r}"
            )
        check_int("attention 'sk'", "num_paths", num_paths, 2)
        if split_input and in_channels % num_paths:
            raise ValueError(f"attention 'sk': in_channels={in_channels} must divide into num_paths={num_paths}")
        path_in = in_channels // num_paths if split_input else in_channels
        out_channels = check_conv_args(
            name, path_in, in_channels if out_channels is None else out_channels, kernel_size, stride, groups
        )
        check_fraction(name, "rd_ratio", rd_ratio)
        if rd_channels is None:
            rd_channels = max(int(out_channels * rd_ratio), check_positive_int(name, "min_rd_channels", min_rd_channels))
        check_positive_int(name, "rd_channels", rd_channels)
        super().__init__(
            in_channels,
            out_channels,
            # Path m is a 3x3 conv with dilation m + 1, seeing what a (3 + 2m) x (3 + 2m) kernel sees.
            kernel_size=[3 + 2 * m for m in range(num_paths)],
            stride=stride,
            groups=groups,
            rd_channels=rd_channels,
            keep_3x3=True,
            split_input=split_input,
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.in_channels)
        if self.split_input:
            parts = x.split(self.in_channels // self.num_paths, dim=1)
            paths = [op(part) for op, part in zip(self.paths, parts)]
        else:
            paths = [op(x) for op in self.paths]
        stacked = torch.stack(paths, dim=1)
        a = self.attn
        z = a.act(a.bn(a.fc_reduce(stacked.sum(1).mean((2, 3), keepdim=True))))
        logits = a.fc_select(z).view(x.shape[0], self.num_paths, self.out_channels, 1, 1)
        weights = softmax_fp32(logits, dim=1)
        self._record(weights.flatten(2) if is_recording() else None)
        return (stacked * weights).sum(1)
