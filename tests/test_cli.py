"""The `attnzoo` command: LightningCLI training (checkpoints, resume, DDP + bf16), publishing a checkpoint,
fine-tuning a zoo entry on an image folder, and clear errors."""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from PIL import Image

import attnzoo
from attnzoo.cli import AttnzooCLI, _without_config_files, main
from attnzoo.data import DigitsData
from attnzoo.tasks import ImageClassifier

from .cli_helpers import StateSnapshots, ddp_fit

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "tasks" / "classify" / "resnet20-cbam.digits.yaml"
# A few steps of the digits recipe: what every test here starts from.
SHORT = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1"]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch):
    # LightningCLI warns when it is given args while sys.argv holds pytest's own.
    monkeypatch.setattr(sys, "argv", ["attnzoo"])


def fit(tmp_path: Path, *args: str) -> AttnzooCLI:
    return AttnzooCLI(
        args=["fit", "--config", str(RECIPE), "--trainer.default_root_dir", str(tmp_path), *SHORT, *args]
    )


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def accuracy(model: torch.nn.Module, data: DigitsData) -> float:
    """Top-1 on the test split, counted by hand (no Lightning, no torchmetrics)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data.test_set), 90):
            x, y = zip(*(data.test_set[j] for j in range(i, min(i + 90, len(data.test_set)))))
            correct += (model(torch.stack(x)).argmax(1) == torch.stack(y)).sum().item()
    return correct / len(data.test_set)


def test_fit_keeps_best_and_last_checkpoints_logs_and_config(tmp_path):
    cli = fit(tmp_path, "--trainer.max_epochs", "2")
    run = tmp_path / "lightning_logs" / "version_0"
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names[-1] == "last.ckpt" and len(names) == 2 and names[0].startswith("best-epoch=")
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/top1" and best.mode == "max" and Path(best.best_model_path).name == names[0]
    logged = rows(run / "metrics.csv")
    assert {"train/loss", "val/top1", "val/top5"} <= set(logged[0])
    assert [r["epoch"] for r in logged if r["val/top1"]] == ["0", "1"]
    assert "backbone: resnet20-cbam" in (run / "config.yaml").read_text()
    # The data module's classes and image statistics reach the model.
    model = cli.model.model
    assert cli.model.num_classes == 10 and model.pretrained_cfg["labels"] == [str(d) for d in range(10)]
    assert model.pretrained_cfg["mean"] == cli.datamodule.mean and model.pretrained_cfg["dataset"] == "digits"


def test_default_root_dir_decides_where_a_run_goes(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fit(tmp_path / "run", "--trainer.max_epochs", "1")
    run = tmp_path / "run" / "lightning_logs" / "version_0"
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert list(elsewhere.iterdir()) == []


def test_last_checkpoint_is_the_last_epoch_whether_or_not_it_validated_or_improved(tmp_path):
    # Validation at epoch 2 only: Lightning 2.6's save_last would leave last.ckpt at that best epoch.
    fit(tmp_path, "--trainer.max_epochs", "3", "--trainer.check_val_every_n_epoch", "2")
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 9)
    assert [p.name for p in checkpoints.glob("best-*.ckpt")] == ["best-epoch=001.ckpt"]


def test_a_given_logger_wins_over_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit(tmp_path / "root", "--trainer.max_epochs", "1", "--trainer.logger", "CSVLogger",
        "--trainer.logger.save_dir", str(tmp_path / "logs"), "--trainer.logger.name", "mine")
    assert (tmp_path / "logs" / "mine" / "version_0" / "metrics.csv").is_file()
    assert (tmp_path / "logs" / "mine" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "root" / "lightning_logs").exists()


def test_resume_continues_at_the_saved_step(tmp_path):
    fit(tmp_path / "first", "--trainer.max_epochs", "1")
    last = tmp_path / "first" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    cli = fit(tmp_path / "second", "--trainer.max_epochs", "2", "--ckpt_path", str(last))
    assert cli.trainer.global_step == 6 and cli.trainer.current_epoch == 2
    # The card's training time counts the first run too.
    assert cli.model._fit_seconds_before == torch.load(last, weights_only=False)["fit_seconds"] > 0
    trained = [r for r in rows(tmp_path / "second" / "lightning_logs" / "version_0" / "metrics.csv") if r["train/loss"]]
    assert [(r["epoch"], r["step"]) for r in trained] == [("1", "3"), ("1", "4"), ("1", "5")]


def test_ckpt_hyperparameters_stand_over_config_files_and_under_flags(tmp_path):
    fit(tmp_path, "--trainer.max_epochs", "1", "--model.label_smoothing", "0.2")  # the recipe says 0.1
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    common = ["validate", "--config", str(RECIPE), "--ckpt_path", str(last), "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path / "validate"), *SHORT]
    assert AttnzooCLI(args=common).model.hparams.label_smoothing == 0.2
    flagged = AttnzooCLI(args=[*common, "--model.label_smoothing", "0.05",
                               "--trainer.callbacks+=LearningRateMonitor"])
    assert flagged.model.hparams.label_smoothing == 0.05
    assert flagged.model.hparams.num_classes == 10 and flagged.trainer.limit_val_batches == 1
    assert sum(isinstance(c, LearningRateMonitor) for c in flagged.trainer.callbacks) == 1  # a flag is applied once
    # The checkpoint's stands over a config file however it is spelled.
    respelled = AttnzooCLI(args=["validate", f"-c={RECIPE}", *common[3:]])
    assert respelled.model.hparams.label_smoothing == 0.2


@pytest.mark.parametrize("config", [["--config", "a.yaml"], ["--config=a.yaml"], ["--conf", "a.yaml"], ["-c", "a.yaml"],
                                    ["-ca.yaml"], ["-c=a.yaml"]])
def test_without_config_files_keeps_every_other_argument(config):
    args = ["test", *config, "--ckpt_path", "c.ckpt", "--model.tile", "256"]
    assert _without_config_files(args) == ["test", "--ckpt_path", "c.ckpt", "--model.tile", "256"]


def test_publish_a_checkpoint_with_its_test_metrics_and_recipe(tmp_path, capsys):
    fit(tmp_path, "--trainer.max_epochs", "1")
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    out = tmp_path / "model"
    assert main(["publish", "--ckpt_path", str(last), "--output", str(out), "--name", "resnet20-cbam.trial",
                 "--recipe", str(RECIPE), "--repo_id", "lab/trial", "--mirror", str(tmp_path / "mirror")]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "published" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["name"] == "resnet20-cbam.trial" and config["dataset"] == "digits" and config["labels"][3] == "3"
    card = (out / "README.md").read_text()
    assert "backbone: resnet20-cbam" in card  # the recipe
    # How long it trained, and on what.
    minutes = float(re.search(r"Trained for 1 epochs \(3 steps\) in ([0-9.]+) min of training and validation, "
                              r"on \d+ CPU threads", card).group(1))
    assert minutes < 10
    model = attnzoo.load(out)
    recorded = next(float(line.split("|")[2]) for line in card.splitlines() if line.startswith("| test/top1 |"))
    assert recorded == pytest.approx(accuracy(model, DigitsData(augment=False)), abs=1e-3)
    assert (tmp_path / "mirror" / "models" / "lab" / "trial" / "model.safetensors").is_file()
    # A saved folder publishes as it is.
    assert main(["publish", "--directory", str(out), "--repo_id", "lab/again", "--mirror", str(tmp_path / "mirror")]) == 0
    assert (tmp_path / "mirror" / "models" / "lab" / "again" / "README.md").read_text() == card
    assert main(["publish", "--directory", str(out), "--recipe", str(RECIPE), "--output", str(tmp_path / "y")]) == 2
    assert "--output, --recipe go with --ckpt_path" in capsys.readouterr().err
    assert main(["publish", "--directory", str(out)]) == 2
    assert "needs --repo_id" in capsys.readouterr().err


def test_publish_needs_a_source_and_a_destination(tmp_path, capsys):
    assert main(["publish", "--output", str(tmp_path / "x")]) == 2
    assert "exactly one of --ckpt_path" in capsys.readouterr().err
    assert main(["publish", "--ckpt_path", str(tmp_path / "none.ckpt")]) == 2
    assert "needs --repo_id" in capsys.readouterr().err
    assert main(["publish", "--ckpt_path", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_backbone_is_a_clear_error(tmp_path, capsys):
    assert main(["fit", "--config", str(RECIPE), "--model.backbone", "resnet20-cbm", *SHORT]) == 2
    err = capsys.readouterr().err
    assert "unknown attention 'cbm'" in err and "cbam" in err


def test_missing_image_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["fit", "--model", "ImageClassifier", "--data", "ImageFolderData",
                 "--data.root", str(tmp_path / "nowhere"), *SHORT]) == 2
    assert f"data folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def write_digit_folder(root: Path, classes=("0", "1", "2"), per_split={"train": 8, "val": 3}) -> Path:
    """A few of the digits' test images as PNG files in ImageFolder layout."""
    test = DigitsData(augment=False, in_chans=1).test_set
    for split, count in per_split.items():
        for label in classes:
            folder = root / split / label
            folder.mkdir(parents=True)
            picks = [i for i in range(len(test)) if str(test.targets[i].item()) == label][:count]
            for i in picks:
                pixels = (test.images[i, 0] * 255).round().byte().numpy()
                Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{i}.png")
    return root


