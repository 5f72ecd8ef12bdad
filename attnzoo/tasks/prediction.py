"""Predictions to files for ``attnzoo predict`` (Lightning BasePredictionWriter callbacks): CSV for classification."""
from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["ClassificationWriter", "FileWriter"]


class FileWriter(BasePredictionWriter):
    """Writes an epoch's predictions to ``output``, or to ``<stem>.rank<N><suffix>`` for each process under DDP.

    The file is written to a temporary name beside it and renamed once complete,
    so nothing half-written is left. Subclasses say what goes in it (:meth:`write`).
    """

    newline: str | None = None

    def __init__(self, output: str) -> None:
        super().__init__(write_interval="epoch")
        self.output = Path(output)

    def write(self, f: TextIO, predictions: Sequence[Any], batch_indices: Sequence[Any]) -> None:
        raise NotImplementedError

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        path = self.output
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        try:
            with os.fdopen(fd, "w", newline=self.newline) as f:
                self.write(f, predictions, batch_indices)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class ClassificationWriter(FileWriter):
    """Write each predicted image as a row ``index, class, label, probability`` to ``output``.

    ``index`` is the image's position in the predict data set (for ``DigitsData``
    and ``ImageFolderData``, the test split, or the val split without one).
    Under DDP each process writes its share to ``<output stem>.rank<N>.csv``.
    The file is written to a temporary name and renamed once complete.

        attnzoo predict --config RECIPE.yaml --ckpt_path CKPT \\
            --trainer.callbacks ClassificationWriter --trainer.callbacks.output predictions.csv
    """

    newline = ""  # the csv module writes its own line endings

    def __init__(self, output: str = "predictions.csv") -> None:
        super().__init__(output)

    def write(self, f: TextIO, predictions: Sequence[Any], batch_indices: Sequence[Any]) -> None:
        # Lightning nests both by data loader, except the predictions of a single loader.
        if predictions and not isinstance(predictions[0], list):
            predictions = [predictions]
        batches = [pair for loader in zip(predictions, batch_indices) for pair in zip(*loader)]
        rows = csv.writer(f)
        rows.writerow(["index", "class", "label", "probability"])
        for batch, indices in batches:
            labels = batch["labels"] or [""] * len(indices)
            chosen = batch["probs"].gather(1, batch["index"][:, None])[:, 0]
            for i, cls, label, p in zip(indices, batch["index"].tolist(), labels, chosen.tolist()):
                rows.writerow([i, cls, label, f"{p:.6f}"])
