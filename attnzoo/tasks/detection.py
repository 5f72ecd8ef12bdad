"""Object detection: torchvision's Faster R-CNN, RetinaNet or FCOS on an attnzoo backbone, trained with Lightning.

The network is :func:`attnzoo.backbones.detection.create_detector`'s; the task
adds the training recipe and COCO's metrics, following torchvision's detection
reference scripts (references/detection/train.py):

- labels: object categories are 1..K and 0 is the background, so a task for
  ``num_classes`` = K categories builds a network with K + 1 classes; label i
  is the data's category ``category_ids[i - 1]`` (COCO's original ids), which
  predictions and the results JSON use;
- optimiser: SGD, lr 0.01, momentum 0.9, weight decay 1e-4 (:class:`DetectionSGD`;
  torchvision's RetinaNet and FCOS recipes use lr 0.01 for 16 images a step,
  its Faster R-CNN recipe 0.02);
- warm-up: the learning rate rises linearly from ``warmup_factor`` (0.001) times
  its value over the first ``warmup_steps`` (1000) optimiser steps, as
  torchvision's; torchvision stops it at the end of the first epoch, here it
  runs its full length whatever the epoch length;
- schedule: by default cosine decay to 0 over the whole run (every step, from the
  trainer's ``max_epochs`` or ``max_steps``), where torchvision's recipes use
  MultiStepLR (milestones [16, 22] of 26 epochs, gamma 0.1): a length-free default.
  A ``scheduler`` given is stepped once an epoch, as torchvision steps its
  MultiStepLR; it multiplies with the warm-up, so it must be one of PyTorch's
  chainable schedulers (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR ...,
  not LambdaLR or OneCycleLR, which would overwrite the warm-up);
- metrics: torchmetrics' MeanAveragePrecision (bbox, COCOeval through the
  faster-coco-eval backend) with each image id counted once (see
  :class:`ImageMeanAveragePrecision`), logged as ``val/map``, ``val/map_50`` ...
  (``test/...`` in testing); ``attnzoo fit`` keeps the best ``val/map``.

:func:`show_detections` is what ``attnzoo show`` draws for a detector: its boxes and its backbone's
attention maps on images.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.detection import MeanAveragePrecision

from attnzoo import viz
from attnzoo._checks import check_int
from attnzoo.backbones import BackboneSpec
from attnzoo.backbones.detection import DetectorSpec, create_detector

from ._common import TaskModule, schedules
from ._pictures import check_count, model_name, read_image, task_model
from .prediction import FileWriter

__all__ = ["DetectionSGD", "DetectionWriter", "ImageMeanAveragePrecision", "ObjectDetector", "show_detections"]

# COCOeval's twelve summary figures, as MeanAveragePrecision names them.
MAP_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip

Images = list[Tensor]
Targets = list[dict[str, Tensor]]


class DetectionSGD(torch.optim.SGD):
    """SGD with torchvision's detection recipe as defaults: lr 0.01, momentum 0.9, weight decay 1e-4.

    A class rather than a partial so that LightningCLI shows and overrides its
    arguments: ``--model.optimizer.lr 0.02``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


