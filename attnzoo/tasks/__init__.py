"""Lightning tasks that take any attnzoo backbone."""
from .classification import ImageClassifier
from .detection import DetectionWriter, ObjectDetector
from .finetuning import BackboneFreeze, DynamicConvTemperature
from .prediction import ClassificationWriter

__all__ = [
    "BackboneFreeze",
    "ClassificationWriter",
    "DetectionWriter",
    "DynamicConvTemperature",
    "ImageClassifier",
    "ObjectDetector",
]
