"""Argument checks shared by every layer: attention modules, networks, data modules and tasks."""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """``value``, or a ValueError "``owner``: ``name`` must be ..., got ..." when it is not an integer (bools
    are not) of at least ``minimum``: "a positive integer" (minimum 1), "a non-negative integer" (0) or "an
    integer >= ``minimum``"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return value
