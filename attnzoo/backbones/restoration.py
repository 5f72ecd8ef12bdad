"""Full-resolution restoration networks: CANet.

"Concatenated Attention Neural Network for Image Restoration", arXiv
2006.11162, 2020. https://arxiv.org/abs/2006.11162

What the paper fixes (abstract): a "modules stacking network" whose modules are
joined by a "concatenation and feature selection mechanism", "a novel
connection mechanism which connect[s] different modules", with "both
pixel-wise and channel-wise attention mechanisms ... used in each module
convolution layer"; tasks: compression artifact reduction and denoising. No
code was published, and the paper's text reachable here stops after the
abstract and the start of the introduction, so every size and wiring detail
below is attnzoo's choice, stated as such:

    h_0 = head(x)                                    conv3x3, in_channels -> C
    o_m = module_m(s_{m-1}),  s_0 = h_0              L x [conv3x3 -> canet -> ReLU]
    s_m = ReLU(conv1x1(cat[h_0, o_1, ..., o_m]))     feature selection, (m+1)C -> C
    y   = x + tail(s_M)                              conv3x3, C -> in_channels

- the paper leaves which modules are concatenated open; attnzoo concatenates
  the head's features and the output of every module so far before each 1x1
  selection, the cascading connection of CARN (Ahn et al., ECCV 2018,
  https://github.com/nmhkahn/CARN-pytorch), the published restoration network
  that joins stacked blocks by concatenation and a 1x1 conv (with ReLU, as
  there), so each selection can pick among all earlier features;
- the paper leaves the module's inside open beyond attention in every conv
  layer; a module is L conv layers, each conv3x3 -> ``canet`` (the registered
  attention, channel then pixel gate) -> ReLU, with no skip of its own: the
  concatenation is the connection between modules;
- the paper leaves the sizes open; the defaults (C = 64, M = 8 modules, L = 3
  conv layers each) give 1,109,531 parameters for colour and 1,107,225 for
  grey, so the float32 weights (4.4 MB) fit the zoo's 5 MB limit; C = 64 is
  the width of the restoration networks CANet compares with (DnCNN, RCAN,
  FFA-Net, CARN);
- residual learning: the network predicts the residual and adds it to its
  input (y = x + tail(...)), as FFA-Net and DnCNN's residual formulation (the
  noise is -tail(...)). The output is not clamped to [0, 1], so training sees
  the gradient of out-of-range pixels; clamp at inference.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from attnzoo.attention import create_attention

__all__ = ["CANet"]


def _positive_int(arg: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"CANet: {arg} must be a positive integer, got {value!r}")
    return value


class CANet(nn.Module):
    """CANet: stacked attention modules joined by concatenation and 1x1 feature selection.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        channels: feature width C.
        num_modules: stacked attention modules M.
        convs_per_module: attention conv layers L in each module.
        rd_ratio: reduction of the ``canet`` attention's gates.

    Images (B, in_channels, H, W), any H x W, -> restored images of the same shape.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 64,
        num_modules: int = 8,
        convs_per_module: int = 3,
        rd_ratio: float = 1 / 8,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels not in (1, 3):
            raise ValueError(f"CANet: in_channels must be 1 (grey) or 3 (colour), got {in_channels!r}")
        self.in_channels = in_channels
        channels = _positive_int("channels", channels)
        _positive_int("num_modules", num_modules)
        _positive_int("convs_per_module", convs_per_module)
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(
                *(
                    layer
                    for _ in range(convs_per_module)
                    for layer in (
                        nn.Conv2d(channels, channels, 3, padding=1),
                        create_attention("canet", channels, rd_ratio=rd_ratio),
                        nn.ReLU(inplace=True),
                    )
                )
            )
            for _ in range(num_modules)
        )
        self.select = nn.ModuleList(
            nn.Sequential(nn.Conv2d((m + 2) * channels, channels, 1), nn.ReLU(inplace=True))
            for m in range(num_modules)
        )
        self.tail = nn.Conv2d(channels, in_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"CANet expects images (B, {self.in_channels}, H, W), got {got}")
        features = [self.head(x)]
        selected = features[0]
        for module, select in zip(self.body, self.select):
            features.append(module(selected))
            selected = select(torch.cat(features, dim=1))
        return x + self.tail(selected)