class ImageMeanAveragePrecision(MeanAveragePrecision):
    """COCO box mAP (torchmetrics, faster-coco-eval backend) that counts each ``image_id`` once.

    Under DDP, DistributedSampler pads the ranks' shares to equal length with
    images from the start of the split, and MeanAveragePrecision would evaluate
    those twice (it numbers images by arrival). Here each target's ``image_id`` is
    kept in a state that syncs beside the boxes, in the same order, and only the
    first entry of an image id is evaluated.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(iou_type="bbox", backend="faster_coco_eval", **kwargs)
        self.add_state("image_ids", default=[], dist_reduce_fx=None)

    def update(self, preds: Targets, target: Targets) -> None:
        if any("image_id" not in t for t in target):
            raise ValueError("detection targets for evaluation need an 'image_id' (the image's id in its split)")
        super().update(preds, target)
        self.image_ids.extend(t["image_id"].reshape(1) for t in target)

    def compute(self) -> dict[str, Tensor]:
        first: dict[int, int] = {}
        for index, image_id in enumerate(int(i) for i in self.image_ids):
            first.setdefault(image_id, index)
        if len(first) < len(self.image_ids):
            keep = sorted(first.values())
            for name in (
                "image_ids", "detection_box", "detection_scores", "detection_labels",
                "groundtruth_box", "groundtruth_labels", "groundtruth_crowds", "groundtruth_area",
            ):  # fmt: skip
                states = getattr(self, name)
                setattr(self, name, [states[i] for i in keep])
        return super().compute()


def _check_length(owner: str, name: str, values: Sequence[Any] | None, count: int) -> list[Any] | None:
    if values is None:
        return None
    values = list(values)
    if len(values) != count:
        raise ValueError(f"{owner}: {len(values)} {name} given for num_classes={count}")
    return values


class ObjectDetector(TaskModule):
    """torchvision's Faster R-CNN, RetinaNet or FCOS over an attention backbone with an FPN.

    Args:
        backbone: the backbone's name (``"resnet50-gc"``) or a dict of BackboneSpec's fields;
            an ImageNet-style ResNet.
        detector: ``fasterrcnn``, ``retinanet`` or ``fcos``.
        num_classes: K, the object categories (the network has K + 1 classes, 0 the background);
            ``attnzoo fit`` takes it from the data module.
        labels: the K category names (label 1 is ``labels[0]``), saved with the model.
        category_ids: the K categories' original ids (COCO's), which predictions report;
            1..K when not given.
        pretrained_backbone: start the backbone from the zoo's ImageNet weights (frozen BN, and
            only ``trainable_backbone_layers`` of its 5 layers train, 3 by default).
        trainable_backbone_layers: see ``pretrained_backbone`` and ``init_from``.
        init_from: a zoo detector of the same detector and architecture to start from
            (``"fcos-resnet50.tv_coco"``, torchvision's COCO weights): every tensor whose name and shape
            match loads; the attention modules and a class head of another size keep their
            initialisation (listed in a warning and in ``model.pretrained_cfg["init_from"]``). BN and
            trainable layers as with ``pretrained_backbone``.
        detector_kwargs: torchvision's constructor arguments: ``min_size`` (800), ``max_size`` (1333),
            ``score_thresh``, ``nms_thresh``, ``detections_per_img``, ...; and
            :func:`~attnzoo.backbones.detection.create_detector`'s ``fpn_channels``, ``test_min_size`` and
            ``test_max_size`` (validation, test and predict resize to these; the training sizes by default).
        optimizer: builds the optimiser (LightningCLI: ``--model.optimizer AdamW``); default SGD
            lr 0.01, momentum 0.9, weight decay 1e-4.
        scheduler: builds a schedule stepped once an epoch, multiplied with the warm-up; None: cosine
            decay to 0 over the run, stepped every step.
        warmup_steps, warmup_factor: linear warm-up from ``warmup_factor`` times the learning rate
            over the first ``warmup_steps`` steps (0 for none).
    """

    checkpoint_monitor = ("val/map", "max")

    def __init__(
        self,
        backbone: str | Mapping[str, Any] = "resnet50",
        detector: str = "fcos",
        num_classes: int | None = None,
        labels: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        pretrained_backbone: bool = False,
        trainable_backbone_layers: int | None = None,
        init_from: str | None = None,
        detector_kwargs: Mapping[str, Any] | None = None,
        optimizer: OptimizerCallable = DetectionSGD,
        scheduler: LRSchedulerCallable | None = None,
        warmup_steps: int = 1000,
        warmup_factor: float = 0.001,
    ) -> None:
        super().__init__()
        owner = "ObjectDetector"
        if num_classes is None:
            raise ValueError(
                f"{owner} needs num_classes, the number of object categories K (without the background); "
                "attnzoo fit takes it from the data module"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{owner}: num_classes must be a positive integer (K categories), got {num_classes!r}")
        labels = _check_length(owner, "labels", labels, num_classes)
        category_ids = _check_length(owner, "category_ids", category_ids, num_classes)
        if category_ids is not None and (
            any(isinstance(c, bool) or not isinstance(c, int) for c in category_ids)
            or len(set(category_ids)) != num_classes
        ):
            raise ValueError(f"{owner}: category_ids must be {num_classes} distinct integers, got {category_ids!r}")
        check_int(owner, "warmup_steps", warmup_steps, 0)
        if not 0 < warmup_factor <= 1:
            raise ValueError(f"{owner}: warmup_factor must lie in (0, 1], got {warmup_factor!r}")
        if detector_kwargs is not None and not isinstance(detector_kwargs, Mapping):
            raise ValueError(f"{owner}: detector_kwargs must be a dict, got {type(detector_kwargs).__name__}")
        self.save_hyperparameters()
        spec = DetectorSpec(detector, BackboneSpec.from_any(backbone))
        self.model = create_detector(
            spec,
            num_classes=num_classes + 1,
            pretrained_backbone=pretrained_backbone,
            trainable_backbone_layers=trainable_backbone_layers,
            init_from=init_from,
            **dict(detector_kwargs or {}),
        )
        self.model.pretrained_cfg.update(labels=labels, category_ids=category_ids or list(range(1, num_classes + 1)))
        self.num_classes = num_classes
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_map, self.test_map = ImageMeanAveragePrecision(), ImageMeanAveragePrecision()

    @property
    def category_ids(self) -> list[int]:
        """The original category id of each label 1..K."""
        return list(self.model.pretrained_cfg["category_ids"])

    def forward(self, images: Images) -> list[dict[str, Tensor]]:
        return self.model(images)

    def setup(self, stage: str) -> None:
        data = self._adopt_data("categories")
        data_ids = None if data is None else getattr(data, "category_ids", None)
        if data_ids is None:
            return
        if self.hparams.category_ids is None:
            self.model.pretrained_cfg["category_ids"] = list(data_ids)
        elif list(data_ids) != self.category_ids:
            raise ValueError(f"the data's category_ids {list(data_ids)} differ from the model's {self.category_ids}")

    def training_step(self, batch: tuple[Images, Targets], batch_idx: int) -> Tensor:
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        size = len(images)
        self.log_dict({f"train/{name}": value for name, value in losses.items()}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def _detect(self, images: Images) -> list[dict[str, Tensor]]:
        # Under mixed precision the boxes can come out in half precision; COCOeval and JSON want float32.
        return [{k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in self.model(images)]

    def validation_step(self, batch: tuple[Images, Targets], batch_idx: int) -> None:
        images, targets = batch
        self.val_map.update(self._detect(images), targets)

    def test_step(self, batch: tuple[Images, Targets], batch_idx: int) -> None:
        images, targets = batch
        self.test_map.update(self._detect(images), targets)

    def _log_map(self, stage: str, metric: ImageMeanAveragePrecision) -> None:
        # compute() has gathered every rank's images, so each rank logs the same figures.
        results = metric.compute()
        self.log(f"{stage}/map", results["map"], prog_bar=True)
        self.log_dict({f"{stage}/{key}": results[key] for key in MAP_KEYS if key != "map"})
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_map("val", self.val_map)

    def on_test_epoch_end(self) -> None:
        self._log_map("test", self.test_map)

    def predict_step(self, batch: tuple[Images, Targets], batch_idx: int) -> list[dict[str, Any]]:
        """Each image's detections: ``image_id``, ``boxes`` (xyxy pixels), ``scores``, ``labels`` (1..K)
        and ``category_ids`` (the data's original ids)."""
        images, targets = batch
        lookup = torch.tensor([0, *self.category_ids])
        out = []
        for detections, target in zip(self._detect(images), targets):
            labels = detections["labels"].cpu()
            out.append({
                "image_id": int(target["image_id"]),
                "boxes": detections["boxes"].cpu(),
                "scores": detections["scores"].cpu(),
                "labels": labels,
                "category_ids": lookup[labels],
            })
        return out

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        schedulers = schedules(
            self, optimizer, self.scheduler_factory, self.hparams.warmup_steps, self.hparams.warmup_factor
        )
        return [optimizer], schedulers


class DetectionWriter(FileWriter):
    """Write the detections as a COCO results JSON: ``[{image_id, category_id, bbox, score}, ...]``.

    ``bbox`` is ``[x, y, width, height]`` in pixels of the image as the predict
    loader gave it, ``category_id`` the data's original category id (COCO's for
    ``CocoData``), so the file goes straight to ``COCO.loadRes`` / COCOeval.
    Under DDP each process writes its share to ``<output stem>.rank<N>.json``.
    The file is written to a temporary name and renamed once complete.

        attnzoo predict --config RECIPE.yaml --ckpt_path CKPT \\
            --trainer.callbacks DetectionWriter --trainer.callbacks.output detections.json
    """

    def __init__(self, output: str = "detections.json") -> None:
        super().__init__(output)

    def write(self, f: TextIO, predictions: Sequence[Any], batch_indices: Sequence[Any]) -> None:
        # Lightning nests predictions by data loader, except those of a single loader.
        if predictions and predictions[0] and isinstance(predictions[0][0], list):
            predictions = [batch for loader in predictions for batch in loader]
        results = []
        for image in (image for batch in predictions for image in batch):
            xyxy = image["boxes"]
            xywh = torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], dim=1)
            for box, category, score in zip(xywh.tolist(), image["category_ids"].tolist(), image["scores"].tolist()):
                results.append({"image_id": image["image_id"], "category_id": category, "bbox": box, "score": score})
        json.dump(results, f)


