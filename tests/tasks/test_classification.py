"""ImageClassifier on a tiny synthetic task: training, fine-tuning strategies, attention schedules, prediction;
what `attnzoo show` draws for a classifier."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import attnzoo
from attnzoo.attention.dynamic_conv import DynamicConv
from attnzoo.cli import main
from attnzoo.data import DigitsData
from attnzoo.tasks import DynamicConvTemperature, ImageClassifier, show_classifier

from ..picture_helpers import capture_draw, capture_figures, figure_titles, layout


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


def test_show_classifier_draws_digits_rows_and_compares_classes(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    model = attnzoo.load("resnet20-cbam.digits")
    path = show_classifier(model, tmp_path / "digits.png", count=2)
    assert Image.open(path).size == layout(10, 2)  # the digit and the nine CBAM maps
    assert drawn["images"].shape == (200, 1, 32, 32) and drawn["rows"] == 2
    assert drawn["groups"][:5] == [str(t) for t in DigitsData(augment=False).test_set.targets[:5].tolist()]
    assert drawn["row_titles"][0].endswith(f"(true {drawn['groups'][0]})")
    assert drawn["title"] == "resnet20-cbam.digits: DigitsData test digits"


def test_show_classifier_shows_photos_to_an_imagenet_network(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    figures = capture_figures(monkeypatch)
    model = attnzoo.create_model("resnet18-sk", num_classes=5)
    show_classifier(model, tmp_path / "photos.png", count=2)
    assert drawn["images"].shape == (16, 3, 224, 224) and drawn["groups"][:5] == [
        "astronaut", "chelsea", "coffee", "rocket", "astronaut"
    ]
    assert sorted(drawn["zoomed"]) == [1.5, 2.0]
    assert drawn["title"] == "resnet18-sk: scikit-image photos, 4 crops of each"
    title = next(t for t in figure_titles(figures[-1]) if "largest kernel" in t)
    assert title.startswith("sk: ")


def test_show_classifier_bad_input(tmp_path):
    with pytest.raises(ValueError, match="'resnet20' has no attention modules: there is nothing to draw"):
        show_classifier(attnzoo.create_model("resnet20", num_classes=10), tmp_path / "x.png")
    model = attnzoo.create_model("resnet20-cbam", num_classes=10)
    with pytest.raises(ValueError, match="count must be an integer in 1..32"):
        show_classifier(model, tmp_path / "x.png", count=0)
    with pytest.raises(ValueError, match="count must be an integer in 1..4, got 5"):  # photos for a 224 network
        show_classifier(attnzoo.create_model("resnet18-cbam"), tmp_path / "x.png", count=5)
    with pytest.raises(ValueError, match="'fcos-resnet18' is a detection model; show_classifier draws classification"):
        show_classifier(attnzoo.create_model("fcos-resnet18", num_classes=3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_zoo_entry(tmp_path, capsys):
    assert main(["show", "resnet20-cbam.digits", "--output", str(tmp_path / "digits.png"), "--count", "2"]) == 0
    assert f"wrote {tmp_path / 'digits.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "digits.png").format == "PNG"


def test_show_command_draws_selective_kernels_and_random_networks(tmp_path, capsys):
    output = tmp_path / "x.png"
    assert main(["show", "resnet20-sk.digits", "--output", str(output)]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert main(["show", "resnet20-ema", "--output", str(output), "--count", "1"]) == 0  # no zoo weights: random
    assert "resnet20-ema: random weights, not trained" in capsys.readouterr().out
    assert Image.open(output).size == layout(2, 1)
    assert main(["show", "resnet20.digits", "--output", str(output)]) == 2
    assert "'resnet20.digits' has no attention modules" in capsys.readouterr().err
    assert main(["show", "resnet20", "--random", "--output", str(output)]) == 2
    assert "'resnet20' has no attention modules" in capsys.readouterr().err
