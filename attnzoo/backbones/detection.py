"""Object detectors on attention backbones: torchvision's Faster R-CNN, RetinaNet and FCOS.

A detector name is ``<detector>-<arch>[-<attention>][.<tag>]``: ``fcos-resnet50-gc``,
``fasterrcnn-resnet18-se``. The network is torchvision's, built as its
``fasterrcnn_resnet50_fpn``, ``retinanet_resnet50_fpn`` and ``fcos_resnet50_fpn``
builders build theirs (v1), with an :class:`AttentionResNet` in place of
torchvision's ResNet:

- the backbone feeds torchvision's ``BackboneWithFPN`` as ``_resnet_fpn_extractor`` builds it:
  C2-C5 and ``LastLevelMaxPool`` for Faster R-CNN; C3-C5 and
  ``LastLevelP6P7`` (P6 from P5) for RetinaNet and FCOS; 256 channels, or ``fpn_channels``;
- anchor generators, heads, transform and thresholds are the torchvision
  constructors' defaults (min_size 800, max_size 1333, ...); keyword arguments
  go to the constructor and override them;
- ``test_min_size`` / ``test_max_size`` resize evaluation images to other sizes than
  training ones (detectron2's ``MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``); torchvision
  evaluates at its last training ``min_size``;
- with trained weights (``pretrained_backbone=True``, or a ``checkpoint_path``), the
  backbone's BatchNorm2d layers become ``FrozenBatchNorm2d`` and only the last
  ``trainable_backbone_layers`` (default 3) of conv1, layer1 ... layer4 train,
  torchvision's rule; with random weights, BN stays live and every layer trains.
  The attention modules belong to their stage: their BN is frozen and their
  parameters train only where their stage trains (MMDetection's
  ``frozen_stages`` freezes a stage's plugins likewise).

The module names are torchvision's (``backbone.body.layer1.0.conv1.weight``,
``backbone.fpn.inner_blocks.0.0.weight``, ``head.classification_head...``), so
the COCO state dicts torchvision publishes load as they are. Those of
``fasterrcnn_resnet50_fpn`` and ``retinanet_resnet50_fpn`` (COCO_V1) were trained
with a BN epsilon of 0, which torchvision's builders set after loading them;
loading a torchvision state dict of those two detectors (a pickled file without
``num_batches_tracked``: a frozen-BN model's) sets it too, and
``pretrained_cfg["frozen_bn_eps"]`` records it (a safetensors file carries no epsilon).

``init_from`` starts a detector from a zoo detector's weights of the same detector
and architecture, whatever the attention and the number of classes
(``fcos-resnet50-gc`` with 9 classes from ``fcos-resnet50.tv_coco``): each tensor
whose name and shape match is loaded, the rest keep their initialisation and are
reported in a warning and in ``pretrained_cfg["init_from"]``.

CIFAR ResNets (resnet20/32/56) are refused: their three stages end at stride 4,
where the FPN levels, anchor sizes and FCOS's scale ranges assume strides 4 to 128.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm.layers import freeze_batch_norm_2d
from torch import Tensor, nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _validate_trainable_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from attnzoo._checks import check_int

from .checkpoint import load_state, read_state_dict
from .resnet import _CIFAR_BLOCKS, AttentionResNet, pretrained_body
from .spec import ARCHITECTURES, BackboneSpec, _closest, parse_model_name

__all__ = [
    "DETECTORS",
    "DETECTOR_ARCHITECTURES",
    "DetectorSpec",
    "create_detector",
    "is_detector_name",
    "misspelled_detector",
    "parse_detector_name",
]

DETECTORS = ("fasterrcnn", "retinanet", "fcos")
DETECTOR_ARCHITECTURES = tuple(arch for arch in ARCHITECTURES if arch not in _CIFAR_BLOCKS)

_CONSTRUCTORS = {"fasterrcnn": FasterRCNN, "retinanet": RetinaNet, "fcos": FCOS}
# torchvision's FCOS head normalises with GroupNorm(32, fpn_channels).
_FPN_CHANNEL_MULTIPLE = {"fcos": 32}
# Detectors whose torchvision COCO_V1 weights were trained with BN epsilon 0 (torchvision's overwrite_eps).
_ZERO_EPS_COCO = ("fasterrcnn", "retinanet")


@dataclass(frozen=True)
class DetectorSpec:
    """A detector over an attention-configured backbone.

    Args:
        detector: one of :data:`DETECTORS`.
        backbone: a :class:`BackboneSpec`, a backbone name (``"resnet50-gc"``) or a dict of its fields;
            an ImageNet-style ResNet (:data:`DETECTOR_ARCHITECTURES`).
    """

    detector: str
    backbone: BackboneSpec

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(
                f"unknown detector {self.detector!r}.{_closest(self.detector, DETECTORS)} "
                f"Known: {', '.join(DETECTORS)}."
            )
        backbone = BackboneSpec.from_any(self.backbone)
        if backbone.arch not in DETECTOR_ARCHITECTURES:
            raise ValueError(
                f"{self.detector} needs an ImageNet-style ResNet (4 stages, output stride 32), not "
                f"{backbone.arch!r}, a CIFAR ResNet whose 3 stages end at stride 4. "
                f"Known: {', '.join(DETECTOR_ARCHITECTURES)}."
            )
        object.__setattr__(self, "backbone", backbone)

    @property
    def name(self) -> str:
        """The model name: ``<detector>-<arch>[-<attention>]``."""
        return f"{self.detector}-{self.backbone.name}"

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | DetectorSpec) -> DetectorSpec:
        """A spec from a detector name, a dict with ``detector`` and ``backbone``, or a spec."""
        if isinstance(value, DetectorSpec):
            return value
        if isinstance(value, str):
            return parse_detector_name(value)[0]
        if isinstance(value, Mapping):
            if set(value) != {"detector", "backbone"}:
                raise ValueError(f"a detector spec needs exactly 'detector' and 'backbone'; got keys {sorted(value)}")
            return cls(value["detector"], value["backbone"])
        raise ValueError(f"expected a detector name, a dict or a DetectorSpec, got {type(value).__name__}")


def is_detector_name(name: object) -> bool:
    """Whether ``name`` is a string that starts with a detector (``"fcos-..."``)."""
    return isinstance(name, str) and name.partition("-")[0] in DETECTORS


def misspelled_detector(name: str) -> str | None:
    """The detectors that ``name``'s first part is close to, when it is closer to them than to any
    architecture (``"fcso-resnet50"``); None otherwise."""
    head = name.partition("-")[0].partition(".")[0]
    if head in DETECTORS or head in ARCHITECTURES:
        return None

    def similarity(known: str) -> float:
        return difflib.SequenceMatcher(None, head, known).ratio()

    close = difflib.get_close_matches(head, DETECTORS, n=3, cutoff=0.6)
    if not close or similarity(close[0]) <= max(map(similarity, ARCHITECTURES)):
        return None
    return ", ".join(repr(c) for c in close)


def parse_detector_name(name: str) -> tuple[DetectorSpec, str | None]:
    """``"fcos-resnet50-gc.coco"`` -> (DetectorSpec("fcos", BackboneSpec("resnet50", "gc")), "coco")."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a detector name must be a non-empty string, got {name!r}")
    detector, _, rest = name.partition("-")
    if detector not in DETECTORS:
        raise ValueError(
            f"unknown detector {detector!r} in {name!r}.{_closest(detector, DETECTORS)} "
            f"A detector name is <detector>-<arch>[-<attention>], detector in {', '.join(DETECTORS)}."
        )
    if not rest:
        raise ValueError(f"detector name {name!r} has no backbone: expected {detector}-<arch>[-<attention>]")
    backbone, tag = parse_model_name(rest)
    return DetectorSpec(detector, backbone), tag