def test_fine_tune_a_zoo_entry_on_an_image_folder_with_freeze_unfreeze(tmp_path):
    root = write_digit_folder(tmp_path / "photos")
    entry = attnzoo.load("resnet20-cbam.digits")
    cli = AttnzooCLI(args=[
        "fit", "--model", "ImageClassifier", "--model.backbone", "resnet20-cbam.digits", "--model.pretrained", "true",
        "--model.finetune", "freeze_unfreeze", "--model.unfreeze_at_epoch", "1",
        "--model.optimizer", "SGD", "--model.optimizer.lr", "0.05",
        "--data", "ImageFolderData", "--data.root", str(root), "--data.batch_size", "8", "--data.num_workers", "0",
        "--trainer.max_epochs", "2", "--trainer.callbacks", json.dumps([{"class_path": "tests.cli_helpers.StateSnapshots"}]),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ])
    assert cli.model.num_classes == 3 and cli.model.model.pretrained_cfg["labels"] == ["0", "1", "2"]
    # The images were prepared as the zoo entry wants them: its input size and its training statistics.
    cfg = entry.pretrained_cfg
    assert cli.datamodule.input_size == tuple(cfg["input_size"]) == (3, 32, 32)
    assert cli.datamodule.mean == tuple(cfg["mean"]) and cli.datamodule.std == tuple(cfg["std"])
    start, frozen, unfrozen = next(c for c in cli.trainer.callbacks if isinstance(c, StateSnapshots)).snapshots
    pretrained = entry.state_dict()
    body = [k for k in start if not k.startswith("model.fc.")]
    assert all(torch.equal(start[k], pretrained[k.removeprefix("model.")]) for k in body)
    assert all(torch.equal(frozen[k], start[k]) for k in body)  # weights and BN statistics, while frozen
    assert not torch.equal(frozen["model.fc.weight"], start["model.fc.weight"])
    changed = [k for k in body if k.endswith("conv1.weight") and not torch.equal(unfrozen[k], frozen[k])]
    assert len(changed) >= 9  # every residual block's first conv trains after unfreezing


