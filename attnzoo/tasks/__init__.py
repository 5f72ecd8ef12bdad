"""Lightning tasks that take any attnzoo backbone, and what ``attnzoo show`` draws for each."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .classification import ImageClassifier, show_classifier
from .detection import DetectionWriter, ObjectDetector, show_detections
from .finetuning import BackboneFreeze, DynamicConvTemperature
from .prediction import ClassificationWriter
from .reid import ReIDAdam, VideoReID, show_reid
from .restoration import ImageRestorer, RestorationAdam, RestorationWriter, show_restoration

__all__ = [
    "SHOWS",
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
    "show",
    "show_classifier",
    "show_detections",
    "show_reid",
    "show_restoration",
]

# What `attnzoo show` draws for a model of each task (``pretrained_cfg["task"]``), and whom it draws.
SHOWS: dict[str, tuple[Callable[..., Path], str]] = {
    "classification": (show_classifier, "classification models"),
    "detection": (show_detections, "detectors"),
    "restoration": (show_restoration, "restoration models"),
    "reid": (show_reid, "video re-ID networks"),
}


def show(model: nn.Module, path: str | Path, **options: Any) -> Path:
    """Draw a model as its task shows it (``SHOWS``), with that function's ``options``; the PNG's path."""
    task = model.pretrained_cfg.get("task", "classification")
    return SHOWS[task][0](model, path, **options)
