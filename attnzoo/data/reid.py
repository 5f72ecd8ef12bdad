"""Video person re-identification data: tracklets, temporal sampling, P x K identity batches, and the
MARS, iLIDS-VID, PRID-2011 and own-folder layouts.

A :class:`Tracklet` is one person seen by one camera: frames in time order, read from image files
or rendered by a callable (for synthetic data). :class:`ReIDData` turns lists of them (train,
query, gallery, optionally a val query/gallery pair) into loaders; :class:`MarsData`,
:class:`ILidsVidData`, :class:`Prid2011Data` and :class:`TrackletFolderData` read the lists from
a data set's published layout (see each class).

Batches:

- train: ``(clips, labels, camids)``: clips (P*K, T, 3, H, W) float32, labels (P*K,) int64 (the
  train person ids relabelled 0..num_classes-1 in the order of the sorted ids, for a classifier
  head), camids (P*K,) int64. Each batch is P identities x K tracklets (:class:`IdentityBatchSampler`);
  each clip is T = ``seq_len`` frames drawn by restricted random sampling
  (:func:`restricted_random_indices`), the whole clip flipped left-right with probability 1/2
  (the only augmentation). An epoch takes every train identity (up to P * world size - 1 of them
  left over) once, split over the processes: ``num_identities // (p * world_size)`` batches each.
- val and test: two loaders, ``[query, gallery]``, of ``(clips, pids, camids)`` with the original
  person and camera ids. ``eval_sampling="dense"`` (default): one tracklet a batch, clips
  (1, L, 3, H, W) holding all its frames, L padded to a multiple of T by repeating frames from the
  start (:func:`dense_indices`): a consumer reshapes to (L / T, T, 3, H, W) and averages the chunks'
  embeddings. ``"evenly"``: T evenly spaced frames (:func:`evenly_spaced_indices`), clips
  (B, T, 3, H, W) with B = ``eval_batch_size``.

Frames are read as RGB with ``load_image``, resized to ``height`` x ``width`` (bilinear, Pillow), and
normalised with ImageNet's mean and std (as timm's and torchreid's re-ID models expect).

Data sets without a val split (MARS, iLIDS-VID, PRID-2011: their protocols have none) have no
validation loaders: ``val_dataloader()`` returns ``[]`` and Lightning skips validation.

A train tracklet shorter than T frames cannot give T distinct frames: ``short_tracklets`` says what
happens: ``"error"`` (the default except for MARS) refuses the data at construction with a ValueError
naming how many there are and one of them; ``"drop"`` leaves them out of training (before the
relabelling); ``"repeat"`` (MARS's default) takes all their frames repeated cyclically (0, 1, 0, 1
for 2 frames and T = 4), as Gao & Nevatia's training loader does. Val and test tracklets of any
length are fine. Query and gallery ids that do not overlap at all are refused too.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from attnzoo._checks import check_int

from ._common import is_image, load_image

__all__ = [
    "IdentityBatchSampler",
    "IdentitySampler",
    "ILidsVidData",
    "MarsData",
    "Prid2011Data",
    "ReIDData",
    "ShardSampler",
    "Tracklet",
    "TrackletFolderData",
    "dense_indices",
    "evenly_spaced_indices",
    "restricted_random_indices",
]

_EVAL_SAMPLINGS = ("dense", "evenly")
_SHORT_POLICIES = ("error", "drop", "repeat")
_SHOWN = 3  # offending items named in an error


# ----------------------------------------------------------------------------------------------- tracklets


@dataclass(frozen=True)
class Tracklet:
    """One person seen by one camera: ``num_frames`` frames in time order.

    Give exactly one of:

    - ``frames``: the image files, in time order (a list is stored as a tuple of str);
      ``num_frames`` is their count.
    - ``render``: a callable returning all frames as a uint8 array (num_frames, H, W, 3), for
      synthetic data; ``num_frames`` must then be given. It is called each time the tracklet is
      loaded, in DataLoader workers too: make it picklable (a module-level function or class).

    ``pid`` and ``camid`` are the person's and the camera's original ids (for evaluation; the
    training labels are made from ``pid``).
    """

    pid: int
    camid: int
    frames: tuple[str, ...] = ()
    render: Callable[[], np.ndarray] | None = None
    num_frames: int | None = None

    def __post_init__(self) -> None:
        for name in ("pid", "camid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"Tracklet: {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.frames, (str, os.PathLike)):
            raise ValueError(f"Tracklet: frames must be a sequence of paths, not one str or path: {self.frames!r}")
        frames = tuple(str(frame) for frame in self.frames)
        object.__setattr__(self, "frames", frames)
        if (len(frames) > 0) == (self.render is not None):
            raise ValueError("Tracklet: give either frames (image files) or render (a callable), not both or neither")
        if frames:
            if self.num_frames is not None and self.num_frames != len(frames):
                raise ValueError(f"Tracklet: num_frames {self.num_frames} differs from the {len(frames)} frames given")
            object.__setattr__(self, "num_frames", len(frames))
        else:
            if not callable(self.render):
                raise ValueError(f"Tracklet: render must be callable, got {self.render!r}")
            check_int("Tracklet", "num_frames (required with render)", self.num_frames, 1)

    def describe(self) -> str:
        """The tracklet in words, for messages: its folder (or that it is rendered), person, camera, length."""
        where = os.path.dirname(self.frames[0]) if self.frames else "rendered tracklet"
        return f"{where} (person {self.pid}, camera {self.camid}, {self.num_frames} frames)"

    def read(self, indices: Sequence[int], height: int, width: int) -> np.ndarray:
        """Frames ``indices`` as a uint8 array (len(indices), height, width, 3), resized bilinearly."""
        if self.frames:
            images = [load_image(self.frames[i], "RGB") for i in indices]
        else:
            pixels = np.asarray(self.render())
            expected = pixels.ndim == 4 and pixels.shape[0] == self.num_frames and pixels.shape[3] == 3
            if pixels.dtype != np.uint8 or not expected:
                raise ValueError(
                    f"Tracklet: render of {self.describe()} must return a uint8 array ({self.num_frames}, H, W, 3), "
                    f"got {pixels.dtype} {tuple(pixels.shape)}"
                )
            images = [Image.fromarray(pixels[i]) for i in indices]
        size = (width, height)
        resized = [im if im.size == size else im.resize(size, Image.Resampling.BILINEAR) for im in images]
        return np.stack([np.asarray(im) for im in resized])


# -------------------------------------------------------------------------------------- temporal sampling


def _check_lengths(owner: str, num_frames: int, seq_len: int) -> None:
    check_int(owner, "num_frames", num_frames, 1)
    check_int(owner, "seq_len", seq_len, 1)


def restricted_random_indices(num_frames: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """Restricted random sampling (Li et al. 2018): the frames cut into ``seq_len`` chunks of equal length
    (to within one frame), one frame drawn uniformly from each; increasing int64 indices (seq_len,).

    A tracklet needs at least ``seq_len`` frames (ValueError otherwise).
    """
    _check_lengths("restricted_random_indices", num_frames, seq_len)
    if num_frames < seq_len:
        raise ValueError(
            f"restricted_random_indices: a tracklet of {num_frames} frames cannot give seq_len={seq_len} "
            "distinct frames"
        )
    bounds = np.arange(seq_len + 1, dtype=np.int64) * num_frames // seq_len
    return rng.integers(bounds[:-1], bounds[1:]).astype(np.int64)


def dense_indices(num_frames: int, seq_len: int) -> np.ndarray:
    """All frames in order, padded by repeating frames from the start (cyclically) to a multiple of ``seq_len``:
    int64 (ceil(num_frames / seq_len) * seq_len,); e.g. 5 frames, seq_len 4: 0 1 2 3 4 0 1 2."""
    _check_lengths("dense_indices", num_frames, seq_len)
    return np.arange(math.ceil(num_frames / seq_len) * seq_len, dtype=np.int64) % num_frames


def evenly_spaced_indices(num_frames: int, seq_len: int) -> np.ndarray:
    """``seq_len`` frames at the centres of ``seq_len`` equal chunks: int64 (seq_len,), non-decreasing; a
    tracklet shorter than ``seq_len`` has frames repeated in time order (2 frames, seq_len 4: 0 0 1 1)."""
    _check_lengths("evenly_spaced_indices", num_frames, seq_len)
    return (2 * np.arange(seq_len, dtype=np.int64) + 1) * num_frames // (2 * seq_len)


# ---------------------------------------------------------------------------------------------- samplers


def _distributed(num_replicas: int | None, rank: int | None, owner: str) -> tuple[int, int]:
    """(num_replicas, rank): those given, else torch.distributed's when it is initialised, else (1, 0)."""
    initialised = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    check_int(owner, "num_replicas", num_replicas, 1)
    check_int(owner, "rank", rank, 0)
    if rank >= num_replicas:
        raise ValueError(f"{owner}: rank must be below num_replicas={num_replicas}, got {rank}")
    return num_replicas, rank


