"""Video person re-identification: a frame backbone, temporal aggregation and a BNNeck, trained by ID and
metric losses and ranked by the Market-1501 / MARS protocol.

The network is :func:`attnzoo.backbones.video.create_reid_network`'s
(``<arch>[-<attention>]+<temporal>``, temporal in ``avg``, ``max``, ``sta``,
``soft``, ``hard``). The task adds the recipe of the strong video re-ID
baselines (Gao and Nevatia 2018; Luo et al. 2019, "Bag of Tricks"):

- loss: cross-entropy on the BNNeck's ID logits with label smoothing 0.1
  (Szegedy et al. 2016), plus the batch-hard triplet loss with margin 0.3 on
  the features before the BNNeck (Hermans, Beyer and Leibe, "In Defense of the
  Triplet Loss for Person Re-Identification", 2017: for each tracklet of the
  batch its farthest positive and nearest negative, Euclidean), plus for
  ``sta`` its inter-frame regulariser times ``regularization_weight``. The
  triplet loss is computed within each process's batch, as torchreid does
  under DDP (each rank draws whole P x K batches);
- optimiser: Adam, lr 3.5e-4, weight decay 5e-4 (Bag of Tricks); a linear
  warm-up over ``warmup_steps`` and by default a cosine decay to 0 over the run;
- evaluation: ``val`` and ``test`` take two loaders, query first, then
  gallery; each tracklet's embedding (after the BNNeck, what Bag of Tricks
  ranks with) is the mean of the embeddings of its clips of ``seq_len`` frames
  (the data module delivers whole tracklets cut to a multiple of it: dense
  evaluation) and is gathered from every process before ranking, so that a
  DDP run scores exactly what one process would; then CMC and mAP by
  :func:`attnzoo.tasks.reid_metrics.evaluate_ranking`, logged in percent as
  ``<stage>/rank1``, ``rank5``, ``rank10``, ``rank20`` and ``<stage>/mAP``.
  ``attnzoo fit`` keeps the best ``val/mAP``.

STA's paper does not state its regulariser's weight in the text available
here; attnzoo's default, 1, makes the term (a distance between L1-normalised
maps, at most 2) a small share of the loss.

:func:`show_reid` is what ``attnzoo show`` draws for a re-ID network: query tracklets with the weight of
each frame, and their best-ranked gallery tracklets.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from attnzoo import viz
from attnzoo._checks import check_int
from attnzoo.backbones.video import ReIDSpec, create_reid_network, embed_tracklets

from ._common import TaskModule, schedules
from ._pictures import check_count, model_name, task_model
from .reid_metrics import evaluate_ranking, pairwise_distance

__all__ = ["ReIDAdam", "VideoReID", "batch_hard_triplet_loss", "show_reid"]

RANKS = (1, 5, 10, 20)


class ReIDAdam(torch.optim.Adam):
    """Adam with Bag of Tricks' defaults: lr 3.5e-4, weight decay 5e-4.

    A class rather than a partial so that LightningCLI shows and overrides its
    arguments: ``--model.optimizer.lr 3e-4``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 3.5e-4, weight_decay: float = 5e-4) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)


