"""Name -> attention mechanism, with what the survey taxonomy says about it.

Mechanisms register themselves with :func:`register_attention`; backbones and
tasks find them by name, so a user-registered mechanism works everywhere a
built-in one does.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

__all__ = [
    "FAMILIES",
    "MAP_KINDS",
    "MAP_LAYOUTS",
    "PLACEMENTS",
    "AttentionInfo",
    "attention_info",
    "check_attention_map",
    "create_attention",
    "list_attentions",
    "register_attention",
]

FAMILIES = ("generic", "channel", "spatial", "branch", "channel+spatial", "spatial+temporal")

# Where a mechanism goes in a network (shared/DESIGN.md):
#   block - inside every residual block, after the last conv's norm, before the add
#   stage - a standalone residual block after a stage
#   conv  - replaces a convolution (same in/out channels and stride)
#   gate  - between layers, wrapping a transform
#   pool  - aggregates a set of items (frames, regions) into one vector
#   head  - on top of the network
PLACEMENTS = ("block", "stage", "conv", "gate", "pool", "head")

# What a mechanism's ``attention_map`` is, by kind: its layout, then what it holds. attnzoo.viz draws
# each kind in the form its papers use (docs/attention.md, "Pictures").
MAP_LAYOUTS = {
    "spatial": "(B, K, H, W): K maps of weights or gates over the positions of the feature map",
    "pairwise": "(B, HW, H, W): for each query position, in row-major order, its weights over the H x W positions",
    "assignment": "(B, K, H, W): each position's weight on each of K bases or graph nodes",
    "channel": "(B, C, 1, 1): a gate per channel",
    "paths": "(B, M, C): per channel, weights over M parallel paths, from the smallest receptive field to the largest",
    "routing": "(B, K): per example, weights over K kernels or experts",
    "gate": "(B, C, H, W): a gate per channel and position, such as a highway layer's transform gate",
    "items": "(B, N), or (B, N, P) for P parts: weights over N items (frames, regions)",
}
MAP_KINDS = tuple(MAP_LAYOUTS)
# The kind a mechanism registered without one gets: by placement, else by family.
_DEFAULT_MAP_KINDS = {"pool": "items", "conv": "routing", "gate": "gate", "channel": "channel"}


@dataclass(frozen=True)
class AttentionInfo:
    """What the registry knows about one mechanism."""

    name: str
    family: str
    title: str
    year: int
    paper_url: str
    placement: str
    map_kind: str


_REGISTRY: dict[str, tuple[Callable[..., nn.Module], AttentionInfo]] = {}

T = TypeVar("T", bound=Callable[..., nn.Module])


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Known: {', '.join(sorted(_REGISTRY))}."


def register_attention(
    name: str,
    *,
    family: str,
    title: str,
    year: int,
    paper_url: str,
    placement: str,
    map_kind: str | None = None,
) -> Callable[[T], T]:
    """Class decorator that makes a mechanism available by ``name``.

    The class is called as ``cls(channels, **kwargs)``; for ``conv`` placement
    ``channels`` is the input channel count of the convolution it replaces.
    ``map_kind`` (one of ``MAP_KINDS``) says what its ``attention_map`` holds,
    in the layout ``MAP_LAYOUTS`` gives, and so how ``attnzoo.viz`` draws it.
    Left out, it follows the placement (``pool``: items, ``conv``: routing,
    ``gate``: gate), else the family (``channel``: channel, any other: spatial).
    """
    if not name or not isinstance(name, str) or name != name.strip() or "-" in name or "." in name:
        raise ValueError(
            f"attention name must be a non-empty string without '-', '.' or surrounding spaces, got {name!r}"
        )
    if family not in FAMILIES:
        raise ValueError(f"attention {name!r}: family must be one of {FAMILIES}, got {family!r}")
    if placement not in PLACEMENTS:
        raise ValueError(f"attention {name!r}: placement must be one of {PLACEMENTS}, got {placement!r}")
    if map_kind is None:
        map_kind = _DEFAULT_MAP_KINDS.get(placement, _DEFAULT_MAP_KINDS.get(family, "spatial"))
    if map_kind not in MAP_KINDS:
        raise ValueError(f"attention {name!r}: map_kind must be one of {MAP_KINDS}, got {map_kind!r}")
    info = AttentionInfo(name, family, title, int(year), paper_url, placement, map_kind)

    def decorator(factory: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"attention {name!r} is already registered (by {_REGISTRY[name][0].__qualname__})")
        _REGISTRY[name] = (factory, info)
        if isinstance(factory, type):
            factory.attention_name = name
        return factory

    return decorator


def _lookup(name: str) -> tuple[Callable[..., nn.Module], AttentionInfo]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown attention {name!r}.{_suggest(str(name))}")
    return _REGISTRY[name]


def list_attentions(family: str | None = None) -> list[str]:
    """Registered mechanism names, sorted; only those of ``family`` when given."""
    if family is not None and family not in FAMILIES:
        close = difflib.get_close_matches(family, FAMILIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown attention family {family!r}.{hint} Families: {', '.join(FAMILIES)}.")
    return sorted(n for n, (_, info) in _REGISTRY.items() if family is None or info.family == family)


def attention_info(name: str) -> AttentionInfo:
    """Paper, family, placement and map kind of a registered mechanism."""
    return _lookup(name)[1]


def _has_layout(kind: str, shape: tuple[int, ...]) -> bool:
    if kind == "pairwise":
        return len(shape) == 4 and shape[1] == shape[2] * shape[3]
    if kind == "channel":
        return len(shape) == 4 and shape[2:] == (1, 1)
    if kind == "items":
        return len(shape) in (2, 3)
    return len(shape) == {"paths": 3, "routing": 2}.get(kind, 4)


def check_attention_map(what: str, kind: str, attention_map: Tensor) -> None:
    """Raise ValueError, naming ``what`` (a mechanism or a module), unless ``attention_map`` has the layout of
    ``kind`` (``MAP_LAYOUTS``)."""
    if kind not in MAP_KINDS:
        raise ValueError(f"{what}: map kind must be one of {MAP_KINDS}, got {kind!r}")
    if not isinstance(attention_map, Tensor) or not _has_layout(kind, tuple(attention_map.shape)):
        is_tensor = isinstance(attention_map, Tensor)
        got = f"shape {tuple(attention_map.shape)}" if is_tensor else type(attention_map).__name__
        raise ValueError(f"{what}: a {kind} attention map is {MAP_LAYOUTS[kind].split(':')[0]}, got {got}")


def create_attention(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build mechanism ``name`` for a feature map of ``channels`` channels."""
    factory, _ = _lookup(name)
    try:
        inspect.signature(factory).bind(channels, **kwargs)
    except TypeError as err:
        raise ValueError(f"attention {name!r}: {err} (signature: {name}{inspect.signature(factory)})") from None
    return factory(channels, **kwargs)
