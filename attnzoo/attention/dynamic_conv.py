"""Dynamic convolution (DY-Conv).

Chen et al., "Dynamic Convolution: Attention over Convolution Kernels",
CVPR 2020. https://arxiv.org/abs/1912.03458

K = 4 parallel kernels aggregated per example, W(x) = sum_k pi_k(x) W_k, with
an SE-like attention pi(x) = softmax(FC(ReLU(FC(GAP(x)))) / tau): hidden
width int(C / 4) + 1, as in the public reference code (kaijieshi7/
Dynamic-convolution-Pytorch, dynamic_conv.py), and a temperature tau that the
paper anneals linearly from 30 to 1 over the first 10 epochs, so that every
kernel trains early (attnzoo.tasks.DynamicConvTemperature does that, step by
step). A module starts at tau = 30 (``INITIAL_TEMPERATURE``), where the
schedule starts: a freshly built network attends almost uniformly over its
kernels, as at the start of the paper's training; the temperature is a buffer
saved with the weights, so a trained network keeps the one it ended at (1 after
the schedule), and a network trained in a loop of one's own stays at 30 unless
that loop calls :meth:`DynamicConv.set_temperature`.

Initialisation as the reference code: each of the K kernels gets its own
Kaiming-uniform initialisation (gain sqrt(2), fan-in = in_channels / groups x
k x k of that kernel, not of the stacked K kernels), and the attention's two
FCs Kaiming-normal (fan-out, ReLU) with a zero bias. The reference's schedule
starts at 34 and drops by 3 after each epoch (1 after 11 epochs); attnzoo
follows the paper's 30 -> 1 in 10 epochs. timm has no dynamic convolution, so
this one is ours.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import AttentionModule, check_conv_args, check_fraction, check_positive_int, softmax_fp32
from .registry import register_attention

__all__ = ["INITIAL_TEMPERATURE", "DynamicConv"]

# The paper's temperature at the start of training, where its annealing schedule begins.
INITIAL_TEMPERATURE = 30.0


@register_attention(
    "dyconv",
    family="branch",
    title="Dynamic Convolution: Attention over Convolution Kernels",
    year=2020,
    paper_url="https://arxiv.org/abs/1912.03458",
    placement="conv",
    map_kind="routing",
)
class DynamicConv(AttentionModule, nn.Module):
    """Drop-in for ``nn.Conv2d``; ``attention_map`` is the kernel attention (B, K), summing to 1.

    ``temperature`` is a buffer, saved with the weights, so a trained model
    keeps the temperature it ended at; set it with :meth:`set_temperature`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        bias: bool = False,
        num_kernels: int = 4,
        rd_ratio: float = 1 / 4,
        temperature: float = INITIAL_TEMPERATURE,
    ) -> None:
        super().__init__()
        name = "dyconv"
        out_channels = check_conv_args(name, in_channels, out_channels, kernel_size, stride, groups)
        check_positive_int(name, "dilation", dilation)
        check_positive_int(name, "num_kernels", num_kernels)
        check_fraction(name, "rd_ratio", rd_ratio)
        self.in_channels, self.out_channels, self.num_kernels = in_channels, out_channels, num_kernels
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.padding = dilation * (kernel_size - 1) // 2
        hidden = int(in_channels * rd_ratio) + 1
        self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, num_kernels, 1, bias=True)
        self.weight = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_kernels, out_channels)) if bias else None
        self.register_buffer("temperature", torch.tensor(0.0))
        self.set_temperature(temperature)
        for w in self.weight:
            nn.init.kaiming_uniform_(w, nonlinearity="relu")
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc2.bias)

    def set_temperature(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"attention 'dyconv': temperature must be positive, got {temperature!r}")
        self.temperature.fill_(float(temperature))

    def kernel_attention(self, x: Tensor) -> Tensor:
        """softmax(FC(ReLU(FC(GAP(x)))) / tau), shape (B, K)."""
        logits = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))).flatten(1)
        return softmax_fp32(logits.float() / self.temperature, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.in_channels)
        b, _, h, w = x.shape
        attn = self.kernel_attention(x)
        self._record(attn)
        mix = attn.to(self.weight.dtype)
        # One grouped convolution over the whole batch: example i uses its own aggregated kernel.
        weight = (mix @ self.weight.flatten(1)).view(b * self.out_channels, *self.weight.shape[2:])
        bias = (mix @ self.bias).flatten() if self.bias is not None else None
        out = F.conv2d(
            x.reshape(1, -1, h, w),
            weight,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups * b,
        )
        return out.view(b, self.out_channels, *out.shape[2:])
