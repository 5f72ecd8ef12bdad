"""Callbacks that the CLI tests hand to `attnzoo fit` by class path (importable from the repo root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]


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


def ddp_fit(tmp_path: Path, *args: str) -> dict[str, torch.Tensor]:
    """``attnzoo fit ARGS`` on 2 CPU processes (gloo DDP, bf16-mixed, 1 epoch) in ``tmp_path``; checks that
    both ran as one group and ended with the same weights, and returns those weights."""
    weights = tmp_path / "weights"
    weights.mkdir()
    callbacks = [{"class_path": "tests.cli_helpers.SaveRankWeights", "init_args": {"directory": str(weights)}}]
    command = [
        sys.executable, "-m", "attnzoo.cli", "fit", *args,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.precision", "bf16-mixed", "--trainer.max_epochs", "1",
        "--trainer.callbacks", json.dumps(callbacks), "--trainer.default_root_dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stderr and "MEMBER: 2/2" in done.stderr
    rank0, rank1 = load_file(weights / "rank0.safetensors"), load_file(weights / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    return rank0