def _fpn_backbone(detector: str, body: AttentionResNet, trainable_layers: int, channels: int) -> nn.Module:
    """An FPN over ``body`` with the levels torchvision's builder gives ``detector``.

    torchvision's ``_resnet_fpn_extractor`` builds the same, but reads the input widths from its own
    ResNet's attributes and fixes the FPN at 256 channels; the freezing rule here is its rule.
    """
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, parameter in body.named_parameters():
        if not name.startswith(tuple(train)):
            parameter.requires_grad_(False)
    if detector == "fasterrcnn":
        stages, extra = (1, 2, 3, 4), LastLevelMaxPool()
    else:
        stages, extra = (2, 3, 4), LastLevelP6P7(channels, channels)
    widths = [body.feature_info[stage]["num_chs"] for stage in stages]
    return_layers = {f"layer{stage}": str(i) for i, stage in enumerate(stages)}
    return BackboneWithFPN(body, return_layers, widths, channels, extra_blocks=extra)


def _thresholds(detector: str, model: nn.Module) -> dict[str, Any]:
    # Faster R-CNN's box thresholds live in its RoI heads (constructor arguments box_score_thresh ...).
    owner = model.roi_heads if detector == "fasterrcnn" else model
    return dict(
        score_thresh=owner.score_thresh, nms_thresh=owner.nms_thresh, detections_per_img=owner.detections_per_img
    )


