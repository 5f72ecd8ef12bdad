"""ShapesData: synthetic detection scenes on real photos, bundled, offline and seeded.

Each image is a crop of one of scikit-image's bundled photos with up to
``max_objects`` flat-coloured objects pasted on it. Eight classes (labels 1..8,
category ids 1..8): five geometric shapes, ``circle``, ``square``, ``triangle``,
``star``, ``cross`` (drawn rotated by a random angle and stretched to a random
aspect ratio in [3/4, 4/3]), and three of scikit-learn's handwritten digits,
``digit 3``, ``digit 4``, ``digit 7`` (upright; up-scaled bilinearly and
thresholded at half ink). These three stay unlike every other class when
mirrored, so a horizontal flip is a safe augmentation.

A scene is drawn from ``numpy.random.default_rng((seed, split, index))``, so any
image of any split is rebuilt on demand and nothing is stored (the same seed
gives the same images with the same numpy, Pillow and scikit-image data). It has:

- the background: a random crop of the image's aspect ratio (its longer side
  30-100 % of the photo's shorter side),
  randomly mirrored and turned by a multiple of 90 degrees, resized to
  ``image_size``; grey photos are repeated to RGB. The splits use disjoint
  photos, so no val or test background is seen in training:
  train ``astronaut, camera, coins, moon, brick, grass, hubble_deep_field,
  immunohistochemistry, retina, clock, page``; val ``rocket, cell``;
  test ``coffee, chelsea, gravel``. Digit instances are disjoint too (of each
  class's samples in ``load_digits`` order, positions 0-2 mod 5 train, 3 val, 4 test);
- ``empty_fraction`` of the images (10 %) hold no object; the others 1 to
  ``max_objects`` (6), each of a random class, with a size drawn log-uniformly
  in ``object_size`` (8 to 64 pixels), placed anywhere with at most a quarter of
  it outside the image (truncation), painted in a random colour that differs
  from the mean background under it by at least 0.4 in some channel;
- later objects hide earlier ones (overlap and occlusion); an object of which
  less than ``min_visible`` (30 %) stays visible (hidden or outside the image) is not drawn at all, so no
  unlabelled fragment is left in the picture;
- each box is the tight box of the object's visible pixels, xyxy with
  exclusive right/bottom edges, and its ``area`` the visible pixel count.

Defaults: 128 x 128 images, 1000 / 200 / 200 train / val / test images, batch 8.
Training augmentation (``hflip``, ``scale_jitter``): see ``attnzoo.data.detection``.
``export_coco`` writes a split as COCO instances JSON + PNG images for ``CocoData``.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from skimage.draw import polygon as fill_polygon
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from attnzoo._checks import check_int

from .detection import Annotations, DetectionDataset, check_scale_jitter, detection_loader, train_transform

__all__ = ["SHAPES_LABELS", "Scene", "ShapesData", "ShapesScenes", "shape_mask"]

SHAPES = ("circle", "square", "triangle", "star", "cross")
DIGITS = (3, 4, 7)
SHAPES_LABELS = [*SHAPES, *(f"digit {d}" for d in DIGITS)]
SPLITS = ("train", "val", "test")
PHOTOS = {
    "train": (
        "astronaut", "camera", "coins", "moon", "brick", "grass",
        "hubble_deep_field", "immunohistochemistry", "retina", "clock", "page",
    ),
    "val": ("rocket", "cell"),
    "test": ("coffee", "chelsea", "gravel"),
}
_PHOTO_SIDE = 512  # photos are shrunk to at most this side once: crops are resized to ~128 anyway
_CROP = (0.3, 1.0)
_ASPECT = 4 / 3
_MIN_CONTRAST = 0.4
_OUTSIDE = 0.25  # most of an object's side that may lie outside the image


def _regular(points: int, inner: float | None = None) -> np.ndarray:
    """A regular polygon (or a star when ``inner`` radius is given) on the unit circle, first vertex up."""
    count = points * 2 if inner is not None else points
    angles = -np.pi / 2 + np.arange(count) * 2 * np.pi / count
    radii = np.ones(count) if inner is None else np.where(np.arange(count) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


_ARM = 1 / 3  # half the width of the cross's arms, in its [-1, 1] box: arms a third of the box wide
_POLYGONS = {
    "square": np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float),
    "triangle": _regular(3),
    "star": _regular(5, inner=0.45),
    "cross": np.array(
        [[-_ARM, -1], [_ARM, -1], [_ARM, -_ARM], [1, -_ARM], [1, _ARM], [_ARM, _ARM],
         [_ARM, 1], [-_ARM, 1], [-_ARM, _ARM], [-1, _ARM], [-1, -_ARM], [-_ARM, -_ARM]],
        dtype=float,
    ),
}


def shape_mask(kind: str, height: int, width: int, angle: float = 0.0) -> np.ndarray:
    """The (height, width) bool mask of a geometric shape filling its box.

    ``kind`` is one of ``circle``, ``square``, ``triangle``, ``star``, ``cross``.
    Polygons are rotated by ``angle`` (radians) and then stretched so that they
    touch all four sides of the box; a pixel belongs to the shape when its
    centre is inside. The circle is the ellipse inscribed in the box.
    """
    if kind == "circle":
        y = (np.arange(height) + 0.5) / height * 2 - 1
        x = (np.arange(width) + 0.5) / width * 2 - 1
        return y[:, None] ** 2 + x[None, :] ** 2 <= 1
    if kind not in _POLYGONS:
        raise ValueError(f"shape_mask: kind must be one of {SHAPES}, got {kind!r}")
    cos, sin = math.cos(angle), math.sin(angle)
    points = _POLYGONS[kind] @ np.array([[cos, sin], [-sin, cos]])
    low, high = points.min(axis=0), points.max(axis=0)
    unit = (points - low) / (high - low)  # [0, 1] across the box's pixel edges
    # Pixel (r, c) has its centre at integer coordinates; the box's edges are at -0.5 and size - 0.5.
    cols = unit[:, 0] * width - 0.5
    rows = unit[:, 1] * height - 0.5
    mask = np.zeros((height, width), dtype=bool)
    mask[fill_polygon(rows, cols, shape=(height, width))] = True
    return mask


def _digit_mask(digit: np.ndarray, height: int, width: int) -> np.ndarray:
    ink = digit >= 8  # of 16
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    tight = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 16
    grown = np.asarray(Image.fromarray(tight, mode="F").resize((width, height), Image.BILINEAR))
    return grown >= 0.5


@cache
def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    picture = Image.fromarray(np.ascontiguousarray(image[:, :, :3]))
    picture.thumbnail((_PHOTO_SIDE, _PHOTO_SIDE), Image.BILINEAR)
    return np.asarray(picture)


@cache
def _digits(split: str) -> tuple[np.ndarray, ...]:
    """Per digit class in DIGITS, this split's 8 x 8 digit images (values 0..16)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    parts = {"train": (0, 1, 2), "val": (3,), "test": (4,)}[split]
    out = []
    for digit in DIGITS:
        samples = data.images[data.target == digit]
        out.append(samples[np.isin(np.arange(len(samples)) % 5, parts)])
    return tuple(out)


