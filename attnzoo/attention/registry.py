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

from torch import nn

__all__ = [
    "FAMILIES",
    "PLACEMENTS",
    "AttentionInfo",
    "attention_info",
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


@dataclass(frozen=True)
class AttentionInfo:
    """What the registry knows about one mechanism."""

    name: str
    family: str
    title: str
    year: int
    paper_url: str
    placement: str


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
) -> Callable[[T], T]:
    """Class decorator that makes a mechanism available by ``name``.

    The class is called as ``cls(channels, **kwargs)``; for ``conv`` placement
    ``channels`` is the input channel count of the convolution it replaces.
    """
    if not name or not isinstance(name, str) or name != name.strip() or "-" in name or "." in name:
        raise ValueError(
            f"attention name must be a non-empty string without '-', '.' or surrounding spaces, got {name!r}"
        )
    if family not in FAMILIES:
        raise ValueError(f"attention {name!r}: family must be one of {FAMILIES}, got {family!r}")
    if placement not in PLACEMENTS:
        raise ValueError(f"attention {name!r}: placement must be one of {PLACEMENTS}, got {placement!r}")
    info = AttentionInfo(name, family, title, int(year), paper_url, placement)

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
    """Paper, family and placement of a registered mechanism."""
    return _lookup(name)[1]


def create_attention(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build mechanism ``name`` for a feature map of ``channels`` channels."""
    factory, _ = _lookup(name)
    try:
        inspect.signature(factory).bind(channels, **kwargs)
    except TypeError as err:
        raise ValueError(f"attention {name!r}: {err} (signature: {name}{inspect.signature(factory)})") from None
    return factory(channels, **kwargs)
