"""attnzoo: attention mechanisms for vision networks."""
from importlib.metadata import PackageNotFoundError, version

from . import viz
from .attention import AttentionInfo, attention_info, create_attention, list_attentions, register_attention

try:
    __version__ = version("attnzoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AttentionInfo",
    "attention_info",
    "create_attention",
    "list_attentions",
    "register_attention",
    "viz",
]