class IdentityBatchSampler(Sampler[list[int]]):
    """P x K batches (Hermans et al. 2017): each batch is ``p`` identities with ``k`` items each.

    Args:
        pids: the identity of each dataset item (any hashable ids; the items are 0..len(pids)-1).
        p: identities per batch.
        k: items per identity; an identity with fewer than ``k`` items has them drawn with replacement,
            one with at least ``k`` without.
        seed: with the epoch (``set_epoch``), what the order is drawn from: the same seed and epoch give
            the same batches, another epoch another order.
        num_replicas, rank: the processes sharing the epoch and this one's place among them; None:
            torch.distributed's when it is initialised, else 1 and 0.

    An epoch visits the identities once, in an order drawn afresh each epoch: step ``s`` gives
    process ``r`` the identities at ``(s * num_replicas + r) * p`` ... ``+ p`` of that order, so the
    processes' batches of one step hold disjoint identities, and every process has
    ``len(self) = num_identities // (p * num_replicas)`` batches (the identities left over wait for
    another epoch's order). Iterating yields lists of ``p * k`` item indices, identity by identity.

    Under Lightning give the DataLoader :class:`IdentitySampler` (this, flattened) as its
    ``sampler``, not this as its ``batch_sampler``: see there why.
    """

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        owner = "IdentityBatchSampler"
        check_int(owner, "p", p, 1)
        check_int(owner, "k", k, 1)
        check_int(owner, "seed", seed, 0)
        self.num_replicas, self.rank = _distributed(num_replicas, rank, owner)
        groups: dict[object, list[int]] = {}
        for index, pid in enumerate(pids):
            groups.setdefault(pid, []).append(index)
        self.identities = sorted(groups)
        self._items = [np.asarray(groups[pid], dtype=np.int64) for pid in self.identities]
        if len(self.identities) < p * self.num_replicas:
            raise ValueError(
                f"{owner}: {len(self.identities)} identities are too few for p={p} identities a batch on "
                f"{self.num_replicas} process(es): at least {p * self.num_replicas} needed"
            )
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to draw (all processes must use the same)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.identities) // (self.p * self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        # Every process draws the whole epoch from the same generator and keeps its own share, so that
        # the shares are disjoint without any communication.
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.identities))
        chosen = [rng.choice(items, self.k, replace=len(items) < self.k) for items in self._items]
        width = self.p * self.num_replicas
        for step in range(len(self)):
            start = step * width + self.rank * self.p
            yield np.concatenate([chosen[i] for i in order[start : start + self.p]]).tolist()


