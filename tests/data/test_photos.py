import io

import lightning as L
import numpy as np
import pytest
import skimage.data
import torch
from jsonargparse import ArgumentParser
from PIL import Image
from skimage.color import rgb2gray

import attnzoo.data
from attnzoo.data import Degradation, PhotosData
from attnzoo.data.photos import TEST_PHOTOS, TRAIN_PHOTOS, VAL_PHOTOS, RandomPatches, protocol_pair

JPEG = {"kind": "jpeg", "quality": 10}


def _protocol(name: str, kind: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark protocol of issue 12, written out independently of attnzoo."""
    image = getattr(skimage.data, name)() / 255
    top, left = (image.shape[0] - 256) // 2, (image.shape[1] - 256) // 2
    crop = image[top : top + 256, left : left + 256]
    if kind == "gaussian":
        return crop + np.random.default_rng(0).standard_normal((256, 256)) * level / 255, crop
    buffer = io.BytesIO()
    Image.fromarray(np.round(crop * 255).astype(np.uint8), mode="L").save(buffer, format="JPEG", quality=level)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue()))) / 255, crop


def _skimage_function(name: str) -> str:
    return "stereo_motorcycle" if name.startswith("stereo_motorcycle") else name


def test_splits_are_disjoint_and_the_test_photos_are_the_benchmarks():
    assert TEST_PHOTOS == ("camera", "moon", "coins", "brick")
    train, val, test = ({_skimage_function(n) for n in split} for split in (TRAIN_PHOTOS, VAL_PHOTOS, TEST_PHOTOS))
    assert not train & val and not train & test and not val & test
    assert len(TRAIN_PHOTOS) == 13 and set(VAL_PHOTOS) == {"clock", "gravel"}
    # The loaders draw from these lists and no other.
    data = PhotosData(train_size=4, batch_size=2)
    assert data.train_dataloader().dataset.load.names == TRAIN_PHOTOS
    assert data.val_dataloader().dataset.load.names == VAL_PHOTOS
    assert [names for _, _, names in data.test_dataloader()] == [[n] for n in TEST_PHOTOS]


def test_attributes_and_defaults():
    data = PhotosData()
    assert data.dataset == "photos"
    # None until a model hands over its own; the loaders then use sigma 25, grey.
    assert data.degradation is None and data.channels is None
    assert data.train_degradation() == Degradation.fixed("gaussian", 25) and data.image_channels() == 1
    assert (data.patch_size, data.train_size, data.batch_size, data.num_workers, data.seed) == (64, 4000, 16, 0, 0)
    assert len(data.train_dataloader().dataset) == 4000
    given = PhotosData({"kind": "gaussian", "sigma": 15}, channels=3)
    assert given.degradation == Degradation.fixed("gaussian", 15) and given.channels == 3
    # The model's hparams hold these: Lightning refuses to log two differing values of one key.
    assert "degradation" not in given.hparams and "channels" not in given.hparams
    assert given.hparams["patch_size"] == 64


@pytest.mark.parametrize("kind, level", [("gaussian", 25), ("gaussian", 50.0), ("jpeg", 10), ("jpeg", 40)])
def test_test_split_is_the_benchmark_protocol(kind, level):
    field = "sigma" if kind == "gaussian" else "quality"
    data = PhotosData({"kind": kind, field: level})
    batches = list(data.test_dataloader())
    assert len(batches) == 4
    for name, (degraded, clean, names) in zip(TEST_PHOTOS, batches):
        expected_degraded, expected_clean = _protocol(name, kind, level)
        assert names == [name]
        assert degraded.shape == clean.shape == (1, 1, 256, 256) and degraded.dtype == clean.dtype == torch.float32
        assert torch.equal(degraded[0, 0], torch.from_numpy(expected_degraded).float())
        assert torch.equal(clean[0, 0], torch.from_numpy(expected_clean).float())
        # The benchmark's own pairs, float64.
        got_degraded, got_clean = protocol_pair(name, kind, level)
        assert got_degraded.dtype == np.float64
        np.testing.assert_array_equal(got_degraded, expected_degraded)
        np.testing.assert_array_equal(got_clean, expected_clean)


def test_colour_test_images_are_the_grey_ones_repeated():
    data = PhotosData(JPEG, channels=3)
    for name, (degraded, clean, _) in zip(TEST_PHOTOS, data.test_dataloader()):
        expected_degraded, _ = _protocol(name, "jpeg", 10)
        assert degraded.shape == clean.shape == (1, 3, 256, 256)
        for channel in degraded[0]:
            assert torch.equal(channel, torch.from_numpy(expected_degraded).float())


def test_predict_serves_the_degraded_test_images_by_name():
    data = PhotosData()
    predicted = list(data.predict_dataloader())
    assert [names for _, names in predicted] == [[n] for n in TEST_PHOTOS]
    for (degraded, _), (test_degraded, _, _) in zip(predicted, data.test_dataloader()):
        assert torch.equal(degraded, test_degraded)


@pytest.mark.parametrize("degradation, test_level, expected", [
    ({"kind": "gaussian", "sigma": [0, 50]}, None, 25),
    ({"kind": "jpeg", "quality": [5, 40]}, None, 10),
    ({"kind": "gaussian", "sigma": [30, 50]}, 40, 40),
    ({"kind": "gaussian", "sigma": 15}, 50, 50),
])
def test_val_and_test_level(degradation, test_level, expected):
    data = PhotosData(degradation, test_level=test_level)
    assert data.eval_degradation() == Degradation.fixed(degradation["kind"], expected)
    degraded, _, _ = next(iter(data.test_dataloader()))
    expected_degraded, _ = _protocol("camera", degradation["kind"], expected)
    assert torch.equal(degraded[0, 0], torch.from_numpy(expected_degraded).float())
    if degradation["kind"] == "gaussian":
        val_degraded, val_clean = next(iter(data.val_dataloader()))
        assert ((val_degraded - val_clean).std() * 255).item() == pytest.approx(expected, rel=0.02)


def test_a_blind_range_without_the_protocol_level_needs_test_level():
    with pytest.raises(ValueError, match=r"PhotosData: the degradation's sigma range \[30.0, 50.0\] does not hold the "
                                         r"protocol's test level 25.0: give test_level"):
        PhotosData({"kind": "gaussian", "sigma": [30, 50]})
    # The same check on a degradation handed over by the model, when the loaders are built.
    data = PhotosData()
    data.degradation = Degradation.from_any({"kind": "jpeg", "quality": [20, 40]})
    with pytest.raises(ValueError, match=r"quality range \[20, 40\] does not hold the protocol's test level 10"):
        data.val_dataloader()


def test_val_pairs_are_fixed_centre_crops():
    data = PhotosData({"kind": "gaussian", "sigma": 25}, seed=3)
    first = list(data.val_dataloader())
    again = list(PhotosData({"kind": "gaussian", "sigma": 25}, seed=3).val_dataloader())
    other_seed = list(PhotosData({"kind": "gaussian", "sigma": 25}, seed=4).val_dataloader())
    assert len(first) == 2
    for name, (degraded, clean), (degraded_again, _), (degraded_other, _) in zip(VAL_PHOTOS, first, again, other_seed):
        image = getattr(skimage.data, name)() / 255
        top, left = (image.shape[0] - 256) // 2, (image.shape[1] - 256) // 2
        assert torch.equal(clean[0, 0], torch.from_numpy(image[top : top + 256, left : left + 256]).float())
        assert torch.equal(degraded, degraded_again) and not torch.equal(degraded, degraded_other)
        assert ((degraded - clean).std() * 255).item() == pytest.approx(25, rel=0.02)
    # The two photos get different noise.
    assert not torch.equal(first[0][0] - first[0][1], first[1][0] - first[1][1])


def test_training_patches_are_noisy_crops_of_train_photos():
    data = PhotosData({"kind": "gaussian", "sigma": 30}, patch_size=24, train_size=64, batch_size=64)
    degraded, clean = next(iter(data.train_dataloader()))
    assert degraded.shape == clean.shape == (64, 1, 24, 24) and degraded.dtype == clean.dtype == torch.float32
    assert ((degraded - clean).std() * 255).item() == pytest.approx(30, rel=0.03)
    assert clean.min() >= 0 and clean.max() <= 1
    # Each clean patch is one of the 8 flips and turns of a crop of a (grey) train photo.
    photos = [np.asarray(rgb2gray(p) if p.ndim == 3 else p / 255, dtype=np.float32) for p in _train_pixels()]
    for patch in clean[:6, 0].numpy():
        assert any(_found_in(photo, patch) for photo in photos)


def _train_pixels() -> list[np.ndarray]:
    pixels = []
    for name in TRAIN_PHOTOS:
        if name.startswith("stereo_motorcycle"):
            pixels.append(skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1])
        else:
            pixels.append(getattr(skimage.data, name)())
    return pixels


def _found_in(photo: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` is a crop of ``photo`` under one of the 8 flips and quarter turns."""
    p = patch.shape[0]
    rows, cols = photo.shape[0] - p + 1, photo.shape[1] - p + 1
    for turns in range(4):
        for flip in (False, True):
            candidate = np.rot90(patch[:, ::-1] if flip else patch, -turns)  # undone: unflipped, turned back
            # Where a few of its pixels match, then the whole patch.
            where = np.ones((rows, cols), dtype=bool)
            for i, j in ((0, 0), (p - 1, p - 1), (0, p - 1), (p - 1, 0), (p // 2, p // 2)):
                where &= photo[i : i + rows, j : j + cols] == candidate[i, j]
            if any(np.array_equal(photo[r : r + p, c : c + p], candidate) for r, c in zip(*np.nonzero(where))):
                return True
    return False


def test_random_patches_use_all_eight_flips_and_turns():
    # An image of distinct values: where a patch came from and how it was turned can be read off.
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30, 1) / 600
    patches = RandomPatches(lambda i: (image, 1 - image), [600], 200, 6, None)
    seen = set()
    for _ in range(200):
        degraded, clean = patches[0]
        # The partner went through the same crop and transform.
        torch.testing.assert_close(degraded, 1 - clean, atol=1e-6, rtol=0)
        patch = clean[0].numpy()
        for turns in range(4):
            for flip in (False, True):
                candidate = np.rot90(patch[:, ::-1] if flip else patch, -turns)
                r, c = divmod(round(candidate[0, 0] * 600), 30)
                if r + 6 <= 20 and c + 6 <= 30 and np.array_equal(image[r : r + 6, c : c + 6, 0], candidate):
                    seen.add((turns, flip))
    assert len(seen) == 8


def test_training_is_repeatable_from_torchs_seed():
    data = PhotosData(JPEG, patch_size=16, train_size=8, batch_size=8)
    torch.manual_seed(5)
    first = next(iter(data.train_dataloader()))
    torch.manual_seed(5)
    again = next(iter(data.train_dataloader()))
    later = next(iter(data.train_dataloader()))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], later[1])