def _without_bn_counters(state: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` less the num_batches_tracked of live BN layers that are FrozenBatchNorm2d (which has none) here."""
    return {k: v for k, v in state.items() if k in own or not k.endswith(".num_batches_tracked")}


def _load_detector_checkpoint(model: nn.Module, detector: str, path: str | Path) -> None:
    """Load an attnzoo or torchvision state dict of the same detector strictly; ValueError lists what differs."""
    state = read_state_dict(path)
    frozen = not any(k.endswith(".num_batches_tracked") for k in state)
    load_state(model, _without_bn_counters(state, model.state_dict()), path)
    if detector in _ZERO_EPS_COCO and frozen and Path(path).suffix != ".safetensors":
        overwrite_eps(model, 0.0)
        model.pretrained_cfg["frozen_bn_eps"] = 0.0


def _zoo_detector(spec: DetectorSpec, name: str) -> tuple[dict[str, Any], Path]:
    """The config and weights file of the zoo detector ``name``, which must be ``spec``'s detector and architecture."""
    from attnzoo.zoo.catalog import resolve
    from attnzoo.zoo.hub import fetch_pretrained

    entry = resolve(name)
    source = entry.spec
    if not isinstance(source, DetectorSpec) or (source.detector, source.backbone.arch) != (
        spec.detector,
        spec.backbone.arch,
    ):
        raise ValueError(
            f"{spec.name}: init_from takes a zoo detector of the same detector and architecture "
            f"({spec.detector}-{spec.backbone.arch}[-<attention>]); {entry.name!r} is {source.name!r}"
        )
    return fetch_pretrained(entry)


def _init_from(model: nn.Module, config: Mapping[str, Any], path: Path) -> None:
    """Load the tensors of ``path`` whose name and shape match ``model``'s; warn of and record the rest."""
    own = model.state_dict()
    state = _without_bn_counters(read_state_dict(path), own)
    matching = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(matching, strict=False)
    not_loaded = [k for k in own if k not in matching]
    unused = [k for k in state if k not in matching]
    model.pretrained_cfg["init_from"] = dict(name=config["name"], not_loaded=not_loaded, unused=unused)
    if config.get("frozen_bn_eps") is not None:
        overwrite_eps(model, config["frozen_bn_eps"])
        model.pretrained_cfg["frozen_bn_eps"] = config["frozen_bn_eps"]
    if not_loaded or unused:
        warnings.warn(
            f"{model.spec.name}: init_from {config['name']!r} loaded {len(matching)} of {len(own)} tensors. "
            f"Kept their initialisation (not in {config['name']!r}, or of another shape there): "
            f"{_modules(not_loaded, own)}. Unused from {config['name']!r}: {_modules(unused, state)}. "
            "pretrained_cfg['init_from'] lists the tensors.",
            stacklevel=3,
        )


def _modules(keys: list[str], everything: Mapping[str, Tensor]) -> str:
    """``keys`` as the largest modules all of whose tensors are among them (an attention module, not its
    six tensors), in order."""
    counts: dict[str, list[int]] = {}
    chosen = set(keys)
    for key in everything:
        parts = key.split(".")
        for i in range(1, len(parts) + 1):
            count = counts.setdefault(".".join(parts[:i]), [0, 0])
            count[0] += 1
            count[1] += key in chosen
    modules = []
    for key in keys:
        parts = key.split(".")
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
        modules.append(next(p for p in prefixes if counts[p][0] == counts[p][1]))
    return ", ".join(dict.fromkeys(modules)) or "none"


class TestSizeTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform with its own sizes in eval mode.

    torchvision evaluates at the last training ``min_size`` and the training ``max_size``;
    a detector trained on small images often finds small objects better when evaluated
    larger (the train/test resolution discrepancy). The sizes follow ``self.training`` when
    read, not ``train()``: Lightning restores modes by setting ``training`` directly.
    """

    def __init__(self, base: GeneralizedRCNNTransform, test_min_size: int, test_max_size: int) -> None:
        super().__init__(
            base.min_size, base.max_size, base.image_mean, base.image_std,
            size_divisible=base.size_divisible, fixed_size=base.fixed_size, _skip_resize=base._skip_resize,
        )
        self.test_min_size, self.test_max_size = test_min_size, test_max_size
        self.train(base.training)

    @property
    def min_size(self) -> tuple[int, ...]:
        return self._train_min_size if self.training else (self.test_min_size,)

    @min_size.setter
    def min_size(self, value: tuple[int, ...]) -> None:
        self._train_min_size = value

    @property
    def max_size(self) -> int:
        return self._train_max_size if self.training else self.test_max_size

    @max_size.setter
    def max_size(self, value: int) -> None:
        self._train_max_size = value


def _check_detector_kwargs(spec: DetectorSpec, kwargs: Mapping[str, Any]) -> None:
    """torchvision's constructors pass unknown keywords on to their transform, which drops them silently."""
    constructor = _CONSTRUCTORS[spec.detector]
    accepted = {
        name
        for init in (constructor.__init__, GeneralizedRCNNTransform.__init__)
        for name, p in inspect.signature(init).parameters.items()
        if p.kind is not p.VAR_KEYWORD
    } - {"self", "backbone", "num_classes"}
    for name in sorted(set(kwargs) - accepted):
        close = difflib.get_close_matches(name, accepted, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"{spec.name}: torchvision's {constructor.__name__} takes no argument {name!r}.{hint} "
            f"It takes: {', '.join(sorted(accepted))}."
        )


def create_detector(
    name_or_spec: str | Mapping[str, Any] | DetectorSpec,
    *,
    num_classes: int = 91,
    pretrained_backbone: bool = False,
    trainable_backbone_layers: int | None = None,
    checkpoint_path: str | Path | None = None,
    init_from: str | None = None,
    stages: Sequence[int] | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    fpn_channels: int = 256,
    test_min_size: int | None = None,
    test_max_size: int | None = None,
    **detector_kwargs: Any,
) -> nn.Module:
    """Build torchvision's Faster R-CNN, RetinaNet or FCOS over an attention backbone with an FPN.

    Args:
        name_or_spec: ``"fcos-resnet50-gc"``, a dict with DetectorSpec's fields, or a DetectorSpec.
        num_classes: classes including the background (label 0): K + 1; COCO's 91 by default.
        pretrained_backbone: start the backbone from the zoo's ImageNet weights for its name
            (``attnzoo.create_model(backbone, pretrained=True)``).
        trainable_backbone_layers: with trained weights, how many of layer4, layer3, layer2, layer1,
            conv1 train (0 to 5, default 3); with random weights every layer trains (torchvision warns
            when it is given then).
        checkpoint_path: a state dict of the same detector: torchvision's (the COCO weights it publishes
            for ``fasterrcnn_resnet50_fpn``, ``retinanet_resnet50_fpn``, ``fcos_resnet50_fpn``) or attnzoo's
            (safetensors). Counts as trained weights for the BN and layer freezing.
        init_from: a zoo detector (``"fcos-resnet50.tv_coco"``) of the same detector and architecture
            to start from, with any attention and number of classes: the tensors whose name and shape
            match are loaded, the others (attention modules, a class head of another size) keep their
            initialisation, listed in a warning and in ``pretrained_cfg["init_from"]``. Counts as
            trained weights for the BN and layer freezing.
        stages, attention_kwargs: as for :func:`attnzoo.create_model`.
        fpn_channels: the width of the FPN and of the heads on it (torchvision's 256 by default);
            FCOS's GroupNorm needs a multiple of 32.
        test_min_size, test_max_size: the sizes evaluation images are resized to (None: the
            training ``min_size`` / ``max_size``, torchvision's behaviour).
        **detector_kwargs: passed to torchvision's constructor (``min_size``, ``max_size``,
            ``score_thresh``, ``nms_thresh``, ``detections_per_img``; Faster R-CNN's ``box_score_thresh``
            ...); torchvision's defaults otherwise.

    Returns:
        The torchvision model, with ``model.spec`` (DetectorSpec) and ``model.pretrained_cfg``.
    """
    spec = DetectorSpec.from_any(name_or_spec)
    if stages is not None or attention_kwargs is not None:
        backbone = dataclasses.replace(
            spec.backbone,
            stages=spec.backbone.stages if stages is None else tuple(stages),
            attention_kwargs={**spec.backbone.attention_kwargs, **(attention_kwargs or {})},
        )
        spec = DetectorSpec(spec.detector, backbone)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"{spec.name}: num_classes counts the background (label 0) and the object classes, so it must be "
            f"an integer >= 2; got {num_classes!r}"
        )
    multiple = _FPN_CHANNEL_MULTIPLE.get(spec.detector, 1)
    if isinstance(fpn_channels, bool) or not isinstance(fpn_channels, int) or fpn_channels < 1 or fpn_channels % multiple:
        raise ValueError(
            f"{spec.name}: fpn_channels must be a positive integer"
            + (f" divisible by {multiple} (the head's GroupNorm groups)" if multiple > 1 else "")
            + f", got {fpn_channels!r}"
        )
    starts = {
        "pretrained_backbone=True": pretrained_backbone,
        "checkpoint_path": checkpoint_path is not None,
        "init_from": init_from is not None,
    }
    given = [start for start, value in starts.items() if value]
    if len(given) > 1:
        raise ValueError(
            f"{spec.name}: give one of pretrained_backbone=True, checkpoint_path and init_from, not "
            + (f"both {given[0]} and {given[1]}" if len(given) == 2 else "all three")
        )
    _check_detector_kwargs(spec, detector_kwargs)
    test_sizes = {
        name: check_int(spec.name, name, value)
        for name, value in (("test_min_size", test_min_size), ("test_max_size", test_max_size))
        if value is not None
    }
    source = _zoo_detector(spec, init_from) if init_from is not None else None
    trained = bool(given)
    layers = _validate_trainable_layers(trained, trainable_backbone_layers, 5, 3)

    body = pretrained_body(spec.backbone, pretrained_backbone)
    if trained:
        body = freeze_batch_norm_2d(body)
    model = _CONSTRUCTORS[spec.detector](
        _fpn_backbone(spec.detector, body, layers, fpn_channels), num_classes, **detector_kwargs
    )
    model.spec = spec
    # Resolved once, so that config.json and the card state the sizes evaluation runs at (one left out
    # is torchvision's: the last of several training min_sizes, the training max_size).
    evaluated_at = (None, None)
    if test_sizes:
        evaluated_at = (
            test_sizes.get("test_min_size", model.transform.min_size[-1]),
            test_sizes.get("test_max_size", model.transform.max_size),
        )
        model.transform = TestSizeTransform(model.transform, *evaluated_at)
    transform = model.transform
    model.pretrained_cfg = dict(
        architecture=spec.name,
        task="detection",
        detector=spec.detector,
        backbone=spec.backbone.name,
        num_classes=num_classes,
        fpn_channels=fpn_channels,
        min_size=transform.min_size[0] if len(transform.min_size) == 1 else tuple(transform.min_size),
        max_size=transform.max_size,
        test_min_size=evaluated_at[0],
        test_max_size=evaluated_at[1],
        image_mean=tuple(transform.image_mean),
        image_std=tuple(transform.image_std),
        **_thresholds(spec.detector, model),
        trainable_backbone_layers=layers,
        frozen_bn=trained,
        detector_kwargs={**detector_kwargs, **test_sizes},
        labels=None,
    )
    if checkpoint_path is not None:
        _load_detector_checkpoint(model, spec.detector, checkpoint_path)
    if source is not None:
        _init_from(model, *source)
    return model

