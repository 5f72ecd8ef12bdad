"""ImageClassifier on a tiny synthetic task: training, fine-tuning strategies, attention schedules, prediction."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from attnzoo.attention.dynamic_conv import DynamicConv
from attnzoo.tasks import DynamicConvTemperature, ImageClassifier


class Blobs(pl.LightningDataModule):
    """Three classes told apart by which colour channel is bright: learnable in a few steps."""

    def __init__(self, num_classes: int = 3, n: int = 48):
        super().__init__()
        self.num_classes = num_classes
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % num_classes
        self.x = torch.randn(n, 3, 16, 16, generator=g) * 0.3
        self.x[torch.arange(n), self.y % 3] += 1.0

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16)

    test_dataloader = val_dataloader

    def predict_dataloader(self):
        return DataLoader(TensorDataset(self.x), batch_size=16)


def trainer(epochs: int, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )


def test_training_learns_and_reports_accuracy():
    model = ImageClassifier("resnet20-cbam", num_classes=3, labels=["r", "g", "b"])
    trainer(4).fit(model, datamodule=Blobs())
    (metrics,) = trainer(1).test(model, datamodule=Blobs(), verbose=False)
    assert metrics["test/top1"] > 0.9 and metrics["test/top5"] == 1.0
    out = trainer(1).predict(model, datamodule=Blobs())[0]
    torch.testing.assert_close(out["probs"].sum(-1), torch.ones(16))
    assert out["labels"][:3] == ["r", "g", "b"]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, after: dict, prefix: str) -> set[str]:
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def test_freeze_unfreeze_trains_the_head_first_then_everything():
    model = ImageClassifier("resnet20-se", num_classes=3, finetune="freeze_unfreeze", unfreeze_at_epoch=1)
    start = snapshot(model.model)
    trainer(1).fit(model, datamodule=Blobs())
    after_frozen = snapshot(model.model)
    assert changed(start, after_frozen, "fc.") == {"fc.weight", "fc.bias"}
    assert not changed(start, after_frozen, "layer") and not changed(start, after_frozen, "bn1")  # BN stats too
    trainer(2).fit(model, datamodule=Blobs())
    assert changed(after_frozen, snapshot(model.model), "layer1.0.conv1")


def test_freeze_keeps_the_backbone_fixed():
    model = ImageClassifier("resnet20-eca", num_classes=3, finetune="freeze")
    start = snapshot(model.model)
    trainer(2).fit(model, datamodule=Blobs())
    end = snapshot(model.model)
    assert not changed(start, end, "layer") and changed(start, end, "fc.")


class TemperatureLog(pl.Callback):
    """The temperature each training batch ran at."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append({float(m.temperature) for m in pl_module.modules() if isinstance(m, DynamicConv)})


def test_dyconv_temperature_is_annealed_linearly_with_the_steps():
    # Chen et al. 2020: tau from 30 down to 1, linearly, over the first 10 epochs; then 1.
    schedule = DynamicConvTemperature()
    assert schedule.temperature(0) == 30 and schedule.temperature(10) == 1 and schedule.temperature(12) == 1
    assert schedule.temperature(5) == pytest.approx(15.5) and schedule.temperature(2.5) == pytest.approx(22.75)
    model = ImageClassifier("resnet20-dyconv", num_classes=3)
    log = TemperatureLog()
    trainer(3, callbacks=[log]).fit(model, datamodule=Blobs())  # 3 batches an epoch
    expected = [30 - 29 * (epoch + batch / 3) / 10 for epoch in range(3) for batch in range(3)]
    assert len(log.seen) == 9 and all(len(temps) == 1 for temps in log.seen)  # every dynamic conv alike
    assert [temps.pop() for temps in log.seen] == pytest.approx(expected)


def test_bad_arguments_and_class_mismatch_raise():
    with pytest.raises(ValueError, match="finetune must be one of"):
        ImageClassifier("resnet20", finetune="thaw")
    with pytest.raises(ValueError, match="2 labels given for num_classes=3"):
        ImageClassifier("resnet20", num_classes=3, labels=["a", "b"])
    with pytest.raises(ValueError, match="the data has 3 classes but the model was built for num_classes=5"):
        trainer(1).fit(ImageClassifier("resnet20", num_classes=5), datamodule=Blobs())
