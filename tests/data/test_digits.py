import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from attnzoo.data import DigitsData


@pytest.fixture(scope="module")
def digits():
    return DigitsData()


@pytest.fixture(scope="module")
def raw():
    return load_digits()


def _split_indices(dm):
    return [dm.train_set.indices, dm.val_set.indices, dm.test_set.indices]


def test_attributes_before_setup(digits):
    assert digits.num_classes == 10
    assert digits.labels == [str(d) for d in range(10)]
    assert digits.input_size == (3, 32, 32)
    assert len(digits.mean) == len(digits.std) == 3
    assert digits.hparams["seed"] == 0


def test_split_sizes_fixed_and_disjoint(digits):
    train, val, test = _split_indices(digits)
    assert (len(train), len(val), len(test)) == (1257, 270, 270)
    everything = torch.cat([train, val, test])
    assert torch.equal(everything.sort().values, torch.arange(1797))


def test_split_deterministic_per_seed(digits):
    again = DigitsData(seed=0)
    for a, b in zip(_split_indices(digits), _split_indices(again)):
        assert torch.equal(a, b)
    other = DigitsData(seed=1)
    assert not torch.equal(digits.test_set.indices, other.test_set.indices)
    assert len(other.test_set) == 270


def test_split_stratified(digits, raw):
    for split in (digits.train_set, digits.val_set, digits.test_set):
        assert torch.equal(split.targets, torch.from_numpy(raw.target[split.indices.numpy()]))
        counts = torch.bincount(split.targets, minlength=10).float()
        assert (counts > 0).all()
        expected = torch.from_numpy(np.bincount(raw.target)).float() * len(split) / 1797
        assert (counts - expected).abs().max() < 1.5  # two rounding steps (test, then val)


def test_images_are_bilinear_upscaled_digits(digits, raw):
    # PIL's bilinear resize as the independent reference.
    mean, std = digits.mean[0], digits.std[0]
    for i in (0, 5, 100):
        image, label = digits.test_set[i]
        source = int(digits.test_set.indices[i])
        grey = raw.images[source].astype(np.float32) / 16
        expected = np.asarray(Image.fromarray(grey, mode="F").resize((32, 32), Image.BILINEAR))
        assert image.shape == (3, 32, 32)
        for channel in image:
            np.testing.assert_allclose(channel.numpy() * std + mean, expected, atol=1e-5)
        assert int(label) == raw.target[source]


def test_normalisation_from_train_split(digits):
    train = torch.stack([digits.train_set.images[i] for i in range(len(digits.train_set))]).double()
    assert digits.mean[0] == pytest.approx(train.mean().item())
    assert digits.std[0] == pytest.approx(train.std().item())
    unaugmented = DigitsData(augment=False)
    normalised = torch.stack([unaugmented.train_set[i][0] for i in range(len(unaugmented.train_set))])
    assert normalised.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normalised.std().item() == pytest.approx(1.0, abs=1e-4)
    val = torch.stack([digits.val_set[i][0] for i in range(len(digits.val_set))])
    assert abs(val.mean().item()) < 0.1 and abs(val.std().item() - 1) < 0.1


def test_batches(digits):
    for loader in (digits.train_dataloader(), digits.val_dataloader(), digits.test_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (64, 3, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < 10
    assert sum(len(y) for _, y in digits.val_dataloader()) == 270


def test_in_chans():
    grey = DigitsData(in_chans=1, batch_size=8)
    images, _ = next(iter(grey.val_dataloader()))
    assert images.shape == (8, 1, 32, 32) and grey.input_size == (1, 32, 32) and len(grey.mean) == 1


def test_augmentation_translates_train_only(digits):
    split = digits.train_set
    mean, std = digits.mean[0], digits.std[0]
    shifted = 0
    for i in range(20):
        augmented = split[i][0][0] * std + mean
        base = split.images[i][0]
        padded = torch.nn.functional.pad(base, (2, 2, 2, 2))
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.allclose(padded[2 - dy : 34 - dy, 2 - dx : 34 - dx], augmented, atol=1e-5)
        ]
        assert matches, f"train image {i} is not a translation of at most 2 pixels"
        shifted += (0, 0) not in matches
    assert shifted > 5
    assert torch.equal(digits.val_set[3][0], digits.val_set[3][0])
    assert torch.equal(digits.test_set[3][0], digits.test_set[3][0])


@pytest.mark.parametrize(
    "kwargs", [dict(batch_size=0), dict(num_workers=-1), dict(seed=-1), dict(in_chans=0), dict(batch_size=2.5)]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=f"DigitsData: {next(iter(kwargs))}"):
        DigitsData(**kwargs)


def test_lightning_cli_links_classes_and_fits(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    class Linear(L.LightningModule):
        def __init__(self, num_classes: int = 2, labels: list[str] | None = None) -> None:
            super().__init__()
            self.labels = labels
            self.fc = torch.nn.Linear(3 * 32 * 32, num_classes)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.fc(x.flatten(1)), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    monkeypatch.setattr("sys.argv", ["attnzoo"])

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
            parser.link_arguments("data.labels", "model.labels", apply_on="instantiate")

    cli = CLI(
        Linear,
        DigitsData,
        run=False,
        args=[
            "--data.batch_size=16",
            "--trainer.fast_dev_run=2",
            "--trainer.logger=false",
            "--trainer.limit_val_batches=0",
            f"--trainer.default_root_dir={tmp_path}",
        ],
    )
    assert cli.model.fc.out_features == 10 and cli.model.labels == [str(d) for d in range(10)]
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 2
