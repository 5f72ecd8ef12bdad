"""What the DataModules share: argument checks and DataLoader settings."""
from __future__ import annotations

import math

import lightning as L
import torch
from collections.abc import Callable

from torch.utils.data import DataLoader, Dataset

__all__ = ["check_int", "make_loader"]


def check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def make_loader(
    datamodule: L.LightningDataModule, dataset: Dataset, train: bool, collate_fn: Callable | None = None
) -> DataLoader:
    """Shuffled for training, in order otherwise; ``datamodule`` gives batch_size and num_workers."""
    batch_size, num_workers = datamodule.batch_size, datamodule.num_workers
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
