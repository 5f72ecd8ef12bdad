"""The model zoo: save, publish and load attnzoo models in the Hugging Face Hub layout."""
from .hub import load, publish, save_pretrained

__all__ = ["load", "publish", "save_pretrained"]
