"""Video person re-ID networks: a frame backbone, temporal aggregation and a BNNeck.

A re-ID name is ``<arch>[-<attention>]+<temporal>[.<tag>]``: ``resnet50+sta``,
``resnet18-cbam+soft``, ``resnet18n+avg.tracklets``. The network maps
tracklets (B, T, C, H, W) to one embedding per tracklet:

    maps   = backbone.forward_features(frames)          (B*T, C', h, w), any attnzoo ResNet
    clip   = temporal(maps)                              (B, D)
    neck   = BN(clip)                                    BNNeck, bias frozen at 0
    logits = classifier(neck)                            (B, num_classes), no bias; training only

Temporal aggregation (``temporal``), the pool mechanisms of the attention
registry and two baselines:

- ``avg``, ``max``: global-average-pool each frame, then the mean / max over
  the frames (temporal average pooling, Gao and Nevatia 2018: the baseline); D = C';
- ``soft``, ``hard``: the registry's soft (softmax-weighted sum) and hard
  (k sampled frames, mean) attention pools over the pooled frame vectors; D = C';
- ``sta``: STA (Fu et al., AAAI 2019) on the frame maps themselves, its
  discriminative and global features concatenated; D = 2C'. Its inter-frame
  regulariser is returned in training for the task's loss.

BNNeck (Luo, Gu, Liao, Lai and Jiang, "Bag of Tricks and A Strong Baseline
for Deep Person Re-identification", CVPRW 2019, https://arxiv.org/abs/1903.07071):
the triplet loss sees the feature before the BN, the ID classifier the one
after; the BN's shift is frozen at zero and the classifier has no bias, as
there. In eval mode the network returns the feature after the BN (B, D),
what Luo et al. rank with. ``last_stride=1`` (their default, and STA's)
removes the last stage's downsampling, doubling the final map's height and
width.

``pretrained_cfg`` records ``task="reid"``, ``input_size`` (C, H, W),
``seq_len`` (T the network was trained with; any T works), ``embedding_dim``
(D) and ``num_classes``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from attnzoo._checks import check_int
from attnzoo.attention import create_attention

from .checkpoint import load_checkpoint
from .resnet import AttentionResNet, pretrained_body
from .spec import ARCHITECTURES, BackboneSpec, _closest, backbone_attentions, parse_model_name

__all__ = [
    "TEMPORAL",
    "ReIDSpec",
    "VideoReIDNetwork",
    "create_reid_network",
    "embed_loader",
    "embed_tracklets",
    "is_reid_name",
    "list_reid_models",
    "parse_reid_name",
]

TEMPORAL = ("avg", "max", "sta", "soft", "hard")
_POOL_MECHANISMS = ("sta", "soft", "hard")


@dataclass(frozen=True)
class ReIDSpec:
    """A video re-ID network: a backbone spec and a temporal aggregation (one of :data:`TEMPORAL`)."""

    backbone: BackboneSpec
    temporal: str
    temporal_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, BackboneSpec):
            object.__setattr__(self, "backbone", BackboneSpec.from_any(self.backbone))
        if self.temporal not in TEMPORAL:
            raise ValueError(
                f"unknown temporal aggregation {self.temporal!r}.{_closest(str(self.temporal), TEMPORAL)} "
                f"Known: {', '.join(TEMPORAL)}."
            )
        if not isinstance(self.temporal_kwargs, Mapping):
            raise ValueError(f"temporal_kwargs must be a mapping, got {type(self.temporal_kwargs).__name__}")
        if self.temporal_kwargs and self.temporal not in _POOL_MECHANISMS:
            raise ValueError(f"temporal_kwargs apply to {', '.join(_POOL_MECHANISMS)}, not to {self.temporal!r}")

    @property
    def name(self) -> str:
        """The model name: ``<arch>[-<attention>]+<temporal>``."""
        return f"{self.backbone.name}+{self.temporal}"

    @classmethod
    def from_any(cls, value: str | Mapping[str, Any] | ReIDSpec) -> ReIDSpec:
        """A spec from a re-ID name, a dict with the fields, or a spec."""
        if isinstance(value, ReIDSpec):
            return value
        if isinstance(value, str):
            return parse_reid_name(value)[0]
        if isinstance(value, Mapping):
            unknown = set(value) - {"backbone", "temporal", "temporal_kwargs"}
            if unknown or not {"backbone", "temporal"} <= set(value):
                raise ValueError(
                    "a re-ID spec needs 'backbone' and 'temporal' and may have 'temporal_kwargs'; "
                    f"got keys {sorted(value)}"
                )
            return cls(BackboneSpec.from_any(value["backbone"]), value["temporal"], dict(value.get("temporal_kwargs", {})))
        raise ValueError(f"a re-ID spec is a name, a dict or a ReIDSpec, got {type(value).__name__}")


def is_reid_name(name: object) -> bool:
    """Whether ``name`` is a re-ID name (a backbone name, ``+``, a temporal aggregation)."""
    return isinstance(name, str) and "+" in name.partition(".")[0]


def parse_reid_name(name: str) -> tuple[ReIDSpec, str | None]:
    """``"resnet18-cbam+sta.tracklets"`` -> (ReIDSpec(BackboneSpec("resnet18", "cbam"), "sta"), "tracklets")."""
    if not is_reid_name(name):
        raise ValueError(f"a re-ID name is <arch>[-<attention>]+<temporal>[.<tag>], got {name!r}")
    base, _, tag = name.partition(".")
    backbone, _, temporal = base.partition("+")
    if not backbone or not temporal:
        raise ValueError(f"re-ID name {name!r} needs a backbone before '+' and one of {', '.join(TEMPORAL)} after it")
    spec, _ = parse_model_name(backbone)
    return ReIDSpec(spec, temporal), tag or None


def list_reid_models() -> list[str]:
    """Every re-ID name: each architecture, plain and with each backbone attention, with each aggregation."""
    backbones = [*ARCHITECTURES, *(f"{arch}-{attention}" for arch in ARCHITECTURES for attention in backbone_attentions())]
    return [f"{backbone}+{temporal}" for backbone in backbones for temporal in TEMPORAL]


def _last_stage(body: AttentionResNet) -> nn.Sequential:
    # CIFAR ResNets have three stages and an empty layer4.
    stages = [getattr(body, f"layer{i}") for i in range(1, 5)]
    return [s for s in stages if isinstance(s, nn.Sequential) and len(s) > 0][-1]


def _remove_last_stride(body: AttentionResNet) -> None:
    """Stride 1 in the last stage: every stride-2 convolution of its first block (the block's own and its
    shortcut's; SK's paths, CondConv's and dynamic convolution's kernels too, which keep their stride as
    an int) becomes stride 1, without dilation, as re-ID models do."""
    for module in _last_stage(body)[0].modules():
        stride = getattr(module, "stride", None)
        if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) and stride in (2, (2, 2)):
            raise ValueError(f"{body.spec.name}: last_stride=1 needs strided convolutions, not pooling, in its last stage")
        if stride == (2, 2):
            module.stride = (1, 1)
        elif stride == 2:
            module.stride = 1


class VideoReIDNetwork(nn.Module):
    """Tracklets (B, T, C, H, W) -> embeddings (B, D) in eval mode (see the module docstring).

    In training mode the forward pass returns a dict: ``features`` (B, D) before the BNNeck (for the
    triplet loss), ``logits`` (B, num_classes) (None without a classifier) and ``regularization``
    (STA's inter-frame term, a scalar; None for the other aggregations).
    """

    def __init__(
        self,
        spec: ReIDSpec,
        body: AttentionResNet,
        num_classes: int = 0,
        last_stride: int = 1,
        input_size: Sequence[int] = (256, 128),
        seq_len: int = 4,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"{spec.name}: last_stride must be 1 or 2, got {last_stride!r}")
        check_int(spec.name, "num_classes", num_classes, 0)
        size = tuple(input_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"{spec.name}: input_size must be (height, width) in pixels, got {input_size!r}")
        check_int(spec.name, "seq_len", seq_len)
        self.spec = spec
        self.backbone = body
        if last_stride == 1:
            _remove_last_stride(body)
        channels = body.num_features
        self.pool = (
            create_attention(spec.temporal, channels, **spec.temporal_kwargs)
            if spec.temporal in _POOL_MECHANISMS
            else None
        )
        self.embedding_dim = 2 * channels if spec.temporal == "sta" else channels
        self.neck = nn.BatchNorm1d(self.embedding_dim)
        self.neck.bias.requires_grad_(False)
        self.last_stride = last_stride
        self.in_channels = in_channels
        self.pretrained_cfg: dict[str, Any] = {
            "architecture": spec.name,
            "task": "reid",
            "input_size": (self.in_channels, *size),
            "seq_len": seq_len,
            "embedding_dim": self.embedding_dim,
            "num_classes": 0,
            "last_stride": last_stride,
            "mean": body.pretrained_cfg.get("mean"),
            "std": body.pretrained_cfg.get("std"),
        }
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A new ID classifier for ``num_classes`` identities (0: none), e.g. to fine-tune on other people."""
        check_int(self.spec.name, "num_classes", num_classes, 0)
        self.classifier = nn.Linear(self.embedding_dim, num_classes, bias=False) if num_classes else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)  # Luo et al.'s initialisation of the ID classifier
        self.num_classes = self.pretrained_cfg["num_classes"] = num_classes

    def _check(self, x: Tensor) -> None:
        if x.ndim != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"{self.spec.name}: expected tracklets (B, T, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"{self.spec.name}: expected at least one tracklet of at least one frame, got {tuple(x.shape)}")

    def clip_features(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The aggregated feature (B, D) before the BNNeck, and STA's regulariser (None for the others)."""
        self._check(x)
        b, t = x.shape[:2]
        maps = self.backbone.forward_features(x.flatten(0, 1))
        maps = maps.view(b, t, *maps.shape[1:])
        if self.spec.temporal == "sta":
            regularization = self.pool.inter_frame_regularization(maps) if self.training else None
            return self.pool(maps), regularization
        frames = maps.mean((-2, -1))
        if self.spec.temporal == "avg":
            return frames.mean(1), None
        if self.spec.temporal == "max":
            return frames.amax(1), None
        return self.pool(frames), None

    def forward(self, x: Tensor) -> Tensor | dict[str, Tensor | None]:
        features, regularization = self.clip_features(x)
        # The embedding is ranked by distance: in float32 under mixed precision, where bf16 would tie neighbours.
        with torch.autocast(device_type=x.device.type, enabled=False):
            neck = self.neck(features.float())
        if not self.training:
            return neck
        logits = self.classifier(neck) if self.classifier is not None else None
        return {"features": features, "logits": logits, "regularization": regularization}


def create_reid_network(
    name_or_spec: str | Mapping[str, Any] | ReIDSpec,
    *,
    num_classes: int = 0,
    last_stride: int = 1,
    input_size: Sequence[int] = (256, 128),
    seq_len: int = 4,
    pretrained_backbone: bool = False,
    checkpoint_path: str | Path | None = None,
    stages: Sequence[int] | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    temporal_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> VideoReIDNetwork:
    """Build a video re-ID network by name (``"resnet50+sta"``; a tag is ignored), dict or spec.

    Args:
        name_or_spec: ``<arch>[-<attention>]+<temporal>``, a dict of :class:`ReIDSpec`'s fields, or a spec.
        num_classes: training identities of the ID classifier (0: none; the network then only embeds).
        last_stride: 1 (default, as re-ID models do) or 2 (the backbone's own).
        input_size: (height, width) of the frames it is meant for (recorded; any size runs).
        seq_len: frames per tracklet it is trained with (recorded; any T runs).
        pretrained_backbone: start the backbone from the zoo's ImageNet weights for its name, or else for
            its plain network (the attention modules then keep their initialisation).
        checkpoint_path: weights of the whole network (an attnzoo re-ID checkpoint).
        stages, attention_kwargs: the backbone mechanism's stages and arguments (see BackboneSpec).
        temporal_kwargs: arguments of the temporal mechanism (``sta``: ``num_parts``; ``hard``: ``k`` ...).
        **kwargs: passed to timm's ResNet (``drop_path_rate``, ``in_chans`` ...).
    """
    spec = ReIDSpec.from_any(name_or_spec)
    if stages is not None or attention_kwargs is not None:
        backbone = dataclasses.replace(
            spec.backbone,
            stages=spec.backbone.stages if stages is None else tuple(stages),
            attention_kwargs={**spec.backbone.attention_kwargs, **(attention_kwargs or {})},
        )
        spec = dataclasses.replace(spec, backbone=backbone)
    if temporal_kwargs:
        spec = dataclasses.replace(spec, temporal_kwargs={**spec.temporal_kwargs, **temporal_kwargs})
    if pretrained_backbone and checkpoint_path is not None:
        raise ValueError(f"{spec.name}: give pretrained_backbone or checkpoint_path, not both")
    body = pretrained_body(spec.backbone, pretrained_backbone, **kwargs)
    model = VideoReIDNetwork(
        spec, body, num_classes=num_classes, last_stride=last_stride, input_size=input_size, seq_len=seq_len,
        in_channels=kwargs.get("in_chans", 3),
    )
    if checkpoint_path is not None:
        load_checkpoint(model, checkpoint_path)
    return model


def embed_tracklets(model: nn.Module, tracklets: Tensor, seq_len: int) -> Tensor:
    """Embeddings (B, D) of tracklets (B, L, C, H, W) longer than ``seq_len``: the mean of the embeddings of
    their clips of ``seq_len`` frames (L a multiple of it), as dense evaluation averages them."""
    check_int("embed_tracklets", "seq_len", seq_len)
    b, length = tracklets.shape[:2]
    if length % seq_len:
        raise ValueError(f"tracklets of {length} frames do not split into clips of seq_len={seq_len}")
    clips = tracklets.reshape(b * (length // seq_len), seq_len, *tracklets.shape[2:])
    return model(clips).view(b, length // seq_len, -1).mean(1)


def embed_loader(model: nn.Module, loader: Iterable[Sequence[Tensor]], seq_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """Embeddings (N, D), person ids and camera ids of every tracklet an evaluation loader serves (batches
    ``(tracklets (B, L, C, H, W), pids, camids)``), by :func:`embed_tracklets`, in eval mode without gradients
    (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad():
            for tracklets, pids, camids in loader:
                rows.append((embed_tracklets(model, tracklets, seq_len), pids, camids))
    finally:
        model.train(was_training)
    embeddings, pids, camids = (torch.cat(column) for column in zip(*rows))
    return embeddings, pids, camids
