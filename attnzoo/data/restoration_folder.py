"""Your own images for restoration: clean images degraded on the fly, or degraded/clean pairs.

Clean images (the default), degraded by ``degradation`` as they are loaded:

    root/
        train/<image>     required
        val/<image>       required
        test/<image>      optional

Pairs (``paired=True``), for degradations made elsewhere (a camera's real noise, another codec):

    root/
        train/degraded/<image>   train/clean/<image>     required
        val/degraded/<image>     val/clean/<image>       required
        test/degraded/<image>    test/clean/<image>      optional

where a degraded image and its clean partner have the same path under ``degraded/`` and
``clean/`` (stem and extension) and the same size; ``degradation`` then only describes the data.

Images are the files with an image extension (``.png``, ``.jpg``, ...; any case) anywhere under
a folder, hidden ones (name starting with ".") and those in hidden folders left out, in path
order. They are read as grey ("L") for ``channels`` 1 or RGB for 3, float in [0, 1]; for a
JPEG degradation the clean target is thus the uint8 image the JPEG is made from.

Training is PhotosData's: ``train_size`` patches an epoch, each from an image drawn with
probability proportional to its area, a random ``patch_size`` crop (the same of both images of
a pair), one of the 8 flips and quarter turns, degraded on the fly. Val and test are whole
images, one a batch; clean ones are degraded at ``test_level`` (PhotosData's rule) with a
generator seeded from (``seed``, split, index): the same pairs every run. ``predict_dir`` is a
folder of degraded images to restore: predict batches are ``(degraded, paths)``, one image a
batch, each path a str.

Every image's header is read at construction (its size, for the patch size and the pairs'
check), so that problems are ValueErrors naming the path before training starts: a missing
folder, a folder without images, an unreadable file, a file without its partner, a pair of
different sizes, a training image smaller than ``patch_size``; a file that cannot be decoded
later is one too, when it is loaded.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.functional import pil_to_tensor

from ._common import is_image, load_image, make_loader
from .photos import DegradedImages, Loaded, RandomPatches, _RestorationData

__all__ = ["ImageFolderRestorationData"]

_OWNER = "ImageFolderRestorationData"
_SPLITS = ("train", "val", "test")
_PIL_MODES = {1: "L", 3: "RGB"}
_SHOWN = 5  # unmatched files named in an error


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, recursively (following links), in path order; hidden ones left out."""
    found = []
    for directory, subfolders, files in os.walk(folder, followlinks=True):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(directory, name) for name in files if is_image(name) and not name.startswith(".")]
    if not found:
        raise ValueError(f"{_OWNER}: no images in {folder} (extensions {', '.join(IMG_EXTENSIONS)})")
    return sorted(found)


def _size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError as err:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"{_OWNER}: cannot read image {path}: {err}") from err
    return height, width


def _read(path: Path, mode: str) -> np.ndarray:
    """(H, W, C) float32 in [0, 1]."""
    pixels = np.asarray(load_image(str(path), mode), dtype=np.float32) / 255
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


@dataclass(frozen=True)
class _Split:
    """A split's files: clean images, their degraded partners (paired data), each image's (height, width)."""

    clean: tuple[Path, ...]
    degraded: tuple[Path, ...] | None
    sizes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Files:
    """Loads image ``i`` of a split (a picklable loader for PhotosData's datasets)."""

    split: _Split
    mode: str

    def __call__(self, index: int) -> Loaded:
        degraded = None if self.split.degraded is None else _read(self.split.degraded[index], self.mode)
        return _read(self.split.clean[index], self.mode), degraded


class _Predict(Dataset):
    """Degraded images to restore: ``(image, path)``, (C, H, W) float32 in [0, 1] and the path as a str."""

    def __init__(self, paths: list[Path], mode: str) -> None:
        self.paths, self.mode = paths, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, str]:
        path = self.paths[index]
        return pil_to_tensor(load_image(str(path), self.mode)).float() / 255, str(path)


def _clean_split(folder: Path) -> _Split:
    files = _image_files(folder)
    return _Split(tuple(files), None, tuple(map(_size, files)))


def _paired_split(folder: Path) -> _Split:
    found = {}
    for side in ("degraded", "clean"):
        if not (folder / side).is_dir():
            raise ValueError(f"{_OWNER}: no {side} folder: {folder / side} does not exist (paired=True)")
        found[side] = {path.relative_to(folder / side): path for path in _image_files(folder / side)}
    degraded, clean = found["degraded"], found["clean"]
    unmatched = [f"degraded/{name} (no clean/{name})" for name in sorted(degraded.keys() - clean.keys())]
    unmatched += [f"clean/{name} (no degraded/{name})" for name in sorted(clean.keys() - degraded.keys())]
    if unmatched:
        more = f" and {len(unmatched) - _SHOWN} more" if len(unmatched) > _SHOWN else ""
        raise ValueError(
            f"{_OWNER}: {len(unmatched)} images in {folder} have no partner of the same name: "
            f"{', '.join(unmatched[:_SHOWN])}{more}"
        )
    names = sorted(clean)
    sizes = []
    for name in names:
        size, partner = _size(clean[name]), _size(degraded[name])
        if size != partner:
            raise ValueError(
                f"{_OWNER}: {degraded[name]} is {partner[1]} x {partner[0]} but its clean partner {clean[name]} is "
                f"{size[1]} x {size[0]} (width x height)"
            )
        sizes.append(size)
    return _Split(tuple(clean[n] for n in names), tuple(degraded[n] for n in names), tuple(sizes))


