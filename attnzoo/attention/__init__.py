"""The attention library: one module per mechanism, all reachable by name.

Importing this package registers every built-in mechanism.
"""
from . import (  # noqa: F401  (imported for registration)
    cbam,
    canet,
    cond_conv,
    dynamic_conv,
    eca,
    gsop,
    hard_attention,
    highway,
    se,
    selective_kernel,
    self_attention,
    soft_attention,
    srm,
)
from .registry import (
    FAMILIES,
    PLACEMENTS,
    AttentionInfo,
    attention_info,
    create_attention,
    list_attentions,
    register_attention,
)

__all__ = [
    "FAMILIES",
    "PLACEMENTS",
    "AttentionInfo",
    "attention_info",
    "create_attention",
    "list_attentions",
    "register_attention",
]
