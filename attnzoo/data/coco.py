"""Your own detection data in COCO's format: an instances JSON per split and a folder of its images.

    CocoData(train_images="coco/train2017", train_annotations="coco/annotations/instances_train2017.json",
             val_images="coco/val2017", val_annotations="coco/annotations/instances_val2017.json")

The JSON is read with Python's json (no pycocotools needed): ``images`` (``id``,
``file_name`` relative to the images folder, ``width``, ``height``),
``categories`` (``id``, ``name``) and ``annotations`` (``image_id``,
``category_id``, ``bbox`` [x, y, w, h] in pixels, optional ``iscrowd`` and
``area``; a file without ``annotations``, as COCO's test-dev image info, has
only negatives). Conventions, as torchvision's and COCOeval's:

- category ids, sorted, map to contiguous labels 1..K (0 is the background):
  label ``i`` is ``category_ids[i - 1]`` and is named ``labels[i - 1]``; the
  val and test files must hold the same categories as the train file;
- boxes become xyxy (``x + w``, ``y + h``), clipped to the image; a box with
  zero or negative size, or none of it inside the image, is dropped, with one
  warning per file saying how many;
- crowd annotations (``iscrowd`` 1) are left out of training targets and kept,
  flagged, in val/test targets (matched detections there are ignored, not
  counted false, as in COCOeval); ``area`` is the annotation's (its mask's
  area for COCO), ``w * h`` when missing;
- images without annotations stay (``boxes`` of shape (0, 4)).

Problems are ``ValueError``s naming the file and the entry: an unreadable or
malformed JSON, a missing field, an annotation of an unknown image or category,
a duplicate image id, a missing image file (checked at construction), an image
that cannot be decoded or whose size differs from its entry (checked when read).
Images are read with PIL as RGB, without applying EXIF orientation (COCO's
boxes are on the stored pixels).

Training augmentation (``hflip``, ``scale_jitter`` with ``jitter_size``): see
``attnzoo.data.detection``. ``predict_dataloader`` serves the test split.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from attnzoo._checks import check_int

from .detection import Annotations, DetectionDataset, check_scale_jitter, detection_loader, train_transform

__all__ = ["CocoData", "CocoImages", "read_coco"]

_OWNER = "CocoData"
_SPLITS = ("train", "val", "test")


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"{_OWNER}: {path}: {message}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_document(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as err:
        raise _fail(path, f"malformed JSON: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise _fail(path, f"cannot read the annotations file: {err}") from err
    if not isinstance(document, dict):
        raise _fail(path, f"a COCO instances file is a JSON object, got {type(document).__name__}")
    for key in ("images", "categories"):
        if not isinstance(document.get(key), list):
            raise _fail(path, f"no {key!r} list")
    if not isinstance(document.get("annotations", []), list):
        raise _fail(path, "'annotations' is not a list")
    return document


def _categories(path: Path, document: dict) -> dict[int, str]:
    categories: dict[int, str] = {}
    for index, entry in enumerate(document["categories"]):
        if not isinstance(entry, dict) or not _integer(entry.get("id")) or not isinstance(entry.get("name"), str):
            raise _fail(path, f"category {index} needs an integer 'id' and a string 'name': {entry!r}")
        if entry["id"] in categories:
            raise _fail(path, f"category {index}: duplicate category id {entry['id']}")
        categories[entry["id"]] = entry["name"]
    if not categories:
        raise _fail(path, "no categories")
    return categories


def _image_names(folder: Path) -> set[str]:
    # One directory listing instead of a stat per image (COCO train has 118k).
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries}


def read_coco(
    images: str | Path, annotations: str | Path
) -> tuple[dict[int, str], list[tuple[Path, int, int, int, Annotations]]]:
    """Parse one split: (categories {id: name}, [(image path, width, height, image id, annotations), ...]).

    Annotations carry COCO category ids in ``labels`` (not yet contiguous) and
    every box, crowd ones included; degenerate boxes are dropped with one warning.
    """
    folder, path = Path(images), Path(annotations)
    if not folder.is_dir():
        raise ValueError(f"{_OWNER}: images folder {folder} does not exist")
    document = _read_document(path)
    categories = _categories(path, document)
    names = _image_names(folder)

    records: dict[int, tuple[Path, int, int]] = {}
    for index, entry in enumerate(document["images"]):
        if not (
            isinstance(entry, dict)
            and _integer(entry.get("id"))
            and isinstance(entry.get("file_name"), str)
            and all(_integer(entry.get(key)) and entry[key] > 0 for key in ("width", "height"))
        ):
            raise _fail(
                path, f"image {index} needs an integer 'id', a 'file_name' and positive integer 'width', 'height': {entry!r}"
            )
        image_id, name = entry["id"], entry["file_name"]
        if image_id in records:
            raise _fail(path, f"image {index}: duplicate image id {image_id}")
        file = folder / name
        if not (name in names if "/" not in name and os.sep not in name else file.is_file()):
            raise _fail(path, f"image {index} (id {image_id}): image file {file} does not exist")
        records[image_id] = (file, entry["width"], entry["height"])

    boxes: dict[int, list[tuple[float, float, float, float, int, int, float]]] = {i: [] for i in records}
    dropped = 0
    for index, entry in enumerate(document.get("annotations", [])):
        where = f"annotation {index} (id {entry.get('id') if isinstance(entry, dict) else None})"
        if not isinstance(entry, dict):
            raise _fail(path, f"{where} is not an object: {entry!r}")
        image_id, category_id, bbox = entry.get("image_id"), entry.get("category_id"), entry.get("bbox")
        if image_id not in records:
            raise _fail(path, f"{where}: unknown image id {image_id!r}")
        if category_id not in categories:
            raise _fail(path, f"{where}: unknown category id {category_id!r} (categories: {sorted(categories)})")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_number, bbox))):
            raise _fail(path, f"{where}: 'bbox' must be [x, y, width, height] numbers, got {bbox!r}")
        crowd = entry.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, bool):
            raise _fail(path, f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r}")
        x, y, w, h = bbox
        area = entry.get("area", w * h)
        if not _number(area):
            raise _fail(path, f"{where}: 'area' must be a number, got {area!r}")
        _, width, height = records[image_id]
        x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
        if x2 <= x1 or y2 <= y1:
            dropped += 1
            continue
        boxes[image_id].append((x1, y1, x2, y2, category_id, crowd, area))
    if dropped:
        warnings.warn(
            f"{_OWNER}: dropped {dropped} degenerate boxes (zero or negative size, or outside the image) in {path}",
            stacklevel=3,
        )

    split = []
    for image_id, (file, width, height) in records.items():
        rows = np.array(boxes[image_id], dtype=np.float64).reshape(-1, 7)
        annotations_ = Annotations(rows[:, :4], rows[:, 4], rows[:, 5], rows[:, 6])
        split.append((file, width, height, image_id, annotations_))
    return categories, split


class CocoImages(DetectionDataset):
    """One split of a COCO data set; ``labels`` in its annotations already contiguous 1..K."""

    def __init__(
        self,
        records: list[tuple[Path, int, int, int, Annotations]],
        train: bool,
        transform: v2.Transform | None = None,
    ) -> None:
        super().__init__([record[3] for record in records], train, transform)
        self.records = records

    def load(self, index: int) -> tuple[Tensor, Annotations]:
        file, width, height, image_id, annotations = self.records[index]
        try:
            with Image.open(file) as picture:
                picture = picture.convert("RGB")
        except OSError as err:  # PIL.UnidentifiedImageError and truncated files are OSErrors
            raise ValueError(f"{_OWNER}: cannot read image {file} (id {image_id}): {err}") from err
        if picture.size != (width, height):
            raise ValueError(
                f"{_OWNER}: image {file} (id {image_id}) is {picture.size[0]} x {picture.size[1]}, "
                f"its annotations say {width} x {height}"
            )
        image = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).float().div_(255)
        return image, annotations


class CocoData(L.LightningDataModule):
    """Detection data from COCO instances JSON files and image folders.

    Args:
        train_images, train_annotations: the training images folder and its instances JSON.
        val_images, val_annotations: the same for validation (optional; needed to validate).
        test_images, test_annotations: the same for test and predict (optional).
        hflip: random horizontal flip for training.
        scale_jitter: (min, max) training scale jitter, None for none: each image is
            resized to fit ``jitter_size`` x ``jitter_size`` times a factor in [min, max]
            and cropped or padded to that square (large-scale jitter uses (0.1, 2.0) and 1024).
        jitter_size: the square canvas of the scale jitter, in pixels.
        batch_size: images per batch.
        num_workers: DataLoader worker processes decoding images.

    ``dataset`` (the images folder's parent's name), ``num_classes``, ``labels``
    and ``category_ids`` are set at construction, for LightningCLI to link into the model.
    """

    def __init__(
        self,
        train_images: str | Path,
        train_annotations: str | Path,
        val_images: str | Path | None = None,
        val_annotations: str | Path | None = None,
        test_images: str | Path | None = None,
        test_annotations: str | Path | None = None,
        hflip: bool = True,
        scale_jitter: tuple[float, float] | None = None,
        jitter_size: int = 1024,
        batch_size: int = 2,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        jitter = check_scale_jitter(_OWNER, scale_jitter)
        check_int(_OWNER, "jitter_size", jitter_size, 1)
        check_int(_OWNER, "batch_size", batch_size, 1)
        check_int(_OWNER, "num_workers", num_workers, 0)
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers

        given = {
            "train": (train_images, train_annotations),
            "val": (val_images, val_annotations),
            "test": (test_images, test_annotations),
        }
        parsed = {}
        for split, (images, json_file) in given.items():
            if (images is None) != (json_file is None):
                raise ValueError(f"{_OWNER}: give both {split}_images and {split}_annotations, or neither")
            if images is not None:
                parsed[split] = (Path(json_file), *read_coco(images, json_file))

        train_file, categories, _ = parsed["train"]
        for split, (file, other, _) in parsed.items():
            if other != categories:
                raise ValueError(
                    f"{_OWNER}: the categories of {file} differ from those of {train_file}: "
                    f"{sorted(other.items())} against {sorted(categories.items())}"
                )
        self.category_ids = sorted(categories)
        self.labels = [categories[i] for i in self.category_ids]
        self.num_classes = len(self.labels)
        self.dataset = Path(train_images).resolve().parent.name
        label_of = {category: label for label, category in enumerate(self.category_ids, start=1)}

        transform = train_transform(hflip, jitter, (jitter_size, jitter_size))
        self.splits: dict[str, CocoImages] = {}
        for split, (_, _, records) in parsed.items():
            for *_, targets in records:
                targets.labels = np.array([label_of[int(c)] for c in targets.labels], dtype=np.int64)
            self.splits[split] = CocoImages(records, train=split == "train", transform=transform)

    def _split(self, split: str) -> CocoImages:
        if split not in self.splits:
            raise ValueError(f"{_OWNER}: no {split} split: give {split}_images and {split}_annotations")
        return self.splits[split]

    def train_dataloader(self) -> DataLoader:
        return detection_loader(self, self._split("train"), train=True)

    def val_dataloader(self) -> DataLoader:
        return detection_loader(self, self._split("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return detection_loader(self, self._split("test"), train=False)

    def predict_dataloader(self) -> DataLoader:
        return detection_loader(self, self._split("test"), train=False)
