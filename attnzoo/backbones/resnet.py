"""Attention-configured ResNets, built on timm's ``ResNet``.

Each mechanism goes where its paper put it (shared/PAPERS.md; docs/backbones.md,
"Where each mechanism goes"). The positions are data, in the tables below:

- ``block``: inside residual blocks, after the last conv's BN and before the
  add (timm's ``attn_layer`` hook, where SE-, CBAM-, ECA-, GC-ResNets put it).
  The hook gets a factory that builds the module for the blocks that carry it
  (every block of the stages ``_PAPER_STAGES`` names, or the blocks
  ``_PAPER_BLOCKS`` names: GSoP-Net1's last block of each stage) and nothing
  (None) for the others;
- ``conv``: replaces convolutions of the residual blocks (``_CONV_SLOTS``): the
  3x3 by default (SKNet), every convolution of the residual branch for DY-Conv,
  every convolution of the block, shortcut projection included, for CondConv;
  each replacement takes the stride and groups of the conv it replaces, and one
  that carries its own BN and ReLU (SK) replaces those too;
- ``gate``: replaces the residual add: ``act(gate(shortcut, branch))``;
- ``stage``: standalone blocks inserted into a stage's ``nn.Sequential`` after
  the blocks ``_STAGE_BLOCKS`` names (the non-local image setting: one block
  before the last block of res4).

Which stages carry a mechanism is ``_PAPER_STAGES`` (``_STAGE_BLOCKS`` for a
stage mechanism) unless ``spec.stages`` names them; a stage mechanism then sits
at the same position in every stage named. Arguments a paper gives a mechanism
in one stage are ``_PAPER_STAGE_KWARGS``.

The networks keep timm's module names (``conv1``, ``layer1.0.bn2``, ``fc``),
and an inserted stage block is named after the block it follows
(``layer3.4_nl``), so the residual blocks keep their indices: timm's
``features_only``, ``forward_features``, ``reset_classifier`` and weights work
as they do in timm, and a plain ResNet's weights load into the residual blocks
of a network with stage blocks.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

from attnzoo.attention import attention_info, create_attention
from attnzoo.attention.base import AttentionModule

from .spec import BackboneSpec

__all__ = ["AttentionResNet", "GatedBasicBlock", "GatedBottleneck", "pretrained_body"]

_IMAGENET = {
    "resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2)),
    # A quarter of ResNet-18's stage widths behind timm's 64-wide stem: 1.2 M parameters as a detector
    # with a 64-channel FPN, so the bundled detection entries fit the zoo's 5 MB.
    "resnet18n": dict(block=BasicBlock, layers=(2, 2, 2, 2), channels=(16, 32, 64, 128)),
    "resnet34": dict(block=BasicBlock, layers=(3, 4, 6, 3)),
    "resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    "resnet101": dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    "resnext50_32x4d": dict(block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
}
_IMAGENET_CHANNELS = (64, 128, 256, 512)
# He et al. 2016, section 4.2: 6n + 2 layers, three stages of 16, 32, 64 channels.
_CIFAR_BLOCKS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
_CIFAR_CHANNELS = (16, 32, 64)

# Where a mechanism's paper fixes the network: SKNet-50 is ResNeXt-50 32x4d with SK units.
_PAPER_NETWORK = {("resnet50", "sk"): dict(cardinality=32, base_width=4)}

# Arguments by block kind; the user's attention_kwargs win.
_BLOCK_KIND_ATTENTION_KWARGS: dict[type, dict[str, dict[str, Any]]] = {
    # SK in basic blocks: the paper has no such network; use timm's skresnet18/34 settings
    # (each path sees half the input, fuse width max(C / 8, 16)) so their weights load.
    BasicBlock: {"sk": dict(split_input=True, rd_ratio=1 / 8, min_rd_channels=16)},
    # The highway gate takes H's kernel size, 3x3 as a basic block's convs. In a bottleneck it gates the
    # 4 x planes channels of the add, where a 3x3 gate would hold 144 planes^2 weights against the branch's
    # 17 planes^2 (resnet50-highway: 207 M parameters); the 1x1 of the branch's ends keeps it at 46 M.
    Bottleneck: {"highway": dict(gate_kernel_size=1)},
}

# Arguments a paper gives a mechanism in particular stages (1-based) of the ImageNet ResNets; the user's
# attention_kwargs win. GSoP-Net's authors reduce with a stride-2 conv in the blocks of planes <= 64, which
# in their ImageNet ResNets is res2 (stage 1, 56 x 56 maps). The CIFAR networks are not in the paper, and
# all their stages have planes <= 64 at 32 x 32 to 8 x 8; no entry applies to them.
_PAPER_STAGE_KWARGS: dict[str, dict[int, dict[str, Any]]] = {"gsop": {1: dict(reduce_stride=2)}}

# Stages as slices of a network's stages: res4 and res5 of an ImageNet ResNet, stages 2 and 3 of a CIFAR one.
_RES4, _LAST_STAGE = slice(-2, -1), slice(-1, None)
_BEFORE_LAST_BLOCK, _AFTER_LAST_BLOCK = (-2,), (-1,)

# Which blocks of each stage that carries it a block mechanism goes into (0-based, negative counting from the
# stage's end); every block when absent. GSoP-Net1 has one GSoP module, in the last block of each stage
# (the authors' ResNet code: ['0'] * (n - 1) + [att] per stage).
_PAPER_BLOCKS: dict[str, tuple[int, ...]] = {"gsop": (-1,)}

# The stages a block or conv mechanism goes into unless `stages` names them; every stage when absent.
_PAPER_STAGES: dict[str, slice] = {
    "gc": slice(1, None),  # GCNet: c3-c5
    # CondConv pays off in the later layers; ResNet-50's cost grows by 8 experts x res5's convolutions.
    "condconv": _LAST_STAGE,
}

# Where a stage mechanism's blocks go: the stages unless `stages` names them, and after which blocks of
# each of its stages (0-based, negative counting from the stage's end; positions a stage lacks are left out).
_STAGE_BLOCKS: dict[str, tuple[slice, tuple[int, ...]]] = {
    # Wang et al. 2018, the image setting: one block right before the last residual block of res4. DNL is a
    # drop-in for it, and self-attention over positions is what an embedded-Gaussian non-local block computes.
    "nl": (_RES4, _BEFORE_LAST_BLOCK),
    "dnl": (_RES4, _BEFORE_LAST_BLOCK),
    "self": (_RES4, _BEFORE_LAST_BLOCK),
    # "R50 + 3 units in res4": after its 1st, 3rd and 5th blocks, where the authors' ResNet-50 code puts its
    # res4 units (facebookresearch/GloRe, network/resnet50_3d_gcn_x5.py).
    "glore": (_RES4, (0, 2, 4)),
    # Segmentation heads on the last feature map of a dilated backbone: here, after res5's last block.
    "cc": (_LAST_STAGE, _AFTER_LAST_BLOCK),
    "ema": (_LAST_STAGE, _AFTER_LAST_BLOCK),
    "ann": (_LAST_STAGE, _AFTER_LAST_BLOCK),
    "ham": (_LAST_STAGE, _AFTER_LAST_BLOCK),
    "psa": (_LAST_STAGE, _AFTER_LAST_BLOCK),
}
# A stage mechanism that no paper placed here (a user's) goes where the non-local block goes.
_DEFAULT_STAGE_BLOCKS = (_RES4, _BEFORE_LAST_BLOCK)

# Which convolutions of a residual block a conv mechanism replaces (default: the 3x3, as SKNet):
# DY-ResNet makes every convolution after the stem dynamic but the 1x1 shortcut projection;
# CondConv replaces every convolution of the blocks it is in, the projection too.
_CONV_SLOTS: dict[str, tuple[str, ...]] = {"dyconv": ("branch",), "condconv": ("branch", "shortcut")}
_DEFAULT_CONV_SLOTS = ("3x3",)
_BLOCK_CONVS = {
    "3x3": {BasicBlock: ("conv1",), Bottleneck: ("conv2",)},
    "branch": {BasicBlock: ("conv1", "conv2"), Bottleneck: ("conv1", "conv2", "conv3")},
}
# The BN and activation right after the 3x3, inside the branch: what SK, carrying its own, replaces.
_NORM_ACT_AFTER_3X3 = {BasicBlock: ("bn1", "act1"), Bottleneck: ("bn2", "act2")}


def _indices(positions: tuple[int, ...], count: int) -> set[int]:
    """The block indices that ``positions`` (negative from the end) name in a stage of ``count`` blocks."""
    return {p % count for p in positions if -count <= p < count}


def _kind(block: nn.Module) -> type[BasicBlock] | type[Bottleneck]:
    return Bottleneck if isinstance(block, Bottleneck) else BasicBlock


def _block_convs(block: BasicBlock | Bottleneck, slot: str) -> list[tuple[nn.Module, str]]:
    """(parent module, attribute) of each convolution of ``block`` in ``slot``."""
    if slot == "shortcut":
        return [] if block.downsample is None else [(block.downsample, "0")]
    return [(block, name) for name in _BLOCK_CONVS[slot][_kind(block)]]


def _branch(block: BasicBlock | Bottleneck, x: Tensor) -> Tensor:
    """The residual branch of a timm block (its forward up to, not including, the add)."""
    if isinstance(block, Bottleneck):
        x = block.act1(block.bn1(block.conv1(x)))
        x = block.aa(block.act2(block.drop_block(block.bn2(block.conv2(x)))))
        x = block.bn3(block.conv3(x))
    else:
        x = block.aa(block.act1(block.drop_block(block.bn1(block.conv1(x)))))
        x = block.bn2(block.conv2(x))
    if block.se is not None:
        x = block.se(x)
    if block.drop_path is not None:
        x = block.drop_path(x)
    return x


class _Gated:
    """A residual block whose add is replaced by a gate between shortcut and branch."""

    def _init_gate(self, gate_layer: Callable[..., nn.Module] | None, channels: int) -> None:
        if gate_layer is None:
            raise ValueError("a gated residual block needs a gate_layer")
        self.gate = gate_layer(channels)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self._final_act(self.gate(shortcut, _branch(self, x)))


class GatedBasicBlock(_Gated, BasicBlock):
    def __init__(self, *args: Any, gate_layer: Callable[..., nn.Module] | None = None, **kwargs: Any) -> None:
        BasicBlock.__init__(self, *args, **kwargs)
        self._init_gate(gate_layer, self.bn2.num_features)
        self._final_act = self.act2


class GatedBottleneck(_Gated, Bottleneck):
    def __init__(self, *args: Any, gate_layer: Callable[..., nn.Module] | None = None, **kwargs: Any) -> None:
        Bottleneck.__init__(self, *args, **kwargs)
        self._init_gate(gate_layer, self.bn3.num_features)
        self._final_act = self.act3


_GATED = {BasicBlock: GatedBasicBlock, Bottleneck: GatedBottleneck}


class AttentionResNet(ResNet):
    """A timm ``ResNet`` with an attention mechanism placed as its paper did.

    ``model.spec`` is the :class:`BackboneSpec` it was built from. Other keyword
    arguments (``drop_rate``, ``drop_path_rate``, ``in_chans``, ``global_pool`` ...)
    go to timm's ``ResNet``.
    """

    def __init__(self, spec: BackboneSpec, num_classes: int = 1000, **kwargs: Any) -> None:
        self.spec = spec
        self._cifar = spec.arch in _CIFAR_BLOCKS
        if self._cifar:
            n = _CIFAR_BLOCKS[spec.arch]
            # timm's stem width for a non-deep stem is fixed at 64; a deep stem of width 8 makes
            # inplanes 16, CIFAR's, and is then replaced by CIFAR's single 3x3 conv.
            arch = dict(block=BasicBlock, layers=(n, n, n), channels=_CIFAR_CHANNELS, stem_type="deep", stem_width=8)
        else:
            arch = dict(dict(channels=_IMAGENET_CHANNELS), **_IMAGENET[spec.arch])
        arch.update(_PAPER_NETWORK.get((spec.arch, spec.attention), {}))

        placement = attention_info(spec.attention).placement if spec.attention else None
        self._attention_stages = self._resolve_stages(placement, len(arch["layers"]))
        self._attention_kwargs = {
            **_BLOCK_KIND_ATTENTION_KWARGS[arch["block"]].get(spec.attention, {}),
            **spec.attention_kwargs,
        }
        # timm calls the block hooks with the block's output channels, distinct for each stage here,
        # block after block, so a count per stage tells which block of its stage is being built.
        stage_of = {c * arch["block"].expansion: i for i, c in enumerate(arch["channels"], 1)}
        block_args = dict(kwargs.pop("block_args", None) or {})
        if placement == "block":
            carried = {
                stage: _indices(_PAPER_BLOCKS.get(spec.attention, tuple(range(count))), count)
                for stage, count in enumerate(arch["layers"], 1)
            }
            built = dict.fromkeys(carried, 0)

            def block_attention(channels: int, **_timm_device_kwargs: Any) -> nn.Module | None:
                stage = stage_of[channels]
                index, built[stage] = built[stage], built[stage] + 1
                return self._build(stage, channels) if index in carried[stage] else None

            block_args["attn_layer"] = block_attention
        elif placement == "gate":
            arch["block"] = _GATED[arch["block"]]
            block_args["gate_layer"] = lambda channels: self._build(
                stage_of[channels], channels, transform=nn.Identity()
            )

        super().__init__(num_classes=num_classes, block_args=block_args, **arch, **kwargs)
        if self._cifar:
            self._make_cifar_stem(kwargs.get("in_chans", 3))
        in_chans = kwargs.get("in_chans", 3)
        # timm's data config (timm.data.resolve_data_config reads it); tasks and the zoo add labels and the like.
        self.pretrained_cfg = dict(
            architecture=spec.name,
            input_size=(in_chans, 32, 32) if self._cifar else (in_chans, 224, 224),
            mean=IMAGENET_DEFAULT_MEAN if in_chans == 3 else (0.5,) * in_chans,
            std=IMAGENET_DEFAULT_STD if in_chans == 3 else (0.5,) * in_chans,
            interpolation="bilinear",
            crop_pct=1.0 if self._cifar else 0.875,
            num_classes=num_classes,
            first_conv="conv1",
            classifier="fc",
        )
        if placement == "conv":
            self._replace_convs()
        elif placement == "stage":
            self._insert_stage_blocks()

    @property
    def num_stages(self) -> int:
        return len(self.feature_info) - 1

    def stage(self, index: int) -> nn.Sequential:
        """Stage ``index`` (1-based: ``layer1`` ...)."""
        return getattr(self, f"layer{index}")

    def _resolve_stages(self, placement: str | None, num_stages: int) -> tuple[int, ...]:
        """The stages (1-based) that carry the mechanism: ``spec.stages``, or where its paper put it."""
        every = tuple(range(1, num_stages + 1))
        if placement is None:
            return ()
        if self.spec.stages is None:
            if placement == "stage":
                return every[_STAGE_BLOCKS.get(self.spec.attention, _DEFAULT_STAGE_BLOCKS)[0]]
            return every[_PAPER_STAGES.get(self.spec.attention, slice(None))]
        for index in self.spec.stages:
            if index not in every:
                raise ValueError(
                    f"stages={self.spec.stages}: {self.spec.arch} has stages 1 to {num_stages}, got {index}"
                )
        return self.spec.stages

    def _build(self, stage: int, channels: int, **defaults: Any) -> nn.Module | None:
        """The mechanism for a feature map of ``channels`` in ``stage``; None where it does not go."""
        if stage not in self._attention_stages:
            return None
        paper = {} if self._cifar else _PAPER_STAGE_KWARGS.get(self.spec.attention, {}).get(stage, {})
        return create_attention(self.spec.attention, channels, **{**defaults, **paper, **self._attention_kwargs})

    def _make_cifar_stem(self, in_chans: int) -> None:
        self.conv1 = nn.Conv2d(in_chans, _CIFAR_CHANNELS[0], 3, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
        # timm's forward_features runs layer1..layer4; CIFAR ResNets have three stages.
        self.layer4 = nn.Identity()
        for info, reduction in zip(self.feature_info, (1, 1, 2, 4)):
            info["reduction"] = reduction

    def _replace_convs(self) -> None:
        slots = _CONV_SLOTS.get(self.spec.attention, _DEFAULT_CONV_SLOTS)
        for index in self._attention_stages:
            for block in self.stage(index):
                for slot in slots:
                    for parent, attr in _block_convs(block, slot):
                        old = getattr(parent, attr)
                        new = self._build(
                            index,
                            old.in_channels,
                            out_channels=old.out_channels,
                            kernel_size=old.kernel_size[0],
                            stride=old.stride[0],
                            groups=old.groups,
                        )
                        setattr(parent, attr, new)
                        if slot == "3x3" and getattr(new, "replaces_norm_act", False):
                            for name in _NORM_ACT_AFTER_3X3[_kind(block)]:
                                setattr(block, name, nn.Identity())

    def _insert_stage_blocks(self) -> None:
        name = self.spec.attention
        _, positions = _STAGE_BLOCKS.get(name, _DEFAULT_STAGE_BLOCKS)
        for index in self._attention_stages:
            blocks = list(self.stage(index))
            after = _indices(positions, len(blocks))
            channels = self.feature_info[index]["num_chs"]
            children: list[tuple[str, nn.Module]] = []
            for i, block in enumerate(blocks):
                children.append((str(i), block))
                if i in after:
                    children.append((f"{i}_{name}", self._build(index, channels)))
            setattr(self, f"layer{index}", nn.Sequential(OrderedDict(children)))

    @torch.jit.ignore
    def init_weights(self, zero_init_last: bool = True) -> None:
        """timm's ResNet initialisation, leaving each attention module's own (paper) initialisation alone."""
        inside_attention = {
            id(sub) for m in self.modules() if isinstance(m, AttentionModule) for sub in m.modules()
        }
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in inside_attention:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()


def pretrained_body(spec: BackboneSpec, pretrained: bool, **kwargs: Any) -> AttentionResNet:
    """A task network's backbone, without a classifier: random, or with the zoo's ImageNet weights for its
    name, or else for its plain network (``kwargs`` go to timm's ResNet)."""
    if not pretrained:
        return AttentionResNet(spec, num_classes=0, **kwargs)
    from attnzoo.zoo.catalog import is_zoo_name

    from . import create_model
    from .checkpoint import load_state

    plain = BackboneSpec(spec.arch)
    if spec.attention is None or is_zoo_name(spec.name) or not is_zoo_name(plain.name):
        return create_model(spec, pretrained=True, num_classes=0, **kwargs)
    # The attention backbone keeps the plain one's module names, so the plain weights fill every residual
    # layer; the attention modules keep their initialisation. A mechanism that replaces a layer (sk, dyconv
    # ...) leaves plain weights without a place, and load_state says which.
    weights = create_model(plain, pretrained=True, num_classes=0, **kwargs).state_dict()
    body = AttentionResNet(spec, num_classes=0, **kwargs)
    own = body.state_dict()
    fresh = [k for k in own if k not in weights]
    load_state(body, {**own, **weights}, f"the zoo's {plain.name} weights")
    warnings.warn(
        f"the zoo has no ImageNet weights for {spec.name}: its backbone starts from {plain.name}'s, and its "
        f"{spec.attention} modules ({len(fresh)} tensors) from their initialisation",
        stacklevel=3,
    )
    return body
