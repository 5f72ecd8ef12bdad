"""What the DataModules share: argument checks, image files and DataLoader settings."""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from collections.abc import Callable

from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = ["is_image", "load_image", "make_loader"]


def load_image(path: str | Path, mode: str) -> Image.Image:
    """The image file at ``path`` converted to ``mode`` ("L", "RGB"); a ValueError naming it if unreadable."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    # OSError: missing, a folder, not an image, truncated (PIL.UnidentifiedImageError is one); SyntaxError:
    # some of PIL's decoders on broken files.
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def is_image(name: str) -> bool:
    """Whether a file name has an image extension (torchvision's list, any case)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def make_loader(
    datamodule: L.LightningDataModule,
    dataset: Dataset,
    train: bool,
    collate_fn: Callable | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    """Shuffled for training, in order otherwise; ``datamodule`` gives num_workers and batch_size (unless given)."""
    batch_size = datamodule.batch_size if batch_size is None else batch_size
    num_workers = datamodule.num_workers
    # A lone last training sample makes BatchNorm fail ("Expected more than 1 value per channel");
    # under DDP each process gets ceil(N / world_size) samples.
    trainer = datamodule.trainer
    per_process = math.ceil(len(dataset) / (trainer.world_size if trainer is not None else 1))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=train and per_process % batch_size == 1,
        collate_fn=collate_fn,
    )
