"""Attention-configured backbones and the task networks on them, built by name:
``create_model("resnet50-sk")``, ``create_model("fcos-resnet50-gc")``, ``create_model("rir-cbam")``,
``create_model("resnet50+sta")``."""
from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from timm.models._features import FeatureListNet
from torch import nn

from attnzoo._checks import check_int

from .checkpoint import load_checkpoint
from .detection import (
    DETECTOR_ARCHITECTURES,
    DETECTORS,
    DetectorSpec,
    create_detector,
    is_detector_name,
    misspelled_detector,
)
from .restoration import (
    RESTORATION_BODIES,
    CANet,
    DnCNN,
    ResidualInResidual,
    RestorationSpec,
    create_restorer,
    is_restoration_name,
    list_restoration_models,
    restore_tiled,
    self_ensemble,
)
from .resnet import AttentionResNet
from .spec import ARCHITECTURES, BackboneSpec, backbone_attentions
from .video import TEMPORAL, ReIDSpec, VideoReIDNetwork, create_reid_network, is_reid_name, list_reid_models

__all__ = [
    "ARCHITECTURES",
    "DETECTORS",
    "RESTORATION_BODIES",
    "AttentionResNet",
    "BackboneSpec",
    "CANet",
    "DetectorSpec",
    "DnCNN",
    "ResidualInResidual",
    "RestorationSpec",
    "ReIDSpec",
    "TEMPORAL",
    "VideoReIDNetwork",
    "create_detector",
    "create_model",
    "create_reid_network",
    "create_restorer",
    "list_models",
    "restore_tiled",
    "self_ensemble",
]


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Every buildable model name (each architecture, plain and with each backbone attention; each
    detector on each ImageNet-style one: ``"fcos-resnet50-gc"``; each restoration network: ``"dncnn"``,
    ``"rir-se"``; each re-ID network: ``"resnet50+sta"``) matching ``pattern`` (fnmatch wildcards: ``"resnet50-*"``, ``"*-cbam"``, ``"fcos-*"``);
    with ``pretrained=True``, the zoo's names with their weight tags (``"resnet50-sk.ra_in1k"``)."""
    if pretrained:
        from attnzoo.zoo.catalog import list_pretrained

        return list_pretrained(pattern)
    names = [arch for arch in ARCHITECTURES]
    names += [f"{arch}-{attention}" for arch in ARCHITECTURES for attention in backbone_attentions()]
    names += [
        f"{detector}-{backbone}"
        for detector in DETECTORS
        for backbone in names
        if backbone.partition("-")[0] in DETECTOR_ARCHITECTURES
    ]
    names += list_restoration_models()
    names += list_reid_models()
    return sorted(fnmatch.filter(names, pattern))


def _pretrained(name: str, spec: BackboneSpec, num_classes: int, kwargs: Mapping[str, Any]) -> AttentionResNet:
    """``spec`` with the zoo's weights for ``name``; a new classifier when ``num_classes`` differs."""
    from attnzoo.zoo.catalog import resolve
    from attnzoo.zoo.hub import build_from_config, fetch_pretrained

    config, weights = fetch_pretrained(resolve(name))
    if BackboneSpec.from_any(config["spec"]) != spec:
        raise ValueError(
            f"the zoo's weights for {name!r} are for {config['spec']}; stages and attention_kwargs "
            "cannot be changed with pretrained=True"
        )
    model = build_from_config(config, weights, **kwargs)
    if num_classes != config["num_classes"]:
        model.reset_classifier(num_classes)
        model.pretrained_cfg.update(num_classes=num_classes, labels=None)
    return model


def _pretrained_detector(name: str, num_classes: int | None, kwargs: Mapping[str, Any]) -> nn.Module:
    """The zoo's detector ``name``; with another ``num_classes`` than its weights have, a new class head."""
    from attnzoo.zoo.catalog import is_zoo_name, list_pretrained, resolve
    from attnzoo.zoo.hub import build_from_config, fetch_pretrained

    if not is_zoo_name(name):
        zoo = ", ".join(n for n in list_pretrained() if is_detector_name(n))
        raise ValueError(
            f"{name}: the zoo has no weights for this detector (its detectors: {zoo}); give init_from=<one of "
            "them> to start from one of the same detector and architecture, pretrained_backbone=True for the "
            "backbone's ImageNet weights, or checkpoint_path"
        )
    entry = resolve(name)
    config, weights = fetch_pretrained(entry)
    if num_classes is None or num_classes == config["num_classes"]:
        return build_from_config(config, weights, **kwargs)
    return create_detector(entry.spec, num_classes=num_classes, init_from=entry.name, **kwargs)


