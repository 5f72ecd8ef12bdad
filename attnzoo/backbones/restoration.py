"""Full-resolution restoration networks (Gaussian denoising, JPEG deartifacting): DnCNN, an
attention-configured residual-in-residual body (``rir``), CANet; their names and tiled inference.

A restoration name is ``<body>[-<attention>][.<tag>]``: ``dncnn``, ``rir-se``,
``rir-cbam.gray-s25``. ``dncnn`` and ``canet`` are fixed networks; ``rir``
takes any backbone mechanism (placement block, conv, gate or stage).

Every network maps images (B, C, H, W), C = ``in_channels`` (1 grey, 3
colour), any H x W, to restored images of the same shape, by residual
learning: it predicts the residual and adds it to its input. In eval mode
(``not model.training``) the output is clamped to [0, 1], so a loaded model
returns images; in training mode it is not, so the loss sees the gradient of
out-of-range pixels. Each network has ``spec`` (its :class:`RestorationSpec`),
``pretrained_cfg`` (``architecture``, ``in_chans``, ``task="restoration"``),
``receptive_radius`` (pixels of context its convolutions see on each side of
an output pixel) and ``is_local`` (whether that radius is all it sees: false
where a mechanism pools over the whole image, so that tiling,
:func:`restore_tiled`, is then an approximation). :func:`self_ensemble`
averages a network's outputs over the image's eight flips and rotations.

DnCNN
-----
Zhang, Zuo, Chen, Meng and Zhang, "Beyond a Gaussian Denoiser: Residual
Learning of Deep CNN for Image Denoising", IEEE TIP 2017.
https://arxiv.org/abs/1608.03981

Depth D = 17 (default) conv3x3 layers of C = 64 channels: conv+ReLU, (D - 2) x
[conv+BN+ReLU], conv; the network estimates the noise, y = x - net(x). Biases
as in the authors' PyTorch code (cszn/DnCNN, TrainingCodes/dncnn_pytorch): in
the first conv only; BN (eps 1e-4) makes the others' redundant, and the last
conv has none. Grey, D = 17, C = 64: 556,096 parameters. BN momentum 0.9 as in
KAIR (models/network_dncnn.py; the authors' code uses 0.95): the running
statistics follow the recent batches closely, which suits the stationary
Gaussian residual. Orthogonal initialisation of the convs, as both.
``receptive_radius`` = D (one pixel per 3x3 conv); local in eval mode.

Residual in residual (``rir``)
------------------------------
The structure of RCAN (Zhang, Li, Li, Wang, Zhong and Fu, "Image
Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV
2018, https://arxiv.org/abs/1807.02758) with EDSR's residual blocks without BN
(Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017, https://arxiv.org/abs/1707.02921), for
restoration (no upsampler)::

    h   = head(x)                                      conv3x3, in -> C
    b   = b + conv(ReLU(conv(b)))                      residual block, (attention: below)
    g   = g + conv(B blocks(g))                        residual group, its own skip
    f   = h + conv(G groups(h))                        long skip
    y   = x + tail(f)                                  conv3x3, C -> in

Defaults C = 48, G = 4 groups, B = 4 blocks (RCAN: 64, 10, 20): 0.77 M
parameters plain (grey), at most 1.18 M with any block, stage, gate or SK
variant, so the float32 weights fit the zoo's 5 MB; condconv and dyconv turn
each conv they replace into 4 kernels and hold 1.27 M even in the last group
only (their default). Where a mechanism goes, as in the backbones
(attnzoo/backbones/resnet.py):

- ``block`` (se, cbam, eca, gc, ge, gsop, srm, canet): in every residual block
  of the groups ``stages`` names (default: all; gsop: the last block of each,
  GSoP-Net1's), after the second conv, before the add. With ``se`` this is
  RCAN's residual channel attention block (RCAB): attnzoo's ``se`` reduction,
  16, is RCAN's;
- ``conv`` (sk, condconv, dyconv): replaces both 3x3 convs of every residual
  block of the groups ``stages`` names (default: all; condconv and dyconv:
  the last); a mechanism with its own BN and ReLU (``replaces_norm_act``: SK)
  replaces the first conv and its ReLU only, as SK does in SKNet's basic
  block, since as the second conv its ReLU would make the residual
  non-negative;
- ``gate`` (highway): replaces every residual block's add: ``gate(shortcut,
  branch)``, no activation after (EDSR's blocks have none); takes no stages;
- ``stage`` (nl, dnl, cc, ema, ann, glore, ham, psa, self): a standalone block
  after each residual group ``stages`` names (default: the middle one, group
  G // 2, the second of four), at full width.

``unshuffle`` r (default 1): FFDNet's reversible downsampling (Zhang, Zuo and
Zhang, "FFDNet: Toward a Fast and Flexible Solution for CNN-Based Image
Denoising", IEEE TIP 2018, https://arxiv.org/abs/1710.04026): the head takes
the r x r pixel-unshuffled sub-images (in * r * r channels) and the tail gives
them back to ``pixel_shuffle``, so the body runs at 1 / r of the resolution,
r * r times less compute per pixel; an H or W that is not a multiple of r is
padded by reflection and cropped back. ``receptive_radius`` = (n + 1) r - 1
for the n = G (2B + 1) + 3 3x3 convs (n at r = 1; 39 at the defaults); a
``conv`` mechanism counts as the 3x3 it replaces (SK's dilated path reaches
further). Local with no mechanism or with highway, a conv gate on the block
input that reaches past the block's two 3x3 convs only when wider than 5x5
(``gate_kernel_size``; counted then); every other mechanism pools over the
whole map.

CANet
-----
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
  noise is -tail(...)). The output is clamped to [0, 1] in eval mode only, so
  training sees the gradient of out-of-range pixels.

``receptive_radius`` = M L + 2 (26 at the defaults); not local: the channel
gates pool over the whole map.
"""
from __future__ import annotations

