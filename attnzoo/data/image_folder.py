"""Your own images for classification: a folder per class, as torchvision's ``ImageFolder`` reads them.

    root/
        train/<class>/<image>     required
        val/<class>/<image>       required, the same classes as train
        test/<class>/<image>      optional, the same classes as train

Class names are the train folder's sub-folder names, sorted; label ``i`` is
``labels[i]``. Folders whose name starts with "." (``.ipynb_checkpoints``,
``.DS_Store`` bundles) are not classes, unlike plain ``ImageFolder``. Images are
the files with an image extension (``.jpg``, ``.png``, ...; any case) anywhere
under a class folder.

Transforms are timm's ``create_transform`` with the backbone's ``input_size``,
``mean``, ``std``, ``interpolation`` and ``crop_pct``: those not given are
taken from the task's backbone when the Trainer sets the data up (timm's
``resolve_data_config`` of the model: a zoo entry's own statistics, ImageNet's
for a new ImageNet-style network, 32 x 32 for a CIFAR one). For training a
random-resized crop (scale 0.08-1), horizontal flip and colour jitter 0.4; for
val/test/predict a resize to ``input_size / crop_pct`` and a centre crop. Images are read as RGB
(``input_size[0] == 3``) or grey (``input_size[0] == 1``).

Problems are reported as ``ValueError`` naming the path: at construction a
missing folder, a class folder without images, or val/test classes that differ
from train; while loading, an image file that cannot be decoded.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
from timm.data import create_transform, resolve_data_config
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from attnzoo._checks import check_int

from ._common import is_image, load_image, make_loader

__all__ = ["ImageFolderData"]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
_PIL_MODES = {1: "L", 3: "RGB"}
# The transform's settings; those not given are the backbone's (timm's data config of the model).
_TRANSFORM_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


def _class_folders(split: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split) if entry.is_dir() and not entry.name.startswith("."))


def _has_image(folder: Path) -> bool:
    # followlinks as ImageFolder walks them.
    return any(any(map(is_image, files)) for _, _, files in os.walk(folder, followlinks=True))


class _Folder(ImageFolder):
    """``ImageFolder`` with the class list fixed by the train folder."""

    def __init__(self, root: Path, classes: list[str], transform: Callable, mode: str) -> None:
        self._classes = classes
        super().__init__(str(root), transform=transform, loader=partial(load_image, mode=mode))

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._classes, {name: i for i, name in enumerate(self._classes)}


class ImageFolderData(L.LightningDataModule):
    """Image classification data from ``root/{train,val[,test]}/<class>/`` folders.

    Args:
        root: the folder holding ``train/``, ``val/`` and optionally ``test/``.
        input_size: (channels, height, width) the network takes; channels 1 or 3.
        mean, std: per-channel normalisation.
        interpolation: resize interpolation (timm's names: bilinear, bicubic, ...).
        crop_pct: fraction of the resized val/test image kept by the centre crop.
            Each of these four is the backbone's when left out (None).
        batch_size: images per batch.
        num_workers: DataLoader worker processes decoding images.

    ``num_classes`` and ``labels`` are set at construction, for LightningCLI to
    link into the model. ``predict_dataloader`` serves ``test/`` when there is
    one, ``val/`` otherwise.
    """

    def __init__(
        self,
        root: str | Path,
        input_size: tuple[int, int, int] | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        interpolation: str | None = None,
        crop_pct: float | None = None,
        batch_size: int = 64,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        owner = "ImageFolderData"
        self.input_size = None if input_size is None else tuple(input_size)
        self.mean = None if mean is None else tuple(mean)
        self.std = None if std is None else tuple(std)
        self.interpolation, self.crop_pct = interpolation, crop_pct
        self._check_transform_config()
        check_int(owner, "batch_size", batch_size, 1)
        check_int(owner, "num_workers", num_workers, 0)
        self.save_hyperparameters()

        self.root = Path(root)
        self.dataset = self.root.name
        if not self.root.is_dir():
            raise ValueError(f"{owner}: data folder {self.root} does not exist")
        self.batch_size, self.num_workers = batch_size, num_workers

        self.splits: dict[str, Path] = {}
        for split in ("train", "val", "test"):
            folder = self.root / split
            if folder.is_dir():
                self.splits[split] = folder
            elif split != "test":
                raise ValueError(f"{owner}: no {split} folder: {folder} does not exist")
        self.labels = _class_folders(self.splits["train"])
        if not self.labels:
            raise ValueError(f"{owner}: no class folders in {self.splits['train']}")
        self.num_classes = len(self.labels)
        for split, folder in self.splits.items():
            classes = self.labels if split == "train" else _class_folders(folder)
            if classes != self.labels:
                missing = sorted(set(self.labels) - set(classes))
                extra = sorted(set(classes) - set(self.labels))
                raise ValueError(
                    f"{owner}: the classes in {folder} differ from those in {self.splits['train']}: "
                    f"missing {missing}, not in train {extra}"
                )
            for name in classes:
                if not _has_image(folder / name):
                    raise ValueError(
                        f"{owner}: class folder {folder / name} has no images "
                        f"(extensions {', '.join(IMG_EXTENSIONS)})"
                    )
        self._datasets: dict[str, _Folder] = {}

    def _check_transform_config(self) -> None:
        owner = "ImageFolderData"
        if self.input_size is not None:
            if len(self.input_size) != 3 or not all(isinstance(n, int) and n > 0 for n in self.input_size):
                raise ValueError(f"{owner}: input_size must be (channels, height, width) positive integers, got {self.input_size}")
            if self.input_size[0] not in _PIL_MODES:
                raise ValueError(f"{owner}: input_size channels must be 1 (grey) or 3 (RGB), got {self.input_size[0]}")
            for name in ("mean", "std"):
                values = getattr(self, name)
                if values is not None and len(values) != self.input_size[0]:
                    raise ValueError(f"{owner}: {name} needs {self.input_size[0]} values (one per channel), got {values}")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"{owner}: std values must be positive, got {self.std}")
        if self.interpolation is not None and self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"{owner}: interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ValueError(f"{owner}: crop_pct must be in (0, 1], got {self.crop_pct}")

    def _missing_transform_settings(self) -> list[str]:
        return [key for key in _TRANSFORM_KEYS if getattr(self, key) is None]

    def setup(self, stage: str) -> None:
        """Take what was not given of the transform (input size, mean, std, ...) from the task's backbone."""
        missing = self._missing_transform_settings()
        if not missing:
            return
        backbone = getattr(self.trainer.lightning_module, "model", None) if self.trainer is not None else None
        if backbone is None or not hasattr(backbone, "pretrained_cfg"):
            raise ValueError(
                f"ImageFolderData: {', '.join(missing)} not given, and there is no attnzoo backbone to take them from"
            )
        # timm's own resolution of a model's data config (its pretrained_cfg).
        config = resolve_data_config({}, model=backbone)
        for key in missing:
            setattr(self, key, tuple(config[key]) if isinstance(config[key], (list, tuple)) else config[key])
        self._check_transform_config()

    def split(self, split: str) -> ImageFolder:
        """The ``train``, ``val`` or ``test`` split as a torchvision ``ImageFolder`` (built once)."""
        missing = self._missing_transform_settings()
        if missing:
            raise ValueError(
                f"ImageFolderData: {', '.join(missing)} not known yet: give them, or let a Trainer's setup "
                "take them from the model"
            )
        if split not in self._datasets:
            if split not in self.splits:
                raise ValueError(f"ImageFolderData: no {split} folder: {self.root / split} does not exist")
            transform = create_transform(
                self.input_size,
                is_training=split == "train",
                mean=self.mean,
                std=self.std,
                interpolation=self.interpolation,
                crop_pct=self.crop_pct,
            )
            mode = _PIL_MODES[self.input_size[0]]
            self._datasets[split] = _Folder(self.splits[split], self.labels, transform, mode)
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        return make_loader(self, self.split("train"), train=True)

    def val_dataloader(self) -> DataLoader:
        return make_loader(self, self.split("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return make_loader(self, self.split("test"), train=False)

    def predict_dataloader(self) -> DataLoader:
        return make_loader(self, self.split("test" if "test" in self.splits else "val"), train=False)