class IdentitySampler(DistributedSampler):
    """An :class:`IdentityBatchSampler`'s batches back to back, one item index at a time: the sampler of a
    DataLoader with ``batch_size = p * k`` (which cuts them into the same batches again).

    Why this shape, from Lightning 2.6's source (``trainer/connectors/data_connector.py``,
    ``fabric/utilities/data.py``): under a distributed strategy with ``use_distributed_sampler=True``
    (the default) Lightning rebuilds every DataLoader whose ``.sampler`` is not a DistributedSampler.
    A DataLoader given a ``batch_sampler`` still has a ``.sampler`` (a SequentialSampler), so Lightning
    would wrap that in a DistributedSampler and re-create the batch sampler as ``cls(sampler,
    batch_size=..., drop_last=...)`` (or from its saved ``sampler`` argument for BatchSampler
    subclasses), and a class without that signature raises a TypeError: a P x K batch sampler is either
    refused or stripped of its identity logic. A ``.sampler`` that *is* a DistributedSampler makes
    Lightning leave the DataLoader alone, with no flag; and Lightning calls ``set_epoch`` on
    ``dataloader.sampler`` and ``dataloader.batch_sampler.sampler`` before each epoch (not on a
    ``batch_sampler`` itself), which reaches this one. DistributedSampler's own ``__init__`` is not
    used: the replicas and rank are the batch sampler's.
    """

    def __init__(self, batches: IdentityBatchSampler) -> None:
        self.batches = batches
        self.num_replicas, self.rank = batches.num_replicas, batches.rank
        self.seed, self.epoch, self.shuffle, self.drop_last = batches.seed, batches.epoch, True, True
        self.batch_size = batches.p * batches.k
        self.num_samples = len(batches) * self.batch_size
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches:
            yield from batch


