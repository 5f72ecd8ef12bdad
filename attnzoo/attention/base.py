"""What every attention module shares: its recorded map and its input checks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from attnzoo._checks import check_int
from attnzoo.viz import is_recording

__all__ = [
    "AttentionModule",
    "at_least_fp32",
    "is_recording",
    "check_choice",
    "check_conv_args",
    "check_fraction",
    "check_input",
    "check_positive_int",
    "reduced_channels",
    "softmax_fp32",
    "tokens",
]


class AttentionModule:
    """Mixin for ``nn.Module`` attention mechanisms.

    ``attention_name`` is set by :func:`attnzoo.attention.register_attention`.
    ``attention_map`` holds the last map computed inside
    :func:`attnzoo.viz.record`, and is ``None`` after a forward pass outside it;
    it has the layout of its mechanism's ``map_kind`` (``MAP_LAYOUTS``), which
    is how :func:`attnzoo.viz.draw` draws it.
    """

    attention_name: str = "attention"
    attention_map: Tensor | None = None

    def _record(self, attn: Tensor | None) -> None:
        # Maps that cost extra to form are passed only while recording (None otherwise).
        if attn is not None and is_recording():
            self.attention_map = attn.detach()
        elif self.attention_map is not None:
            # Only touched when stale, so an unrecorded (or compiled) forward
            # performs no attribute writes.
            self.attention_map = None

    def _check_input(self, x: Tensor, channels: int, layout: str = "(B, C, H, W)", channel_dim: int = 1) -> None:
        check_input(self.attention_name, x, channels, layout, channel_dim)


def check_input(name: str, x: Tensor, channels: int, layout: str = "(B, C, H, W)", channel_dim: int = 1) -> None:
    """Raise ValueError unless ``x`` has the rank of ``layout`` and ``channels`` at ``channel_dim``."""
    rank = layout.count(",") + 1
    if not isinstance(x, Tensor) or x.dim() != rank:
        got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"attention {name!r} expects a {rank}-D input {layout}, got {got}")
    if x.shape[channel_dim] != channels:
        dim = layout.strip("()").split(",")[channel_dim].strip()
        raise ValueError(
            f"attention {name!r} was built for {dim}={channels}, got input of shape {tuple(x.shape)}"
        )


def check_positive_int(name: str, arg: str, value: object) -> int:
    return check_int(f"attention {name!r}", arg, value)


def check_fraction(name: str, arg: str, value: object) -> float:
    """A ratio in (0, 1], such as a reduction ratio."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"attention {name!r}: {arg} must be a number in (0, 1], got {value!r}")
    return float(value)


def check_conv_args(
    name: str, in_channels: object, out_channels: object, kernel_size: object, stride: object, groups: object
) -> int:
    """Validate the arguments of a ``conv`` mechanism; returns out_channels (defaulting to in_channels)."""
    check_positive_int(name, "in_channels", in_channels)
    out_channels = check_positive_int(name, "out_channels", in_channels if out_channels is None else out_channels)
    check_positive_int(name, "kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"attention {name!r}: kernel_size must be odd (padding keeps H x W), got {kernel_size}")
    check_positive_int(name, "stride", stride)
    check_positive_int(name, "groups", groups)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"attention {name!r}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
        )
    return out_channels


def reduced_channels(name: str, channels: int, ratio: float, arg: str = "rd_ratio") -> int:
    """round(channels * ratio), at least 1, with ``ratio`` checked to lie in (0, 1]."""
    return max(1, round(channels * check_fraction(name, arg, ratio)))


def check_choice(name: str, arg: str, value: object, choices: Sequence[object]) -> object:
    if value not in choices:
        raise ValueError(f"attention {name!r}: {arg} must be one of {list(choices)}, got {value!r}")
    return value


def at_least_fp32(x: Tensor) -> Tensor:
    """``x`` in float32 for statistics, unless it is already wider (float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def softmax_fp32(x: Tensor, dim: int) -> Tensor:
    """Softmax computed in float32 (stable under fp16/bf16 autocast), cast back to ``x.dtype``."""
    return torch.softmax(x.float(), dim=dim).to(x.dtype)


def tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, HW, C), contiguous.

    ``scaled_dot_product_attention`` uses its fused kernels only when the
    feature dimension has unit stride; a transposed view silently falls back
    to the slow kernel that materialises the whole attention matrix.
    """
    return x.flatten(2).transpose(1, 2).contiguous()