import inspect
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnzoo._checks import check_int
from attnzoo.attention import attention_info, create_attention

from .checkpoint import load_checkpoint
from .spec import _closest, backbone_attentions, check_attention_fields

__all__ = [
    "RESTORATION_BODIES",
    "CANet",
    "DnCNN",
    "ResidualInResidual",
    "RestorationNetwork",
    "RestorationSpec",
    "create_restorer",
    "is_restoration_name",
    "list_restoration_models",
    "parse_restoration_name",
    "restore_tiled",
    "self_ensemble",
]

RESTORATION_BODIES = ("dncnn", "canet", "rir")
# The bodies with no place for a mechanism of the user's choice.
_FIXED_BODIES = ("dncnn", "canet")

# Mechanisms that see only a neighbourhood of each pixel: highway's gate is a conv on the block input.
# Every other backbone mechanism pools over the whole map (channel gates, kernel routing, non-local blocks).
_LOCAL_ATTENTIONS = ("highway",)

# The groups (as a slice of 1..G) whose blocks carry a block or conv mechanism unless `stages` names them;
# every group when absent. CondConv and DY-Conv turn every conv they replace into 4 kernels: in every group
# the defaults would hold 2.7 M parameters; in the last they hold 1.27 M. Later layers are where resnet.py
# puts CondConv too (its last stage), where it pays off.
_PAPER_GROUPS: dict[str, slice] = {"condconv": slice(-1, None), "dyconv": slice(-1, None)}
# Which blocks of a group that carries it a block mechanism goes into (0-based, negative from the group's
# end); every block when absent. GSoP-Net1 has one GSoP module, in the last block of each stage, as in
# resnet.py; in all 16 blocks its 128-channel covariance layers would make rir-gsop 2.3 M parameters.
_PAPER_BLOCKS: dict[str, tuple[int, ...]] = {"gsop": (-1,)}


