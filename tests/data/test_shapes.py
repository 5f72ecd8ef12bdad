import lightning as L
import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

import attnzoo.data
from attnzoo.data import ShapesData
from attnzoo.data.detection import collate_detection
from attnzoo.data.shapes import PHOTOS, SHAPES_LABELS, shape_mask

TINY = dict(image_size=64, train_size=8, val_size=8, test_size=8, object_size=(8, 32))


@pytest.fixture(scope="module")
def tiny():
    return ShapesData(**TINY, hflip=False, scale_jitter=None, batch_size=4)


def _tight_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    return [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_attributes_and_defaults():
    data = ShapesData()
    assert data.dataset == "shapes"
    assert data.num_classes == 8 and data.labels == SHAPES_LABELS
    assert data.category_ids == list(range(1, 9))
    assert data.image_size == (128, 128)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [1000, 200, 200]
    image, target = data.test_set[0]
    assert image.shape == (3, 128, 128)


def test_backgrounds_of_the_splits_are_disjoint():
    train, val, test = (set(PHOTOS[s]) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test


def test_same_seed_same_scenes_other_seed_differs(tiny):
    again = ShapesData(**TINY, hflip=False, scale_jitter=None)
    other = ShapesData(**TINY, seed=1, hflip=False, scale_jitter=None)
    for i in range(8):
        a, b = tiny.train_set.scene(i), again.train_set.scene(i)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(tiny.train_set.scene(0).image, other.train_set.scene(0).image)
    assert not np.array_equal(tiny.train_set.scene(0).image, tiny.test_set.scene(0).image)


def test_square_and_cross_masks():
    assert shape_mask("square", 7, 13).all()
    rows, cols = np.mgrid[:12, :12]
    arm = (rows >= 4) & (rows <= 7)
    np.testing.assert_array_equal(shape_mask("cross", 12, 12), arm | arm.T)
    # A square turned by 45 degrees, stretched back to its 11 x 11 box, is the diamond |r - 5| + |c - 5| <= 5.5.
    diamond = np.abs(rows[:11, :11] - 5) + np.abs(cols[:11, :11] - 5) <= 5
    np.testing.assert_array_equal(shape_mask("square", 11, 11, np.pi / 4), diamond)
    for kind, slack in (("circle", 0), ("cross", 1), ("triangle", 2), ("star", 2)):
        # Stretched to its box: only a sharp vertex may miss the pixel centres of the box's border.
        x1, y1, x2, y2 = _tight_box(shape_mask(kind, 19, 25, angle=1.0))
        assert max(x1, y1, 25 - x2, 19 - y2) <= slack, kind
    with pytest.raises(ValueError, match="shape_mask: kind"):
        shape_mask("hexagon", 8, 8)


def test_boxes_are_tight_around_the_drawn_pixels():
    data = ShapesData(image_size=96, train_size=40, val_size=1, test_size=1, object_size=(8, 48))
    overlapping = truncated = 0
    for i in range(40):
        scene = data.train_set.scene(i)
        for box, colour, area, mask in zip(scene.boxes, scene.colours, scene.area, scene.masks):
            # Found by its colour alone: the exact float colour occurs nowhere in the photo.
            painted = np.all(scene.image == colour, axis=-1)
            np.testing.assert_array_equal(painted, mask)
            assert box.tolist() == _tight_box(painted)
            assert area == painted.sum()
            truncated += box[0] == 0 or box[1] == 0 or box[2] == 96 or box[3] == 96
        for a in range(len(scene.boxes)):
            for b in range(a + 1, len(scene.boxes)):
                x1, y1 = np.maximum(scene.boxes[a, :2], scene.boxes[b, :2])
                x2, y2 = np.minimum(scene.boxes[a, 2:], scene.boxes[b, 2:])
                # The later object painted over part of the earlier one's box.
                overlapping += x2 > x1 and y2 > y1 and scene.masks[b, int(y1) : int(y2), int(x1) : int(x2)].any()
    assert overlapping > 0 and truncated > 0


def test_dataset_targets_match_the_scene(tiny):
    for split in (tiny.train_set, tiny.val_set):
        for i in range(len(split)):
            scene = split.scene(i)
            image, target = split[i]
            assert torch.equal(image, torch.from_numpy(scene.image).permute(2, 0, 1))
            assert torch.equal(target["boxes"], torch.from_numpy(scene.boxes))
            assert torch.equal(target["labels"], torch.from_numpy(scene.labels))
            assert int(target["image_id"]) == i + 1


def test_empty_images():
    data = ShapesData(**{**TINY, "train_size": 60}, hflip=False, scale_jitter=None)
    counts = [len(data.train_set.scene(i).labels) for i in range(60)]
    assert 0 in counts and max(counts) > 1
    none = ShapesData(**TINY, empty_fraction=1.0)
    image, target = none.val_set[3]
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["iscrowd"].shape == (0,)
    assert image.std() > 0  # still a photo


def test_batches(tiny):
    images, targets = next(iter(tiny.train_dataloader()))
    assert len(images) == len(targets) == 4
    for image, target in zip(images, targets):
        assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
        assert 0 <= image.min() and image.max() <= 1
        assert set(target) == {"boxes", "labels", "image_id"}
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1:] == (4,)
        assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(target["boxes"])
        assert ((target["labels"] >= 1) & (target["labels"] <= 8)).all()
        assert target["image_id"].dtype == torch.int64 and target["image_id"].ndim == 0
    for loader in (tiny.val_dataloader(), tiny.test_dataloader(), tiny.predict_dataloader()):
        ids = []
        for images, targets in loader:
            for target in targets:
                assert set(target) == {"boxes", "labels", "image_id", "iscrowd", "area"}
                assert target["iscrowd"].dtype == torch.int64 and target["area"].dtype == torch.float32
                assert (target["iscrowd"] == 0).all() and len(target["area"]) == len(target["boxes"])
                ids.append(int(target["image_id"]))
        assert ids == list(range(1, 9))
    first = [tiny.test_set[i] for i in range(2)]
    assert collate_detection(first) == ([first[0][0], first[1][0]], [first[0][1], first[1][1]])


def test_horizontal_flip_moves_the_boxes():
    data = ShapesData(**TINY, hflip=True, scale_jitter=None, empty_fraction=0.0)
    scene = data.train_set.scene(0)
    original = torch.from_numpy(scene.image).permute(2, 0, 1)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = data.train_set[0]
        if torch.equal(image, original):
            expected, flipped = scene.boxes, False
        else:
            assert torch.equal(image, original.flip(-1))
            x1, y1, x2, y2 = scene.boxes.T
            expected, flipped = np.stack([64 - x2, y1, 64 - x1, y2], 1), True
            # The box is still tight around the (mirrored) painted pixels.
            for box, colour in zip(target["boxes"], scene.colours):
                painted = (image.permute(1, 2, 0).numpy() == colour).all(-1)
                assert box.tolist() == _tight_box(painted)
        np.testing.assert_array_equal(target["boxes"].numpy(), expected)
        seen.add(flipped)
    assert seen == {True, False}


def test_scale_jitter_keeps_boxes_on_the_objects():
    data = ShapesData(**{**TINY, "object_size": (16, 32)}, hflip=False, scale_jitter=(0.5, 2.0), empty_fraction=0.0)
    checked = 0
    for seed in range(6):
        torch.manual_seed(seed)
        for i in range(4):
            scene = data.train_set.scene(i)
            image, target = data.train_set[i]
            assert image.shape == (3, 64, 64)
            boxes = target["boxes"]
            assert len(boxes) == len(target["labels"]) <= len(scene.labels)
            assert (boxes[:, 2:] - boxes[:, :2] >= 1).all() and (boxes >= 0).all() and (boxes <= 64).all()
            pixels = image.permute(1, 2, 0).numpy()
            for label, colour in zip(scene.labels, scene.colours):
                # The object's inner pixels keep its colour through the resize; they lie in a box of its label.
                core = np.abs(pixels - colour).max(-1) < 1e-4
                if core.sum() < 4:
                    continue
                x1, y1, x2, y2 = _tight_box(core)
                inside = [
                    b[0] - 1 <= x1 and b[1] - 1 <= y1 and x2 <= b[2] + 1 and y2 <= b[3] + 1
                    for b, l in zip(boxes.tolist(), target["labels"].tolist())
                    if l == label
                ]
                assert any(inside)
                checked += 1
    assert checked > 10


def test_bad_arguments():
    with pytest.raises(ValueError, match="ShapesData: object_size"):
        ShapesData(image_size=32, object_size=(8, 64))
    with pytest.raises(ValueError, match="ShapesData: scale_jitter"):
        ShapesData(scale_jitter=(2.0, 1.0))
    with pytest.raises(ValueError, match="ShapesData: empty_fraction"):
        ShapesData(empty_fraction=1.5)
    with pytest.raises(ValueError, match="ShapesData: train_size"):
        ShapesData(train_size=0)


def test_lightning_cli_finds_it_by_short_name():
    # LightningCLI's own resolution: subclasses of LightningDataModule imported by attnzoo.data.
    assert attnzoo.data.ShapesData is ShapesData
    parser = ArgumentParser()
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    config = parser.parse_args(["--data", "ShapesData", "--data.train_size", "8", "--data.image_size", "64",
                                "--data.object_size", "[8, 32]", "--data.scale_jitter", "null"])
    data = parser.instantiate(config).data
    assert isinstance(data, ShapesData) and len(data.train_set) == 8 and data.train_set.transform is not None
    config = parser.parse_args(["--data", "CocoData", "--data.train_images", "x", "--data.train_annotations", "y.json"])
    assert config.data.class_path == "attnzoo.data.CocoData"
