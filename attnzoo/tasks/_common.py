"""What the tasks share: a network whose ``pretrained_cfg`` travels with checkpoints and takes the data's names."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR

__all__ = ["TaskModule", "cosine_over_run", "describe_hardware", "schedules"]


def describe_hardware(trainer: pl.Trainer) -> str:
    """What a run trains on, for model cards: "1 x NVIDIA H100 80GB HBM3", "2 CPU threads (AMD EPYC)"."""
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator")
    if accelerator == "CUDA":
        return f"{trainer.num_devices * trainer.num_nodes} x {torch.cuda.get_device_name()}"
    if accelerator != "CPU":
        return f"{trainer.num_devices * trainer.num_nodes} x {accelerator}"
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    where = f" ({models[0]})" if models else ""
    processes = trainer.num_devices * trainer.num_nodes
    return (f"{processes} processes x " if processes > 1 else "") + f"{torch.get_num_threads()} CPU threads{where}"


def cosine_over_run(task: pl.LightningModule, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The tasks' default schedule: cosine decay to 0 over the whole run, stepped every step."""
    total = task.trainer.estimated_stepping_batches
    if total == float("inf"):
        raise ValueError(
            f"{type(task).__name__}'s default cosine schedule needs a finite run: set trainer max_epochs or "
            "max_steps, or give a scheduler"
        )
    return {"scheduler": CosineAnnealingLR(optimizer, T_max=int(total)), "interval": "step"}


def schedules(
    task: pl.LightningModule,
    optimizer: torch.optim.Optimizer,
    scheduler_factory: Any,
    warmup_steps: int,
    warmup_factor: float,
) -> list[dict[str, Any]]:
    """A task's schedules: ``scheduler_factory``'s, stepped every epoch, or else :func:`cosine_over_run`; then
    a linear warm-up from ``warmup_factor`` times the rate over the first ``warmup_steps`` steps (0: none)."""
    # Both scale the rate multiplicatively (PyTorch's chainable form), so they compose.
    if scheduler_factory is None:
        chosen = [cosine_over_run(task, optimizer)]
    else:
        chosen = [{"scheduler": scheduler_factory(optimizer), "interval": "epoch"}]
    if warmup_steps > 0:
        warmup = LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_steps)
        chosen.append({"scheduler": warmup, "interval": "step"})
    return chosen


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

    # The fit's wall time (training and validation), carried over resumes, for the model card. Lightning's
    # Timer callback measures the same, but LightningCLI cannot write its Enum argument into config.yaml.
    _fit_seconds_before = 0.0
    _fit_started: float | None = None

    def on_fit_start(self) -> None:
        self._fit_started = time.monotonic()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pretrained_cfg"] = dict(self.model.pretrained_cfg)
        if self._fit_started is not None:
            checkpoint["fit_seconds"] = self._fit_seconds_before + time.monotonic() - self._fit_started
            checkpoint["hardware"] = describe_hardware(self.trainer)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model.pretrained_cfg.update(checkpoint.get("pretrained_cfg", {}))
        self._fit_seconds_before = checkpoint.get("fit_seconds", 0.0)
