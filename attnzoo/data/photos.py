"""PhotosData: image restoration on scikit-image's bundled photos, offline, with the benchmark's test protocol.

The splits hold disjoint photos of ``skimage.data``, so no val or test photo is seen in training:

- train: ``astronaut, chelsea, coffee, rocket, hubble_deep_field, immunohistochemistry, retina,
  grass, page, text, cell`` and both views of ``stereo_motorcycle``: the other natural photos.
  An epoch is ``train_size`` patches, each a photo drawn with probability proportional to its
  area (every pixel equally likely), a random ``patch_size`` crop of it, one of the 8 flips and
  quarter turns, degraded on the fly. The draws follow torch's random state, which the
  DataLoader seeds per worker and epoch (and ``seed_everything`` seeds as a whole), so each epoch
  brings new patches and new noise;
- val: ``clock`` and ``gravel``, their 256 x 256 centre crops, each degraded with a generator
  seeded from (``seed``, its index): the same pairs every epoch and every run;
- test: ``camera, moon, coins, brick`` (``TEST_PHOTOS``), exactly the benchmark's protocol
  (issue 12; :func:`protocol_pair`, which ``benchmarks/restoration.py`` uses too), so that
  ``attnzoo test`` figures compare with the benchmark table: each photo as a grey float image
  in [0, 1] (they are uint8: / 255), its 256 x 256 centre crop (top ``(H - 256) // 2``, left
  ``(W - 256) // 2``); Gaussian: ``numpy.random.default_rng(0).standard_normal((256, 256)) *
  sigma / 255`` drawn afresh for each photo (the same generator state each time) and added
  without clipping; JPEG: the uint8 crop saved by Pillow as a grey JPEG at the quality and
  decoded. The clean target is the crop. Test batches are ``(degraded, clean, names)``.

``channels`` 1 (grey): colour photos through ``skimage.color.rgb2gray``; 3 (colour): RGB, grey
photos repeated to three channels, the grey test photos too (a colour model is then scored on
grey content, for comparison with the grey benchmark). For a JPEG degradation a clean image is
rounded to the 8-bit grid (``quantize``), since that is what the JPEG is made from.

Val and test use one level, ``test_level``: by default the degradation's own when it is fixed;
for a blind range the protocol's (sigma 25, quality 10), which must lie in the range.
``degradation`` and ``channels`` left out (None) are the model's: ``ImageRestorer`` hands over
its own when the Trainer sets up; used on its own the data module takes sigma 25 and grey.

Defaults: 64 x 64 patches, 4000 an epoch, batches of 16; val and test batches hold one image each.
``predict_dataloader`` serves the test photos' degraded images as ``(degraded, names)``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from numbers import Real
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnzoo._checks import check_int

from ._common import make_loader
from .degradation import Degradation, jpeg_roundtrip, quantize

__all__ = [
    "PROTOCOL_LEVELS",
    "PROTOCOL_SIZE",
    "TEST_PHOTOS",
    "TRAIN_PHOTOS",
    "VAL_PHOTOS",
    "DegradedImages",
    "PhotosData",
    "RandomPatches",
    "collate_named",
    "photo",
    "protocol_pair",
]

TEST_PHOTOS = ("camera", "moon", "coins", "brick")
VAL_PHOTOS = ("clock", "gravel")
TRAIN_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "grass", "page", "text", "cell", "stereo_motorcycle_left", "stereo_motorcycle_right",
)
PROTOCOL_SIZE = 256
# The benchmark's levels, at which a blind model is validated and tested unless told otherwise.
PROTOCOL_LEVELS = {"gaussian": 25.0, "jpeg": 10}
_DEFAULT_DEGRADATION = Degradation.fixed("gaussian", 25)
_DEFAULT_CHANNELS = 1
# skimage.data.stereo_motorcycle() returns (left, right, disparity): two photos.
_STEREO_VIEWS = {"stereo_motorcycle_left": 0, "stereo_motorcycle_right": 1}

# An image the datasets below draw from: (clean, degraded partner or None), float32 (H, W, C) in [0, 1].
Loaded = tuple[np.ndarray, np.ndarray | None]


@cache
def _bundled(name: str) -> np.ndarray:
    """A photo as scikit-image ships it: uint8, (H, W) grey or (H, W, 3) RGB."""
    import skimage.data

    if name in _STEREO_VIEWS:
        return skimage.data.stereo_motorcycle()[_STEREO_VIEWS[name]]
    return getattr(skimage.data, name)()


@cache
def _photo(name: str, channels: int) -> np.ndarray:
    """A photo as float32 (H, W, channels) in [0, 1]: colour to grey by rgb2gray, grey repeated to RGB."""
    from skimage.color import rgb2gray

    pixels = _bundled(name)
    if pixels.ndim == 2:
        image = np.repeat((pixels / 255)[:, :, None], channels, axis=2)
    else:
        image = rgb2gray(pixels)[:, :, None] if channels == 1 else pixels / 255
    return image.astype(np.float32)


def photo(name: str, channels: int = 3) -> Tensor:
    """A photo of ``skimage.data`` (bundled, offline) as float32 (channels, H, W) in [0, 1], ``channels`` 1 or 3:
    colour to grey by rgb2gray, grey repeated to RGB."""
    return _tensor(_photo(name, channels))


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def protocol_pair(name: str, kind: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's (degraded, clean) pair of a test photo: (256, 256) float64 grey arrays.

    ``name`` one of ``TEST_PHOTOS``; ``kind`` "gaussian" (``level`` sigma, 0-255 scale) or "jpeg"
    (``level`` quality, an integer). See the module docstring for the protocol.
    """
    if name not in TEST_PHOTOS:
        raise ValueError(f"protocol_pair: name must be one of {', '.join(TEST_PHOTOS)}, got {name!r}")
    degradation = Degradation.fixed(kind, level)
    pixels = _centre(_bundled(name), PROTOCOL_SIZE)
    clean = pixels / 255
    if kind == "gaussian":
        noise = np.random.default_rng(0).standard_normal((PROTOCOL_SIZE, PROTOCOL_SIZE))
        return clean + noise * degradation.level / 255, clean
    return jpeg_roundtrip(pixels, degradation.level) / 255, clean


