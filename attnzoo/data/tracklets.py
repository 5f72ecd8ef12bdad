"""TrackletsData: synthetic video person re-ID tracklets (:mod:`attnzoo.data.tracklet_synth`), bundled,
offline and seeded, as a :class:`~attnzoo.data.reid.ReIDData`.

Splits (identities disjoint, 64 / 16 / 32 by default): train is every tracklet of the train
identities; val and test each take their identities' tracklets as follows, so that query and
gallery come from different cameras (the Market-1501 / MARS rule drops a gallery tracklet of the
query's person seen by the query's camera):

- query: tracklet 0 of every (person, camera) pair (each camera that sees the person);
- gallery: every tracklet of the split, the queries included: each query's true matches are its
  person's tracklets in the other cameras, and its own camera's are excluded by the rule.

By default 64 x 32 frames, T = 4, P x K = 8 x 4 tracklets a batch: a step of a narrow ResNet-18
takes a fraction of a second on 2 CPU cores.
"""
from __future__ import annotations

from functools import partial

from .reid import ReIDData, Tracklet
from .tracklet_synth import SynthConfig, render_tracklet, split_index

__all__ = ["TrackletsData"]


def _tracklets(split: str, config: SynthConfig, seed: int) -> list[Tracklet]:
    return [
        Tracklet(pid, camid, render=partial(render_tracklet, split, pid, camid, number, config, seed), num_frames=length)
        for pid, camid, number, length in split_index(split, config, seed)
    ]


def _query_and_gallery(tracklets: list[Tracklet], split: str, config: SynthConfig, seed: int) -> list[list[Tracklet]]:
    firsts = [t for t, (_, _, number, _) in zip(tracklets, split_index(split, config, seed)) if number == 0]
    return [firsts, tracklets]


class TrackletsData(ReIDData):
    """Synthetic tracklets of walking people seen by several cameras (see the module docstring and
    :mod:`attnzoo.data.tracklet_synth` for what is drawn).

    Args:
        frame_size: (height, width) of the frames, drawn at this size.
        train_ids, val_ids, test_ids: identities per split.
        cameras: cameras shared by the splits (each person is seen by 2 to all of them).
        corrupted_fraction: share of frames occluded, blurred or badly cropped.
        data_seed: seed of the scenes (not of the training): the same seed, the same tracklets.
        seq_len, p, k, eval_batch_size, num_workers, seed, eval_sampling: as :class:`ReIDData`'s.
    """

    def __init__(
        self,
        frame_size: tuple[int, int] = (64, 32),
        train_ids: int = 64,
        val_ids: int = 16,
        test_ids: int = 32,
        cameras: int = 4,
        corrupted_fraction: float = 0.25,
        data_seed: int = 0,
        seq_len: int = 4,
        p: int = 8,
        k: int = 4,
        eval_batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        eval_sampling: str = "dense",
    ) -> None:
        config = SynthConfig(
            frame_size=tuple(frame_size),
            train_ids=train_ids,
            val_ids=val_ids,
            test_ids=test_ids,
            cameras=cameras,
            corrupted_fraction=corrupted_fraction,
        )
        splits = {split: _tracklets(split, config, data_seed) for split in ("train", "val", "test")}
        query, gallery = _query_and_gallery(splits["test"], "test", config, data_seed)
        val_query, val_gallery = _query_and_gallery(splits["val"], "val", config, data_seed)
        super().__init__(
            splits["train"], query, gallery, val_query, val_gallery,
            seq_len=seq_len, height=config.frame_size[0], width=config.frame_size[1], p=p, k=k,
            eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed, eval_sampling=eval_sampling,
        )  # fmt: skip
        self.save_hyperparameters()
        self.dataset = "tracklets"
