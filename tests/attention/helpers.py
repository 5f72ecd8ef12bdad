"""Shared test inputs, parameter randomisation and hand-written reference math for attention modules."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
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


def assert_bad_arguments(name: str, channels, **kwargs) -> None:
    """Building ``name`` with these arguments raises a ValueError that names the mechanism."""
    with pytest.raises(ValueError, match=re.escape(f"attention '{name}'")):
        attnzoo.create_attention(name, channels, **kwargs)


# Parameter randomisation, so that a test sees every term of a formula (many blocks start as identity).


def randomize_zero_params(module: nn.Module) -> nn.Module:
    """Give parameters that start at zero (identity-at-init scales) random values, so tests see every path."""
    with torch.no_grad():
        for p in module.parameters():
            if not p.detach().abs().sum():
                p.normal_(0, 0.5)
    return module


def randomize(module: nn.Module, std: float = 0.3, mean_std: float | None = None) -> nn.Module:
    """Every parameter ~ N(0, std); every BatchNorm2d's running mean ~ N(0, mean_std or std), running var ~ U(0.5, 2)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
        for bn in (mod for mod in module.modules() if isinstance(mod, nn.BatchNorm2d)):
            bn.running_mean.normal_(0, std if mean_std is None else mean_std)
            bn.running_var.uniform_(0.5, 2.0)
    return module


def randomize_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d gets an affine map near identity and random running statistics; the rest keeps its init."""
    with torch.no_grad():
        for bn in (mod for mod in module.modules() if isinstance(mod, nn.BatchNorm2d)):
            bn.weight.normal_(1.0, 0.2)
            bn.bias.normal_(0.0, 0.2)
            bn.running_mean.normal_(0.0, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    return module


# Reference math: plain torch ops that read a layer's weights, never the attnzoo code under test.


def conv1x1(layer: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution over dim 1 of ``t`` (any trailing dims) written with einsum, plus the bias if there is one."""
    out = torch.einsum("oc,bc...->bo...", layer.weight.flatten(1), t)
    if layer.bias is None:
        return out
    return out + layer.bias.view((1, -1) + (1,) * (t.dim() - 2))


def bn_eval(t: torch.Tensor, bn: nn.Module) -> torch.Tensor:
    """Eval-mode BatchNorm over dim 1 of ``t``, from the running statistics and the affine parameters."""
    shape = (1, -1) + (1,) * (t.dim() - 2)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (t - bn.running_mean.view(shape)) * scale.view(shape) + bn.bias.view(shape)


def stable_softmax(t: torch.Tensor, dim: int) -> torch.Tensor:
    """exp(t - max) / sum exp(t - max) along ``dim``."""
    e = torch.exp(t - t.amax(dim, keepdim=True))
    return e / e.sum(dim, keepdim=True)


def pool_scores(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The attention-pooling scorer w^T tanh(W x + b) + c of ``m.score`` (Linear, Tanh, Linear), per item: (B, N)."""
    l1, l2 = m.score[0], m.score[2]
    return (torch.tanh(x @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias).squeeze(-1)


def mixed_kernel_conv(
    x: torch.Tensor,
    mix: torch.Tensor,
    kernels: torch.Tensor,
    biases: torch.Tensor | None = None,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Example i convolved with sum_e mix[i, e] kernels[e] (and bias sum_e mix[i, e] biases[e]), 'same' padding."""
    k = kernels.shape[-1]
    outs = []
    for i in range(x.shape[0]):
        kernel = sum(mix[i, e] * kernels[e] for e in range(kernels.shape[0]))
        bias = None if biases is None else sum(mix[i, e] * biases[e] for e in range(kernels.shape[0]))
        outs.append(
            F.conv2d(
                x[i : i + 1], kernel, bias, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation, groups=groups
            )
        )
    return torch.cat(outs)