class ShardSampler(DistributedSampler):
    """Evaluation items ``rank, rank + R, rank + 2R ...`` for process ``rank`` of R, in order, without the
    padding DistributedSampler adds to even out the shares: a tracklet counted twice would change the
    ranking, and the task gathers every process's embeddings, so DDP scores exactly what one process
    does. Being a DistributedSampler, Lightning leaves the loader that holds it as it is."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


# ---------------------------------------------------------------------------------------------- datasets


def _to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 (L, H, W, 3) -> float32 (L, 3, H, W), ImageNet-normalised."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    return clip.sub_(mean).div_(std)


class _TrainClips(Dataset):
    """``(clip (T, 3, H, W), label, camid)``: restricted random frames, flipped as a whole with probability 1/2."""

    def __init__(self, tracklets: list[Tracklet], labels: list[int], seq_len: int, height: int, width: int) -> None:
        self.tracklets, self.labels = tracklets, labels
        self.seq_len, self.height, self.width = seq_len, height, width

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        tracklet = self.tracklets[index]
        # From torch's random state, which the DataLoader seeds per worker and epoch (seed_everything: repeatable).
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        if tracklet.num_frames >= self.seq_len:
            indices = restricted_random_indices(tracklet.num_frames, self.seq_len, rng)
        else:  # short_tracklets="repeat"
            indices = np.arange(self.seq_len) % tracklet.num_frames
        clip = _to_tensor(tracklet.read(indices.tolist(), self.height, self.width))
        if rng.random() < 0.5:
            clip = clip.flip(-1)
        return clip, self.labels[index], tracklet.camid


class _EvalClips(Dataset):
    """``(clip, pid, camid)``: all frames padded to a multiple of T (dense), or T evenly spaced ones."""

    def __init__(self, tracklets: list[Tracklet], seq_len: int, height: int, width: int, sampling: str) -> None:
        self.tracklets, self.seq_len, self.height, self.width = tracklets, seq_len, height, width
        self.indices = dense_indices if sampling == "dense" else evenly_spaced_indices

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        tracklet = self.tracklets[index]
        indices = self.indices(tracklet.num_frames, self.seq_len).tolist()
        return _to_tensor(tracklet.read(indices, self.height, self.width)), tracklet.pid, tracklet.camid


# ----------------------------------------------------------------------------------------- the base module


def _examples(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


class ReIDData(L.LightningDataModule):
    """Video re-ID loaders from lists of :class:`Tracklet` (see the module docstring for the batches).

    Args:
        train, query, gallery: the splits; train's person ids become the classes.
        val_query, val_gallery: a validation pair (both or neither); without, no validation.
        seq_len: T, frames per training clip (and the chunk length of dense evaluation).
        height, width: the frame size clips are resized to.
        p, k: identities per training batch and tracklets per identity (batches of p * k clips).
        eval_batch_size: tracklets per val/test batch with ``eval_sampling="evenly"`` (dense: 1).
        num_workers: DataLoader worker processes.
        seed: seed of the identity order (with the epoch, which Lightning sets).
        eval_sampling: ``"dense"`` (all frames) or ``"evenly"`` (T evenly spaced ones).
        short_tracklets: train tracklets shorter than T: ``"error"``, ``"drop"`` or ``"repeat"``.

    Set at construction: ``num_classes`` (train identities, for LightningCLI to link into the model),
    ``train_pids`` (the sorted original train ids: label i is ``train_pids[i]``), ``dataset`` (a
    name; None here), and the split lists (train after ``short_tracklets="drop"``).
    """

    def __init__(
        self,
        train: Sequence[Tracklet],
        query: Sequence[Tracklet],
        gallery: Sequence[Tracklet],
        val_query: Sequence[Tracklet] | None = None,
        val_gallery: Sequence[Tracklet] | None = None,
        seq_len: int = 4,
        height: int = 256,
        width: int = 128,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        eval_sampling: str = "dense",
        short_tracklets: str = "error",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value, minimum in (
            ("seq_len", seq_len, 1), ("height", height, 1), ("width", width, 1), ("p", p, 1), ("k", k, 1),
            ("eval_batch_size", eval_batch_size, 1), ("num_workers", num_workers, 0), ("seed", seed, 0),
        ):  # fmt: skip
            check_int(owner, name, value, minimum)
        if p * k < 2:
            raise ValueError(f"{owner}: a batch of p * k = {p * k} tracklet cannot train (BNNeck and triplet loss need 2)")
        if eval_sampling not in _EVAL_SAMPLINGS:
            raise ValueError(
                f"{owner}: eval_sampling must be one of {', '.join(_EVAL_SAMPLINGS)}, got {eval_sampling!r}"
            )
        if short_tracklets not in _SHORT_POLICIES:
            raise ValueError(
                f"{owner}: short_tracklets must be one of {', '.join(_SHORT_POLICIES)}, got {short_tracklets!r}"
            )
        if (val_query is None) != (val_gallery is None):
            raise ValueError(f"{owner}: give both val_query and val_gallery, or neither")
        self.seq_len, self.height, self.width, self.p, self.k = seq_len, height, width, p, k
        self.eval_batch_size, self.num_workers, self.seed = eval_batch_size, num_workers, seed
        self.eval_sampling, self.short_tracklets = eval_sampling, short_tracklets
        self.dataset: str | None = None

        splits = {"train": train, "query": query, "gallery": gallery}
        if val_query is not None:
            splits.update(val_query=val_query, val_gallery=val_gallery)
        for name, split in splits.items():
            split = list(split)
            if not split:
                raise ValueError(f"{owner}: the {name} split holds no tracklets")
            wrong = [repr(type(t).__name__) for t in split if not isinstance(t, Tracklet)]
            if wrong:
                raise ValueError(f"{owner}: the {name} split must hold Tracklets, got {_examples(wrong)}")
            splits[name] = split

        short = [t for t in splits["train"] if t.num_frames < seq_len]
        if short and short_tracklets == "error":
            raise ValueError(
                f"{owner}: {len(short)} train tracklets have fewer than seq_len={seq_len} frames, e.g. "
                f"{short[0].describe()}: give short_tracklets='repeat' (their frames repeated) or 'drop' "
                f"(left out), or a smaller seq_len"
            )
        if short and short_tracklets == "drop":
            splits["train"] = [t for t in splits["train"] if t.num_frames >= seq_len]
            if not splits["train"]:
                raise ValueError(f"{owner}: every train tracklet has fewer than seq_len={seq_len} frames")

        self.train: list[Tracklet] = splits["train"]
        self.query: list[Tracklet] = splits["query"]
        self.gallery: list[Tracklet] = splits["gallery"]
        self.val_query: list[Tracklet] | None = splits.get("val_query")
        self.val_gallery: list[Tracklet] | None = splits.get("val_gallery")
        self._check_overlap("query", "gallery")
        if self.val_query is not None:
            self._check_overlap("val_query", "val_gallery")

        self.train_pids: list[int] = sorted({t.pid for t in self.train})
        self.num_classes = len(self.train_pids)
        if self.num_classes < p:
            raise ValueError(
                f"{owner}: the train split has {self.num_classes} identities, fewer than p={p} identities a batch"
            )
        label = {pid: i for i, pid in enumerate(self.train_pids)}
        self._train_labels = [label[t.pid] for t in self.train]

    def _check_overlap(self, query: str, gallery: str) -> None:
        query_ids = {t.pid for t in getattr(self, query)}
        gallery_ids = {t.pid for t in getattr(self, gallery)}
        if not query_ids & gallery_ids:
            raise ValueError(
                f"{type(self).__name__}: ids that do not match between {query} and {gallery}: none of the "
                f"{len(query_ids)} {query} person ids (e.g. {sorted(query_ids)[:_SHOWN]}) is among the "
                f"{len(gallery_ids)} {gallery} ones (e.g. {sorted(gallery_ids)[:_SHOWN]})"
            )

    def identity_sampler(self) -> IdentitySampler:
        """The training loader's sampler: P x K batches over the trainer's processes (all of them share the
        identities of an epoch), or torch.distributed's / one process without a trainer."""
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (None, None)
        batches = IdentityBatchSampler(self._train_labels, self.p, self.k, self.seed, replicas, rank)
        return IdentitySampler(batches)

    def train_dataloader(self) -> DataLoader:
        clips = _TrainClips(self.train, self._train_labels, self.seq_len, self.height, self.width)
        return DataLoader(
            clips,
            batch_size=self.p * self.k,
            sampler=self.identity_sampler(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def _eval_loaders(self, query: list[Tracklet], gallery: list[Tracklet]) -> list[DataLoader]:
        batch_size = 1 if self.eval_sampling == "dense" else self.eval_batch_size
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        loaders = []
        for split in (query, gallery):
            clips = _EvalClips(split, self.seq_len, self.height, self.width, self.eval_sampling)
            loaders.append(
                DataLoader(
                    clips,
                    batch_size=batch_size,
                    sampler=ShardSampler(clips, replicas, rank),
                    num_workers=self.num_workers,
                    persistent_workers=self.num_workers > 0,
                    pin_memory=torch.cuda.is_available(),
                )
            )
        return loaders

    def val_dataloader(self) -> list[DataLoader]:
        """``[query, gallery]`` of the val split; ``[]`` (no validation) without one."""
        if self.val_query is None:
            return []
        return self._eval_loaders(self.val_query, self.val_gallery)

    def test_dataloader(self) -> list[DataLoader]:
        """``[query, gallery]``."""
        return self._eval_loaders(self.query, self.gallery)


# ------------------------------------------------------------------------------------------- the layouts


def _missing(owner: str, path: Path, layout: str) -> ValueError:
    kind = "folder" if not path.suffix else "file"
    return ValueError(f"{owner}: {kind} {path} does not exist; expected the layout {layout}")


def _require(owner: str, layout: str, *paths: Path) -> None:
    for path in paths:
        if not path.exists():
            raise _missing(owner, path, layout)


def _frame_files(owner: str, folder: Path, layout: str) -> tuple[str, ...]:
    """The image files directly in a tracklet folder, sorted by name (hidden ones left out)."""
    if not folder.is_dir():
        raise _missing(owner, folder, layout)
    try:
        names = sorted(n for n in os.listdir(folder) if is_image(n) and not n.startswith("."))
    except OSError as err:
        raise ValueError(f"{owner}: cannot list {folder}: {err}") from err
    if not names:
        raise ValueError(f"{owner}: no frames (image files) in {folder}; expected the layout {layout}")
    return tuple(str(folder / n) for n in names)


def _loadmat(owner: str, path: Path, key: str, layout: str) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise _missing(owner, path, layout)
    try:
        content = loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError ... on a damaged file
        raise ValueError(f"{owner}: cannot read {path} as a MATLAB file: {err}") from err
    if key not in content:
        keys = ", ".join(k for k in content if not k.startswith("__"))
        raise ValueError(f"{owner}: {path} holds no {key!r} (it has {keys}); expected the layout {layout}")
    return np.asarray(content[key])


_MARS_LAYOUT = (
    "root/bbox_train/<pid>/<frame>.jpg, root/bbox_test/<pid>/<frame>.jpg and root/info/{train_name.txt, "
    "test_name.txt, tracks_train_info.mat, tracks_test_info.mat, query_IDX.mat}"
)


class MarsData(ReIDData):
    """MARS (Zheng et al. 2016) in its published layout::

        root/bbox_train/<pid>/<name>.jpg       e.g. bbox_train/0001/0001C1T0001F001.jpg
        root/bbox_test/<pid>/<name>.jpg        pids 0000 (distractors) and 00-1 (junk) included
        root/info/train_name.txt, test_name.txt                  frame names, one a line, in tracklet order
        root/info/tracks_train_info.mat, tracks_test_info.mat    track_train_info, track_test_info
        root/info/query_IDX.mat                                  query_IDX

    As torchreid reads it: ``track_*_info`` is (N, 4): start and end row (1-based, inclusive) of the
    tracklet's frames in the name list, person id, camera (1-6); a frame's file is
    ``bbox_<split>/<name[:4]>/<name>`` (person ``name[:4]``, camera ``name[5]``). ``query_IDX`` holds
    1-based rows of ``track_test_info``: the query tracklets; the gallery is every other test
    tracklet. Tracklets of person -1 (junk) are dropped everywhere; person 0 (distractors) stays in
    the gallery. Camera ids are 0-based (the .mat's minus 1). Expected: 625 train identities, 8298
    train / 1980 query / 9330 gallery tracklets.

    Every frame name is checked against its folder's listing at construction. Arguments after ``root``
    are :class:`ReIDData`'s; ``short_tracklets`` defaults to ``"repeat"`` here, as Gao & Nevatia's
    MARS training does for tracklets shorter than T.
    """

    def __init__(
        self,
        root: str | Path,
        seq_len: int = 4,
        height: int = 256,
        width: int = 128,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        eval_sampling: str = "dense",
        short_tracklets: str = "repeat",
    ) -> None:
        self.root = Path(root)
        owner, info = "MarsData", self.root / "info"
        _require(owner, _MARS_LAYOUT, self.root, self.root / "bbox_train", self.root / "bbox_test", info)
        listings: dict[Path, set[str]] = {}
        train_names = self._names(info / "train_name.txt")
        test_names = self._names(info / "test_name.txt")
        tracks_train = self._tracks(info / "tracks_train_info.mat", "track_train_info", len(train_names))
        tracks_test = self._tracks(info / "tracks_test_info.mat", "track_test_info", len(test_names))
        query_rows = _loadmat(owner, info / "query_IDX.mat", "query_IDX", _MARS_LAYOUT).reshape(-1).astype(np.int64)
        if query_rows.size == 0 or query_rows.min() < 1 or query_rows.max() > len(tracks_test):
            raise ValueError(
                f"{owner}: query_IDX in {info / 'query_IDX.mat'} must hold 1-based rows of track_test_info "
                f"(1..{len(tracks_test)})"
            )
        query_set = set((query_rows - 1).tolist())
        gallery_rows = [i for i in range(len(tracks_test)) if i not in query_set]
        train = self._tracklets(train_names, tracks_train, range(len(tracks_train)), "bbox_train", listings)
        query = self._tracklets(test_names, tracks_test, (query_rows - 1).tolist(), "bbox_test", listings)
        gallery = self._tracklets(test_names, tracks_test, gallery_rows, "bbox_test", listings)
        super().__init__(
            train, query, gallery, seq_len=seq_len, height=height, width=width, p=p, k=k,
            eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed, eval_sampling=eval_sampling,
            short_tracklets=short_tracklets,
        )  # fmt: skip
        self.save_hyperparameters()
        self.dataset = "mars"

    def _names(self, path: Path) -> list[str]:
        if not path.is_file():
            raise _missing("MarsData", path, _MARS_LAYOUT)
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        bad = [n for n in names if len(n) < 6]
        if bad:
            raise ValueError(
                f"MarsData: {path} has frame names too short to hold a person and camera: {_examples(bad)}"
            )
        return names

    def _tracks(self, path: Path, key: str, num_names: int) -> np.ndarray:
        tracks = _loadmat("MarsData", path, key, _MARS_LAYOUT)
        if tracks.ndim != 2 or tracks.shape[1] != 4:
            raise ValueError(f"MarsData: {key} in {path} must be (N, 4) (start, end, pid, camid), got {tracks.shape}")
        tracks = tracks.astype(np.int64)
        start, end = tracks[:, 0], tracks[:, 1]
        bad = np.flatnonzero((start < 1) | (end < start) | (end > num_names))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"MarsData: row {row + 1} of {key} in {path} spans frames {start[row]}..{end[row]}, outside the "
                f"{num_names} names (1-based, inclusive)"
            )
        return tracks

    def _tracklets(
        self, names: list[str], tracks: np.ndarray, rows: Sequence[int], home: str, listings: dict[Path, set[str]]
    ) -> list[Tracklet]:
        tracklets = []
        for row in rows:
            start, end, pid, camid = (int(v) for v in tracks[row])
            if pid == -1:  # junk
                continue
            frames = names[start - 1 : end]
            if len({n[:4] for n in frames}) != 1 or len({n[5] for n in frames}) != 1:
                raise ValueError(
                    f"MarsData: the tracklet in row {row + 1} of the {home} tracks mixes persons or cameras: "
                    f"{_examples(sorted({n[:6] for n in frames}))}"
                )
            folder = self.root / home / frames[0][:4]
            if folder not in listings:
                if not folder.is_dir():
                    raise _missing("MarsData", folder, _MARS_LAYOUT)
                listings[folder] = set(os.listdir(folder))
            absent = [n for n in frames if n not in listings[folder]]
            if absent:
                raise ValueError(
                    f"MarsData: {len(absent)} frames of row {row + 1} of the {home} tracks are missing, e.g. "
                    f"{folder / absent[0]}; expected the layout {_MARS_LAYOUT}"
                )
            tracklets.append(Tracklet(pid, camid - 1, tuple(str(folder / n) for n in frames)))
        return tracklets


def _numbered(owner: str, folder: Path, pattern: str, layout: str) -> dict[str, int]:
    """The person folders in ``folder`` (name -> the person number in it), by name."""
    if not folder.is_dir():
        raise _missing(owner, folder, layout)
    found = {}
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or not (folder / entry).is_dir():
            continue
        match = re.fullmatch(pattern, entry)
        if match is None:
            raise ValueError(f"{owner}: {folder / entry} is not a person folder; expected the layout {layout}")
        found[entry] = int(match.group(1))
    if not found:
        raise ValueError(f"{owner}: no person folders in {folder}; expected the layout {layout}")
    return found


def _check_split(owner: str, split: int, count: int, source: Path) -> None:
    check_int(owner, "split", split, 0)
    if split >= count:
        raise ValueError(f"{owner}: split must be below {count} (the splits in {source}), got {split}")


_ILIDS_LAYOUT = (
    "root/i-LIDS-VID/sequences/{cam1,cam2}/personNNN/<frame>.png and "
    "'root/train-test people splits/train_test_splits_ilidsvid.mat'"
)


class ILidsVidData(ReIDData):
    """iLIDS-VID (Wang et al. 2014) in its published layout::

        root/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...
        root/i-LIDS-VID/sequences/cam2/person001/...
        root/train-test people splits/train_test_splits_ilidsvid.mat

    ``ls_set`` in the .mat is (10, 300): for each of the 10 splits a permutation of the persons as
    1-based indices into the sorted person folder names; as torchreid (following Wang et al.) reads
    it, the *first* 150 are the test persons and the last 150 the train persons. Train: both
    cameras' tracklets of the train persons; query: cam1 (camera 0) of the test persons; gallery: cam2
    (camera 1). Person ids are the folder numbers (person001 -> 1); frames are sorted by name (their
    zero-padded frame number). Arguments after ``split`` (0-9) are :class:`ReIDData`'s.
    """

    def __init__(
        self,
        root: str | Path,
        split: int = 0,
        seq_len: int = 4,
        height: int = 256,
        width: int = 128,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        eval_sampling: str = "dense",
        short_tracklets: str = "error",
    ) -> None:
        owner, layout = "ILidsVidData", _ILIDS_LAYOUT
        self.root = Path(root)
        sequences = self.root / "i-LIDS-VID" / "sequences"
        splits_file = self.root / "train-test people splits" / "train_test_splits_ilidsvid.mat"
        _require(owner, layout, self.root, sequences)
        cams = [_numbered(owner, sequences / cam, r"person(\d+)", layout) for cam in ("cam1", "cam2")]
        if cams[0].keys() != cams[1].keys():
            only = sorted(cams[0].keys() ^ cams[1].keys())
            raise ValueError(f"{owner}: persons not in both cam1 and cam2 of {sequences}: {_examples(only)}")
        persons = sorted(cams[0])
        ls_set = _loadmat(owner, splits_file, "ls_set", layout).astype(np.int64)
        if ls_set.ndim != 2 or ls_set.shape[1] % 2 or ls_set.min() < 1 or ls_set.max() > len(persons):
            raise ValueError(
                f"{owner}: ls_set in {splits_file} must be (splits, persons) of 1-based person indices "
                f"(1..{len(persons)}, the person folders), got shape {ls_set.shape}"
            )
        _check_split(owner, split, ls_set.shape[0], splits_file)
        half = ls_set.shape[1] // 2
        test = [persons[i - 1] for i in sorted(ls_set[split, :half])]
        train_persons = [persons[i - 1] for i in sorted(ls_set[split, half:])]

        def tracklets(names: list[str], cam: int) -> list[Tracklet]:
            folder = sequences / f"cam{cam + 1}"
            return [Tracklet(cams[cam][n], cam, _frame_files(owner, folder / n, layout)) for n in names]

        super().__init__(
            tracklets(train_persons, 0) + tracklets(train_persons, 1), tracklets(test, 0), tracklets(test, 1),
            seq_len=seq_len, height=height, width=width, p=p, k=k, eval_batch_size=eval_batch_size,
            num_workers=num_workers, seed=seed, eval_sampling=eval_sampling, short_tracklets=short_tracklets,
        )  # fmt: skip
        self.save_hyperparameters()
        self.dataset = "ilidsvid"


_PRID_LAYOUT = "root/prid_2011/multi_shot/{cam_a,cam_b}/person_NNNN/<frame>.png and root/splits_prid2011.json"


class Prid2011Data(ReIDData):
    """PRID-2011 (Hirzer et al. 2011), multi-shot, in its published layout plus the usual split file::

        root/prid_2011/multi_shot/cam_a/person_0001/0001.png ...
        root/prid_2011/multi_shot/cam_b/person_0001/...
        root/splits_prid2011.json

    The split file (made by the iLIDS-VID authors, as torchreid uses it) is a list of 10 splits, each
    ``{"train": [...], "test": [...]}`` of person folder names. It already lists only the 178 persons
    (89 + 89) seen in both cameras with at least 21 frames; persons it lists with fewer than
    ``min_frames`` (21) frames in either camera are left out too (none in the published file; a
    split file of your own gets the protocol's rule; 0: keep all). Train: both cameras' tracklets of
    the train persons; query: cam_a (camera 0) of the test persons; gallery: cam_b (camera 1). Person
    ids are the folder numbers (person_0001 -> 1); frames are sorted by name. Arguments after
    ``min_frames`` are :class:`ReIDData`'s.
    """

    def __init__(
        self,
        root: str | Path,
        split: int = 0,
        min_frames: int = 21,
        seq_len: int = 4,
        height: int = 256,
        width: int = 128,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        eval_sampling: str = "dense",
        short_tracklets: str = "error",
    ) -> None:
        owner, layout = "Prid2011Data", _PRID_LAYOUT
        check_int(owner, "min_frames", min_frames, 0)
        self.root = Path(root)
        multi_shot = self.root / "prid_2011" / "multi_shot"
        splits_file = self.root / "splits_prid2011.json"
        _require(owner, layout, self.root, multi_shot / "cam_a", multi_shot / "cam_b", splits_file)
        try:
            splits = json.loads(splits_file.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{owner}: cannot read {splits_file} as JSON: {err}") from err
        if not isinstance(splits, list):
            raise ValueError(f"{owner}: {splits_file} must hold a list of splits, got a {type(splits).__name__}")
        _check_split(owner, split, len(splits), splits_file)
        chosen = splits[split]
        if not (isinstance(chosen, dict) and all(isinstance(chosen.get(s), list) for s in ("train", "test"))):
            raise ValueError(f"{owner}: split {split} of {splits_file} must be {{'train': [...], 'test': [...]}}")

        def person(name: str) -> int:
            match = re.fullmatch(r"person_(\d+)", str(name))
            if match is None:
                raise ValueError(f"{owner}: {splits_file} names {name!r}, not a person folder (person_NNNN)")
            return int(match.group(1))

        def tracklet_pairs(names: list[str]) -> list[tuple[Tracklet, Tracklet]]:
            pairs = []
            for name in names:
                a, b = (
                    Tracklet(person(name), cam, _frame_files(owner, multi_shot / folder / name, layout))
                    for cam, folder in enumerate(("cam_a", "cam_b"))
                )
                if min(a.num_frames, b.num_frames) >= min_frames:
                    pairs.append((a, b))
            if not pairs:
                raise ValueError(f"{owner}: no person of split {split} has {min_frames} frames in both cameras")
            return pairs

        train_pairs, test_pairs = tracklet_pairs(chosen["train"]), tracklet_pairs(chosen["test"])
        super().__init__(
            [t for pair in train_pairs for t in pair], [a for a, _ in test_pairs], [b for _, b in test_pairs],
            seq_len=seq_len, height=height, width=width, p=p, k=k, eval_batch_size=eval_batch_size,
            num_workers=num_workers, seed=seed, eval_sampling=eval_sampling, short_tracklets=short_tracklets,
        )  # fmt: skip
        self.save_hyperparameters()
        self.dataset = "prid2011"


_FOLDER_LAYOUT = (
    "root/{train,query,gallery}/<pid>_c<camid>[_<anything>]/<frames sorted by name>, "
    "optionally root/val_query/ and root/val_gallery/ alike"
)
_FOLDER_SPLITS = ("train", "query", "gallery", "val_query", "val_gallery")


class TrackletFolderData(ReIDData):
    """Your own tracklets, a folder each::

        root/train/<pid>_c<camid>[_<anything>]/<frames>        required
        root/query/<pid>_c<camid>[_<anything>]/<frames>        required
        root/gallery/<pid>_c<camid>[_<anything>]/<frames>      required
        root/val_query/..., root/val_gallery/...               optional, both or neither: validation

    e.g. ``train/0007_c2_morning/000001.jpg``: person 7, camera 2 (ids as written, non-negative
    integers). A tracklet's frames are the image files in its folder (any image extension, hidden
    ones left out), in time order when sorted by name: zero-pad frame numbers. The train persons
    become the classes; query and gallery persons need not be train persons. A missing split folder,
    an entry that is not a tracklet folder or whose name does not follow the pattern, a tracklet
    without frames, and a tracklet whose first frame cannot be read are ValueErrors naming the path at
    construction; another frame that cannot be read is one when it is loaded. Arguments after
    ``root`` are :class:`ReIDData`'s.
    """

    def __init__(
        self,
        root: str | Path,
        seq_len: int = 4,
        height: int = 256,
        width: int = 128,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 4,
        seed: int = 0,
        eval_sampling: str = "dense",
        short_tracklets: str = "error",
    ) -> None:
        owner = "TrackletFolderData"
        self.root = Path(root)
        _require(owner, _FOLDER_LAYOUT, self.root)
        splits = {}
        for split in _FOLDER_SPLITS:
            folder = self.root / split
            if folder.is_dir():
                splits[split] = self._split(folder)
            elif not split.startswith("val_"):
                raise _missing(owner, folder, _FOLDER_LAYOUT)
        if ("val_query" in splits) != ("val_gallery" in splits):
            present, absent = ("val_query", "val_gallery") if "val_query" in splits else ("val_gallery", "val_query")
            raise ValueError(
                f"{owner}: {self.root / present} exists but {self.root / absent} does not: give both or neither"
            )
        super().__init__(
            splits["train"], splits["query"], splits["gallery"], splits.get("val_query"), splits.get("val_gallery"),
            seq_len=seq_len, height=height, width=width, p=p, k=k, eval_batch_size=eval_batch_size,
            num_workers=num_workers, seed=seed, eval_sampling=eval_sampling, short_tracklets=short_tracklets,
        )  # fmt: skip
        self.save_hyperparameters()
        self.dataset = self.root.name

    @staticmethod
    def _split(folder: Path) -> list[Tracklet]:
        owner, tracklets = "TrackletFolderData", []
        try:
            entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
        except OSError as err:
            raise ValueError(f"{owner}: cannot list {folder}: {err}") from err
        for entry in entries:
            path = folder / entry
            match = re.fullmatch(r"(\d+)_c(\d+)(?:_.*)?", entry)
            if not path.is_dir() or match is None:
                raise ValueError(
                    f"{owner}: {path} is not a tracklet folder named <pid>_c<camid>[_<anything>]; expected the "
                    f"layout {_FOLDER_LAYOUT}"
                )
            frames = _frame_files(owner, path, _FOLDER_LAYOUT)
            try:
                with Image.open(frames[0]):  # reads the header
                    pass
            except OSError as err:
                raise ValueError(f"{owner}: cannot read image {frames[0]}: {err}") from err
            tracklets.append(Tracklet(int(match.group(1)), int(match.group(2)), frames))
        if not tracklets:
            raise ValueError(f"{owner}: no tracklet folders in {folder}; expected the layout {_FOLDER_LAYOUT}")
        return tracklets
