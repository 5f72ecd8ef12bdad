"""CANet's attention: channel-wise then pixel-wise gating of a conv layer's output.

"Concatenated Attention Neural Network for Image Restoration", arXiv
2006.11162, 2020. https://arxiv.org/abs/2006.11162

What the paper fixes (abstract): "both pixel-wise and channel-wise attention
mechanisms are used in each module convolution layer", and the modules of the
network are joined by "concatenation and feature selection" (that connection
belongs to the network, :class:`attnzoo.backbones.restoration.CANet`, not to
this module). No code was published, and the paper's text reachable here stops
after the abstract and the start of the introduction, so the layer itself is
taken from FFA-Net (Qin et al., "FFA-Net: Feature Fusion Attention Network for
Single Image Dehazing", AAAI 2020, https://github.com/zhilin007/FFA-Net), the
earlier restoration network that puts a "channel attention" and a "pixel
attention" on a conv layer's output:

- channel gate: sigmoid(conv1x1(ReLU(conv1x1(GAP(x))))), C -> C/8 -> C;
- pixel gate on the channel-gated features x' = x * channel gate:
  sigmoid(conv1x1(ReLU(conv1x1(x')))), C -> C/8 -> 1, one weight per position
  shared by every channel;
- output x' * pixel gate, same shape as x.

Open points and the choices made:
- the paper leaves the form of the two attentions open; attnzoo uses FFA-Net's
  layers because FFA-Net is the published restoration network that names
  exactly these two attentions (PAN's per-channel pixel attention appeared in
  October 2020, after CANet, so CANet cannot have built on it);
- the paper leaves the order open; channel then pixel, as FFA-Net's block;
- the paper gives no reduction; rd_ratio = 1/8 for both gates, FFA-Net's
  ``channel // 8`` (here round(C / 8), at least 1);
- "in each module convolution layer": the gates act on the conv's linear
  output, before the activation, which is where a ``block`` mechanism sits in
  a ResNet block too (after the last BN, before the add).
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import AttentionModule, check_positive_int, reduced_channels
from .registry import register_attention

__all__ = ["ConcatenatedAttention"]


@register_attention(
    "canet",
    family="channel+spatial",
    title="Concatenated Attention Neural Network for Image Restoration",
    year=2020,
    paper_url="https://arxiv.org/abs/2006.11162",
    placement="block",
    map_kind="spatial",
)
class ConcatenatedAttention(AttentionModule, nn.Module):
    """x' = x * channel_gate(x); x' * pixel_gate(x'). ``attention_map`` is the pixel gate (B, 1, H, W)."""

    def __init__(self, channels: int, rd_ratio: float = 1 / 8) -> None:
        super().__init__()
        self.channels = check_positive_int("canet", "channels", channels)
        hidden = reduced_channels("canet", channels, rd_ratio)
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.pixel_gate = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, self.channels)
        x = x * self.channel_gate(x)
        gate = self.pixel_gate(x)
        self._record(gate)
        return x * gate
