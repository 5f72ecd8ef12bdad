import io

import numpy as np
import pytest
import torch
from PIL import Image

from attnzoo.data import Degradation, ImageFolderRestorationData
from attnzoo.data.photos import collate_named

SIGMA25 = {"kind": "gaussian", "sigma": 25}


def _pixels(seed: int, height: int = 40, width: int = 48, channels: int = 3) -> np.ndarray:
    """A smooth random uint8 image: JPEG artefacts on it are like a photo's."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, channels)).astype(np.uint8)
    image = Image.fromarray(coarse if channels == 3 else coarse[..., 0]).resize((width, height), Image.BILINEAR)
    return np.asarray(image)


def _save(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def _clean_tree(root, splits=("train", "val", "test")):
    """Each split: three images, one in a sub-folder and one with an upper-case extension, plus a hidden file."""
    for s, split in enumerate(splits):
        for i, name in enumerate(("a.png", "B.PNG", "sub/c.png")):
            _save(root / split / name, _pixels(10 * s + i, 40 + 4 * i, 48))
        (root / split / "notes.txt").write_text("not an image")
        _save(root / split / ".hidden.png", _pixels(99, 8, 8))
    return root


def _paired_tree(root, splits=("train", "val", "test")):
    """Degraded partners are the clean images inverted: 255 - clean."""
    for s, split in enumerate(splits):
        for i, name in enumerate(("a.png", "sub/b.png")):
            clean = _pixels(10 * s + i, 40 + 4 * i, 48)
            _save(root / split / "clean" / name, clean)
            _save(root / split / "degraded" / name, 255 - clean)
    return root


def _data(root, **kwargs):
    return ImageFolderRestorationData(root, **{"num_workers": 0, "patch_size": 16, "train_size": 8, **kwargs})


def _read(path, mode: str) -> torch.Tensor:
    pixels = np.asarray(Image.open(path).convert(mode), dtype=np.float32) / 255
    return torch.from_numpy(pixels if pixels.ndim == 3 else pixels[..., None]).permute(2, 0, 1)


def test_attributes(tmp_path):
    data = _data(_clean_tree(tmp_path / "mine"), degradation=SIGMA25, channels=3)
    assert data.dataset == "mine"
    assert data.degradation == Degradation.fixed("gaussian", 25) and data.channels == 3
    assert (data.batch_size, data.seed) == (16, 0)
    assert ImageFolderRestorationData(tmp_path / "mine", patch_size=16).num_workers == 4


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_val_and_test_are_whole_images_with_fixed_noise(tmp_path, channels, mode):
    root = _clean_tree(tmp_path)
    data = _data(root, degradation=SIGMA25, channels=channels, seed=1)
    files = [root / "val" / "B.PNG", root / "val" / "a.png", root / "val" / "sub" / "c.png"]  # path order
    batches = list(data.val_dataloader())
    assert len(batches) == 3  # the hidden image and the text file are left out
    for path, (degraded, clean) in zip(files, batches):
        assert torch.equal(clean[0], _read(path, mode))
        assert degraded.shape == clean.shape and degraded.dtype == torch.float32
        assert ((degraded - clean).std() * 255).item() == pytest.approx(25, rel=0.12)  # ~2000-6000 samples
    # The same pairs from another instance with the same seed; other noise with another seed, and in test.
    again = list(_data(root, degradation=SIGMA25, channels=channels, seed=1).val_dataloader())
    other = list(_data(root, degradation=SIGMA25, channels=channels, seed=2).val_dataloader())
    test = list(data.test_dataloader())
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(batches, other))
    assert not torch.equal(batches[0][0] - batches[0][1], test[0][0] - test[0][1])


def test_jpeg_val_pairs_are_pillows_jpeg_of_the_file(tmp_path):
    root = _clean_tree(tmp_path)
    data = _data(root, degradation={"kind": "jpeg", "quality": 20}, channels=3)
    degraded, clean = next(iter(data.val_dataloader()))
    pixels = np.asarray(Image.open(root / "val" / "B.PNG").convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=20)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    np.testing.assert_array_equal((degraded[0] * 255).round().permute(1, 2, 0).numpy(), expected)
    np.testing.assert_array_equal((clean[0] * 255).round().permute(1, 2, 0).numpy(), pixels)


def test_training_patches(tmp_path):
    data = _data(_clean_tree(tmp_path), degradation={"kind": "gaussian", "sigma": 40}, channels=1,
                 train_size=64, batch_size=64)
    degraded, clean = next(iter(data.train_dataloader()))
    assert degraded.shape == clean.shape == (64, 1, 16, 16)
    assert ((degraded - clean).std() * 255).item() == pytest.approx(40, rel=0.03)
    assert len(data.train_dataloader().dataset) == 64


def test_a_data_module_built_without_a_degradation_takes_the_models(tmp_path):
    data = _data(_clean_tree(tmp_path))
    assert data.degradation is None and data.channels is None
    # What ImageRestorer's setup does.
    data.degradation, data.channels = Degradation.fixed("jpeg", 30), 3
    degraded, clean = next(iter(data.val_dataloader()))
    assert clean.shape[1] == 3
    pixels = (clean[0] * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=30)
    np.testing.assert_array_equal((degraded[0] * 255).round().permute(1, 2, 0).numpy(),
                                  np.asarray(Image.open(io.BytesIO(buffer.getvalue()))))


def test_paired_data(tmp_path):
    root = _paired_tree(tmp_path)
    data = _data(root, paired=True, channels=3, train_size=32, batch_size=32)
    degraded, clean = next(iter(data.train_dataloader()))
    # The same crop, flip and turn of both images of a pair.
    assert degraded.shape == clean.shape == (32, 3, 16, 16)
    torch.testing.assert_close(degraded + clean, torch.ones_like(clean), atol=1e-6, rtol=0)
    val = list(data.val_dataloader())
    assert len(val) == 2
    for name, (degraded, clean) in zip(("a.png", "sub/b.png"), val):
        assert torch.equal(clean[0], _read(root / "val" / "clean" / name, "RGB"))
        assert torch.equal(degraded[0], _read(root / "val" / "degraded" / name, "RGB"))


def test_paired_files_without_a_partner(tmp_path):
    root = _paired_tree(tmp_path)
    _save(root / "val" / "degraded" / "extra.png", _pixels(0))
    _save(root / "val" / "clean" / "a.jpg", _pixels(0))  # same stem, other extension: no partner either
    with pytest.raises(ValueError, match=r"2 images in .*val have no partner of the same name: "
                                         r"degraded/extra.png \(no clean/extra.png\), clean/a.jpg \(no degraded/a.jpg\)"):
        _data(root, paired=True)


def test_many_unmatched_files_are_summed_up(tmp_path):
    root = _paired_tree(tmp_path)
    for i in range(8):
        _save(root / "train" / "clean" / f"only{i}.png", _pixels(i, 8, 8))
    with pytest.raises(ValueError, match=r"8 images in .*train have no partner .*only4.png\) and 3 more$"):
        _data(root, paired=True)


def test_paired_images_of_different_sizes(tmp_path):
    root = _paired_tree(tmp_path)
    _save(root / "train" / "degraded" / "a.png", _pixels(0, 40, 50))
    with pytest.raises(ValueError, match=r"train/degraded/a.png is 50 x 40 but its clean partner .*train/clean/a.png "
                                         r"is 48 x 40"):
        _data(root, paired=True)


def test_predict(tmp_path):
    folder = tmp_path / "noisy"
    _save(folder / "x.png", _pixels(0, 20, 30))
    _save(folder / "y.JPG", _pixels(1, 24, 28))
    data = ImageFolderRestorationData(predict_dir=folder, channels=1, num_workers=0)
    assert data.dataset is None  # prediction names no data set for the model's card
    batches = list(data.predict_dataloader())
    assert [paths for _, paths in batches] == [[str(folder / "x.png")], [str(folder / "y.JPG")]]
    for (image, _), path in zip(batches, (folder / "x.png", folder / "y.JPG")):
        assert torch.equal(image[0], _read(path, "L"))
    with pytest.raises(ValueError, match=r"no root given: train data need root"):
        data.train_dataloader()
    with pytest.raises(ValueError, match=r"nothing to predict: give predict_dir"):
        _data(_clean_tree(tmp_path / "data")).predict_dataloader()


def test_test_folder_is_optional(tmp_path):
    data = _data(_clean_tree(tmp_path, splits=("train", "val")))
    with pytest.raises(ValueError, match=r"no test folder: .*test does not exist"):
        data.test_dataloader()


def test_unreadable_images_are_named(tmp_path):
    root = _clean_tree(tmp_path)
    (root / "val" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"ImageFolderRestorationData: cannot read image .*val/broken.png"):
        _data(root)
    # A file whose header reads but whose pixels do not: named when it is loaded.
    (root / "val" / "broken.png").unlink()
    buffer = io.BytesIO()
    Image.fromarray(_pixels(0, 200, 200)).save(buffer, format="PNG")
    (root / "val" / "truncated.png").write_bytes(buffer.getvalue()[:400])
    data = _data(root)
    with pytest.raises(ValueError, match=r"cannot read image .*val/truncated.png"):
        list(data.val_dataloader())


@pytest.mark.parametrize("layout, message", [
    (lambda root: None, r"data folder .*nowhere does not exist"),
    (lambda root: _clean_tree(root, splits=("val",)), r"no train folder: .*train does not exist"),
    (lambda root: _clean_tree(root, splits=("train",)), r"no val folder: .*val does not exist"),
    (lambda root: (_clean_tree(root), (root / "val" / "a.png").unlink(), (root / "val" / "B.PNG").unlink(),
                   (root / "val" / "sub" / "c.png").unlink()),
     r"no images in .*val \(extensions .jpg, .jpeg, .png"),
])
def test_missing_and_empty_folders(tmp_path, layout, message):
    root = tmp_path / "nowhere"
    layout(root)
    with pytest.raises(ValueError, match=message):
        _data(root)


def test_paired_needs_degraded_and_clean_folders(tmp_path):
    root = _clean_tree(tmp_path)
    with pytest.raises(ValueError, match=r"no degraded folder: .*train/degraded does not exist \(paired=True\)"):
        _data(root, paired=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=4), r"ImageFolderRestorationData: channels must be 1 \(grey\) or 3 \(colour\), got 4"),
    (dict(patch_size=41), r"patch_size 41 is larger than the training image .*train/a.png \(48 x 40\)"),
    (dict(train_size=0), r"train_size must be a positive integer, got 0"),
    (dict(degradation={"kind": "jpeg", "quality": [20, 40]}),
     r"quality range \[20, 40\] does not hold the protocol's test level 10: give test_level"),
    (dict(paired=True, test_level=10), r"test_level is for clean images degraded here, not for paired=True data"),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _data(_clean_tree(tmp_path), **kwargs)


def test_root_or_predict_dir_is_needed(tmp_path):
    with pytest.raises(ValueError, match=r"give root \(train/val/test folders\), predict_dir"):
        ImageFolderRestorationData()
    with pytest.raises(ValueError, match=r"predict_dir .*absent does not exist"):
        ImageFolderRestorationData(predict_dir=tmp_path / "absent")


def test_collate_named_keeps_names_a_list():
    batch = collate_named([(torch.zeros(1, 2, 2), "a"), (torch.ones(1, 2, 2), "b")])
    assert batch[0].shape == (2, 1, 2, 2) and batch[1] == ["a", "b"]