def show_detections(
    model: nn.Module | str | Path,
    path: str | Path,
    images: Sequence[str | Path] | None = None,
    count: int = 4,
    score_thresh: float = 0.3,
) -> Path:
    """Draw a detector's boxes and its backbone's attention maps, one row per image.

    Each row is the image with the detections scoring at least ``score_thresh``, captioned with the
    class name (``pretrained_cfg["labels"]``, else the label number) and score, then the backbone's
    attention maps as :func:`attnzoo.viz.draw` draws them (the images compared as the groups). The maps
    are recorded while the detector runs on each image alone (in eval mode) and cropped to the image's
    part of the resized, padded input. A backbone without attention gets the boxes alone, and the title
    says so.

    Args:
        model: a detector from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
        path: the PNG to write.
        images: image files (PNG, JPEG ... anything PIL reads), drawn in RGB; by default the first
            ``count`` test images of ShapesData (bundled, no download).
        count: how many ShapesData images to draw without ``images`` (1..32).
        score_thresh: the least score of a box drawn, in [0, 1].
    """
    check_count(count)
    if isinstance(score_thresh, bool) or not isinstance(score_thresh, (int, float)) or not 0 <= score_thresh <= 1:
        raise ValueError(f"score_thresh must be a number in [0, 1], got {score_thresh!r}")
    if images is not None:
        if isinstance(images, (str, Path)) or not 1 <= len(images) <= 32:
            raise ValueError(f"images must be a list of 1 to 32 image files, got {images!r}")
        pictures = [read_image(file) for file in images]  # before a model download, so a typo fails fast
        sources = [Path(file).name for file in images]
    model = task_model(model, "detection")
    cfg = model.pretrained_cfg
    if images is None:
        from attnzoo.data import ShapesData

        test = ShapesData(test_size=count).splits["test"]
        pictures = [test[i][0] for i in range(count)]
        sources = [f"ShapesData test {i}" for i in range(count)]
    labels = cfg.get("labels")
    boxes, titles, maps = [], [], []
    for picture, source in zip(pictures, sources):
        detections, image_maps = _detect_with_maps(model, picture)
        keep = detections["scores"] >= score_thresh
        captions = [
            f"{labels[label - 1] if labels and 1 <= label <= len(labels) else label} {score:.2f}"
            for label, score in zip(detections["labels"][keep].tolist(), detections["scores"][keep].tolist())
        ]
        boxes.append((detections["boxes"][keep], captions))
        titles.append(f"{source}: {len(captions)} boxes")
        maps.append(image_maps)
    title = f"{model_name(cfg)}: boxes with score >= {score_thresh:g}"
    if not maps[0]:
        title += "; no attention maps in its backbone, boxes only"
    return viz.draw(
        pictures, {name: [image_maps[name][0] for image_maps in maps] for name in maps[0]}, path, model.backbone.body,
        row_titles=titles, boxes=boxes, groups=sources, group_by="image", title=title,
    )


