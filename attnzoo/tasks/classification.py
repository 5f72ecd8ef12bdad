"""Image classification: any attnzoo backbone with a linear head, trained with Lightning.

:func:`show_classifier` is what ``attnzoo show`` draws for a classifier: its attention on test digits or
bundled photos.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from attnzoo import viz
from attnzoo._checks import check_int
from attnzoo.backbones import AttentionResNet, BackboneSpec, create_model

from ._common import TaskModule
from ._pictures import check_count, model_name, task_model
from .finetuning import FINETUNE_STRATEGIES, BackboneFreeze, DynamicConvTemperature, has_dynamic_conv

__all__ = ["ImageClassifier", "show_classifier"]

# A data module's attributes that describe its images (timm's data config keys).
_DATA_CONFIG = ("input_size", "mean", "std", "interpolation", "crop_pct")


class ImageClassifier(TaskModule):
    """An attention-configured backbone and a linear head for ``num_classes`` classes.

    Args:
        backbone: a model name (``"resnet20-cbam"``, a zoo name with ``pretrained``), a dict with
            BackboneSpec's fields, or a module built by ``attnzoo.create_model``.
        num_classes: classes of the task; a pretrained head of another size is re-initialised.
        pretrained: start from the zoo's weights for ``backbone``.
        finetune: ``no_freeze`` (train everything), ``freeze`` (train the head alone), or
            ``freeze_unfreeze`` (the head alone, then everything from ``unfreeze_at_epoch``).
        unfreeze_at_epoch: the epoch at which ``freeze_unfreeze`` unfreezes the backbone.
        label_smoothing: cross-entropy label smoothing.
        optimizer, scheduler: callables that build them (LightningCLI: ``--model.optimizer``).
        labels: class names, saved with the model.

    ``attnzoo fit`` keeps the best checkpoint by ``checkpoint_monitor`` and the last one.
    """

    checkpoint_monitor = ("val/top1", "max")

    def __init__(
        self,
        backbone: str | Mapping[str, Any] | nn.Module = "resnet20-cbam",
        num_classes: int = 10,
        pretrained: bool = False,
        finetune: str = "no_freeze",
        unfreeze_at_epoch: int = 1,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_STRATEGIES:
            raise ValueError(f"finetune must be one of {FINETUNE_STRATEGIES}, got {finetune!r}")
        check_int("ImageClassifier", "num_classes", num_classes, 2)
        if labels is not None and len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels given for num_classes={num_classes}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
        self.save_hyperparameters(ignore=["backbone"] if isinstance(backbone, nn.Module) else None)
        if isinstance(backbone, nn.Module):
            if not isinstance(backbone, AttentionResNet):
                raise ValueError(f"backbone must be built by attnzoo.create_model, got {type(backbone).__name__}")
            self.model = backbone
            if backbone.num_classes != num_classes:
                backbone.reset_classifier(num_classes)
        else:
            name = backbone if isinstance(backbone, str) else BackboneSpec.from_any(backbone)
            self.model = create_model(name, pretrained=pretrained, num_classes=num_classes)
        cfg = self.model.pretrained_cfg
        if labels is not None:
            cfg["labels"] = list(labels)
        elif cfg.get("num_classes") != num_classes:  # a new head: the weights' labels no longer apply
            cfg["labels"] = None
        cfg.update(task="classification", num_classes=num_classes)
        self.num_classes = num_classes
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        top_k = min(5, num_classes)
        self.val_top1, self.val_top5 = MulticlassAccuracy(num_classes, top_k=1), MulticlassAccuracy(num_classes, top_k=top_k)
        self.test_top1, self.test_top5 = MulticlassAccuracy(num_classes, top_k=1), MulticlassAccuracy(num_classes, top_k=top_k)

    def backbone_body(self) -> list[nn.Module]:
        """Everything but the classifier: what the fine-tuning strategies freeze."""
        return [m for name, m in self.model.named_children() if name != "fc"]

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def setup(self, stage: str) -> None:
        data = self._adopt_data("classes")
        if data is None:
            return
        # What the data module knows of its images travels with the weights into config.json.
        self.model.pretrained_cfg.update(
            {key: getattr(data, key) for key in _DATA_CONFIG if getattr(data, key, None) is not None}
        )

    def configure_callbacks(self) -> list[pl.Callback]:
        callbacks: list[pl.Callback] = []
        if self.hparams.finetune != "no_freeze":
            unfreeze = self.hparams.unfreeze_at_epoch if self.hparams.finetune == "freeze_unfreeze" else None
            callbacks.append(BackboneFreeze(unfreeze_at_epoch=unfreeze))
        if has_dynamic_conv(self.model):
            callbacks.append(DynamicConvTemperature())
        return callbacks

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str, top1: MulticlassAccuracy, top5: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        top1(logits, y)
        top5(logits, y)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log(f"{stage}/top1", top1, prog_bar=True)
        self.log(f"{stage}/top5", top5)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_top1, self.val_top5)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_top1, self.test_top5)

    def predict_step(self, batch: Tensor | tuple[Tensor, ...], batch_idx: int) -> dict[str, Any]:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        probs = torch.softmax(self(x).float(), dim=-1)
        index = probs.argmax(-1)
        labels = self.model.pretrained_cfg.get("labels")
        return {"probs": probs, "index": index, "labels": [labels[i] for i in index.tolist()] if labels else None}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}


# What `attnzoo show` shows a classifier. A digit-sized network (at most 64 pixels a side) or a grey one: the
# first DigitsData test digits, compared by true class. Any other: scikit-image photos (bundled), each
# cropped a few ways and compared by photo.
_DIGITS_COMPARED = 200
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
_CROPS = 4
# The object zooms at which a selective kernel's attention is compared, besides 1 (SKNet's 1.5x and 2x).
_ZOOMS = (1.5, 2.0)


@dataclass(frozen=True)
class _Examples:
    """What a classifier is shown: images (N, 1 or 3, H, W) in [0, 1] at its input size, the group of each
    (its true class, or the photo it was cropped from), which the pictures compare, and where they come
    from; a row's title is ``row_title`` with the prediction and the group filled in."""

    images: Tensor
    groups: list[str]
    group_by: str
    source: str
    row_title: str


