"""Model names and the specs they stand for.

A model name is ``<arch>[-<attention>][.<tag>]``: ``resnet50``, ``resnet50-se``,
``resnet20-cbam.digits``. The tag names a set of weights, as in timm. A
:class:`BackboneSpec` says the same as a name and more (which stages get a
stage block, arguments for the mechanism), so configuration files can describe
any variant.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from attnzoo.attention import attention_info, list_attentions

__all__ = ["ARCHITECTURES", "BACKBONE_PLACEMENTS", "BackboneSpec", "check_attention_fields", "parse_model_name"]

# ImageNet-style ResNets (4 stages, 224 x 224; resnet18n is ResNet-18 with stages of 16/32/64/128
# channels, small enough for the bundled detection data) and CIFAR-style ResNets (3 stages of 16/32/64
# channels, He et al. 2016, for 32 x 32 inputs).
ARCHITECTURES = (
    "resnet18",
    "resnet18n",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnext50_32x4d",
    "resnet20",
    "resnet32",
    "resnet56",
)

# Pool mechanisms aggregate sets (frames, regions) and belong to the tasks, not to a backbone.
BACKBONE_PLACEMENTS = ("block", "stage", "conv", "gate")


def _closest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass(frozen=True)
class BackboneSpec:
    """An attention-configured backbone.

    Args:
        arch: one of :data:`ARCHITECTURES`.
        attention: a registered mechanism of placement block, stage, conv or gate, or None.
        stages: which stages (1-based: 1 is res2 of an ImageNet ResNet, the first 32 x 32 stage of a
            CIFAR one) carry the mechanism; None means where its paper put it (the tables in
            attnzoo/backbones/resnet.py, described in docs/backbones.md). For block mechanisms, the
            stages whose blocks carry it (default: every block of every stage; GC: stages 2 to 4, c3-c5;
            GSoP: the last block of each stage). For conv
            mechanisms, the stages whose blocks have their convolutions replaced (default: every
            stage; CondConv: the last). For stage mechanisms, the stages that get standalone blocks,
            each at its paper's position within a stage, repeated in every stage named: one block
            before the stage's last block (nl, dnl, self, and a user's mechanism), after its 1st, 3rd
            and 5th blocks (glore), or after its last block (cc, ema, ann, ham, psa); by default in
            res4 (the second-to-last stage; stage 2 of a CIFAR network) or, for the mechanisms whose
            papers use them as a head on the backbone's last map (cc, ema, ann, ham, psa), in the last
            stage. Gate mechanisms take no stages: they replace every residual add.
        attention_kwargs: keyword arguments for the mechanism.
    """

    arch: str
    attention: str | None = None
    stages: tuple[int, ...] | None = None
    attention_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.arch!r}.{_closest(self.arch, ARCHITECTURES)} "
                f"Known: {', '.join(ARCHITECTURES)}."
            )
        stages = check_attention_fields(
            self.name, self.attention, self.stages, self.attention_kwargs, owner="a backbone", unit="stage"
        )
        object.__setattr__(self, "stages", stages)

    @property
    def name(self) -> str:
        """The model name: ``<arch>`` or ``<arch>-<attention>``."""
        return self.arch if self.attention is None else f"{self.arch}-{self.attention}"

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | BackboneSpec) -> BackboneSpec:
        """A spec from a model name, a dict with the fields, or a spec."""
        if isinstance(value, BackboneSpec):
            return value
        if isinstance(value, str):
            return parse_model_name(value)[0]
        if isinstance(value, Mapping):
            unknown = set(value) - {"arch", "attention", "stages", "attention_kwargs"}
            if unknown or "arch" not in value:
                raise ValueError(
                    f"a backbone spec needs 'arch' and may have 'attention', 'stages', 'attention_kwargs'; "
                    f"got keys {sorted(value)}"
                )
            return cls(**value)
        raise ValueError(f"expected a model name, a dict or a BackboneSpec, got {type(value).__name__}")


def backbone_attentions() -> list[str]:
    """Registered mechanisms that go into a backbone."""
    return [n for n in list_attentions() if attention_info(n).placement in BACKBONE_PLACEMENTS]


def check_attention_fields(
    network: str,
    attention: str | None,
    stages: Any,
    attention_kwargs: Any,
    *,
    owner: str,
    unit: str,
) -> tuple[int, ...] | None:
    """The checks of the attention fields that BackboneSpec and RestorationSpec share; ``stages`` as a tuple.

    ``network`` names the spec in messages (``resnet50``, ``rir-se``), ``owner`` what takes the mechanism
    (``a backbone``, ``rir``), ``unit`` what a stage number counts (``stage``, ``group``).
    """
    if attention is not None:
        fitting = ", ".join(backbone_attentions())
        if attention not in list_attentions():
            raise ValueError(
                f"unknown attention {attention!r}.{_closest(str(attention), backbone_attentions())} "
                f"{owner} takes: {fitting}."
            )
        placement = attention_info(attention).placement
        if placement not in BACKBONE_PLACEMENTS:
            raise ValueError(
                f"attention {attention!r} has placement {placement!r}: it aggregates a set and belongs to a "
                f"task; {owner} takes: {fitting}."
            )
    if stages is not None:
        given = stages
        stages = tuple(stages)
        if attention is None or attention_info(attention).placement not in ("stage", "block", "conv"):
            raise ValueError(
                f"stages={stages!r} applies only to {owner} with a stage, block or conv attention, not to {network!r}"
            )
        if not stages or any(isinstance(s, bool) or not isinstance(s, int) for s in stages):
            raise ValueError(f"stages must be a non-empty sequence of {unit} numbers, got {given!r}")
    if not isinstance(attention_kwargs, Mapping):
        raise ValueError(f"attention_kwargs must be a mapping, got {type(attention_kwargs).__name__}")
    if attention_kwargs and attention is None:
        raise ValueError(f"attention_kwargs given without an attention, for {network!r}")
    return stages


def parse_model_name(name: str) -> tuple[BackboneSpec, str | None]:
    """``"resnet20-cbam.digits"`` -> (BackboneSpec("resnet20", "cbam"), "digits")."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    base, _, tag = name.partition(".")
    if _ and not tag:
        raise ValueError(f"model name {name!r} has an empty tag after '.'")
    arch, _, attention = base.partition("-")
    if _ and not attention:
        raise ValueError(f"model name {name!r} has an empty attention after '-'")
    return BackboneSpec(arch, attention or None), tag or None
