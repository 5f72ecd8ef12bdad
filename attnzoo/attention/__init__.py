"""The attention library: one module per mechanism, all reachable by name.

Importing this package registers every built-in mechanism.
"""
from . import (  # noqa: F401  (imported for registration)
    asymmetric_non_local,
    canet,
    cbam,
    cond_conv,
    criss_cross,
    disentangled_non_local,
    dynamic_conv,
    eca,
    expectation_maximization,
    gather_excite,
    global_context,
    global_reasoning,
    gsop,
    hamburger,
    hard_attention,
    highway,
    non_local,
    point_wise_spatial,
    se,
    selective_kernel,
    self_attention,
    soft_attention,
    spatial_temporal,
    srm,
)
from .registry import (
    FAMILIES,
    MAP_KINDS,
    MAP_LAYOUTS,
    PLACEMENTS,
    AttentionInfo,
    attention_info,
    check_attention_map,
    create_attention,
    list_attentions,
    register_attention,
)

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