def collate_named(batch: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Items ``(*tensors, name)`` into a batch ``[*stacked tensors, names]``, the names a list of str."""
    *tensors, names = zip(*batch)
    return [*(torch.stack(column) for column in tensors), list(names)]


def _tensor(image: np.ndarray) -> Tensor:
    """(H, W, C) array -> (C, H, W) float32 tensor, a copy: the cached photos stay untouched."""
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32, order="C"))


def _pair(loaded: Loaded, degradation: Degradation | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(degraded, clean) tensors: the loaded partner, or the clean image degraded with ``generator``."""
    clean, degraded = loaded
    if degraded is not None:
        return _tensor(degraded), _tensor(clean)
    target = _tensor(clean)
    if degradation.kind == "jpeg":
        target = quantize(target)
    return degradation.degrade(target, generator), target


class RandomPatches(Dataset):
    """``size`` training pairs ``(degraded, clean)``, (C, patch_size, patch_size) float32, drawn afresh each time.

    Each is an image ``load(i)`` with probability proportional to ``areas[i]``, a random crop of
    it, one of the 8 flips and quarter turns (the same for a loaded degraded partner), and, for
    images without a partner, ``degradation`` applied. ``load`` is picklable, for DataLoader workers.
    """

    def __init__(
        self,
        load: Callable[[int], Loaded],
        areas: Sequence[int],
        size: int,
        patch_size: int,
        degradation: Degradation | None,
    ) -> None:
        self.load, self.size, self.patch_size, self.degradation = load, size, patch_size, degradation
        self.weights = np.asarray(areas, dtype=np.float64) / sum(areas)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # From torch's random state: the DataLoader seeds it per worker and per epoch, so patches differ
        # between workers and epochs, and seed_everything makes the whole run repeatable.
        seed = int(torch.randint(2**62, ()))
        rng = np.random.default_rng(seed)
        clean, degraded = self.load(int(rng.choice(len(self.weights), p=self.weights)))
        p = self.patch_size
        top, left = int(rng.integers(clean.shape[0] - p + 1)), int(rng.integers(clean.shape[1] - p + 1))
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))

        def transform(image: np.ndarray) -> np.ndarray:
            patch = np.rot90(image[top : top + p, left : left + p], turns)
            return patch[:, ::-1] if flip else patch

        loaded = (transform(clean), None if degraded is None else transform(degraded))
        return _pair(loaded, self.degradation, torch.Generator().manual_seed(seed))


