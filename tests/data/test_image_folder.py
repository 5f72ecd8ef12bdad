import re
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from attnzoo.data import ImageFolderData

# Class folder names (not in sorted order on purpose) and each class's solid colour.
COLOURS = {"zebra": (255, 0, 0), "ant": (0, 255, 0), "moth": (0, 0, 255)}
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _write(root, splits=("train", "val"), per_class=3, classes=COLOURS):
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (12 + i, 10), COLOURS[name]).save(folder / f"{i}.png")
    return root


def _data(root, **kwargs):
    kwargs = dict(input_size=(3, 8, 8), mean=MEAN, std=STD, interpolation="bilinear", crop_pct=0.875,
                  batch_size=4, num_workers=0) | kwargs
    return ImageFolderData(root, **kwargs)


def test_classes_known_after_construction(tmp_path):
    dm = _data(_write(tmp_path))
    assert dm.labels == ["ant", "moth", "zebra"]
    assert dm.num_classes == 3
    assert dm.input_size == (3, 8, 8) and dm.mean == MEAN and dm.std == STD


def test_val_batches_labels_and_normalisation(tmp_path):
    dm = _data(_write(tmp_path))
    images, labels = [], []
    for x, y in dm.val_dataloader():
        assert x.shape[1:] == (3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        images.append(x)
        labels.append(y)
    images, labels = torch.cat(images), torch.cat(labels)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Solid colours stay solid through resize and crop: undoing the normalisation gives them back.
    pixels = images * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    for image, label in zip(pixels, labels):
        colour = torch.tensor(COLOURS[dm.labels[label]], dtype=torch.float32) / 255
        torch.testing.assert_close(image, colour.view(3, 1, 1).expand(3, 8, 8), atol=1e-5, rtol=0)


def test_train_batches(tmp_path):
    dm = _data(_write(tmp_path, per_class=4))
    seen = []
    for x, y in dm.train_dataloader():
        assert x.shape[1:] == (3, 8, 8)
        assert ((y >= 0) & (y < 3)).all()
        seen.append(y)
    assert sorted(torch.cat(seen).tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_lone_last_training_sample_dropped(tmp_path):
    # 3 classes x 3 images = 9 = 2 x 4 + 1: a batch of one would break BatchNorm.
    dm = _data(_write(tmp_path))
    assert [len(y) for _, y in dm.train_dataloader()] == [4, 4]
    assert sum(len(y) for _, y in dm.val_dataloader()) == 9
    # Under DDP each of 2 processes gets ceil(9 / 2) = 5 images: with batches of 8 none is alone.
    dm = _data(tmp_path, batch_size=8)
    assert dm.train_dataloader().drop_last
    dm.trainer = SimpleNamespace(world_size=2)
    assert not dm.train_dataloader().drop_last


def test_grey_input(tmp_path):
    dm = _data(_write(tmp_path), input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 1, 8, 8)


def test_test_split_and_predict(tmp_path):
    dm = _data(_write(tmp_path))
    with pytest.raises(ValueError, match=f"no test folder: {re.escape(str(tmp_path / 'test'))}"):
        dm.test_dataloader()
    assert len(dm.predict_dataloader().dataset) == 9
    dm = _data(_write(tmp_path / "with_test", splits=("train", "val", "test"), per_class=2))
    assert sum(len(y) for _, y in dm.test_dataloader()) == 6
    assert dm.predict_dataloader().dataset.root == str(tmp_path / "with_test" / "test")


def test_hidden_folders_are_not_classes(tmp_path):
    _write(tmp_path)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    assert _data(tmp_path).labels == ["ant", "moth", "zebra"]


def test_missing_root(tmp_path):
    with pytest.raises(ValueError, match=f"data folder {re.escape(str(tmp_path / 'nowhere'))} does not exist"):
        _data(tmp_path / "nowhere")


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_split_folder(tmp_path, split):
    _write(tmp_path, splits=[s for s in ("train", "val") if s != split])
    with pytest.raises(ValueError, match=f"no {split} folder: {re.escape(str(tmp_path / split))} does not exist"):
        _data(tmp_path)


def test_no_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=f"no class folders in {re.escape(str(tmp_path / 'train'))}"):
        _data(tmp_path)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_empty_class_folder(tmp_path, split):
    _write(tmp_path, splits=("train", "val", "test"))
    folder = tmp_path / split / "moth"
    for image in folder.iterdir():
        image.unlink()
    (folder / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=f"class folder {re.escape(str(folder))} has no images"):
        _data(tmp_path)


def test_mismatched_val_classes(tmp_path):
    _write(tmp_path, splits=("train",))
    _write(tmp_path, splits=("val",), classes=["ant", "zebra"])
    (tmp_path / "val" / "wasp").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "wasp" / "0.png")
    with pytest.raises(ValueError, match=r"missing \['moth'\], not in train \['wasp'\]") as err:
        _data(tmp_path)
    assert str(tmp_path / "val") in str(err.value)


