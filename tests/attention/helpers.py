"""Shared test inputs for attention modules, built from each mechanism's registry entry."""
from __future__ import annotations

import torch
from torch import nn

import attnzoo

CHANNELS = 64
# Mechanisms whose input is not the default of their placement.
FRAME_INPUT = {"sta"}  # (B, T, C, H, W) clips of frame feature maps


def example_input(name: str, batch: int, size: tuple[int, int] = (7, 9), channels: int = CHANNELS) -> torch.Tensor:
    placement = attnzoo.attention_info(name).placement
    if name in FRAME_INPUT:
        return torch.randn(batch, 3, channels, *size)
    if placement == "pool":
        return torch.randn(batch, 5, channels)
    return torch.randn(batch, channels, *size)


def expected_shape(name: str, module: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    placement = attnzoo.attention_info(name).placement
    if placement == "pool":
        return (x.shape[0], getattr(module, "out_channels", x.shape[-1] if x.dim() == 3 else x.shape[2]))
    return tuple(x.shape)


def randomize_zero_params(module: nn.Module) -> nn.Module:
    """Give parameters that start at zero (identity-at-init scales) random values, so tests see every path."""
    with torch.no_grad():
        for p in module.parameters():
            if not p.detach().abs().sum():
                p.normal_(0, 0.5)
    return module