def show_classifier(model: nn.Module | str | Path, path: str | Path, count: int = 4, dpi: int = 120) -> Path:
    """Draw what a classifier's attention does: its maps as :func:`attnzoo.viz.draw` draws each kind.

    A network of at most 64 pixels a side, or a grey one, is shown DigitsData's test digits: the first
    ``count`` (1..32) in rows, with its prediction and the maps drawn per image (spatial, pairwise,
    assignment), and the first 200 for the pictures that compare classes (channel gates, routing
    weights, gates), by true class. Any other network is shown scikit-image's photos ``astronaut``,
    ``chelsea``, ``coffee`` and ``rocket`` (bundled, offline; ``count`` 1..4 of them in rows), each
    cropped four ways (its centre square, then three random squares, seeded), compared by photo. A
    selective-kernel network also sees every example with its centre zoomed 1.5x and 2x, SKNet's test of
    how its attention follows an object's size. The images are resized to the network's input size and
    normalised with its mean and std (``pretrained_cfg``).

    Args:
        model: a classification network from attnzoo (``create_model``, ``load``) or anything
            ``attnzoo.load`` takes.
        path: the PNG to write.
        count: the examples drawn in rows.
        dpi: the PNG's resolution, dots per inch.

    A network without attention modules is a ValueError: there is nothing to draw.
    """
    model = task_model(model, "classification")
    cfg = model.pretrained_cfg
    name = model_name(cfg)
    found = viz.mechanisms(model)
    if not found:
        raise ValueError(f"{name!r} has no attention modules: there is nothing to draw")
    channels, height, width = cfg["input_size"]
    digits = channels == 1 or max(height, width) <= 64
    check_count(count, 32 if digits else len(_PHOTOS))
    examples = _digits((height, width)) if digits else _photos((height, width), channels)
    mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)

    def prepared(images: Tensor) -> Tensor:
        return (images.expand(-1, channels, -1, -1) - mean) / std

    logits, maps = viz.attention_maps(model, prepared(examples.images))
    zoomed = None
    if any(mechanism.kind == "paths" for mechanism in found.values()):
        zoomed = {f: viz.attention_maps(model, prepared(viz.zoom(examples.images, f)))[1] for f in _ZOOMS}
    labels = cfg.get("labels") or [f"class {i}" for i in range(logits.shape[1])]
    titles = [
        examples.row_title.format(predicted=labels[p], group=group)
        for p, group in zip(logits[:count].argmax(1).tolist(), examples.groups)
    ]
    return viz.draw(
        examples.images, maps, path, model, rows=count, row_titles=titles, groups=examples.groups,
        group_by=examples.group_by, zoomed=zoomed, title=f"{name}: {examples.source}", dpi=dpi,
    )


def _digits(size: tuple[int, int]) -> _Examples:
    from attnzoo.data import DigitsData

    test = DigitsData(augment=False, in_chans=1).test_set
    images = F.interpolate(test.images[:_DIGITS_COMPARED], size=size, mode="bilinear", align_corners=False)
    truths = [str(t) for t in test.targets[:_DIGITS_COMPARED].tolist()]
    return _Examples(images, truths, "true class", "DigitsData test digits", "{predicted} (true {group})")


def _photos(size: tuple[int, int], channels: int) -> _Examples:
    """Each photo's centre square, then random squares of it, resized; crop-major, so that the first examples
    are the photos' centres."""
    from attnzoo.data.photos import photo

    generator = torch.Generator().manual_seed(0)
    photos = [photo(name, 3 if channels == 3 else 1) for name in _PHOTOS]
    squares = [_square(image, generator if index else None) for index in range(_CROPS) for image in photos]
    images = torch.stack(
        [F.interpolate(s[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0] for s in squares]
    )
    source = f"scikit-image photos, {_CROPS} crops of each"
    return _Examples(images.clamp(0, 1), list(_PHOTOS) * _CROPS, "photo", source, "{group}: {predicted}")


def _square(image: Tensor, generator: torch.Generator | None) -> Tensor:
    """The centre square of an image (C, H, W); with a generator, a random square of a third to all of its
    shorter side, mirrored half the time."""
    height, width = image.shape[-2:]
    shorter = min(height, width)
    if generator is None:
        top, left = (height - shorter) // 2, (width - shorter) // 2
        return image[:, top : top + shorter, left : left + shorter]

    def uniform(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    side = shorter // 3 + uniform(shorter - shorter // 3 + 1)
    top, left = uniform(height - side + 1), uniform(width - side + 1)
    square = image[:, top : top + side, left : left + side]
    return square.flip(-1) if uniform(2) else square