def test_corrupt_image_named(tmp_path):
    _write(tmp_path)
    bad = tmp_path / "val" / "moth" / "broken.png"
    bad.write_bytes(b"this is not a png")
    dm = _data(tmp_path)
    with pytest.raises(ValueError, match=f"cannot read image {re.escape(str(bad))}"):
        list(dm.val_dataloader())


def test_truncated_image_named(tmp_path):
    _write(tmp_path)
    good = tmp_path / "train" / "ant" / "big.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(good)
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"cannot read image {re.escape(str(good))}"):
        list(_data(tmp_path).train_dataloader())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_size=(8, 8)), "input_size must be"),
        (dict(input_size=(2, 8, 8)), "input_size channels must be 1"),
        (dict(mean=(0.5,)), "mean needs 3 values"),
        (dict(std=(0.5, 0.5, 0.0)), "std values must be positive"),
        (dict(interpolation="cubic"), "interpolation must be one of"),
        (dict(crop_pct=0.0), r"crop_pct must be in \(0, 1\]"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(num_workers=-1), "num_workers must be"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=f"ImageFolderData: {message}"):
        _data(_write(tmp_path), **kwargs)


def test_lightning_cli_links_classes(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    class Model(L.LightningModule):
        def __init__(self, num_classes: int = 2, labels: list[str] | None = None) -> None:
            super().__init__()
            self.num_classes, self.labels = num_classes, labels

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
            parser.link_arguments("data.labels", "model.labels", apply_on="instantiate")

    _write(tmp_path)
    monkeypatch.setattr("sys.argv", ["attnzoo"])
    cli = CLI(Model, ImageFolderData, run=False, args=["--data.root", str(tmp_path), "--data.input_size", "[3, 8, 8]", "--trainer.logger=false"])
    assert cli.model.num_classes == 3 and cli.model.labels == ["ant", "moth", "zebra"]
    assert cli.datamodule.input_size == (3, 8, 8)


def test_transform_settings_come_from_the_backbone_when_not_given(tmp_path):
    import attnzoo

    data = ImageFolderData(_write(tmp_path), batch_size=4, num_workers=0, mean=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="input_size, std, interpolation, crop_pct not known yet"):
        data.val_dataloader()
    with pytest.raises(ValueError, match="not given, and there is no attnzoo backbone"):
        data.setup("fit")
    backbone = attnzoo.create_model("resnet20-cbam", num_classes=3)
    backbone.pretrained_cfg.update(std=(0.5, 0.6, 0.7))
    data.trainer = SimpleNamespace(lightning_module=SimpleNamespace(model=backbone), world_size=1)
    data.setup("fit")
    assert data.input_size == (3, 32, 32) and data.std == (0.5, 0.6, 0.7) and data.crop_pct == 1.0
    assert data.mean == (0.1, 0.2, 0.3)  # what was given stays
    x, _ = next(iter(data.val_dataloader()))
    assert x.shape == (4, 3, 32, 32)