def test_ddp_on_two_processes_with_bf16(tmp_path):
    rank0 = ddp_fit(tmp_path, "--config", str(RECIPE), *SHORT)
    initial = ImageClassifier("resnet20-cbam").state_dict()
    assert not torch.equal(rank0["model.conv1.weight"], initial["model.conv1.weight"])
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    restored = ImageClassifier.load_from_checkpoint(last, map_location="cpu").state_dict()
    assert all(torch.equal(restored[k].float(), rank0[k]) for k in rank0)


def test_predict_writes_a_csv_of_classes_and_probabilities(tmp_path):
    fit(tmp_path, "--trainer.max_epochs", "1")
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    output = tmp_path / "predictions.csv"
    AttnzooCLI(args=["predict", "--config", str(RECIPE), "--ckpt_path", str(last), "--trainer.logger", "false",
                     "--trainer.default_root_dir", str(tmp_path / "predict"),
                     "--trainer.enable_progress_bar", "false", "--trainer.callbacks", "ClassificationWriter",
                     "--trainer.callbacks.output", str(output)])
    predicted = rows(output)
    assert [int(r["index"]) for r in predicted] == list(range(270))  # the whole test split, in order
    # Against the checkpoint's network run by hand on the same images.
    model = ImageClassifier.load_from_checkpoint(last, map_location="cpu").model.eval()
    test = DigitsData().test_set
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([test[i][0] for i in range(270)])), dim=1)
    assert [int(r["class"]) for r in predicted] == probs.argmax(1).tolist()
    assert [r["label"] for r in predicted] == [str(c) for c in probs.argmax(1).tolist()]
    torch.testing.assert_close(torch.tensor([float(r["probability"]) for r in predicted]), probs.max(1).values,
                               atol=1e-5, rtol=0)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("recipe", sorted((ROOT / "tasks").glob("*/*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_builds_its_task_and_data(recipe, tmp_path):
    # A recipe whose arguments drift from the classes it names would fail only hours into its run.
    cli = AttnzooCLI(args=["--config", str(recipe), "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert cli.model.__class__.__name__ in ("ImageClassifier", "ObjectDetector", "ImageRestorer", "VideoReID")
    name = recipe.name.removesuffix(".yaml")
    network = cli.model.model.pretrained_cfg.get("architecture") or cli.model.model.spec.name
    assert name.partition(".")[0] == network, f"{recipe.name} trains {network}"
