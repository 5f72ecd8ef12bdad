"""Callbacks that the CLI tests hand to `attnzoo fit` by class path (importable from the repo root)."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from safetensors.torch import save_file


class SaveRankWeights(pl.Callback):
    """Each process writes its module's weights to ``directory/rank<N>.safetensors`` when training ends."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {k: v.detach().float().cpu().contiguous() for k, v in pl_module.state_dict().items()}
        save_file(state, self.directory / f"rank{trainer.global_rank}.safetensors")


class StateSnapshots(pl.Callback):
    """The module's state (parameters and buffers) when fitting starts and after each training epoch."""

    def __init__(self) -> None:
        self.snapshots: list[dict] = []

    def _take(self, pl_module: pl.LightningModule) -> None:
        self.snapshots.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take(pl_module)
