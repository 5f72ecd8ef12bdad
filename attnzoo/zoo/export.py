"""A trained Lightning checkpoint as a zoo model folder, with its metrics and recipe in the card."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from .hub import save_pretrained

__all__ = ["export_checkpoint"]


def _class(hparams: dict[str, Any], default: str | None, what: str, ckpt: Path) -> type:
    # LightningCLI records each class's import path in the checkpoint's hyperparameters.
    path = hparams.get("_class_path", default)
    if path is None:
        raise ValueError(
            f"checkpoint {str(ckpt)!r} does not record its {what} class (it was not trained by `attnzoo fit`); "
            "pass --no_test, or test it yourself and call attnzoo.save_pretrained"
        )
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _best_score(checkpoint: dict[str, Any]) -> dict[str, float]:
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            return {f"best {state['monitor']}": float(state["best_model_score"])}
    return {}


def _training(checkpoint: dict[str, Any]) -> str | None:
    """How long the run trained and on what, where the checkpoint says (attnzoo's tasks record it)."""
    if "fit_seconds" not in checkpoint:
        return None
    return (
        f"{checkpoint['epoch'] + 1} epochs ({checkpoint['global_step']} steps) in "
        f"{checkpoint['fit_seconds'] / 60:.1f} min of training and validation, on {checkpoint['hardware']}"
    )


def export_checkpoint(
    ckpt_path: str | Path,
    directory: str | Path,
    *,
    recipe: str | Path | None = None,
    name: str | None = None,
    test: bool = True,
) -> dict[str, float]:
    """Write the network of a task checkpoint as a model folder (see :func:`attnzoo.save_pretrained`).

    Args:
        ckpt_path: a checkpoint written by ``attnzoo fit`` (or by a Trainer fitting an attnzoo task).
        directory: the model folder to write.
        recipe: the YAML recipe to quote in the card; by default the run's ``config.yaml``
            (LightningCLI writes it beside ``checkpoints/``), when there is one.
        name: the model's name in config.json and the card (e.g. ``resnet20-cbam.digits``).
        test: evaluate the checkpoint on its data module's test split (rebuilt from the checkpoint)
            and record the test metrics, with the task's baselines where it has them (BM3D beside a
            Gaussian denoiser: :meth:`~attnzoo.tasks.ImageRestorer.baseline_metrics`).

    Returns the metrics recorded in the card: the test metrics and the best validation score.
    """
    ckpt = Path(ckpt_path)
    if not ckpt.is_file():
        raise ValueError(f"checkpoint {str(ckpt)!r} does not exist")
    # A Lightning checkpoint is a pickle: this reads the user's own training output, never a download.
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{str(ckpt)!r} is not a Lightning checkpoint of an attnzoo task")
    task_class = _class(checkpoint["hyper_parameters"], "attnzoo.tasks.ImageClassifier", "task", ckpt)
    task = task_class.load_from_checkpoint(ckpt, map_location="cpu")
    metrics: dict[str, float] = {}
    if test:
        data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
        data_class = _class(data_hparams, None, "data module", ckpt)
        data = data_class(**{k: v for k, v in data_hparams.items() if not k.startswith("_")})
        trainer = pl.Trainer(
            accelerator="auto", devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False
        )
        metrics.update({k: float(v) for k, v in trainer.test(task, datamodule=data, verbose=False)[0].items()})
        if hasattr(task, "baseline_metrics"):
            metrics.update(task.baseline_metrics(data))
    metrics.update(_best_score(checkpoint))
    if recipe is None and (ckpt.parent.parent / "config.yaml").is_file():
        recipe = ckpt.parent.parent / "config.yaml"
    if name is not None:
        task.model.pretrained_cfg["name"] = name
    save_pretrained(
        task.model,
        directory,
        metrics=metrics,
        recipe=Path(recipe).read_text() if recipe else None,
        training=_training(checkpoint),
    )
    return metrics
