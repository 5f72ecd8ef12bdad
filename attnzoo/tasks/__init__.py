"""Lightning tasks that take any attnzoo backbone."""
from .classification import ImageClassifier
from .finetuning import BackboneFreeze, DynamicConvTemperature
from .prediction import ClassificationWriter

__all__ = ["BackboneFreeze", "ClassificationWriter", "DynamicConvTemperature", "ImageClassifier"]
