"""What the detection DataModules (``ShapesData``, ``CocoData``) share: targets, augmentation, collate, loaders.

Batches follow torchvision's detection models: ``(images, targets)``, ``images``
a list of float (C, H, W) tensors in [0, 1] (not normalised: the detector's
``GeneralizedRCNNTransform`` normalises), ``targets`` a list of dicts with

- ``boxes`` (N, 4) float32, xyxy in pixels (``x2``/``y2`` exclusive pixel edges, as COCO's ``x + w``);
- ``labels`` (N,) int64 in 1..K (0 is torchvision's background);
- ``image_id`` int64 scalar, the COCO image id;
- val/test only: ``iscrowd`` (N,) int64 and ``area`` (N,) float32 (COCO's
  annotation area), so that torchmetrics' MeanAveragePrecision treats crowd
  regions as COCOeval does. Training targets hold no crowd boxes.

Training augmentation runs torchvision.transforms.v2 on tv_tensors, so the boxes
follow the pixels: an optional horizontal flip, and an optional scale jitter
with a random crop (or pad) back to a fixed square canvas (the large-scale
jitter of Ghiasi et al., 2021, "Simple Copy-Paste is a Strong Data Augmentation
Method for Instance Segmentation": a plain resize would be undone by the
detector's own resize to ``min_size``). Boxes are then clamped to the image and
those with a side under one pixel are dropped (``v2.SanitizeBoundingBoxes``),
so no degenerate box reaches the detector.
"""
from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ._common import make_loader

__all__ = [
    "Annotations",
    "DetectionDataset",
    "check_scale_jitter",
    "collate_detection",
    "detection_loader",
    "make_target",
    "train_transform",
]

Sample = tuple[Tensor, dict[str, Tensor]]


class Annotations:
    """One image's ``boxes`` (N, 4) xyxy float32, ``labels`` (N,) int64 1..K, ``iscrowd`` (N,) and ``area`` (N,)."""

    __slots__ = ("boxes", "labels", "iscrowd", "area")

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray, area: np.ndarray) -> None:
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.iscrowd = np.asarray(iscrowd, dtype=np.int64)
        self.area = np.asarray(area, dtype=np.float32)


def make_target(annotations: Annotations, image_id: int, train: bool) -> dict[str, Tensor]:
    """The target dict of one image: training targets drop crowd boxes and carry no ``iscrowd``/``area``."""
    keep = annotations.iscrowd == 0 if train else np.ones(len(annotations.labels), dtype=bool)
    target = {
        "boxes": torch.from_numpy(annotations.boxes[keep]),
        "labels": torch.from_numpy(annotations.labels[keep]),
        "image_id": torch.tensor(image_id, dtype=torch.int64),
    }
    if not train:
        target["iscrowd"] = torch.from_numpy(annotations.iscrowd[keep])
        target["area"] = torch.from_numpy(annotations.area[keep])
    return target


def check_scale_jitter(owner: str, scale_jitter: Sequence[float] | None) -> tuple[float, float] | None:
    if scale_jitter is None:
        return None
    values = tuple(scale_jitter)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{owner}: scale_jitter must be (min, max) scale factors or None, got {scale_jitter!r}")
    low, high = float(values[0]), float(values[1])
    if not 0 < low <= high:
        raise ValueError(f"{owner}: scale_jitter must satisfy 0 < min <= max, got {scale_jitter!r}")
    return low, high


def train_transform(
    hflip: bool, scale_jitter: tuple[float, float] | None, canvas: tuple[int, int]
) -> v2.Transform | None:
    """The training augmentation on ``(tv_tensors.Image, target)``; None when there is none.

    ``scale_jitter`` (min, max): resize so the image fits ``canvas`` (height, width)
    times a factor drawn in [min, max], then crop (or pad with 0 at a random
    offset) to exactly ``canvas``.
    """
    steps: list[v2.Transform] = []
    if scale_jitter is not None:
        steps += [
            v2.ScaleJitter(target_size=canvas, scale_range=scale_jitter, antialias=True),
            v2.RandomCrop(canvas, pad_if_needed=True, fill=0),
        ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if not steps:
        return None
    return v2.Compose([*steps, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1.0)])


class DetectionDataset(Dataset):
    """A split of a detection data set: subclasses give ``image_ids`` and ``load``.

    ``train`` selects training targets (no crowd boxes) and enables ``transform``.
    """

    def __init__(self, image_ids: Sequence[int], train: bool, transform: v2.Transform | None) -> None:
        self.image_ids = [int(i) for i in image_ids]
        self.train = train
        self.transform = transform if train else None

    def __len__(self) -> int:
        return len(self.image_ids)

    def load(self, index: int) -> tuple[Tensor, Annotations]:
        """The image ``index`` as float32 (3, H, W) in [0, 1], and its annotations."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        image, annotations = self.load(index)
        target = make_target(annotations, self.image_ids[index], self.train)
        if self.transform is None:
            return image, target
        target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=tuple(image.shape[-2:]))
        image, target = self.transform(tv_tensors.Image(image), target)
        # Plain tensors out: the tv_tensor subclasses are only for the transforms to dispatch on.
        return image.as_subclass(Tensor), {key: value.as_subclass(Tensor) for key, value in target.items()}


def collate_detection(batch: Sequence[Sample]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``[(image, target), ...]`` -> ``([images], [targets])``: images differ in size, so nothing is stacked."""
    return [image for image, _ in batch], [target for _, target in batch]


def detection_loader(datamodule: L.LightningDataModule, dataset: Dataset, train: bool) -> DataLoader:
    """The classification modules' loader settings, batching with :func:`collate_detection`."""
    return make_loader(datamodule, dataset, train, collate_fn=collate_detection)