@dataclass
class Scene:
    """One drawn image: ``image`` (H, W, 3) float32 in [0, 1] and its kept objects.

    ``masks`` (N, H, W) are the objects' visible pixels, ``colours`` (N, 3) their
    flat colours, ``boxes`` (N, 4) xyxy, ``labels`` (N,) 1..K, ``area`` (N,) visible pixels.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    area: np.ndarray
    masks: np.ndarray
    colours: np.ndarray


class ShapesScenes(DetectionDataset):
    """One split of ShapesData: ``size`` scenes drawn on demand from ``(seed, split, index)``; image ids 1..size."""

    def __init__(
        self,
        split: str,
        size: int,
        image_size: tuple[int, int],
        object_size: tuple[int, int],
        max_objects: int,
        empty_fraction: float,
        min_visible: float,
        seed: int,
        train: bool,
        transform: v2.Transform | None = None,
    ) -> None:
        super().__init__(range(1, size + 1), train, transform)
        self.split = split
        self.image_size, self.object_size = image_size, object_size
        self.max_objects, self.empty_fraction = max_objects, empty_fraction
        self.min_visible, self.seed = min_visible, seed
        self.photos = [_photo(name) for name in PHOTOS[split]]
        self.digits = _digits(split)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        photo = self.photos[rng.integers(len(self.photos))]
        height, width = self.image_size
        short = min(photo.shape[:2])
        side = int(round(rng.uniform(*_CROP) * short))
        # A crop of the output's aspect ratio, as large as `side` allows.
        if height >= width:
            crop_h, crop_w = side, min(max(1, round(side * width / height)), photo.shape[1])
        else:
            crop_h, crop_w = min(max(1, round(side * height / width)), photo.shape[0]), side
        top = rng.integers(photo.shape[0] - crop_h + 1)
        left = rng.integers(photo.shape[1] - crop_w + 1)
        crop = photo[top : top + crop_h, left : left + crop_w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        turns = int(rng.integers(4)) if height == width else 2 * int(rng.integers(2))
        crop = np.ascontiguousarray(np.rot90(crop, turns))
        resized = Image.fromarray(crop).resize((width, height), Image.BILINEAR)
        return np.asarray(resized, dtype=np.float32) / 255

    def _object_mask(self, rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
        if label <= len(SHAPES):
            return shape_mask(SHAPES[label - 1], height, width, rng.uniform(0, 2 * np.pi))
        samples = self.digits[label - len(SHAPES) - 1]
        return _digit_mask(samples[rng.integers(len(samples))], height, width)

    def scene(self, index: int) -> Scene:
        """The scene ``index`` (0-based) of this split, with what was drawn where."""
        rng = np.random.default_rng((self.seed, SPLITS.index(self.split), index))
        image = self._background(rng)
        height, width = self.image_size
        count = 0 if rng.random() < self.empty_fraction else int(rng.integers(1, self.max_objects + 1))
        drawn = []  # (label, full-canvas mask, pixel count of the whole object)
        for _ in range(count):
            label = int(rng.integers(1, len(SHAPES_LABELS) + 1))
            size = math.exp(rng.uniform(math.log(self.object_size[0]), math.log(self.object_size[1])))
            aspect = math.exp(rng.uniform(-math.log(_ASPECT), math.log(_ASPECT)))
            h = max(2, round(size * math.sqrt(aspect)))
            w = max(2, round(size / math.sqrt(aspect)))
            mask = self._object_mask(rng, label, h, w)
            top = int(rng.integers(-int(h * _OUTSIDE), height - h + int(h * _OUTSIDE) + 1))
            left = int(rng.integers(-int(w * _OUTSIDE), width - w + int(w * _OUTSIDE) + 1))
            canvas = np.zeros((height, width), dtype=bool)
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + h, height), min(left + w, width)
            canvas[y0:y1, x0:x1] = mask[y0 - top : y1 - top, x0 - left : x1 - left]
            drawn.append((label, canvas, int(mask.sum())))
        # Top-down: what later objects cover is hidden; an object too hidden is left out, so it hides nothing.
        covered = np.zeros((height, width), dtype=bool)
        kept = []
        for label, canvas, whole in reversed(drawn):
            visible = canvas & ~covered
            if visible.sum() < self.min_visible * whole:
                continue
            covered |= canvas
            kept.append((label, canvas, visible))
        kept.reverse()
        colours = []
        for label, canvas, _ in kept:
            under = image[canvas].mean(axis=0)
            for _ in range(8):
                colour = rng.random(3)
                if np.abs(colour - under).max() >= _MIN_CONTRAST:
                    break
            else:
                colour = np.where(under < 0.5, rng.uniform(0.8, 1.0, 3), rng.uniform(0.0, 0.2, 3))
            colour = colour.astype(np.float32)
            image[canvas] = colour
            colours.append(colour)
        masks = np.stack([visible for _, _, visible in kept]) if kept else np.zeros((0, height, width), dtype=bool)
        boxes = np.zeros((len(kept), 4), dtype=np.float32)
        for i, visible in enumerate(masks):
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        return Scene(
            image=image,
            boxes=boxes,
            labels=np.array([label for label, _, _ in kept], dtype=np.int64),
            area=masks.sum(axis=(1, 2)).astype(np.float32),
            masks=masks,
            colours=np.array(colours, dtype=np.float32).reshape(-1, 3),
        )

    def load(self, index: int) -> tuple[Tensor, Annotations]:
        scene = self.scene(index)
        image = torch.from_numpy(scene.image).permute(2, 0, 1).contiguous()
        return image, Annotations(scene.boxes, scene.labels, np.zeros(len(scene.labels)), scene.area)


class ShapesData(L.LightningDataModule):
    """Synthetic detection scenes on scikit-image photos: 8 classes, 1000 / 200 / 200 images of 128 x 128.

    Args:
        image_size: (height, width) of every image, or one side for a square.
        train_size, val_size, test_size: images per split.
        object_size: (min, max) object side in pixels, drawn log-uniformly.
        max_objects: most objects drawn in an image (before occlusion drops some).
        empty_fraction: share of the images drawn with no object.
        min_visible: an object less visible than this share (after occlusion) is not drawn.
        seed: seed of the scenes (not of the training): the same seed, the same images.
        hflip: random horizontal flip for training.
        scale_jitter: (min, max) training scale jitter, cropped/padded back to ``image_size``; None for none.
        batch_size: images per batch.
        num_workers: DataLoader worker processes drawing scenes.

    ``dataset``, ``num_classes``, ``labels``, ``category_ids`` (1..8) and
    ``image_size`` are set at construction. ``predict_dataloader`` serves the test split.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 128,
        train_size: int = 1000,
        val_size: int = 200,
        test_size: int = 200,
        object_size: tuple[int, int] = (8, 64),
        max_objects: int = 6,
        empty_fraction: float = 0.1,
        min_visible: float = 0.3,
        seed: int = 0,
        hflip: bool = True,
        scale_jitter: tuple[float, float] | None = (0.75, 1.25),
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        owner = "ShapesData"
        square = isinstance(image_size, int) and not isinstance(image_size, bool)
        size = (image_size, image_size) if square else tuple(image_size)
        if len(size) != 2:
            raise ValueError(f"{owner}: image_size must be one side or (height, width), got {image_size!r}")
        for name, value in (("image_size", size[0]), ("image_size", size[1])):
            check_int(owner, name, value, 16)
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            check_int(owner, name, value, 1)
        objects = tuple(object_size)
        if len(objects) != 2:
            raise ValueError(f"{owner}: object_size must be (min, max) pixels, got {object_size!r}")
        for value in objects:
            check_int(owner, "object_size", value, 4)
        if not objects[0] <= objects[1] <= min(size):
            raise ValueError(
                f"{owner}: object_size must satisfy min <= max <= the image's shorter side {min(size)}, "
                f"got {object_size!r}"
            )
        check_int(owner, "max_objects", max_objects, 1)
        for name, value in (("empty_fraction", empty_fraction), ("min_visible", min_visible)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{owner}: {name} must be a fraction in [0, 1], got {value!r}")
        check_int(owner, "seed", seed, 0)
        jitter = check_scale_jitter(owner, scale_jitter)
        check_int(owner, "batch_size", batch_size, 1)
        check_int(owner, "num_workers", num_workers, 0)
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers

        self.dataset = "shapes"
        self.labels = list(SHAPES_LABELS)
        self.num_classes = len(self.labels)
        self.category_ids = list(range(1, self.num_classes + 1))
        self.image_size = size
        sizes = {"train": train_size, "val": val_size, "test": test_size}
        transform = train_transform(hflip, jitter, size)
        self.splits = {
            split: ShapesScenes(
                split, sizes[split], size, objects, max_objects, float(empty_fraction), float(min_visible), seed,
                train=split == "train", transform=transform,
            )
            for split in SPLITS
        }

    @property
    def train_set(self) -> ShapesScenes:
        return self.splits["train"]

    @property
    def val_set(self) -> ShapesScenes:
        return self.splits["val"]

    @property
    def test_set(self) -> ShapesScenes:
        return self.splits["test"]

    def train_dataloader(self) -> DataLoader:
        return detection_loader(self, self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return detection_loader(self, self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return detection_loader(self, self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return detection_loader(self, self.test_set, train=False)

    def export_coco(self, directory: str | Path, split: str = "test") -> tuple[Path, Path]:
        """Write ``split`` as COCO: ``directory/<split>/<id>.png``, ``directory/annotations/instances_<split>.json``.

        Returns (images folder, annotations file), the arguments ``CocoData`` takes.
        Both are written under temporary names and renamed when complete, so an
        interrupted export leaves nothing half-written; an existing images folder
        is an error rather than overwritten. Pixels are rounded to 8 bits; the
        boxes are the scenes' own (whole pixels), unchanged.
        """
        if split not in SPLITS:
            raise ValueError(f"ShapesData: split must be one of {SPLITS}, got {split!r}")
        directory = Path(directory)
        images_dir = directory / split
        annotations_file = directory / "annotations" / f"instances_{split}.json"
        if images_dir.exists():
            raise ValueError(f"ShapesData: {images_dir} already exists; export to another directory")
        annotations_file.parent.mkdir(parents=True, exist_ok=True)
        scenes = self.splits[split]
        height, width = self.image_size
        images, annotations = [], []
        staging = Path(tempfile.mkdtemp(prefix=f".{split}-", dir=directory))
        try:
            for index, image_id in enumerate(scenes.image_ids):
                scene = scenes.scene(index)
                name = f"{image_id:06d}.png"
                pixels = np.clip(np.rint(scene.image * 255), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(staging / name)
                images.append({"id": image_id, "file_name": name, "width": width, "height": height})
                for box, label, area in zip(scene.boxes.tolist(), scene.labels.tolist(), scene.area.tolist()):
                    x1, y1, x2, y2 = box
                    annotations.append({
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": self.category_ids[label - 1],
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": area,
                        "iscrowd": 0,
                    })
            categories = [
                {"id": cid, "name": name, "supercategory": "digit" if name.startswith("digit") else "shape"}
                for cid, name in zip(self.category_ids, self.labels)
            ]
            document = {
                "info": {"description": f"attnzoo ShapesData {split} split", "seed": self.hparams["seed"]},
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
            with tempfile.NamedTemporaryFile("w", dir=annotations_file.parent, suffix=".tmp", delete=False) as handle:
                json.dump(document, handle)
            os.rename(staging, images_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if "handle" in locals():
                Path(handle.name).unlink(missing_ok=True)
            raise
        os.replace(handle.name, annotations_file)
        return images_dir, annotations_file
