"""Lightning tasks that take any attnzoo backbone."""
from .classification import ImageClassifier
from .finetuning import BackboneFreeze, DynamicConvTemperature

__all__ = ["BackboneFreeze", "DynamicConvTemperature", "ImageClassifier"]
