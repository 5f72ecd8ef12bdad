"""ObjectDetector on tiny ShapesData scenes: training, schedules, COCO mAP against pycocotools' COCOeval,
DDP without double counting, checkpoints, the results JSON, the CLI (one process and two); what `attnzoo show`
draws for a detector."""
from __future__ import annotations

import csv
import json
import math
import sys
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader
from torchmetrics.detection import MeanAveragePrecision

import attnzoo
from attnzoo.attention.cbam import CBAM
from attnzoo.cli import AttnzooCLI, main
from attnzoo.data import ShapesData
from attnzoo.data.detection import collate_detection
from attnzoo.tasks import DetectionWriter, ObjectDetector, show_detections
from attnzoo.tasks.detection import MAP_KEYS, ImageMeanAveragePrecision, _crop, _detect_with_maps
from attnzoo.viz import record

from ..cli_helpers import ddp_fit
from ..picture_helpers import capture_draw, capture_figures, figure_titles, layout, write_image

# 64 x 64 scenes, a handful per split, no augmentation: a step of FCOS on resnet18 takes a fraction of a second.
SHAPES = {"image_size": 64, "train_size": 8, "val_size": 5, "test_size": 5, "object_size": (8, 32),
          "batch_size": 4, "hflip": False, "scale_jitter": None}
SMALL = {"min_size": 64, "max_size": 64}
CLI_DATA = ["--data", "ShapesData", "--data.image_size", "64", "--data.train_size", "8", "--data.val_size", "5",
            "--data.test_size", "5", "--data.object_size", "[8, 32]", "--data.batch_size", "4",
            "--data.hflip", "false", "--data.scale_jitter", "null"]
