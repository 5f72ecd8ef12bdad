"""Attention maps: capture them during a forward pass so they can be drawn.

Every attention module exposes ``attention_map``. It is filled only while
:func:`record` is active, so ordinary training and inference keep no extra
tensors alive::

    with attnzoo.viz.record():
        model(images)
    maps = {name: m.attention_map for name, m in model.named_modules()
            if getattr(m, "attention_map", None) is not None}
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["record", "is_recording"]

# A plain module global rather than a ContextVar: torch.compile traces reads of
# globals (and guards on them), whereas ContextVar.get() breaks the graph.
_recording = False


@contextmanager
def record() -> Iterator[None]:
    """Keep each attention module's last map in ``module.attention_map``."""
    global _recording
    previous = _recording
    _recording = True
    try:
        yield
    finally:
        _recording = previous


def is_recording() -> bool:
    """True inside :func:`record`."""
    return _recording
