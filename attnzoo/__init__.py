"""attnzoo: attention mechanisms for vision networks, and backbones built with them."""
from importlib.metadata import PackageNotFoundError, version

from . import viz
from .attention import AttentionInfo, attention_info, create_attention, list_attentions, register_attention
from .backbones import BackboneSpec, DetectorSpec, create_model, list_models
from .zoo import load, publish, save_pretrained

try:
    __version__ = version("attnzoo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AttentionInfo",
    "BackboneSpec",
    "DetectorSpec",
    "attention_info",
    "create_attention",
    "create_model",
    "list_attentions",
    "list_models",
    "load",
    "publish",
    "register_attention",
    "save_pretrained",
    "viz",
]