def _is_restorer(name: object) -> bool:
    if isinstance(name, Mapping):
        return "body" in name
    return isinstance(name, RestorationSpec) or is_restoration_name(name)


def _restorer(
    name: str | Mapping[str, Any] | RestorationSpec,
    pretrained: bool,
    checkpoint_path: str | Path | None,
    stages: Sequence[int] | None,
    attention_kwargs: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> nn.Module:
    """A restoration network: random, from ``checkpoint_path``, or the zoo's (rebuilt from its config.json)."""
    if not pretrained:
        return create_restorer(
            name, checkpoint_path=checkpoint_path, stages=stages, attention_kwargs=attention_kwargs, **kwargs
        )
    label = name if isinstance(name, str) else RestorationSpec.from_any(name).name
    return _rebuilt(label, "restoration network", checkpoint_path, dict(kwargs, stages=stages, attention_kwargs=attention_kwargs))


def _rebuilt(label: str, what: str, checkpoint_path: str | Path | None, given: Mapping[str, Any]) -> nn.Module:
    """The zoo's ``label``, rebuilt from its config.json as its weights were trained: nothing may be changed."""
    from attnzoo.zoo.catalog import resolve
    from attnzoo.zoo.hub import build_from_config, fetch_pretrained

    changed = [k for k, v in given.items() if v is not None] + (["checkpoint_path"] if checkpoint_path is not None else [])
    if changed:
        raise ValueError(f"{label}: a pretrained {what} is rebuilt as its weights were trained; drop {', '.join(changed)}")
    return build_from_config(*fetch_pretrained(resolve(label)))


def _is_reid(name: object) -> bool:
    if isinstance(name, Mapping):
        return "temporal" in name
    return isinstance(name, ReIDSpec) or is_reid_name(name)


def _reid(
    name: str | Mapping[str, Any] | ReIDSpec,
    pretrained: bool,
    num_classes: int | None,
    checkpoint_path: str | Path | None,
    stages: Sequence[int] | None,
    attention_kwargs: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
) -> nn.Module:
    """A video re-ID network: random, from ``checkpoint_path``, or the zoo's (rebuilt from its config.json)."""
    if not pretrained:
        return create_reid_network(
            name,
            num_classes=0 if num_classes is None else num_classes,
            checkpoint_path=checkpoint_path,
            stages=stages,
            attention_kwargs=attention_kwargs,
            **kwargs,
        )
    label = name if isinstance(name, str) else ReIDSpec.from_any(name).name
    model = _rebuilt(label, "re-ID network", checkpoint_path, dict(kwargs, stages=stages, attention_kwargs=attention_kwargs))
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


def _is_detector(name: object) -> bool:
    if isinstance(name, Mapping):
        return "detector" in name
    return isinstance(name, DetectorSpec) or is_detector_name(name)


def _name(name: str | Mapping[str, Any] | DetectorSpec) -> str:
    return name if isinstance(name, str) else DetectorSpec.from_any(name).name


def create_model(
    name: str | Mapping[str, Any] | BackboneSpec | DetectorSpec | RestorationSpec | ReIDSpec,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    checkpoint_path: str | Path | None = None,
    stages: Sequence[int] | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build an attention-configured backbone, a detector or a re-ID network on one, or a restoration network.

    A detector name (``"fcos-resnet50-gc"``), a dict with DetectorSpec's fields or a DetectorSpec
    builds a detector: :func:`attnzoo.backbones.detection.create_detector` with these arguments
    (``pretrained_backbone``, ``trainable_backbone_layers`` and torchvision's constructor arguments
    go in ``kwargs``); ``features_only`` and ``out_indices`` do not apply to it.

    A restoration name (``"dncnn"``, ``"rir-cbam"``, ``"canet"``), a dict with RestorationSpec's
    fields or a RestorationSpec builds a restoration network:
    :func:`attnzoo.backbones.restoration.create_restorer` (``in_channels`` and the network's own
    arguments, ``channels``, ``groups``, ``blocks``, ``unshuffle`` ..., go in ``kwargs``);
    ``num_classes``, ``features_only`` and ``out_indices`` do not apply to it.

    A re-ID name (``"resnet50+sta"``, ``"resnet18-cbam+soft"``), a dict with ReIDSpec's fields or a
    ReIDSpec builds a video re-ID network: :func:`attnzoo.backbones.video.create_reid_network`
    (``last_stride``, ``input_size``, ``seq_len``, ``pretrained_backbone``, ``temporal_kwargs`` go in
    ``kwargs``); ``num_classes`` is its ID classifier's (0, none, by default).

    Args:
        name: a model name (``"resnet50-se"``), a dict with BackboneSpec's fields, or a BackboneSpec.
        pretrained: load the zoo's weights for this name (tagged, or the default tag); with another
            ``num_classes`` than the weights have, the classifier (a detector's class head) is new. A
            detector with zoo weights (``"fcos-resnet50"``: torchvision's COCO weights) loads them
            with torchvision's frozen BN and epsilon; for others, see ``init_from`` in ``create_detector``.
        num_classes: classifier outputs (0 for none: the network returns pooled features); 1000 by
            default. For a detector, the object classes plus the background: 91 (COCO's) by default.
        features_only: return the feature maps of ``out_indices`` instead (timm's FeatureListNet,
            with ``feature_info.channels()`` and ``.reduction()``).
        out_indices: which features (0 = stem, 1.. = stages); all by default.
        checkpoint_path: weights to load: an attnzoo or timm checkpoint of the same network
            (safetensors, or a .pth/.pt/.bin read with ``weights_only=True``).
        stages: the stages (1-based) that carry the mechanism: for block and conv mechanisms, those
            whose blocks carry it; for stage mechanisms, those that get blocks, each at its paper's
            position within the stage (default: where the paper put it; see BackboneSpec).
        attention_kwargs: arguments for the attention mechanism.
        **kwargs: passed to timm's ResNet (``drop_rate``, ``drop_path_rate``, ``in_chans`` ...).
    """
    if _is_restorer(name):
        if num_classes is not None or features_only or out_indices is not None:
            raise ValueError(
                f"{name if isinstance(name, str) else RestorationSpec.from_any(name).name}: num_classes, "
                "features_only and out_indices apply to backbones, not to restoration networks"
            )
        return _restorer(name, pretrained, checkpoint_path, stages, attention_kwargs, kwargs)
    if _is_reid(name):
        if features_only or out_indices is not None:
            raise ValueError(
                f"{name if isinstance(name, str) else ReIDSpec.from_any(name).name}: features_only and "
                "out_indices apply to backbones, not to re-ID networks"
            )
        return _reid(name, pretrained, num_classes, checkpoint_path, stages, attention_kwargs, kwargs)
    if _is_detector(name):
        if features_only or out_indices is not None:
            raise ValueError(f"{_name(name)}: features_only and out_indices apply to backbones, not to detectors")
        if pretrained:
            if checkpoint_path is not None:
                raise ValueError(f"{_name(name)}: give pretrained=True or checkpoint_path, not both")
            if stages is not None or attention_kwargs is not None:
                raise ValueError(f"{_name(name)}: stages and attention_kwargs cannot be changed with pretrained=True")
            return _pretrained_detector(_name(name), num_classes, kwargs)
        return create_detector(
            name,
            num_classes=91 if num_classes is None else num_classes,
            checkpoint_path=checkpoint_path,
            stages=stages,
            attention_kwargs=attention_kwargs,
            **kwargs,
        )
    if isinstance(name, str) and (close := misspelled_detector(name)):
        raise ValueError(f"unknown model {name!r}: is its detector {close}? Detectors: {', '.join(DETECTORS)}.")
    num_classes = 1000 if num_classes is None else num_classes
    spec = BackboneSpec.from_any(name)
    if stages is not None or attention_kwargs is not None:
        spec = dataclasses.replace(
            spec,
            stages=spec.stages if stages is None else tuple(stages),
            attention_kwargs={**spec.attention_kwargs, **(attention_kwargs or {})},
        )
    check_int("create_model", "num_classes", num_classes, 0)
    if pretrained and checkpoint_path is not None:
        raise ValueError("give pretrained=True or checkpoint_path, not both")
    if pretrained:
        model = _pretrained(name if isinstance(name, str) else spec.name, spec, num_classes, kwargs)
    else:
        model = AttentionResNet(spec, num_classes=num_classes, **kwargs)
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    if features_only:
        indices = tuple(range(model.num_stages + 1)) if out_indices is None else tuple(out_indices)
        bad = [i for i in indices if not 0 <= i <= model.num_stages]
        if bad or not indices:
            raise ValueError(f"out_indices must lie in 0..{model.num_stages} for {spec.arch}, got {out_indices!r}")
        return FeatureListNet(model, out_indices=indices)
    return model