def _detect_with_maps(model: nn.Module, image: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A detector's detections on one image (3, H, W) and its backbone's attention maps, cropped to the image."""
    batches = []
    # The transform's output tells how the image was resized and padded before the backbone saw it.
    hook = model.transform.register_forward_hook(lambda module, args, output: batches.append(output[0]))
    try:
        (detections,), maps = viz.attention_maps(model, [image])
    finally:
        hook.remove()
    resized, padded = batches[0].image_sizes[0], batches[0].tensors.shape[-2:]
    found = viz.mechanisms(model.backbone.body)
    maps = {name.removeprefix("backbone.body."): m for name, m in maps.items()}
    return detections, {n: _crop(m, found[n].kind if n in found else None, resized, padded) for n, m in maps.items()}


# The map kinds whose last two dimensions are the feature map's rows and columns (a pairwise map's queries are too).
_ON_THE_GRID = ("spatial", "pairwise", "assignment", "gate")


def _crop(attention: Tensor, kind: str | None, resized: Sequence[int], padded: Sequence[int]) -> Tensor:
    """The part of a map (B, K, h, w) of a padded detector batch that lies over the image, at the map's resolution.

    The detector's transform resizes the image to ``resized`` (H, W) and pads it at the bottom and right
    to ``padded``. The image covers ``h * resized / padded`` map rows, rarely a whole number: cutting at a
    cell boundary would stretch the map over the picture by up to a cell, so the map is resampled
    (bilinearly, roi_align) at ceil of that many points spread over exactly the image's region. A
    pairwise map has its queries resampled so too. Maps of the other kinds (channel gates, weights per
    example) are returned as they are.
    """
    if kind not in _ON_THE_GRID:
        return attention
    keys = _crop_grid(attention, resized, padded)
    if kind != "pairwise":
        return keys
    # The queries as the grid, the keys as channels: (B, h'w', H, W), cropped, and back.
    queries = _crop_grid(keys.flatten(2).transpose(1, 2).unflatten(-1, attention.shape[-2:]), resized, padded)
    return queries.flatten(2).transpose(1, 2).unflatten(-1, keys.shape[-2:])


def _crop_grid(attention: Tensor, resized: Sequence[int], padded: Sequence[int]) -> Tensor:
    """:func:`_crop` of the last two dimensions of (B, K, h, w)."""
    from torchvision.ops import roi_align

    height, width = attention.shape[-2:]
    rows = -(-height * resized[0] // padded[0])  # integer ceil: a float product may land just above a whole number
    columns = -(-width * resized[1] // padded[1])
    region = [0.0, 0.0, width * resized[1] / padded[1], height * resized[0] / padded[0]]
    boxes = torch.tensor([[i, *region] for i in range(attention.shape[0])], dtype=torch.float32)
    return roi_align(attention.float(), boxes, (rows, columns), sampling_ratio=1, aligned=True)
