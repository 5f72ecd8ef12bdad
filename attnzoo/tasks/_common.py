"""What the tasks share: a network whose ``pretrained_cfg`` travels with checkpoints and takes the data's names."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

__all__ = ["TaskModule"]


class TaskModule(pl.LightningModule):
    """A LightningModule whose network is ``self.model``, built for ``self.num_classes`` classes.

    ``model.pretrained_cfg`` (labels, data set, image settings) is saved in
    checkpoints and restored from them, so that a checkpoint rebuilds a
    publishable model.
    """

    def _adopt_data(self, noun: str) -> pl.LightningDataModule | None:
        """The trainer's data module, or None; its class count must be the model's, and its labels (unless
        the model has its own) and data set name go into ``model.pretrained_cfg``."""
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if data is None:
            return None
        data_classes = getattr(data, "num_classes", None)
        if data_classes is not None and data_classes != self.num_classes:
            raise ValueError(
                f"the data has {data_classes} {noun} but the model was built for num_classes={self.num_classes}"
            )
        cfg = self.model.pretrained_cfg
        if cfg.get("labels") is None and getattr(data, "labels", None) is not None:
            cfg["labels"] = list(data.labels)
        if getattr(data, "dataset", None) is not None:
            cfg["dataset"] = data.dataset
        return data

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pretrained_cfg"] = dict(self.model.pretrained_cfg)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model.pretrained_cfg.update(checkpoint.get("pretrained_cfg", {}))