class DegradedImages(Dataset):
    """``count`` whole images ``load(i)`` as ``(degraded, clean)`` pairs, the same on every pass.

    An image without a partner is degraded by ``degradation`` with a generator seeded from
    (``*seed``, its index).
    """

    def __init__(
        self, load: Callable[[int], Loaded], count: int, degradation: Degradation | None, seed: tuple[int, ...]
    ) -> None:
        self.load, self.count, self.degradation, self.seed = load, count, degradation, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        seed = int(np.random.SeedSequence((*self.seed, index)).generate_state(1)[0])
        return _pair(self.load(index), self.degradation, torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class _Photos:
    """Loads ``names[i]`` (a picklable loader for the datasets above), centre-cropped to ``crop`` if given."""

    names: tuple[str, ...]
    channels: int
    crop: int | None = None

    def __call__(self, index: int) -> Loaded:
        image = _photo(self.names[index], self.channels)
        return (image if self.crop is None else _centre(image, self.crop)), None


class _RestorationData(L.LightningDataModule):
    """What PhotosData and ImageFolderRestorationData share: their arguments, degradation and channels.

    ``degradation`` and ``channels`` stay None until the model hands over its own (ImageRestorer's
    setup), so that a data module built without them takes the model's; the loaders use the
    defaults (Gaussian sigma 25, grey) when there is no model.
    """

    def __init__(
        self,
        degradation: Mapping[str, Any] | Degradation | None,
        channels: int | None,
        patch_size: int,
        train_size: int,
        batch_size: int,
        num_workers: int,
        seed: int,
        test_level: float | None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
            raise ValueError(f"{owner}: channels must be 1 (grey) or 3 (colour), got {channels!r}")
        check_int(owner, "patch_size", patch_size, 1)
        check_int(owner, "train_size", train_size, 1)
        check_int(owner, "batch_size", batch_size, 1)
        check_int(owner, "num_workers", num_workers, 0)
        check_int(owner, "seed", seed, 0)
        if test_level is not None and (isinstance(test_level, bool) or not isinstance(test_level, Real)):
            raise ValueError(f"{owner}: test_level must be a number (a sigma or a JPEG quality), got {test_level!r}")
        self.degradation: Degradation | None = None
        if degradation is not None:
            try:
                self.degradation = Degradation.from_any(degradation)
            except ValueError as err:
                raise ValueError(f"{owner}: {err}") from None
        self.channels = channels
        self.patch_size, self.train_size, self.seed, self.test_level = patch_size, train_size, seed, test_level
        self.batch_size, self.num_workers = batch_size, num_workers

    def train_degradation(self) -> Degradation:
        """The degradation of the training patches: the given or the model's, else Gaussian sigma 25."""
        return _DEFAULT_DEGRADATION if self.degradation is None else Degradation.from_any(self.degradation)

    def image_channels(self) -> int:
        """1 (grey) or 3 (colour): the given or the model's, else 1."""
        return _DEFAULT_CHANNELS if self.channels is None else self.channels

    def eval_degradation(self) -> Degradation:
        """The fixed degradation of val and test: at ``test_level``, else the degradation's own level, else
        (a blind range) the protocol's level, which must lie in the range."""
        owner, degradation = type(self).__name__, self.train_degradation()
        if self.test_level is not None:
            try:
                return Degradation.fixed(degradation.kind, self.test_level)
            except ValueError as err:
                raise ValueError(f"{owner}: test_level {self.test_level!r} does not fit: {err}") from None
        if not degradation.is_blind:
            return degradation
        level = PROTOCOL_LEVELS[degradation.kind]
        if not degradation.low <= level <= degradation.high:
            raise ValueError(
                f"{owner}: the degradation's {degradation.field} range {[degradation.low, degradation.high]} does not "
                f"hold the protocol's test level {level}: give test_level, the level to validate and test at"
            )
        return Degradation.fixed(degradation.kind, level)

    def _one_by_one(self, dataset: Dataset, named: bool = False) -> DataLoader:
        """An evaluation loader of one image a batch (whole images may differ in size); ``named``: the items
        end with a name, batched as a list of str."""
        return make_loader(self, dataset, train=False, collate_fn=collate_named if named else None, batch_size=1)


class PhotosData(_RestorationData):
    """Denoising or JPEG deartifacting on scikit-image's photos (see the module docstring).

    Args:
        degradation: ``{"kind": "gaussian", "sigma": 25}`` (sigma on the 0-255 scale; ``[0, 50]`` a
            blind range), ``{"kind": "jpeg", "quality": 10}`` (or ``[10, 40]``), or a Degradation;
            None: the model's (Gaussian sigma 25 without one).
        channels: 1 (grey) or 3 (colour); None: the model's (grey without one).
        patch_size: side of the training patches, at most 172 (the smallest train photo, ``text``).
        train_size: training patches per epoch.
        batch_size: training patches per batch.
        num_workers: DataLoader worker processes.
        seed: seed of the val degradations (training draws follow torch's random state).
        test_level: sigma or quality of val and test; None: the degradation's level, or for a
            blind range the protocol's (sigma 25, quality 10).

    ``dataset`` ("photos"), ``degradation`` (a Degradation) and ``channels`` are set at construction,
    the last two None when left to the model.
    """

    def __init__(
        self,
        degradation: Mapping[str, Any] | None = None,
        channels: int | None = None,
        patch_size: int = 64,
        train_size: int = 4000,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        test_level: int | float | None = None,
    ) -> None:
        super().__init__(degradation, channels, patch_size, train_size, batch_size, num_workers, seed, test_level)
        # Not degradation and channels: the model's hparams hold them, and Lightning refuses to log a data
        # module's hparams that differ from the model's (None here when the model's are taken).
        self.save_hyperparameters(ignore=["degradation", "channels"])
        self.dataset = "photos"
        if self.degradation is not None:
            self.eval_degradation()  # a test_level that does not fit fails now rather than at validation
        smallest = min(TRAIN_PHOTOS, key=lambda name: min(_bundled(name).shape[:2]))
        side = min(_bundled(smallest).shape[:2])
        if patch_size > side:
            raise ValueError(
                f"PhotosData: patch_size must be at most {side} (the smallest train photo, {smallest}), "
                f"got {patch_size}"
            )

    def train_dataloader(self) -> DataLoader:
        areas = [_bundled(name).shape[0] * _bundled(name).shape[1] for name in TRAIN_PHOTOS]
        patches = RandomPatches(
            _Photos(TRAIN_PHOTOS, self.image_channels()), areas, self.train_size, self.patch_size,
            self.train_degradation(),
        )
        return make_loader(self, patches, train=True)

    def val_dataloader(self) -> DataLoader:
        crops = _Photos(VAL_PHOTOS, self.image_channels(), crop=PROTOCOL_SIZE)
        return self._one_by_one(DegradedImages(crops, len(VAL_PHOTOS), self.eval_degradation(), (self.seed,)))

    def _test_pairs(self) -> list[tuple[Tensor, Tensor, str]]:
        degradation, channels = self.eval_degradation(), self.image_channels()
        pairs = []
        for name in TEST_PHOTOS:
            degraded, clean = protocol_pair(name, degradation.kind, degradation.level)
            degraded, clean = (torch.from_numpy(x).float()[None].repeat(channels, 1, 1) for x in (degraded, clean))
            pairs.append((degraded, clean, name))
        return pairs

    def test_dataloader(self) -> DataLoader:
        return self._one_by_one(self._test_pairs(), named=True)

    def predict_dataloader(self) -> DataLoader:
        return self._one_by_one([(degraded, name) for degraded, _, name in self._test_pairs()], named=True)