def batch_hard_triplet_loss(features: Tensor, pids: Tensor, margin: float = 0.3) -> Tensor:
    """Hermans et al.'s batch-hard triplet loss: the mean over anchors of
    max(0, d(anchor, farthest positive) - d(anchor, nearest negative) + margin), Euclidean distances.
    Anchors without a positive or without a negative in the batch are left out (0 if none is left)."""
    features = features.float()
    squared = features.square().sum(1)
    # Off autocast: under mixed precision the Gram matrix would be taken in bf16 / fp16, and the
    # difference of squares loses the small distances the hardest pairs are made of.
    with torch.autocast(features.device.type, enabled=False):
        gram = features @ features.T
    distances = (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(1e-12).sqrt()
    same = pids[:, None] == pids[None, :]
    others = ~torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    positives, negatives = same & others, ~same
    hardest_positive = distances.masked_fill(~positives, float("-inf")).amax(1)
    hardest_negative = distances.masked_fill(~negatives, float("inf")).amin(1)
    usable = positives.any(1) & negatives.any(1)
    if not usable.any():
        return features.new_zeros(())
    return F.relu(hardest_positive[usable] - hardest_negative[usable] + margin).mean()


class VideoReID(TaskModule):
    """A video re-ID network trained on P x K batches of tracklets (see the module docstring).

    Args:
        backbone: the frame backbone, ``<arch>[-<attention>]`` (``resnet50``, ``resnet18-cbam``).
        temporal: ``avg`` (baseline), ``max``, ``sta``, ``soft`` or ``hard``.
        num_classes: training identities (the data module's ``num_classes``; LightningCLI links it).
        pretrained_backbone: start the backbone from the zoo's ImageNet weights (see
            :func:`~attnzoo.backbones.video.create_reid_network`).
        init_from: a zoo re-ID entry (or model folder) whose weights to start from, with a new ID classifier
            for ``num_classes`` identities; its network (backbone, its attention and stages, aggregation and
            their arguments) and last stride must be this task's.
        last_stride: 1 (default) or 2, the backbone's last stage stride.
        seq_len: frames per training tracklet (T), and the clip length of dense evaluation.
        input_size: (height, width) of the frames, recorded for the model card and ``attnzoo show``.
        stages, attention_kwargs: the backbone mechanism's stages and arguments.
        temporal_kwargs: arguments of the temporal mechanism (``sta``: ``num_parts``; ``hard``: ``k``).
        label_smoothing: of the ID cross-entropy.
        triplet_margin: of the batch-hard triplet loss.
        regularization_weight: weight of STA's inter-frame regulariser (unused by the others).
        metric: ``euclidean`` or ``cosine`` distance for ranking.
        optimizer: builds the optimiser; default :class:`ReIDAdam`.
        scheduler: builds a schedule stepped every epoch; None: cosine decay to 0 over the run, every step.
        warmup_steps, warmup_factor: linear warm-up from ``warmup_factor`` times the rate (0 steps: none).
    """

    checkpoint_monitor = ("val/mAP", "max")

    def __init__(
        self,
        backbone: str = "resnet50",
        temporal: str = "avg",
        num_classes: int = 0,
        pretrained_backbone: bool = False,
        init_from: str | None = None,
        last_stride: int = 1,
        seq_len: int = 4,
        input_size: Sequence[int] = (256, 128),
        stages: Sequence[int] | None = None,
        attention_kwargs: Mapping[str, Any] | None = None,
        temporal_kwargs: Mapping[str, Any] | None = None,
        label_smoothing: float = 0.1,
        triplet_margin: float = 0.3,
        regularization_weight: float = 1.0,
        metric: str = "euclidean",
        optimizer: OptimizerCallable = ReIDAdam,
        scheduler: LRSchedulerCallable | None = None,
        warmup_steps: int = 0,
        warmup_factor: float = 0.01,
    ) -> None:
        super().__init__()
        owner = "VideoReID"
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"{owner}: num_classes must be the number of training identities (at least 2), got {num_classes!r}; "
                "with attnzoo fit it comes from the data module"
            )
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"{owner}: label_smoothing must lie in [0, 1), got {label_smoothing!r}")
        if not triplet_margin >= 0:
            raise ValueError(f"{owner}: triplet_margin must be non-negative, got {triplet_margin!r}")
        if not regularization_weight >= 0:
            raise ValueError(f"{owner}: regularization_weight must be non-negative, got {regularization_weight!r}")
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"{owner}: metric must be 'euclidean' or 'cosine', got {metric!r}")
        check_int(owner, "warmup_steps", warmup_steps, 0)
        if not 0 < warmup_factor <= 1:
            raise ValueError(f"{owner}: warmup_factor must lie in (0, 1], got {warmup_factor!r}")
        k = (temporal_kwargs or {}).get("k")
        if temporal == "hard" and isinstance(k, int) and k > seq_len:
            raise ValueError(f"{owner}: hard attention keeps k={k} frames, more than the seq_len={seq_len} it is given")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        spec = ReIDSpec.from_any(f"{backbone}+{temporal}")
        self.model = create_reid_network(
            spec,
            num_classes=num_classes,
            last_stride=last_stride,
            input_size=input_size,
            seq_len=seq_len,
            pretrained_backbone=pretrained_backbone,
            stages=stages,
            attention_kwargs=attention_kwargs,
            temporal_kwargs=temporal_kwargs,
        )
        if init_from is not None:
            self._init_from(init_from)
        self.num_classes = num_classes
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self._embedded: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {}

    def _init_from(self, source: str) -> None:
        from attnzoo.zoo.hub import load

        start = load(source)
        if start.spec.name != self.model.spec.name:
            raise ValueError(
                f"VideoReID: init_from={source!r} is a {start.spec.name} network, not {self.model.spec.name}"
            )
        for what, theirs, mine in (
            ("spec (stages, attention and temporal arguments)", start.spec, self.model.spec),
            ("last_stride", start.last_stride, self.model.last_stride),
        ):
            if theirs != mine:
                raise ValueError(f"VideoReID: init_from={source!r} has {what} {theirs!r}, this task {mine!r}")
        state = {k: v for k, v in start.state_dict().items() if not k.startswith("classifier.")}
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a tensor of another shape
            raise ValueError(f"VideoReID: init_from={source!r} does not fit: {err}") from None
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise ValueError(f"VideoReID: init_from={source!r} does not fit: missing {missing}, unexpected {unexpected}")

    def forward(self, tracklets: Tensor) -> Tensor:
        return self.model(tracklets)

    def setup(self, stage: str) -> None:
        data = self._adopt_data("identities")
        if data is None:
            return
        frames = getattr(data, "seq_len", None)
        if frames is not None and frames != self.hparams.seq_len:
            raise ValueError(
                f"the data module's seq_len {frames} differs from the model's {self.hparams.seq_len}: dense evaluation "
                "cuts tracklets into the data's clips and embeds the model's (attnzoo fit links them)"
            )
        if getattr(data, "height", None) is not None:
            self.model.pretrained_cfg["input_size"] = (self.model.in_channels, data.height, data.width)

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        tracklets, pids = batch[0], batch[1]
        out = self.model(tracklets)
        ce = F.cross_entropy(out["logits"].float(), pids, label_smoothing=self.hparams.label_smoothing)
        triplet = batch_hard_triplet_loss(out["features"], pids, self.hparams.triplet_margin)
        loss = ce + triplet
        size = len(pids)
        if out["regularization"] is not None:
            loss = loss + self.hparams.regularization_weight * out["regularization"]
            self.log("train/regularization", out["regularization"], batch_size=size)
        accuracy = (out["logits"].argmax(1) == pids).float().mean()
        self.log_dict({"train/ce": ce, "train/triplet": triplet, "train/accuracy": accuracy}, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def embed(self, tracklets: Tensor) -> Tensor:
        """Embeddings (B, D) of tracklets (B, L, C, H, W), L a multiple of ``seq_len``: the mean over clips."""
        return embed_tracklets(self.model, tracklets, self.hparams.seq_len)

    def _collect(self, batch: Sequence[Tensor], dataloader_idx: int) -> None:
        if dataloader_idx not in (0, 1):
            raise ValueError(
                f"VideoReID evaluates two loaders, query then gallery; got a batch from loader {dataloader_idx}"
            )
        self._embedded.setdefault(dataloader_idx, []).append(
            (self.embed(batch[0]).float(), batch[1].long(), batch[2].long())
        )

    def _gathered(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """This loader's embeddings, pids and camids from every process, in the data set's order: each
        process pads its rows to the largest count, all_gather stacks them, the padding is dropped (each
        tracklet counts once) and the rows are put back where the data module's ShardSampler took them
        from (item j of process r is item r + j R), so ties rank as in one process."""
        parts = self._embedded.get(index, [])
        if parts:
            features, pids, camids = (torch.cat(column) for column in zip(*parts))
        else:  # a process whose shard of a small split is empty still takes part in the gathering
            features = torch.zeros(0, self.model.embedding_dim, device=self.device)
            pids = camids = torch.zeros(0, dtype=torch.long, device=self.device)
        world = self.trainer.world_size
        if world > 1:
            counts = self.all_gather(torch.tensor(len(pids), device=self.device)).flatten().tolist()
            most = max(counts)

            def padded(t: Tensor) -> Tensor:
                return torch.cat([t, t.new_zeros((most - len(t), *t.shape[1:]))])

            gathered = [self.all_gather(padded(t)) for t in (features, pids, camids)]
            order = torch.cat([rank + world * torch.arange(n) for rank, n in enumerate(counts)]).argsort()
            features, pids, camids = (
                torch.cat([g[rank, :n] for rank, n in enumerate(counts)])[order.to(g.device)] for g in gathered
            )
        if len(pids) == 0:
            raise ValueError(f"VideoReID: the {('query', 'gallery')[index]} loader gave no tracklets")
        return features, pids, camids

    def _rank(self, stage: str) -> None:
        query, gallery = self._gathered(0), self._gathered(1)
        self._embedded = {}
        result = evaluate_ranking(*query, *gallery, max_rank=max(RANKS), metric=self.hparams.metric)
        cmc = result["cmc"]
        metrics = {f"{stage}/rank{r}": 100 * float(cmc[min(r, len(cmc)) - 1]) for r in RANKS}
        metrics[f"{stage}/mAP"] = 100 * float(result["mAP"])
        # Every process holds the same gathered figures: no further reduction.
        self.log_dict(metrics)

    def on_validation_epoch_start(self) -> None:
        self._embedded = {}  # nothing left from an interrupted evaluation

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            # A few batches of each loader check that validation runs; ranking them would score a sliver of
            # the split, and could find no true match at all.
            self._embedded = {}
            return
        self._rank("val")

    def on_test_epoch_start(self) -> None:
        self._embedded = {}

    def test_step(self, batch: Sequence[Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect(batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._rank("test")

    def predict_step(self, batch: Sequence[Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """Embeddings (B, D) with the batch's person and camera ids."""
        return {"embeddings": self.embed(batch[0]).float().cpu(), "pids": batch[1].cpu(), "camids": batch[2].cpu()}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        return [optimizer], schedules(
            self, optimizer, self.scheduler_factory, self.hparams.warmup_steps, self.hparams.warmup_factor
        )


def show_reid(model: nn.Module | str | Path, path: str | Path, count: int = 4, top: int = 5) -> Path:
    """Draw a video re-ID network's ranking on TrackletsData's test split, one row per query.

    Each row is the query tracklet's clip (``seq_len`` evenly spaced frames, as the network embeds one)
    with each frame's weight in the embedding where the temporal mechanism has one (soft, hard, STA;
    equal for avg), then the ``top`` best-ranked gallery tracklets (their middle frame), framed green
    for the query's person and red otherwise, by the Market-1501 rule (the query's person in the
    query's camera is not ranked). The tracklets are those of TrackletsData at the network's frame size,
    embedded densely (all frames, in clips of ``seq_len``), as ``attnzoo test`` ranks them. A mechanism
    that weighs each frame per horizontal part (STA) has the query clips drawn again below, as
    :func:`attnzoo.viz.draw` draws items: each frame with its weight per part, titled with the mechanism.

    Args:
        model: a re-ID network from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
        path: the PNG to write.
        count: how many queries (1..32), the first of the test split's.
        top: gallery tracklets shown per query (1..10).
    """
    from attnzoo.backbones.video import embed_loader
    from attnzoo.data import TrackletsData
    from attnzoo.data.reid import evenly_spaced_indices

    check_count(count)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 10:
        raise ValueError(f"top must be an integer in 1..10, got {top!r}")
    model = task_model(model, "reid")
    cfg = model.pretrained_cfg
    _, height, width = cfg["input_size"]
    seq_len, temporal = cfg["seq_len"], model.spec.temporal
    data = TrackletsData(frame_size=(height, width), seq_len=seq_len, num_workers=0)
    data.trainer = None
    query_loader, gallery_loader = data.test_dataloader()
    query_embeddings = embed_loader(model, query_loader, seq_len)[0]
    gallery_embeddings = embed_loader(model, gallery_loader, seq_len)[0]
    queries, gallery = data.query[:count], data.gallery
    distances = pairwise_distance(query_embeddings[:count], gallery_embeddings)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    found = viz.mechanisms(model)
    clips, weights, rankings, parts = [], [], [], {}
    for row, query in enumerate(queries):
        frames = query.read(evenly_spaced_indices(query.num_frames, seq_len), height, width)
        clips.append(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
        _, maps = viz.attention_maps(model, ((clips[-1] - mean) / std)[None])
        weights.append(_frame_weights(maps, temporal, seq_len))
        # One caption a frame cannot hold weights per part (B, N, P): those the items picture draws below.
        for name, weighed in maps.items():
            if found[name].kind == "items" and weighed.dim() == 3:
                parts.setdefault(name, []).append(weighed[0])
        allowed = torch.tensor([not (g.pid == query.pid and g.camid == query.camid) for g in gallery])
        rankings.append(distances[row].masked_fill(~allowed, float("inf")).argsort()[:top].tolist())

    def paint(figure: Any) -> None:
        axes = figure.subplots(count, seq_len + top, squeeze=False)
        for row, (query, clip, clip_weights, order) in enumerate(zip(queries, clips, weights, rankings)):
            for column in range(seq_len):
                ax = axes[row, column]
                ax.imshow(clip[column].permute(1, 2, 0).numpy())
                caption = f"w {clip_weights[column]:.3f}" if clip_weights is not None else ""
                if column == 0:
                    caption = f"query {query.pid}, cam {query.camid}\n{caption}"
                ax.set_title(caption, fontsize=6)
            for rank, index in enumerate(order, start=1):
                match = gallery[index]
                ax = axes[row, seq_len + rank - 1]
                ax.imshow(match.read([match.num_frames // 2], height, width)[0])
                colour = "lime" if match.pid == query.pid else "red"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3)
                title_colour = "green" if colour == "lime" else "red"
                ax.set_title(f"#{rank}: {match.pid}, cam {match.camid}", fontsize=6, color=title_colour)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])

    shown = torch.stack(clips)
    ranked = viz.Section(0.75 * (seq_len + top) + 0.5, 1.6 * count, None, paint)
    title = f"{model_name(cfg)}: queries, their {top} best-ranked gallery tracklets (green: same person)"
    return viz.draw(shown[:, 0], parts, path, model, items=shown, title=title, sections=[ranked])


def _frame_weights(maps: Mapping[str, Tensor], temporal: str, frames: int) -> list[float] | None:
    """Each frame's share of a clip's embedding, from the temporal mechanism's map: soft's weights, hard's
    selection, STA's part scores averaged over the parts (each part's scores sum to 1 over the frames);
    ``avg`` weighs every frame the same; ``max`` has no per-frame weight."""
    if temporal == "avg":
        return [1 / frames] * frames
    if "pool" not in maps:
        return None
    weights = maps["pool"][0].float()
    return (weights.mean(-1) if temporal == "sta" else weights / weights.sum()).tolist()