CLI_MODEL = ["--model", "ObjectDetector", "--model.backbone", "resnet18", "--model.detector", "fcos",
             "--model.detector_kwargs", json.dumps({**SMALL, "score_thresh": 0.0, "detections_per_img": 5}),
             "--model.warmup_steps", "1"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.log_every_n_steps", "1"]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch):
    # LightningCLI warns when it is given args while sys.argv holds pytest's own.
    monkeypatch.setattr(sys, "argv", ["attnzoo"])


def detector(**kwargs) -> ObjectDetector:
    kwargs.setdefault("detector_kwargs", SMALL)
    return ObjectDetector("resnet18", "fcos", num_classes=8, **kwargs)


def trainer(**kwargs) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    return pl.Trainer(accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


class LearningRates(pl.Callback):
    """The learning rate each training step runs with."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def training_loss(model: ObjectDetector, images, targets) -> float:
    model.train()
    with torch.no_grad():
        return sum(model.model(images, targets).values()).item()


def warmup(step: int, steps: int, factor: float = 0.001) -> float:
    """torchvision's linear warm-up factor at ``step``."""
    return factor + (1 - factor) * min(step, steps) / steps


def test_fit_lowers_the_loss_logs_each_component_and_warms_up_into_a_cosine(tmp_path):
    data = ShapesData(**SHAPES)
    images, targets = collate_detection([data.train_set[i] for i in range(4)])
    model = detector(warmup_steps=3)
    before = training_loss(model, images, targets)
    rates = LearningRates()
    fit = trainer(max_epochs=5, limit_val_batches=0, callbacks=[rates], log_every_n_steps=1,
                  logger=CSVLogger(tmp_path, name="", version=""))
    fit.fit(model, datamodule=data)
    after = training_loss(model, images, targets)
    assert after < 0.9 * before, (before, after)
    # Each loss component of torchvision's FCOS, and their sum.
    with open(tmp_path / "metrics.csv") as f:
        logged = [r for r in csv.DictReader(f) if r["train/loss"]]
    assert len(logged) == 10
    for row in logged:
        parts = [float(row[f"train/{k}"]) for k in ("classification", "bbox_regression", "bbox_ctrness")]
        assert float(row["train/loss"]) == pytest.approx(sum(parts), rel=1e-5)
    # Warm-up over 3 steps from 0.001 x 0.01, multiplied by a cosine over the 10 steps of the run.
    expected = [0.01 * warmup(t, 3) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert rates.rates == pytest.approx(expected, rel=1e-6)
    # The data's names and ids and the detector's settings travel in the checkpoint.
    fit.save_checkpoint(tmp_path / "last.ckpt")
    # Built in Python, the module pickles its optimiser class in its hyperparameters (attnzoo fit stores text).
    restored = ObjectDetector.load_from_checkpoint(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    cfg = restored.model.pretrained_cfg
    assert cfg["labels"] == data.labels and cfg["category_ids"] == data.category_ids == list(range(1, 9))
    assert cfg["dataset"] == "shapes" and cfg["num_classes"] == 9 and (cfg["min_size"], cfg["max_size"]) == (64, 64)
    assert cfg["architecture"] == "fcos-resnet18" and cfg["task"] == "detection"
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in restored.state_dict().items())


def test_a_given_optimizer_and_scheduler_compose_with_the_warmup():
    rates = LearningRates()
    model = detector(
        optimizer=partial(torch.optim.AdamW, lr=1e-3),
        scheduler=partial(torch.optim.lr_scheduler.MultiStepLR, milestones=[1], gamma=0.1),
        warmup_steps=4,
    )
    trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0, callbacks=[rates]).fit(
        model, datamodule=ShapesData(**SHAPES)
    )
    assert isinstance(model.trainer.optimizers[0], torch.optim.AdamW)
    # The step schedule drops the rate tenfold at the end of epoch 0, in the middle of the warm-up.
    expected = [1e-3 * warmup(t, 4) * (0.1 if t >= 2 else 1) for t in range(4)]
    assert rates.rates == pytest.approx(expected, rel=1e-6)


# --- COCO mAP -------------------------------------------------------------------------------------------


def scored_detections(targets: list[dict], seed: int) -> list[dict]:
    """Detections of varied quality: jittered true boxes (some with the wrong class, some missed) and
    false alarms, with random scores."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for target in targets:
        boxes, labels = target["boxes"], target["labels"]
        keep = torch.rand(len(boxes), generator=g) > 0.2
        sizes = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        jittered = boxes + torch.randn(boxes.shape, generator=g) * 0.03 * sizes
        wrong = torch.rand(len(boxes), generator=g) < 0.15
        guessed = torch.where(wrong, torch.randint(1, 9, labels.shape, generator=g), labels)
        corner = torch.rand(3, 2, generator=g) * 100
        alarms = torch.cat([corner, corner + 4 + torch.rand(3, 2, generator=g) * 12], dim=1)
        out.append({
            "boxes": torch.cat([jittered[keep], alarms]).clamp(0, 128),
            "labels": torch.cat([guessed[keep], torch.randint(1, 9, (3,), generator=g)]),
            "scores": torch.rand(int(keep.sum()) + 3, generator=g),
        })
    return out


def evaluation_set() -> tuple[list[dict], list[dict]]:
    """ShapesData's val targets (visible-pixel areas, not box areas), one image emptied of objects, one with a
    crowd region over a true object, a large object, and detections for them."""
    # Objects up to 112 pixels in 128 x 128 scenes: small, medium and large ones (COCO's area ranges).
    scenes = ShapesData(**{**SHAPES, "image_size": 128, "object_size": (8, 112)}).val_set
    targets = [scenes[i][1] for i in range(5)]
    targets[1] = {**targets[1], **{k: v[:0] for k, v in targets[1].items() if k != "image_id"}}
    last = targets[4]
    targets[4] = {  # and a large object (more than 96 x 96 pixels)
        "boxes": torch.cat([last["boxes"], torch.tensor([[8.0, 6.0, 120.0, 122.0]])]),
        "labels": torch.cat([last["labels"], torch.tensor([4])]),
        "iscrowd": torch.cat([last["iscrowd"], torch.zeros(1, dtype=torch.int64)]),
        "area": torch.cat([last["area"], torch.tensor([11000.0])]),
        "image_id": last["image_id"],
    }
    index = next(i for i, t in enumerate(targets) if t["labels"].numel())
    crowd = targets[index]
    targets[index] = {
        "boxes": torch.cat([crowd["boxes"], crowd["boxes"][:1] + torch.tensor([-2.0, -2.0, 2.0, 2.0])]),
        "labels": torch.cat([crowd["labels"], crowd["labels"][:1]]),
        "iscrowd": torch.cat([crowd["iscrowd"], torch.ones(1, dtype=torch.int64)]),
        "area": torch.cat([crowd["area"], torch.tensor([300.0])]),
        "image_id": crowd["image_id"],
    }
    return targets, scored_detections(targets, seed=1)


def cocoeval_stats(tmp_path: Path, targets: list[dict], detections: list[dict]) -> list[float]:
    """pycocotools' COCOeval on the same ground truth and detections, through COCO JSON files."""
    images, annotations, results = [], [], []
    for target, found in zip(targets, detections):
        image_id = int(target["image_id"])
        images.append({"id": image_id, "width": 128, "height": 128})
        for box, label, crowd, area in zip(target["boxes"].tolist(), target["labels"].tolist(),
                                           target["iscrowd"].tolist(), target["area"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": area, "iscrowd": crowd})
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(), found["scores"].tolist()):
            results.append({"image_id": image_id, "category_id": label, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    categories = [{"id": i, "name": str(i)} for i in range(1, 9)]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                  "categories": categories}))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    truth = COCO(str(tmp_path / "gt.json"))
    evaluation = COCOeval(truth, truth.loadRes(str(tmp_path / "dt.json")), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats.tolist()


def canned(model: ObjectDetector, detections: list[dict]) -> None:
    """Make the model's network return ``detections``, in order, whatever the images."""
    stream = iter(detections)
    model.model.forward = lambda images: [next(stream) for _ in images]


def test_validation_map_equals_pycocotools_cocoeval(tmp_path):
    targets, detections = evaluation_set()
    model = detector()
    canned(model, detections)
    batches = [([torch.zeros(3, 64, 64)] * len(targets[i:i + 2]), targets[i:i + 2]) for i in range(0, 5, 2)]
    (logged,) = trainer().validate(model, dataloaders=DataLoader(batches, batch_size=None), verbose=False)
    stats = cocoeval_stats(tmp_path, targets, detections)
    assert 0.2 < stats[0] < 0.8 and stats[1] > stats[0]  # a figure of some size, not 0 or 1
    assert [logged[f"val/{key}"] for key in MAP_KEYS] == pytest.approx(stats, abs=1e-6)


def test_an_image_counted_twice_is_evaluated_once():
    targets, detections = evaluation_set()
    once, twice, plain = ImageMeanAveragePrecision(), ImageMeanAveragePrecision(), MeanAveragePrecision()
    once.update(detections, targets)
    for metric in (twice, plain):
        metric.update(detections, targets)
        metric.update(detections[2:3], targets[2:3])
    expected = once.compute()
    assert twice.compute()["map"] == expected["map"]
    assert plain.compute()["map"] != pytest.approx(expected["map"])  # what the duplicate would do


def _rank_map(rank: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    targets, detections = evaluation_set()
    # DistributedSampler's shares of 5 images in the order 2, 0, 1, 3, 4 on 2 ranks: rank 0 gets positions 0, 2, 4,
    # rank 1 positions 1, 3 and, to make up its length, position 0 again (image 2, whose detections count).
    share = [2, 1, 4] if rank == 0 else [0, 3, 2]
    metric = ImageMeanAveragePrecision()
    for i in share:
        metric.update([detections[i]], [targets[i]])
    torch.save({k: metric.compute()[k] for k in MAP_KEYS}, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_agree_on_the_map_of_the_unique_images(tmp_path):
    mp.spawn(_rank_map, args=(str(tmp_path),), nprocs=2)
    targets, detections = evaluation_set()
    alone = ImageMeanAveragePrecision()
    alone.update(detections, targets)
    expected = alone.compute()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert [got[k].item() for k in MAP_KEYS] == pytest.approx([expected[k].item() for k in MAP_KEYS], abs=1e-7)


# --- prediction ------------------------------------------------------------------------------------------


def test_detection_writer_writes_coco_results_with_original_category_ids(tmp_path):
    ids = [10, 20, 30, 40, 50, 60, 70, 80]
    model = detector(category_ids=ids)
    found = [
        {"boxes": torch.tensor([[1.0, 2.0, 11.0, 32.0], [5.5, 6.0, 7.5, 9.0]]), "labels": torch.tensor([1, 8]),
         "scores": torch.tensor([0.9, 0.25])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)},
        {"boxes": torch.tensor([[0.0, 0.0, 64.0, 64.0]]), "labels": torch.tensor([3]), "scores": torch.tensor([0.5])},
    ]
    canned(model, found)
    batches = [([torch.zeros(3, 64, 64)] * 2, [{"image_id": torch.tensor(7)}, {"image_id": torch.tensor(3)}]),
               ([torch.zeros(3, 64, 64)], [{"image_id": torch.tensor(12)}])]
    output = tmp_path / "out" / "detections.json"
    writer = DetectionWriter(str(output))
    trainer(callbacks=[writer]).predict(model, DataLoader(batches, batch_size=None), return_predictions=False)
    assert json.loads(output.read_text()) == [
        {"image_id": 7, "category_id": 10, "bbox": [1.0, 2.0, 10.0, 30.0], "score": pytest.approx(0.9)},
        {"image_id": 7, "category_id": 80, "bbox": [5.5, 6.0, 2.0, 3.0], "score": pytest.approx(0.25)},
        {"image_id": 12, "category_id": 30, "bbox": [0.0, 0.0, 64.0, 64.0], "score": pytest.approx(0.5)},
    ]
    assert [p.name for p in output.parent.iterdir()] == ["detections.json"]  # no temporary file left


# --- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"detector": "fcoss"}, "unknown detector 'fcoss'"),
        ({"num_classes": None}, "needs num_classes"),
        ({"num_classes": 0}, "positive integer"),
        ({"labels": ["a", "b"]}, "2 labels given for num_classes=3"),
        ({"category_ids": [1, 1, 2]}, "3 distinct integers"),
        ({"category_ids": [1, 2]}, "2 category_ids given"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_factor": 0.0}, "warmup_factor"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    arguments = {"backbone": "resnet18", "detector": "fcos", "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        ObjectDetector(**arguments)


def test_data_with_other_categories_is_refused():
    model = ObjectDetector("resnet18", "fcos", num_classes=3, detector_kwargs=SMALL)
    with pytest.raises(ValueError, match="the data has 8 categories but the model was built for num_classes=3"):
        trainer(max_steps=1).fit(model, datamodule=ShapesData(**SHAPES))
    model = detector(category_ids=[2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match="category_ids"):
        trainer(max_steps=1).fit(model, datamodule=ShapesData(**SHAPES))


# --- the command line ------------------------------------------------------------------------------------


def test_cli_fit_test_and_predict(tmp_path):
    cli = AttnzooCLI(args=["fit", *CLI_MODEL, *CLI_DATA, *QUIET, "--trainer.max_epochs", "1",
                           "--trainer.default_root_dir", str(tmp_path)])
    assert cli.model.hparams.category_ids == list(range(1, 9))  # linked from the data module
    run = tmp_path / "lightning_logs" / "version_0"
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/map" and best.mode == "max"
    with open(run / "metrics.csv") as f:
        header = set(next(csv.reader(f)))
    assert {"train/loss", "train/classification", "val/map", "val/map_50", "val/mar_100"} <= header
    last = run / "checkpoints" / "last.ckpt"
    tested = AttnzooCLI(args=["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                              "--trainer.logger", "false"])
    assert set(MAP_KEYS) == {k.removeprefix("test/") for k in tested.trainer.callback_metrics}
    output = tmp_path / "detections.json"
    AttnzooCLI(args=["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                     "--trainer.logger", "false", "--trainer.callbacks", "DetectionWriter",
                     "--trainer.callbacks.output", str(output)])
    results = json.loads(output.read_text())
    # Against the checkpoint's network run by hand on the test images.
    network = ObjectDetector.load_from_checkpoint(last, map_location="cpu").model.eval()
    test = ShapesData(**SHAPES).test_set
    images, targets = collate_detection([test[i] for i in range(len(test))])
    with torch.no_grad():
        found = network(images)
    expected = [(int(t["image_id"]), label, box[:2] + [box[2] - box[0], box[3] - box[1]], score)
                for t, d in zip(targets, found)
                for box, label, score in zip(d["boxes"].tolist(), d["labels"].tolist(), d["scores"].tolist())]
    assert len(results) == len(expected) == 5 * 5
    for got, (image_id, category, box, score) in zip(results, expected):
        assert (got["image_id"], got["category_id"]) == (image_id, category)
        assert got["bbox"] == pytest.approx(box, abs=1e-4) and got["score"] == pytest.approx(score, abs=1e-6)

    # attnzoo publish: the checkpoint as a model folder, which attnzoo.load rebuilds with its settings.
    assert main(["publish", "--ckpt_path", str(last), "--output", str(tmp_path / "model"), "--name", "fcos-trial"]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["task"] == "detection" and config["labels"] == ShapesData(**SHAPES).labels
    assert "test/map_50" in (tmp_path / "model" / "README.md").read_text()
    loaded = attnzoo.load(tmp_path / "model")
    with torch.no_grad():
        again = loaded(images)
    for a, b in zip(again, found):
        torch.testing.assert_close(a["boxes"], b["boxes"], rtol=0, atol=1e-5)
        assert torch.equal(a["labels"], b["labels"])


def test_ddp_fit_on_two_processes(tmp_path):
    rank0 = ddp_fit(
        tmp_path, *CLI_MODEL, *CLI_DATA, *QUIET,
        # 96 px: at 64 px FPN's P7 is computed from a 1 x 1 P6, where oneDNN's bf16 backward of the stride-2
        # conv returns NaN weight gradients now and then on the CPU (PyTorch 2.14; fine with mkldnn off).
        "--data.image_size", "96", "--model.detector_kwargs", json.dumps({"min_size": 96, "max_size": 96}),
        "--seed_everything", "0",
    )  # fmt: skip
    # Seeded 0 as the processes were, so this is the network they started from.
    torch.manual_seed(0)
    initial = ObjectDetector("resnet18", "fcos", num_classes=8, detector_kwargs=SMALL).state_dict()
    key = "model.head.classification_head.cls_logits.weight"
    assert not torch.equal(rank0[key], initial[key])
    run = tmp_path / "lightning_logs" / "version_0"
    with open(run / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert [r["val/map"] for r in logged if r["val/map"]] != [] and sum(1 for r in logged if r["train/loss"]) == 1


def small_detector(name: str = "fcos-resnet18n-cbam", **kwargs) -> torch.nn.Module:
    model = attnzoo.create_model(name, num_classes=9, fpn_channels=64, min_size=128, max_size=128, **kwargs)
    model.pretrained_cfg["labels"] = [f"class {i}" for i in range(1, 9)]
    return model


def _lime_pixels(path, columns: int) -> int:
    picture = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    first = picture[:, : picture.shape[1] // columns]
    return int(((first[..., 1] > 200) & (first[..., 0] < 100) & (first[..., 2] < 100)).sum())


def test_show_detections_draws_boxes_and_maps_on_image_files(tmp_path):
    # Every box is kept (random weights score low), at most three an image.
    model = small_detector(score_thresh=0.0, detections_per_img=3)
    files = [write_image(tmp_path / "wide.jpg", 60, 100), write_image(tmp_path / "grey.png", 128, 128, "L")]
    modules = sum(isinstance(m, CBAM) for m in model.backbone.body.modules())
    assert modules == 8
    path = show_detections(model, tmp_path / "out" / "boxes.png", images=files, score_thresh=0.0)
    assert Image.open(path).format == "PNG" and Image.open(path).size == layout(modules + 1, 2)
    assert _lime_pixels(path, modules + 1) > 50
    assert sorted(p.name for p in path.parent.iterdir()) == ["boxes.png"]  # no temporary file left
    none_kept = show_detections(model, tmp_path / "none.png", images=files, score_thresh=1.0)
    assert _lime_pixels(none_kept, modules + 1) == 0


def test_show_detections_defaults_to_shapes_test_images(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    figures = capture_figures(monkeypatch)
    path = show_detections(small_detector(), tmp_path / "shapes.png", count=2)
    assert Image.open(path).size == layout(9, 2)
    assert len(drawn["images"]) == 2 and drawn["images"][0].shape == (3, 128, 128)
    assert list(drawn["maps"]) == [f"layer{s}.{b}.se" for s in range(1, 5) for b in range(2)]
    assert drawn["title"] == "fcos-resnet18n-cbam: boxes with score >= 0.3"
    assert "layer4.1.se · cbam\n1x4x4" in figure_titles(figures[-1])

    # A backbone without attention: the boxes alone, and the title says why.
    path = show_detections(small_detector("fcos-resnet18n"), tmp_path / "plain.png", count=1)
    assert Image.open(path).size == layout(1, 1) and drawn["maps"] == {}
    assert "no attention maps in its backbone, boxes only" in drawn["title"]


def test_a_detectors_channel_gates_are_compared_across_its_images(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    show_detections(small_detector("fcos-resnet18n-se"), tmp_path / "se.png", count=2)
    titles = figure_titles(figures[-1])
    assert "layer1.0.se · se" in titles and "channel gates: each channel's mean gate, by image" in titles


def test_maps_are_cropped_to_the_image_in_the_padded_batch():
    # 60 x 100 is resized by 1.28 to 76 x 128, then padded to 96 x 128 (a multiple of 32).
    model = small_detector().eval()
    image = torch.rand(3, 60, 100)
    _, cropped = _detect_with_maps(model, image)
    with record(), torch.no_grad():
        model([image])
    raw = {n.removeprefix("backbone.body."): m.attention_map for n, m in model.named_modules() if n.endswith("se")}
    assert raw["layer1.0.se"].shape == (1, 1, 24, 32)
    # Stride 4: the image covers 19 of the 24 rows exactly, and all 32 columns.
    torch.testing.assert_close(cropped["layer1.0.se"], raw["layer1.0.se"][..., :19, :])
    # Strides 8, 16, 32: 9.5, 4.75 and 2.375 rows, resampled at 10, 5 and 3 points.
    assert [cropped[f"layer{s}.0.se"].shape[-2:] for s in (2, 3, 4)] == [(10, 16), (5, 8), (3, 4)]

    # A map whose value is its row: the k-th of n points sits at the centre of the k-th of n equal
    # bins over the image's rows, in row units (row i centred on i); above row 0 the map is row 0's.
    ramp = torch.arange(3.0).view(1, 1, 3, 1).expand(2, 4, 3, 5)
    out = _crop(ramp, "spatial", resized=(80, 160), padded=(96, 160))
    assert out.shape == (2, 4, 3, 5)
    covered = 3 * 80 / 96
    expected = ((torch.arange(3.0) + 0.5) * covered / 3 - 0.5).clamp(min=0)
    torch.testing.assert_close(out, expected.view(1, 1, 3, 1).expand(2, 4, 3, 5))
    gate = torch.rand(1, 8, 1, 1)
    assert _crop(gate, "channel", (80, 160), (96, 160)) is gate  # channel gates have no place to crop

    # A pairwise map has its queries cropped as its keys: a query's weights on the kept grid, resampled.
    pairwise = torch.rand(1, 6 * 5, 6, 5)
    out = _crop(pairwise, "pairwise", resized=(64, 160), padded=(96, 160))  # 4 of the 6 rows
    assert out.shape == (1, 4 * 5, 4, 5)
    torch.testing.assert_close(out, pairwise.view(1, 6, 5, 6, 5)[:, :4, :, :4].reshape(1, 20, 4, 5))


def test_show_detections_bad_input(tmp_path):
    model = small_detector()
    good = write_image(tmp_path / "good.png", 32, 32)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image .*missing.jpg"):
        show_detections(model, tmp_path / "x.png", images=[good, tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match="cannot read image .*notes.png"):
        show_detections(model, tmp_path / "x.png", images=[tmp_path / "notes.png"])
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_detections(model, tmp_path / "x.png", images=str(good))
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_detections(model, tmp_path / "x.png", images=[])
    with pytest.raises(ValueError, match="'resnet20-cbam' is a classification model; show_detections draws detectors"):
        show_detections(attnzoo.create_model("resnet20-cbam", num_classes=10), tmp_path / "x.png")
    with pytest.raises(ValueError, match="count must be an integer in 1..32, got 33"):
        show_detections(model, tmp_path / "x.png", count=33)
    with pytest.raises(ValueError, match=r"score_thresh must be a number in \[0, 1\], got 1.5"):
        show_detections(model, tmp_path / "x.png", score_thresh=1.5)
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_detector(tmp_path, capsys):
    folder = attnzoo.save_pretrained(small_detector(), tmp_path / "detector")
    image = write_image(tmp_path / "photo.jpg", 96, 128)
    output = tmp_path / "boxes.png"
    assert main(["show", str(folder), "--output", str(output), "--image", str(image), "--score_thresh", "0.1"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert Image.open(output).size == layout(9, 1)
    assert main(["show", str(folder), "--output", str(output), "--count", "2"]) == 0
    assert Image.open(output).size == layout(9, 2)

    assert main(["show", "resnet20-cbam.digits", "--output", str(output), "--image", str(image)]) == 2
    assert "--image is for detectors and restoration models; 'resnet20-cbam.digits' is a classification model" in (
        capsys.readouterr().err
    )
    assert main(["show", str(folder), "--output", str(output), "--image", str(tmp_path / "nope.jpg")]) == 2
    assert "cannot read image" in capsys.readouterr().err
