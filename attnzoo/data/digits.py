"""scikit-learn's handwritten digits as a Lightning DataModule, bundled and offline.

The data are the 1797 8 x 8 grey images of ``sklearn.datasets.load_digits``
(UCI Optical Recognition of Handwritten Digits, test part; values 0..16),
ten classes "0".."9". Preparation:

- pixel values scaled to [0, 1] and up-scaled to 32 x 32 with bilinear
  interpolation (``align_corners=False``), so that backbones with a 32-pixel
  stem (the CIFAR ResNets) and ImageNet-style stems both have room to work;
- the grey plane repeated to ``in_chans`` channels (3 by default, so ImageNet
  backbones take the images unchanged);
- a fixed stratified split of 1257 / 270 / 270 images (70 / 15 / 15 %) drawn
  with ``seed`` (default 0): the same seed gives the same split on any machine;
- normalised with the mean and standard deviation of the up-scaled *train*
  split (one value over all its pixels, repeated per channel), so the
  statistics leak nothing from val/test; with seed 0 they are about 0.31 / 0.32.
  They are exposed as ``mean`` / ``std`` so a trained model can record them;
- train-time augmentation (``augment=True``, the default): a random translation
  of up to 2 pixels of the 32 x 32 image in each direction (half a pixel of the
  original 8 x 8 digit), empty border filled with background. Digits are not
  flipped: a mirrored 2 is no longer a 2.

Everything is built at construction (the whole set is ~7 MB as float32), so
``num_classes``, ``labels``, ``input_size``, ``mean`` and ``std`` are there for
LightningCLI to link into the model before ``setup``.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from attnzoo._checks import check_int

from ._common import make_loader

__all__ = ["DigitsData", "DigitsSplit"]

IMAGE_SIZE = 32
VAL_SIZE = 270
TEST_SIZE = 270
_MAX_SHIFT = 2  # pixels of the 32 x 32 image


class DigitsSplit(Dataset):
    """One split of the digits: ``(image, label)`` pairs, images ``(in_chans, 32, 32)`` float32 normalised.

    ``indices`` are the positions of the split's images in ``load_digits()`` order.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        indices: Tensor,
        mean: float,
        std: float,
        in_chans: int,
        augment: bool,
    ) -> None:
        self.images = images  # (N, 1, 32, 32) in [0, 1]
        self.targets = targets
        self.indices = indices
        self.mean, self.std, self.in_chans = mean, std, in_chans
        # Translate in [0, 1] space, where fill 0 is the digits' background.
        self.augment = v2.RandomAffine(degrees=0, translate=(_MAX_SHIFT / IMAGE_SIZE,) * 2) if augment else None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image = self.images[i]
        if self.augment is not None:
            image = self.augment(image)
        image = (image - self.mean) / self.std
        return image.expand(self.in_chans, -1, -1), self.targets[i]


class DigitsData(L.LightningDataModule):
    """scikit-learn's 8 x 8 digits up-scaled to 32 x 32, split 1257 / 270 / 270 by ``seed``.

    Args:
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0: load in the main process,
            which is fastest for this in-memory set).
        seed: seed of the stratified train/val/test split (not of the training).
        augment: random translation of up to 2 pixels for the train split.
        in_chans: channels the grey image is repeated to (3 for ImageNet-style stems).

    ``predict_dataloader`` serves the test split (images and labels).
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        augment: bool = True,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        check_int("DigitsData", "batch_size", batch_size, 1)
        check_int("DigitsData", "num_workers", num_workers, 0)
        check_int("DigitsData", "seed", seed, 0)
        check_int("DigitsData", "in_chans", in_chans, 1)
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers

        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)
        images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        targets = torch.from_numpy(digits.target).long()
        everything = np.arange(len(targets))
        rest, test = train_test_split(everything, test_size=TEST_SIZE, stratify=digits.target, random_state=seed)
        train, val = train_test_split(rest, test_size=VAL_SIZE, stratify=digits.target[rest], random_state=seed)
        train, val, test = (torch.from_numpy(part).sort().values for part in (train, val, test))

        train_pixels = images[train].double()
        mean, std = train_pixels.mean().item(), train_pixels.std().item()
        self.dataset = "digits"
        self.num_classes = 10
        self.labels = [str(d) for d in range(10)]
        self.input_size = (in_chans, IMAGE_SIZE, IMAGE_SIZE)
        self.mean = (mean,) * in_chans
        self.std = (std,) * in_chans

        def split(indices: Tensor, augment_split: bool) -> DigitsSplit:
            return DigitsSplit(images[indices], targets[indices], indices, mean, std, in_chans, augment_split)

        self.train_set = split(train, augment)
        self.val_set = split(val, False)
        self.test_set = split(test, False)

    def train_dataloader(self) -> DataLoader:
        return make_loader(self, self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return make_loader(self, self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return make_loader(self, self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return make_loader(self, self.test_set, train=False)