class ImageFolderRestorationData(_RestorationData):
    """Restoration data from your own folders of images (see the module docstring for the layout).

    Args:
        root: the folder holding ``train/``, ``val/`` and optionally ``test/``; may be left out when
            only predicting.
        paired: the splits hold ``degraded/`` and ``clean/`` folders of matching images, rather than
            clean images to degrade.
        predict_dir: a folder of degraded images to restore (``attnzoo predict``).
        degradation: ``{"kind": "gaussian", "sigma": 25}`` (sigma on the 0-255 scale; ``[0, 50]`` a
            blind range), ``{"kind": "jpeg", "quality": 10}`` (or ``[10, 40]``), or a Degradation;
            None: the model's (Gaussian sigma 25 without one).
        channels: 1 (grey) or 3 (colour): how images are read; None: the model's (grey without one).
        patch_size: side of the training patches; every training image must be at least this large.
        train_size: training patches per epoch.
        batch_size: training patches per batch.
        num_workers: DataLoader worker processes; each training patch decodes a whole file.
        seed: seed of the val and test degradations (training draws follow torch's random state).
        test_level: sigma or quality of val and test; None: the degradation's level, or for a
            blind range the protocol's (sigma 25, quality 10). Not for paired data.

    ``dataset`` (the root folder's name; None without root), ``degradation`` (a Degradation) and
    ``channels`` are set at construction, the last two None when left to the model.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        paired: bool = False,
        predict_dir: str | Path | None = None,
        degradation: Mapping[str, Any] | None = None,
        channels: int | None = None,
        patch_size: int = 64,
        train_size: int = 4000,
        batch_size: int = 16,
        num_workers: int = 4,
        seed: int = 0,
        test_level: int | float | None = None,
    ) -> None:
        super().__init__(degradation, channels, patch_size, train_size, batch_size, num_workers, seed, test_level)
        # Not degradation and channels: the model's hparams hold them, and Lightning refuses to log a data
        # module's hparams that differ from the model's (None here when the model's are taken).
        self.save_hyperparameters(ignore=["degradation", "channels"])
        if root is None and predict_dir is None:
            raise ValueError(f"{_OWNER}: give root (train/val/test folders), predict_dir (images to restore) or both")
        if paired and test_level is not None:
            raise ValueError(f"{_OWNER}: test_level is for clean images degraded here, not for paired=True data")
        if not paired and self.degradation is not None:
            self.eval_degradation()  # a test_level that does not fit fails now rather than at validation
        self.root = None if root is None else Path(root)
        self.paired = paired
        self.dataset = None if self.root is None else self.root.name
        self.splits: dict[str, _Split] = {}
        if self.root is not None:
            if not self.root.is_dir():
                raise ValueError(f"{_OWNER}: data folder {self.root} does not exist")
            for split in _SPLITS:
                folder = self.root / split
                if folder.is_dir():
                    self.splits[split] = _paired_split(folder) if paired else _clean_split(folder)
                elif split != "test":
                    raise ValueError(f"{_OWNER}: no {split} folder: {folder} does not exist")
            train = self.splits["train"]
            smallest = min(range(len(train.clean)), key=lambda i: min(train.sizes[i]))
            height, width = train.sizes[smallest]
            if min(height, width) < patch_size:
                raise ValueError(
                    f"{_OWNER}: patch_size {patch_size} is larger than the training image {train.clean[smallest]} "
                    f"({width} x {height}): use a smaller patch_size or leave the image out"
                )
        self.predict_dir = None if predict_dir is None else Path(predict_dir)
        if self.predict_dir is not None and not self.predict_dir.is_dir():
            raise ValueError(f"{_OWNER}: predict_dir {self.predict_dir} does not exist")
        self._predict_files = None if self.predict_dir is None else _image_files(self.predict_dir)

    def _files(self, split: str) -> _Files:
        if self.root is None:
            raise ValueError(f"{_OWNER}: no root given: {split} data need root (predict_dir is for prediction only)")
        if split not in self.splits:
            raise ValueError(f"{_OWNER}: no {split} folder: {self.root / split} does not exist")
        return _Files(self.splits[split], _PIL_MODES[self.image_channels()])

    def _whole_images(self, split: str) -> DegradedImages:
        files = self._files(split)
        degradation = None if self.paired else self.eval_degradation()
        return DegradedImages(files, len(files.split.clean), degradation, (self.seed, _SPLITS.index(split)))

    def train_dataloader(self) -> DataLoader:
        files = self._files("train")
        areas = [height * width for height, width in files.split.sizes]
        degradation = None if self.paired else self.train_degradation()
        return make_loader(self, RandomPatches(files, areas, self.train_size, self.patch_size, degradation), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._one_by_one(self._whole_images("val"))

    def test_dataloader(self) -> DataLoader:
        return self._one_by_one(self._whole_images("test"))

    def predict_dataloader(self) -> DataLoader:
        if self._predict_files is None:
            raise ValueError(f"{_OWNER}: nothing to predict: give predict_dir, a folder of degraded images")
        return self._one_by_one(_Predict(self._predict_files, _PIL_MODES[self.image_channels()]), named=True)
