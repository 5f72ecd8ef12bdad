"""Fine-tuning strategies and attention-specific training schedules, as Lightning callbacks."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import BaseFinetuning, Callback
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from attnzoo.attention.dynamic_conv import INITIAL_TEMPERATURE, DynamicConv

__all__ = ["FINETUNE_STRATEGIES", "BackboneFreeze", "DynamicConvTemperature"]

FINETUNE_STRATEGIES = ("no_freeze", "freeze", "freeze_unfreeze")


class BackboneFreeze(BaseFinetuning):
    """Train the head alone; with ``unfreeze_at_epoch``, the whole network from that epoch on.

    Built on Lightning's BaseFinetuning. While frozen, the backbone's BatchNorm
    layers stay in eval mode, so their running statistics keep the pretrained
    values rather than drifting with the new data. The backbone joins the
    optimiser at ``lr_factor`` times the head's learning rate.
    """

    def __init__(self, unfreeze_at_epoch: int | None = None, lr_factor: float = 0.1) -> None:
        super().__init__()
        if unfreeze_at_epoch is not None and (isinstance(unfreeze_at_epoch, bool) or unfreeze_at_epoch < 1):
            raise ValueError(f"unfreeze_at_epoch must be a positive epoch number, got {unfreeze_at_epoch!r}")
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.lr_factor = lr_factor

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone_body(), train_bn=False)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch == self.unfreeze_at_epoch:
            self.unfreeze_and_add_param_group(
                pl_module.backbone_body(), optimizer, initial_denom_lr=1 / self.lr_factor, train_bn=True
            )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        for module in self.flatten_modules(pl_module.backbone_body()):
            if isinstance(module, _BatchNorm) and module.weight is not None and not module.weight.requires_grad:
                module.eval()


class DynamicConvTemperature(Callback):
    """Dynamic convolution's softmax temperature, annealed linearly from 30 to 1 over the first 10 epochs.

    Chen et al. 2020, section 3.2: tau = 30 at the start of training, reduced linearly to 1 in
    the first 10 epochs. The paper does not say in what steps; the temperature here is set
    before every training batch from the fraction of epochs done (``epoch + batch / batches``),
    so it falls linearly with the steps rather than in ten jumps (the public reference code
    lowers it once an epoch). With an iterable data set of unknown length it falls once an
    epoch. ``start`` is the temperature a new :class:`~attnzoo.attention.dynamic_conv.DynamicConv`
    has, so the first batch sees what an untrained network does.
    """

    def __init__(self, start: float = INITIAL_TEMPERATURE, end: float = 1.0, epochs: int = 10) -> None:
        if not start >= end > 0 or epochs < 1:
            raise ValueError(f"need start >= end > 0 and epochs >= 1, got start={start}, end={end}, epochs={epochs}")
        self.start, self.end, self.epochs = start, end, epochs

    def temperature(self, epoch: float) -> float:
        """The temperature after ``epoch`` epochs of training (fractional: 2.5 is half-way through the third)."""
        return self.end + (self.start - self.end) * max(0.0, 1 - epoch / self.epochs)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        tau = self.temperature(trainer.current_epoch + batch_idx / trainer.num_training_batches)
        for module in pl_module.modules():
            if isinstance(module, DynamicConv):
                module.set_temperature(tau)


def has_dynamic_conv(model: nn.Module) -> bool:
    return any(isinstance(m, DynamicConv) for m in model.modules())
