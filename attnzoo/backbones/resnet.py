"""Attention-configured ResNets, built on timm's ``ResNet``.

Each mechanism goes where its placement says (shared/DESIGN.md):

- ``block``: inside every residual block, after the last conv's BN and before
  the add (timm's ``attn_layer`` hook, where SE-, CBAM-, ECA-, GC-ResNets put it),
  in every stage or in those its paper chose (GC: c3-c5) or ``stages`` names;
- ``conv``: replaces the 3x3 convolution of every block (the first 3x3 of a
  basic block, the middle one of a bottleneck), taking its stride and groups;
  a mechanism that carries its own BN and ReLU (SK) replaces those too;
- ``gate``: replaces the residual add: ``act(gate(shortcut, branch))``;
- ``stage``: a standalone block appended to the chosen stages.

The networks keep timm's module names (``conv1``, ``layer1.0.bn2``, ``fc``), so
timm's ``features_only``, ``forward_features``, ``reset_classifier`` and
weights work as they do in timm.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import Tensor, nn

from attnzoo.attention import attention_info, create_attention
from attnzoo.attention.base import AttentionModule

from .spec import BackboneSpec

__all__ = ["AttentionResNet", "GatedBasicBlock", "GatedBottleneck"]

_IMAGENET = {
    "resnet18": dict(block=BasicBlock, layers=(2, 2, 2, 2)),
    "resnet34": dict(block=BasicBlock, layers=(3, 4, 6, 3)),
    "resnet50": dict(block=Bottleneck, layers=(3, 4, 6, 3)),
    "resnet101": dict(block=Bottleneck, layers=(3, 4, 23, 3)),
    "resnext50_32x4d": dict(block=Bottleneck, layers=(3, 4, 6, 3), cardinality=32, base_width=4),
}
# He et al. 2016, section 4.2: 6n + 2 layers, three stages of 16, 32, 64 channels.
_CIFAR_BLOCKS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
_CIFAR_CHANNELS = (16, 32, 64)

# Where a mechanism's paper fixes the network: SKNet-50 is ResNeXt-50 32x4d with SK units.
_PAPER_NETWORK = {("resnet50", "sk"): dict(cardinality=32, base_width=4)}

# Block mechanisms whose paper leaves out the first stage: GCNet adds GC blocks to c3-c5.
_SKIP_FIRST_STAGE = {"gc"}

# SK in basic blocks: the paper has no such network; use timm's skresnet18/34 settings
# (each path sees half the input, fuse width max(C / 8, 16)) so their weights load.
_BASIC_BLOCK_ATTENTION_KWARGS = {"sk": dict(split_input=True, rd_ratio=1 / 8, min_rd_channels=16)}


def _attention_factory(name: str, kwargs: Mapping[str, Any]) -> Callable[..., nn.Module]:
    def make(channels: int, **_timm_device_kwargs: Any) -> nn.Module:
        return create_attention(name, channels, **kwargs)

    return make


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
        cifar = spec.arch in _CIFAR_BLOCKS
        if cifar:
            n = _CIFAR_BLOCKS[spec.arch]
            # timm's stem width for a non-deep stem is fixed at 64; a deep stem of width 8 makes
            # inplanes 16, CIFAR's, and is then replaced by CIFAR's single 3x3 conv.
            arch = dict(block=BasicBlock, layers=(n, n, n), channels=_CIFAR_CHANNELS, stem_type="deep", stem_width=8)
        else:
            arch = dict(_IMAGENET[spec.arch])
        arch.update(_PAPER_NETWORK.get((spec.arch, spec.attention), {}))

        placement = attention_info(spec.attention).placement if spec.attention else None
        attention_kwargs = dict(spec.attention_kwargs)
        if arch["block"] is BasicBlock and spec.attention in _BASIC_BLOCK_ATTENTION_KWARGS:
            attention_kwargs = {**_BASIC_BLOCK_ATTENTION_KWARGS[spec.attention], **attention_kwargs}
        block_args = dict(kwargs.pop("block_args", None) or {})
        if placement == "block":
            block_args["attn_layer"] = _attention_factory(spec.attention, attention_kwargs)
        elif placement == "gate":
            arch["block"] = _GATED[arch["block"]]
            block_args["gate_layer"] = _attention_factory(spec.attention, {"transform": nn.Identity(), **attention_kwargs})

        super().__init__(num_classes=num_classes, block_args=block_args, **arch, **kwargs)
        if cifar:
            self._make_cifar_stem(kwargs.get("in_chans", 3))
        in_chans = kwargs.get("in_chans", 3)
        # timm's data config (timm.data.resolve_data_config reads it); tasks and the zoo add labels and the like.
        self.pretrained_cfg = dict(
            architecture=spec.name,
            input_size=(in_chans, 32, 32) if cifar else (in_chans, 224, 224),
            mean=IMAGENET_DEFAULT_MEAN if in_chans == 3 else (0.5,) * in_chans,
            std=IMAGENET_DEFAULT_STD if in_chans == 3 else (0.5,) * in_chans,
            interpolation="bilinear",
            crop_pct=1.0 if cifar else 0.875,
            num_classes=num_classes,
            first_conv="conv1",
            classifier="fc",
        )
        if placement == "block":
            self._keep_block_attention(spec.stages)
        elif placement == "conv":
            self._replace_convs(spec.attention, attention_kwargs)
        elif placement == "stage":
            self._insert_stage_blocks(spec.attention, spec.stages, attention_kwargs)

    @property
    def num_stages(self) -> int:
        return len(self.feature_info) - 1

    def stage(self, index: int) -> nn.Sequential:
        """Stage ``index`` (1-based: ``layer1`` ...)."""
        return getattr(self, f"layer{index}")

    def _make_cifar_stem(self, in_chans: int) -> None:
        self.conv1 = nn.Conv2d(in_chans, _CIFAR_CHANNELS[0], 3, padding=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()
        # timm's forward_features runs layer1..layer4; CIFAR ResNets have three stages.
        self.layer4 = nn.Identity()
        for info, reduction in zip(self.feature_info, (1, 1, 2, 4)):
            info["reduction"] = reduction

    def _check_stages(self, stages: tuple[int, ...]) -> None:
        for index in stages:
            if not 1 <= index <= self.num_stages:
                raise ValueError(f"stages={stages}: {self.spec.arch} has stages 1 to {self.num_stages}, got {index}")

    def _keep_block_attention(self, stages: tuple[int, ...] | None) -> None:
        if stages is None:
            first = 2 if self.spec.attention in _SKIP_FIRST_STAGE else 1
            stages = tuple(range(first, self.num_stages + 1))
        self._check_stages(stages)
        for index in range(1, self.num_stages + 1):
            if index not in stages:
                for block in self.stage(index):
                    block.se = None

    def _replace_convs(self, name: str, kwargs: Mapping[str, Any]) -> None:
        for index in range(1, self.num_stages + 1):
            for block in self.stage(index):
                slot = ("conv2", "bn2", "act2") if isinstance(block, Bottleneck) else ("conv1", "bn1", "act1")
                old = getattr(block, slot[0])
                new = create_attention(
                    name,
                    old.in_channels,
                    out_channels=old.out_channels,
                    kernel_size=old.kernel_size[0],
                    stride=old.stride[0],
                    groups=old.groups,
                    **kwargs,
                )
                setattr(block, slot[0], new)
                if getattr(new, "replaces_norm_act", False):
                    setattr(block, slot[1], nn.Identity())
                    setattr(block, slot[2], nn.Identity())

    def _insert_stage_blocks(self, name: str, stages: tuple[int, ...] | None, kwargs: Mapping[str, Any]) -> None:
        stages = stages or (self.num_stages - 1,)
        self._check_stages(stages)
        for index in stages:
            self.stage(index).append(create_attention(name, self.feature_info[index]["num_chs"], **kwargs))

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