def test_jpeg_training_pairs_are_pillows_jpeg_of_the_8_bit_target():
    data = PhotosData(JPEG, channels=3, patch_size=32, train_size=4, batch_size=4)
    degraded, clean = next(iter(data.train_dataloader()))
    assert clean.shape == (4, 3, 32, 32)
    pixels = (clean * 255).round()
    assert torch.allclose(clean * 255, pixels, atol=1e-4)  # the target is on the 8-bit grid
    for image, target in zip(degraded, pixels):
        buffer = io.BytesIO()
        Image.fromarray(target.permute(1, 2, 0).numpy().astype(np.uint8)).save(buffer, format="JPEG", quality=10)
        expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        np.testing.assert_array_equal((image * 255).round().permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=2), r"PhotosData: channels must be 1 \(grey\) or 3 \(colour\), got 2"),
    (dict(channels=True), r"PhotosData: channels must be 1 \(grey\) or 3 \(colour\), got True"),
    (dict(patch_size=0), r"PhotosData: patch_size must be a positive integer, got 0"),
    (dict(patch_size=173), r"PhotosData: patch_size must be at most 172 \(the smallest train photo, text\), got 173"),
    (dict(train_size=0), r"PhotosData: train_size must be a positive integer, got 0"),
    (dict(batch_size=2.0), r"PhotosData: batch_size must be a positive integer, got 2.0"),
    (dict(num_workers=-1), r"PhotosData: num_workers must be a non-negative integer, got -1"),
    (dict(seed=-1), r"PhotosData: seed must be a non-negative integer, got -1"),
    (dict(test_level="25"), r"PhotosData: test_level must be a number \(a sigma or a JPEG quality\), got '25'"),
    (dict(degradation={"kind": "blur"}), r"PhotosData: degradation: kind must be one of 'gaussian', 'jpeg'"),
    (dict(degradation={"kind": "gaussian", "sigma": 300}), r"PhotosData: degradation: sigma must be a number"),
    (dict(degradation=JPEG, test_level=10.5),
     r"PhotosData: test_level 10.5 does not fit: degradation: quality must be an integer in \[1, 100\]"),
    (dict(degradation=JPEG, test_level=0), r"PhotosData: test_level 0 does not fit: .*quality must be an integer"),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PhotosData(**kwargs)


def test_protocol_pair_checks_its_arguments():
    with pytest.raises(ValueError, match=r"protocol_pair: name must be one of camera, moon, coins, brick, got 'clock'"):
        protocol_pair("clock", "gaussian", 25)
    with pytest.raises(ValueError, match=r"kind must be one of 'gaussian', 'jpeg', got 'blur'"):
        protocol_pair("camera", "blur", 25)
    with pytest.raises(ValueError, match=r"quality must be an integer in \[1, 100\]"):
        protocol_pair("camera", "jpeg", 10.0)


def test_lightning_cli_finds_it_by_short_name():
    assert attnzoo.data.PhotosData is PhotosData
    parser = ArgumentParser()
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    config = parser.parse_args(["--data", "PhotosData", "--data.degradation", '{"kind": "jpeg", "quality": [5, 40]}',
                                "--data.test_level", "20", "--data.channels", "3"])
    data = parser.instantiate(config).data
    assert isinstance(data, PhotosData) and data.channels == 3
    assert data.degradation == Degradation.from_any({"kind": "jpeg", "quality": [5, 40]})
    assert data.eval_degradation() == Degradation.fixed("jpeg", 20)