@dataclass(frozen=True)
class RestorationSpec:
    """A restoration network.

    Args:
        body: one of :data:`RESTORATION_BODIES`.
        attention: for ``rir`` only: a registered mechanism of placement block, conv, gate or stage, or None.
        stages: which residual groups (1-based) carry the mechanism: for block and conv mechanisms, the
            groups whose blocks carry it (default: all; condconv and dyconv: the last); for stage
            mechanisms, the groups followed by a standalone block (default: the middle group, G // 2).
            Gate mechanisms take no stages: they replace every residual add.
        attention_kwargs: keyword arguments for the mechanism.
    """

    body: str
    attention: str | None = None
    stages: tuple[int, ...] | None = None
    attention_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.body not in RESTORATION_BODIES:
            raise ValueError(
                f"unknown restoration body {self.body!r}.{_closest(str(self.body), RESTORATION_BODIES)} "
                f"Known: {', '.join(RESTORATION_BODIES)}."
            )
        if self.attention is not None:
            if self.body in _FIXED_BODIES:
                raise ValueError(
                    f"{self.body}-{self.attention}: dncnn and canet are fixed networks that take no attention; "
                    f"use rir-{self.attention} for a residual body with it"
                )
        stages = check_attention_fields(
            self.name, self.attention, self.stages, self.attention_kwargs, owner="rir", unit="group"
        )
        object.__setattr__(self, "stages", stages)

    @property
    def name(self) -> str:
        """The model name: ``<body>`` or ``<body>-<attention>``."""
        return self.body if self.attention is None else f"{self.body}-{self.attention}"

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | RestorationSpec) -> RestorationSpec:
        """A spec from a restoration name, a dict with the fields, or a spec."""
        if isinstance(value, RestorationSpec):
            return value
        if isinstance(value, str):
            return parse_restoration_name(value)[0]
        if isinstance(value, Mapping):
            unknown = set(value) - {"body", "attention", "stages", "attention_kwargs"}
            if unknown or "body" not in value:
                raise ValueError(
                    "a restoration spec needs 'body' and may have 'attention', 'stages', 'attention_kwargs'; "
                    f"got keys {sorted(value)}"
                )
            return cls(**value)
        raise ValueError(f"expected a restoration name, a dict or a RestorationSpec, got {type(value).__name__}")


