"""Image classification: any attnzoo backbone with a linear head, trained with Lightning."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from attnzoo.backbones import AttentionResNet, BackboneSpec, create_model

from ._common import TaskModule
from .finetuning import FINETUNE_STRATEGIES, BackboneFreeze, DynamicConvTemperature, has_dynamic_conv

__all__ = ["ImageClassifier"]

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
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
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
