"""Lightning tasks that take any attnzoo backbone."""
from .classification import ImageClassifier
from .detection import DetectionWriter, ObjectDetector
from .finetuning import BackboneFreeze, DynamicConvTemperature
from .prediction import ClassificationWriter
from .reid import ReIDAdam, VideoReID
from .restoration import ImageRestorer, RestorationAdam, RestorationWriter

__all__ = [
    "BackboneFreeze",
    "ClassificationWriter",
    "DetectionWriter",
    "DynamicConvTemperature",
    "ImageClassifier",
    "ImageRestorer",
    "ObjectDetector",
    "ReIDAdam",
    "RestorationAdam",
    "RestorationWriter",
    "VideoReID",
]