def parse_restoration_name(name: str) -> tuple[RestorationSpec, str | None]:
    """``"rir-cbam.gray-s25"`` -> (RestorationSpec("rir", "cbam"), "gray-s25")."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a restoration name must be a non-empty string, got {name!r}")
    base, dot, tag = name.partition(".")
    if dot and not tag:
        raise ValueError(f"restoration name {name!r} has an empty tag after '.'")
    body, dash, attention = base.partition("-")
    if dash and not attention:
        raise ValueError(f"restoration name {name!r} has an empty attention after '-'")
    return RestorationSpec(body, attention or None), tag or None


def is_restoration_name(name: object) -> bool:
    """Whether ``name`` starts with a restoration body (the part before the first '-' or '.')."""
    return isinstance(name, str) and re.split(r"[-.]", name, maxsplit=1)[0] in RESTORATION_BODIES


def list_restoration_models() -> list[str]:
    """Every restoration name without a tag: each body, and rir with each backbone attention."""
    return sorted([*RESTORATION_BODIES, *(f"rir-{attention}" for attention in backbone_attentions())])


class RestorationNetwork(nn.Module):
    """What the restoration networks share: spec and config, the input check, the eval-mode clamp.

    Subclasses set ``receptive_radius`` (int, pixels) and ``is_local`` (bool).
    """

    receptive_radius: int
    is_local: bool

    def __init__(self, spec: RestorationSpec, in_channels: int) -> None:
        super().__init__()
        self.spec = spec
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels not in (1, 3):
            raise ValueError(f"{self._label}: in_channels must be 1 (grey) or 3 (colour), got {in_channels!r}")
        self.in_channels = in_channels
        self.pretrained_cfg = dict(architecture=spec.name, in_chans=in_channels, task="restoration")

    @property
    def _label(self) -> str:
        """The network in messages: its class, and its name where an attention makes it one of several."""
        cls = type(self).__name__
        return cls if self.spec.attention is None else f"{cls} ({self.spec.name})"

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{self._label} expects images (B, {self.in_channels}, H, W), got {got}")

    def _output(self, restored: Tensor) -> Tensor:
        # Clamped only at inference: the training loss needs the gradient of out-of-range pixels.
        return restored if self.training else restored.clamp(0, 1)


class DnCNN(RestorationNetwork):
    """DnCNN: a plain stack of conv3x3 layers with BN that estimates the noise; y = x - net(x).

    Args:
        in_channels: 1 (grey) or 3 (colour).
        channels: feature width C (64 in the paper).
        depth: conv layers D, at least 2 (17 in the paper for a known noise level).

    Images (B, in_channels, H, W), any H x W, -> restored images of the same shape.
    """

    def __init__(self, in_channels: int = 1, channels: int = 64, depth: int = 17) -> None:
        super().__init__(RestorationSpec("dncnn"), in_channels)
        channels = check_int("DnCNN", "channels", channels)
        if check_int("DnCNN", "depth", depth) < 2:
            raise ValueError(f"DnCNN: depth must be at least 2 (first and last conv), got {depth}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels, eps=1e-4, momentum=0.9),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(channels, in_channels, 3, padding=1, bias=False))
        self.layers = nn.Sequential(*layers)
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.receptive_radius = depth
        self.is_local = True

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._output(x - self.layers(x))


class _ResidualBlock(nn.Module):
    """EDSR's residual block: x + attention(conv(ReLU(conv(x)))), or gate(x, branch) for a gate mechanism."""

    def __init__(
        self,
        conv1: nn.Module,
        act: nn.Module,
        conv2: nn.Module,
        attention: nn.Module | None = None,
        gate: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1, self.act, self.conv2 = conv1, act, conv2
        self.attention = attention
        self.gate = gate

    def forward(self, x: Tensor) -> Tensor:
        branch = self.conv2(self.act(self.conv1(x)))
        if self.attention is not None:
            branch = self.attention(branch)
        return x + branch if self.gate is None else self.gate(x, branch)


class _ResidualGroup(nn.Module):
    """RCAN's residual group: x + conv(blocks(x))."""

    def __init__(self, blocks: list[_ResidualBlock], channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


class ResidualInResidual(RestorationNetwork):
    """Residual groups of residual blocks with an attention mechanism where its placement puts it.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        channels: feature width C.
        groups: residual groups G.
        blocks: residual blocks B in each group.
        unshuffle: FFDNet's downsampling factor r: the body runs at 1 / r of the resolution.
        attention: a registered mechanism of placement block, conv, gate or stage, or None.
        stages: which groups (1-based) carry it (see :class:`RestorationSpec`).
        attention_kwargs: keyword arguments for the mechanism.

    Images (B, in_channels, H, W), any H x W, -> restored images of the same shape.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 48,
        groups: int = 4,
        blocks: int = 4,
        unshuffle: int = 1,
        attention: str | None = None,
        stages: Sequence[int] | None = None,
        attention_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        spec = RestorationSpec(
            "rir", attention, None if stages is None else tuple(stages), dict(attention_kwargs or {})
        )
        super().__init__(spec, in_channels)
        channels = check_int(self._label, "channels", channels)
        groups = check_int(self._label, "groups", groups)
        blocks = check_int(self._label, "blocks", blocks)
        self.unshuffle = check_int(self._label, "unshuffle", unshuffle)
        self._placement = attention_info(attention).placement if attention else None
        carried = self._resolve_stages(groups)

        sub_images = in_channels * unshuffle * unshuffle
        self.head = nn.Conv2d(sub_images, channels, 3, padding=1)
        in_group = {i % blocks for i in _PAPER_BLOCKS.get(attention, range(blocks)) if -blocks <= i < blocks}
        body: list[tuple[str, nn.Module]] = []
        for g in range(1, groups + 1):
            group = _ResidualGroup(
                [self._block(channels, g in carried and i in in_group) for i in range(blocks)], channels
            )
            body.append((str(g - 1), group))
            if self._placement == "stage" and g in carried:
                body.append((f"{g - 1}_{attention}", self._attention(channels)))
        body.append(("conv", nn.Conv2d(channels, channels, 3, padding=1)))
        self.body = nn.Sequential(OrderedDict(body))
        self.tail = nn.Conv2d(channels, sub_images, 3, padding=1)

        # Each 3x3 conv sees one more (sub-)pixel on each side: two per block, one per group, and the head,
        # the body's conv and the tail. A gate sees the block input itself, so reaches further only past 5x5.
        block_radius = 2
        if self._placement == "gate":
            block_radius = max(2, *(_conv_radius(m.gate) for m in self.modules() if isinstance(m, _ResidualBlock)))
        radius = groups * (blocks * block_radius + 1) + 3
        # At 1 / r resolution a sub-pixel covers r pixels, and the pixel's place within its r x r cell adds r - 1.
        self.receptive_radius = (radius + 1) * unshuffle - 1
        self.is_local = attention is None or attention in _LOCAL_ATTENTIONS

    def _resolve_stages(self, groups: int) -> tuple[int, ...]:
        """The groups (1-based) that carry the mechanism: ``spec.stages``, or the default for its placement."""
        every = tuple(range(1, groups + 1))
        if self._placement is None:
            return ()
        if self.spec.stages is None:
            if self._placement == "stage":
                # A single global block mid-way: features already restored locally, still refined after it.
                return (max(1, groups // 2),)
            return every[_PAPER_GROUPS.get(self.spec.attention, slice(None))]
        for index in self.spec.stages:
            if index not in every:
                raise ValueError(f"stages={self.spec.stages}: {self._label} has groups 1 to {groups}, got {index}")
        return self.spec.stages

    def _attention(self, channels: int, **defaults: Any) -> nn.Module:
        return create_attention(self.spec.attention, channels, **{**defaults, **self.spec.attention_kwargs})

    def _block(self, channels: int, carries: bool) -> _ResidualBlock:
        placement = self._placement if carries else None
        conv1, act, conv2 = (
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        if placement == "conv":
            conv1 = self._attention(channels, out_channels=channels, kernel_size=3, stride=1, groups=1)
            if getattr(conv1, "replaces_norm_act", False):
                # It ends in its own ReLU: as the second conv it would make every residual non-negative.
                # So it replaces the first conv and the ReLU after it, as in SKNet's (timm's) basic block.
                act = nn.Identity()
            else:
                conv2 = self._attention(channels, out_channels=channels, kernel_size=3, stride=1, groups=1)
        return _ResidualBlock(
            conv1,
            act,
            conv2,
            attention=self._attention(channels) if placement == "block" else None,
            gate=self._attention(channels, transform=nn.Identity()) if placement == "gate" else None,
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        r = self.unshuffle
        h, w = x.shape[-2:]
        padded = x
        if r > 1 and (h % r or w % r):
            pad_h, pad_w = -h % r, -w % r
            # Reflection needs more pixels than it pads; an image narrower than r repeats its edge instead.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            padded = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        features = self.head(F.pixel_unshuffle(padded, r) if r > 1 else padded)
        residual = self.tail(features + self.body(features))
        if r > 1:
            residual = F.pixel_shuffle(residual, r)[..., :h, :w]
        return self._output(x + residual)


def _conv_radius(module: nn.Module) -> int:
    """The widest reach, in pixels on each side, of the convolutions in ``module`` (0 with none)."""
    return max(
        (m.dilation[0] * (m.kernel_size[0] - 1) // 2 for m in module.modules() if isinstance(m, nn.Conv2d)),
        default=0,
    )


class CANet(RestorationNetwork):
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
        super().__init__(RestorationSpec("canet"), in_channels)
        channels = check_int("CANet", "channels", channels)
        check_int("CANet", "num_modules", num_modules)
        check_int("CANet", "convs_per_module", convs_per_module)
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
        self.receptive_radius = num_modules * convs_per_module + 2
        self.is_local = False

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        features = [self.head(x)]
        selected = features[0]
        for module, select in zip(self.body, self.select):
            features.append(module(selected))
            selected = select(torch.cat(features, dim=1))
        return self._output(x + self.tail(selected))


_NETWORKS: dict[str, type[RestorationNetwork]] = {"dncnn": DnCNN, "canet": CANet, "rir": ResidualInResidual}
# Arguments create_restorer fills in from the spec and its own keywords, not from **kwargs.
_SPEC_ARGUMENTS = ("in_channels", "attention", "stages", "attention_kwargs")


def create_restorer(
    name_or_spec: str | Mapping[str, Any] | RestorationSpec,
    *,
    in_channels: int = 1,
    checkpoint_path: str | Path | None = None,
    stages: Sequence[int] | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> RestorationNetwork:
    """Build a restoration network by name (``"dncnn"``, ``"rir-se"``, ``"canet"``; a tag is ignored),
    dict of :class:`RestorationSpec`'s fields, or spec.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        checkpoint_path: weights to load strictly (safetensors, or a pickled state dict read with
            ``weights_only=True``).
        stages, attention_kwargs: for ``rir``: override the spec's (see :class:`RestorationSpec`).
        **kwargs: the network's own arguments: ``channels``, ``depth`` (dncnn); ``channels``,
            ``groups``, ``blocks``, ``unshuffle`` (rir); ``channels``, ``num_modules``,
            ``convs_per_module``, ``rd_ratio`` (canet).
    """
    spec = RestorationSpec.from_any(name_or_spec)
    network = _NETWORKS[spec.body]
    own = [p for p in inspect.signature(network).parameters if p not in _SPEC_ARGUMENTS]
    unknown = sorted(set(kwargs) - set(own))
    if unknown:
        raise ValueError(f"{spec.body} takes no argument {', '.join(unknown)}; its arguments: {', '.join(own)}")
    if spec.body in _FIXED_BODIES:
        if stages is not None or attention_kwargs is not None:
            raise ValueError(f"{spec.body} is a fixed network: stages and attention_kwargs apply to rir-<attention>")
        model = network(in_channels, **kwargs)
    else:
        model = network(
            in_channels,
            attention=spec.attention,
            stages=spec.stages if stages is None else tuple(stages),
            attention_kwargs={**spec.attention_kwargs, **(attention_kwargs or {})},
            **kwargs,
        )
    # What rebuilds it besides the spec and in_chans; config.json records it.
    model.pretrained_cfg["network_kwargs"] = dict(kwargs)
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    return model


def _spans(length: int, tile: int, overlap: int, core: int) -> list[tuple[int, int, int, int]]:
    """Along one side: (window start, window end, kept start, kept end) of each tile."""
    if length <= tile:
        return [(0, length, 0, length)]
    return [
        (max(0, start - overlap), min(length, start + core + overlap), start, min(length, start + core))
        for start in range(0, length, core)
    ]


def restore_tiled(model: nn.Module, images: Tensor, tile: int = 512, overlap: int | None = None) -> Tensor:
    """Restore ``images`` (B, C, H, W) tile by tile, so that memory holds one tile's activations at a time.

    The model sees windows of at most ``tile`` x ``tile`` pixels. Each keeps its centre, ``overlap``
    pixels in from every side that is not the image's border, so every output pixel comes from a
    window in which it has at least ``overlap`` pixels of context; windows tile the image without
    blending. ``overlap`` defaults to the model's ``receptive_radius``: for a network whose
    ``is_local`` is true the result then equals restoring the whole image at once (up to float
    rounding); for one with global pooling or non-local attention it is an approximation. For a
    model with an ``unshuffle`` factor r, tiles start at multiples of r (``overlap`` is rounded up
    to one), so each sees the pixel-unshuffle grid of the whole image.

    Runs under ``torch.no_grad`` in the model's current mode (call ``model.eval()`` first for
    inference); each window goes to the model's device and floating dtype, and the output is
    assembled on the images' device, in their dtype. Images no larger than a tile are restored in
    one pass.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = f"shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"restore_tiled expects images (B, C, H, W), got {got}")
    check_int("restore_tiled", "tile", tile)
    if overlap is None:
        overlap = getattr(model, "receptive_radius", None)
        if overlap is None:
            raise ValueError(f"restore_tiled: {type(model).__name__} has no receptive_radius; give overlap")
    else:
        check_int("restore_tiled", "overlap", overlap, 0)
    step = getattr(model, "unshuffle", 1)
    overlap = -(-overlap // step) * step
    core = (tile - 2 * overlap) // step * step
    if core < 1:
        raise ValueError(
            f"restore_tiled: tile={tile} leaves nothing inside an overlap of {overlap} on each side; "
            f"tile must be at least {2 * overlap + step}"
        )
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    device, dtype = (images.device, images.dtype) if weight is None else (weight.device, weight.dtype)
    height, width = images.shape[-2:]
    restored = torch.empty_like(images)
    with torch.no_grad():
        for top, bottom, keep_top, keep_bottom in _spans(height, tile, overlap, core):
            for left, right, keep_left, keep_right in _spans(width, tile, overlap, core):
                out = model(images[:, :, top:bottom, left:right].to(device, dtype))
                restored[:, :, keep_top:keep_bottom, keep_left:keep_right] = out[
                    :, :, keep_top - top : keep_bottom - top, keep_left - left : keep_right - left
                ]
    return restored


def self_ensemble(restore: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """The geometric self-ensemble of the super-resolution and restoration papers (Lim et al., "Enhanced
    Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017: EDSR+; KAIR's ``test_mode=3``,
    BasicSR's ``test_x8``): ``restore`` (a network, or ``partial(restore_tiled, network, tile=512)``)
    run on each of the eight flips and 90-degree rotations of ``images`` (B, C, H, W), each output
    turned back, and the eight averaged, in the outputs' dtype. Eight times the work for a little more PSNR
    (what it adds to the zoo's denoisers: docs/restoration.md).

    Written here because neither timm nor torchvision has one for image-to-image models.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        got = f"shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"self_ensemble expects images (B, C, H, W), got {got}")
    total = None
    for flip in (False, True):
        flipped = images.flip(-1) if flip else images
        for turns in range(4):
            out = torch.rot90(restore(torch.rot90(flipped, turns, (-2, -1))), -turns, (-2, -1))
            out = out.flip(-1) if flip else out
            # Summed in float32 at least, so that half-precision outputs lose nothing to the sum.
            total = out.to(torch.promote_types(out.dtype, torch.float32)) if total is None else total + out
    return (total / 8).to(out.dtype)
