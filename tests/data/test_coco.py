import json
import warnings

import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from attnzoo.data import CocoData, ShapesData

CATEGORIES = [{"id": 42, "name": "bird"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


def _write(folder, annotations_file, images, annotations, categories=CATEGORIES):
    """Images as (id, width, height); annotations as (image_id, category_id, [x, y, w, h], iscrowd, area)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, width, height in images:
        name = f"{image_id:04d}.jpg"
        Image.new("RGB", (width, height), (image_id * 20 % 256, 90, 30)).save(folder / name)
        entries.append({"id": image_id, "file_name": name, "width": width, "height": height})
    document = {
        "images": entries,
        "annotations": [
            {"id": i + 1, "image_id": a[0], "category_id": a[1], "bbox": a[2], "iscrowd": a[3], "area": a[4]}
            for i, a in enumerate(annotations)
        ],
        "categories": categories,
    }
    annotations_file.write_text(json.dumps(document))
    return folder, annotations_file


IMAGES = [(1, 40, 30), (2, 50, 20), (5, 32, 32)]
ANNOTATIONS = [
    (1, 3, [2, 3, 10, 5], 0, 40.0),
    (1, 42, [20.5, 4, 10, 20], 0, 150.0),
    (1, 7, [0, 0, 40, 30], 1, 900.0),  # a crowd region
    (2, 7, [45, 10, 10, 5], 0, 25.0),  # partly outside: clipped to x in [45, 50]
]  # image 5 has no annotation


@pytest.fixture
def coco(tmp_path):
    return _write(tmp_path / "set" / "images", tmp_path / "set" / "instances.json", IMAGES, ANNOTATIONS)


def _targets(dataset):
    return {int(t["image_id"]): t for _, t in (dataset[i] for i in range(len(dataset)))}


def test_categories_map_to_contiguous_labels_and_back(coco):
    data = CocoData(*coco, val_images=coco[0], val_annotations=coco[1], num_workers=0)
    assert data.category_ids == [3, 7, 42]
    assert data.labels == ["cat", "dog", "bird"] and data.num_classes == 3
    assert data.dataset == "set"
    targets = _targets(data.splits["val"])
    original = {3: "cat", 7: "dog", 42: "bird"}
    assert [data.category_ids[i - 1] for i in targets[1]["labels"].tolist()] == [3, 42, 7]
    assert [data.labels[i - 1] for i in targets[1]["labels"].tolist()] == [original[c] for c in (3, 42, 7)]


def test_targets_boxes_crowd_and_negatives(coco):
    data = CocoData(*coco, val_images=coco[0], val_annotations=coco[1], hflip=False, num_workers=0)
    train, val = _targets(data.splits["train"]), _targets(data.splits["val"])
    # Training: the crowd region is left out, no iscrowd/area.
    assert set(train[1]) == {"boxes", "labels", "image_id"}
    assert train[1]["boxes"].tolist() == [[2, 3, 12, 8], [20.5, 4, 30.5, 24]]
    assert train[1]["labels"].tolist() == [1, 3]
    # Evaluation: kept and flagged, with COCO's areas.
    assert val[1]["boxes"].tolist() == [[2, 3, 12, 8], [20.5, 4, 30.5, 24], [0, 0, 40, 30]]
    assert val[1]["iscrowd"].tolist() == [0, 0, 1] and val[1]["area"].tolist() == [40, 150, 900]
    assert val[2]["boxes"].tolist() == [[45, 10, 50, 15]]
    for targets in (train, val):
        assert targets[5]["boxes"].shape == (0, 4) and targets[5]["labels"].dtype == torch.int64
    image, _ = data.splits["val"][1]
    assert image.shape == (3, 20, 50) and image.dtype == torch.float32
    assert image[1].mean().item() == pytest.approx(90 / 255, abs=0.02)  # RGB order, scaled to [0, 1]
    images, targets = next(iter(data.val_dataloader()))
    assert [t["image_id"].item() for t in targets] == [1, 2] and len(images) == 2


def test_degenerate_boxes_dropped_with_one_warning(tmp_path):
    bad = [
        (1, 3, [2, 3, 0, 5], 0, 0.0),  # zero width
        (1, 3, [2, 3, 4, -1], 0, 1.0),  # negative height
        (1, 7, [41, 0, 5, 5], 0, 25.0),  # right of the 40-wide image
        (2, 7, [1, 1, 5, 5], 0, 25.0),
    ]
    folder, file = _write(tmp_path / "images", tmp_path / "bad.json", IMAGES, bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = CocoData(folder, file, num_workers=0)
    messages = [str(w.message) for w in caught if "degenerate" in str(w.message)]
    assert len(messages) == 1 and "dropped 3 degenerate boxes" in messages[0] and str(file) in messages[0]
    targets = _targets(data.splits["train"])
    assert targets[1]["boxes"].shape == (0, 4) and targets[2]["boxes"].tolist() == [[1, 1, 6, 6]]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["annotations"][1].update(category_id=5), r"annotation 1 \(id 2\): unknown category id 5"),
        (lambda d: d["annotations"][0].update(image_id=9), r"annotation 0 \(id 1\): unknown image id 9"),
        (
            lambda d: d["images"][2].update(file_name="gone.jpg"),
            r"image 2 \(id 5\): image file .*gone.jpg does not exist",
        ),
        (lambda d: d["images"].append(dict(d["images"][0])), r"image 3: duplicate image id 1"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotation 0 \(id 1\): 'bbox'"),
        (lambda d: d.pop("categories"), r"no 'categories' list"),
    ],
)
def test_bad_entries_name_the_file_and_the_entry(coco, change, message):
    folder, file = coco
    document = json.loads(file.read_text())
    change(document)
    file.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message) as error:
        CocoData(folder, file)
    assert str(error.value).startswith(f"CocoData: {file}: ")


def test_malformed_json_and_missing_paths(coco, tmp_path):
    folder, file = coco
    file.write_text(json.dumps({"images": []})[:-3])
    with pytest.raises(ValueError, match=rf"CocoData: {file}: malformed JSON"):
        CocoData(folder, file)
    with pytest.raises(ValueError, match="cannot read the annotations file"):
        CocoData(folder, tmp_path / "nothing.json")
    with pytest.raises(ValueError, match="images folder .*nowhere does not exist"):
        CocoData(tmp_path / "nowhere", file)


def test_splits_need_the_same_categories(coco, tmp_path):
    other = _write(tmp_path / "val", tmp_path / "val.json", IMAGES[:1], [], categories=CATEGORIES[:2])
    with pytest.raises(ValueError, match="categories of .*val.json differ from those of .*instances.json"):
        CocoData(*coco, val_images=other[0], val_annotations=other[1])
    with pytest.raises(ValueError, match="give both val_images and val_annotations"):
        CocoData(*coco, val_images=other[0])
    with pytest.raises(ValueError, match="no test split"):
        CocoData(*coco).predict_dataloader()


def test_image_that_differs_from_its_entry(coco):
    folder, file = coco
    Image.new("RGB", (10, 10)).save(folder / "0002.jpg")
    (folder / "0005.jpg").write_bytes(b"not a picture")
    data = CocoData(folder, file)
    with pytest.raises(ValueError, match=r"image .*0002.jpg \(id 2\) is 10 x 10, its annotations say 50 x 20"):
        data.splits["train"][1]
    with pytest.raises(ValueError, match=r"cannot read image .*0005.jpg \(id 5\)"):
        data.splits["train"][2]


def test_training_flip_moves_the_boxes(coco):
    data = CocoData(*coco, hflip=True, num_workers=0)
    seen = set()
    for seed in range(10):
        torch.manual_seed(seed)
        _, target = data.splits["train"][0]
        boxes = target["boxes"].tolist()
        flipped = boxes != [[2, 3, 12, 8], [20.5, 4, 30.5, 24]]
        if flipped:
            assert boxes == [[28, 3, 38, 8], [9.5, 4, 19.5, 24]]
        seen.add(flipped)
    assert seen == {True, False}


def test_shapes_export_round_trip(tmp_path):
    shapes = ShapesData(
        image_size=64, train_size=4, val_size=4, test_size=8, object_size=(8, 32), hflip=False, scale_jitter=None
    )
    images, annotations = shapes.export_coco(tmp_path, split="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotations", "test"]  # no temporary left behind
    data = CocoData(images, annotations, test_images=images, test_annotations=annotations, hflip=False, num_workers=0)
    assert (data.labels, data.category_ids, data.num_classes) == (shapes.labels, shapes.category_ids, 8)
    reference = COCO(str(annotations))  # pycocotools' reading of the same file
    for (image, target), (read, read_target) in zip(shapes.test_set, data.splits["test"]):
        assert read.shape == image.shape and (read - image).abs().max() <= 0.5 / 255 + 1e-6
        assert target.keys() == read_target.keys()
        for key in target:
            assert torch.equal(target[key], read_target[key]), key
        entry = reference.imgs[int(target["image_id"])]
        assert (entry["height"], entry["width"]) == tuple(image.shape[1:])
        anns = reference.loadAnns(reference.getAnnIds(imgIds=entry["id"]))
        xywh = target["boxes"].clone()
        xywh[:, 2:] -= xywh[:, :2]
        assert [a["bbox"] for a in anns] == xywh.tolist()
        assert [a["category_id"] for a in anns] == [shapes.category_ids[i - 1] for i in target["labels"].tolist()]
    with pytest.raises(ValueError, match="already exists"):
        shapes.export_coco(tmp_path, split="test")
