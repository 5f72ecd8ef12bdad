"""Video re-ID data: temporal sampling, P x K identity batches (and how Lightning treats them under DDP),
the loaders' batches, and the MARS, iLIDS-VID, PRID-2011 and own-folder layouts on fabricated trees."""
import json
import os
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from attnzoo.data.reid import (
    IdentityBatchSampler,
    IdentitySampler,
    ILidsVidData,
    MarsData,
    Prid2011Data,
    ReIDData,
    Tracklet,
    TrackletFolderData,
    dense_indices,
    evenly_spaced_indices,
    restricted_random_indices,
)

SMALL = {"seq_len": 2, "height": 8, "width": 4, "p": 2, "k": 2, "num_workers": 0}


class Frames:
    """A rendered tracklet: frame i is filled with value i (red), the person id (green) and a bright left column
    (blue), so that frame order, identity and flips can be read back."""

    def __init__(self, num_frames: int, pid: int = 0, height: int = 8, width: int = 4) -> None:
        self.num_frames, self.pid, self.height, self.width = num_frames, pid, height, width

    def __call__(self) -> np.ndarray:
        pixels = np.zeros((self.num_frames, self.height, self.width, 3), np.uint8)
        pixels[..., 0] = np.arange(self.num_frames, dtype=np.uint8)[:, None, None]
        pixels[..., 1] = self.pid
        pixels[:, :, 0, 2] = 255
        return pixels


def rendered(pid: int, camid: int, num_frames: int = 6) -> Tracklet:
    return Tracklet(pid, camid, render=Frames(num_frames, pid), num_frames=num_frames)


def pixels_of(clips: torch.Tensor) -> torch.Tensor:
    """Normalised clips (..., 3, H, W) back to 0-255 values."""
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
    return ((clips * std + mean) * 255).round()


def save_frame(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 4, 3), value, np.uint8)).save(path)


# ------------------------------------------------------------------------------------------ temporal sampling


def test_restricted_random_indices_draw_one_frame_from_each_chunk():
    rng = np.random.default_rng(0)
    drawn = np.stack([restricted_random_indices(10, 4, rng) for _ in range(400)])
    assert drawn.dtype == np.int64 and drawn.shape == (400, 4)
    chunks = [(0, 2), (2, 5), (5, 7), (7, 10)]  # 10 frames in 4 chunks: boundaries 0, 2, 5, 7, 10
    for column, (low, high) in enumerate(chunks):
        assert set(drawn[:, column].tolist()) == set(range(low, high))
    assert restricted_random_indices(4, 4, rng).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="3 frames cannot give seq_len=4"):
        restricted_random_indices(3, 4, rng)


def test_dense_and_evenly_spaced_indices():
    assert dense_indices(5, 4).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert dense_indices(8, 4).tolist() == list(range(8))
    assert dense_indices(2, 4).tolist() == [0, 1, 0, 1]
    assert evenly_spaced_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert evenly_spaced_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert evenly_spaced_indices(2, 4).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        dense_indices(5, 0)


# ----------------------------------------------------------------------------------------------- samplers


def _pids(counts: dict[int, int]) -> list[int]:
    return [pid for pid, count in counts.items() for _ in range(count)]


def test_identity_batches_hold_p_identities_of_k_items():
    pids = _pids({pid: 1 + pid % 6 for pid in range(11)})  # 1 to 6 items an identity
    sampler = IdentityBatchSampler(pids, p=3, k=4, seed=1, num_replicas=1, rank=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 11 // 3
    seen = []
    for batch in batches:
        assert len(batch) == 12
        identities = [pids[i] for i in batch]
        assert list(Counter(identities).values()) == [4, 4, 4]
        for start in range(0, 12, 4):  # identity by identity
            group = batch[start : start + 4]
            assert len({pids[i] for i in group}) == 1
            if pids.count(pids[group[0]]) >= 4:  # enough items: drawn without replacement
                assert len(set(group)) == 4
        seen += set(identities)
    assert len(seen) == len(set(seen))  # each identity at most once an epoch


def test_identity_batches_on_two_ranks_are_disjoint_and_as_many():
    pids = _pids({pid: 3 for pid in range(13)})
    ranks = [IdentityBatchSampler(pids, p=2, k=3, seed=5, num_replicas=2, rank=r) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 13 // 4
    for epoch in range(3):
        for sampler in ranks:
            sampler.set_epoch(epoch)
        steps = list(zip(*ranks))
        assert len(steps) == 3
        everyone = []
        for batch0, batch1 in steps:
            ids0, ids1 = {pids[i] for i in batch0}, {pids[i] for i in batch1}
            assert len(ids0) == len(ids1) == 2 and not ids0 & ids1
            everyone += [*ids0, *ids1]
        assert len(everyone) == len(set(everyone))


def test_set_epoch_reorders_deterministically():
    pids = _pids({pid: 4 for pid in range(20)})
    a, b = (IdentityBatchSampler(pids, p=4, k=2, seed=3) for _ in range(2))
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(IdentityBatchSampler(pids, p=4, k=2, seed=4)) != first


def test_identity_sampler_errors():
    with pytest.raises(ValueError, match="3 identities are too few for p=2 identities a batch on 2 process"):
        IdentityBatchSampler([0, 1, 2], p=2, k=1, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="rank must be below num_replicas=2"):
        IdentityBatchSampler([0, 1, 2, 3], p=1, k=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        IdentityBatchSampler([0, 1], p=1, k=0)


def test_identity_sampler_flattens_the_batches_for_a_dataloader():
    pids = _pids({pid: 2 for pid in range(9)})
    batches = IdentityBatchSampler(pids, p=2, k=3, seed=2, num_replicas=2, rank=1)
    sampler = IdentitySampler(batches)
    assert isinstance(sampler, DistributedSampler)
    sampler.set_epoch(4)
    assert batches.epoch == 4
    loader = DataLoader(list(range(len(pids))), batch_size=6, sampler=sampler)
    assert len(sampler) == 2 * 6 and len(loader) == 2
    assert [b.tolist() for b in loader] == list(batches)


def test_lightning_leaves_the_training_loader_alone_under_ddp():
    """What Lightning does to a training DataLoader under DDP (use_distributed_sampler=True, the default):
    ours passes through untouched and gets set_epoch; a P x K batch_sampler of its own would be refused."""
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from lightning.pytorch.trainer.states import RunningStage

    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False)
    assert trainer._accelerator_connector.is_distributed and trainer._accelerator_connector.use_distributed_sampler
    data = ReIDData([rendered(pid, cam) for pid in range(4) for cam in range(2)], [rendered(0, 0)], [rendered(0, 1)],
                    **SMALL)  # fmt: skip
    data.trainer = trainer
    loader = data.train_dataloader()
    batches = loader.sampler.batches
    assert (batches.num_replicas, batches.rank) == (2, 0)  # the trainer's
    assert trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING) is loader
    _set_sampler_epoch(loader, 7)
    assert batches.epoch == 7

    plain = DataLoader(loader.dataset, batch_sampler=IdentityBatchSampler(batches.identities, 2, 2, num_replicas=2))
    with pytest.raises(TypeError, match="can't inject a \\(distributed\\) sampler into your batch sampler"):
        trainer._data_connector._prepare_dataloader(plain, shuffle=True, mode=RunningStage.TRAINING)


class Recorder(L.LightningModule):
    """Writes the (epoch, step, labels, clip shape) of each training batch to ``out/rank<N>.json``."""

    def __init__(self, out: Path) -> None:
        super().__init__()
        self.out, self.layer, self.seen = out, torch.nn.Linear(1, 1), []

    def training_step(self, batch, index):
        clips, labels, camids = batch
        self.seen.append([self.current_epoch, index, labels.tolist(), list(clips.shape)])
        return self.layer(clips.mean().view(1, 1)).sum()

    def validation_step(self, batch, index, dataloader_idx=0):
        raise AssertionError("no val split: no validation")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self) -> None:
        (self.out / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


def test_ddp_on_two_processes_gives_each_rank_its_own_identities(tmp_path):
    """A real 2-process gloo DDP fit, the default use_distributed_sampler=True. ``ddp_fork`` is Lightning's DDP
    strategy (the same data connector) with processes forked from this one, rather than the script re-run by
    ``ddp``: seconds of imports saved."""
    tracklets = [Tracklet(pid, cam, render=Frames(4), num_frames=4) for pid in range(12) for cam in range(2)]
    data = ReIDData(tracklets, tracklets[:2], tracklets[:2], **SMALL)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Recorder(tmp_path), data)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    labels = [pid for pid in range(12) for _ in range(2)]  # train item i is tracklet i: person i // 2
    for rank in range(2):
        expected = []
        sampler = IdentityBatchSampler(labels, p=2, k=2, seed=0, num_replicas=2, rank=rank)
        for epoch in range(2):
            sampler.set_epoch(epoch)  # Lightning set the epoch on each rank: the batches are exactly these
            expected += [[epoch, i, [labels[j] for j in batch], [4, 2, 3, 8, 4]] for i, batch in enumerate(sampler)]
        assert seen[rank] == expected
    assert len(seen[0]) == len(seen[1]) == 2 * 3
    for step0, step1 in zip(*seen):
        assert not set(step0[2]) & set(step1[2])
    assert [s[2] for s in seen[0][:3]] != [s[2] for s in seen[0][3:]]  # another order in epoch 1


# ----------------------------------------------------------------------------------------- the base module


def _base(**kwargs) -> ReIDData:
    train = [rendered(pid, cam, 3 + pid) for pid in (10, 20, 30, 40) for cam in (0, 1)]
    query = [rendered(pid, 0, 5) for pid in (1, 2)]
    gallery = [rendered(pid, 1, 7) for pid in (1, 2, 3)]
    return ReIDData(train, query, gallery, **{**SMALL, **kwargs})


def test_train_batches():
    data = _base(seq_len=3)
    assert data.num_classes == 4 and data.train_pids == [10, 20, 30, 40]
    loader = data.train_dataloader()
    assert len(loader) == 2
    flips = set()
    for clips, labels, camids in loader:
        assert clips.shape == (4, 3, 3, 8, 4) and clips.dtype == torch.float32
        assert labels.dtype == camids.dtype == torch.int64 and labels.shape == camids.shape == (4,)
        values = pixels_of(clips)
        for clip, label in zip(values, labels):
            assert (clip[:, 1] == data.train_pids[label]).all()  # the label is the person's relabelled id
            frames = clip[:, 0, 0, 0].tolist()
            assert frames == sorted(frames) and len(set(frames)) == 3  # restricted random: in time order
            left, right = clip[:, 2, :, 0], clip[:, 2, :, -1]
            assert (left == 255).all() and (right == 0).all() or (left == 0).all() and (right == 255).all()
            flips.add(bool((right == 255).all()))
        assert set(labels[:2].tolist()) == {labels[0].item()} and labels[0] != labels[2]
    assert flips == {True, False}  # each clip flipped as a whole, or not (8 clips: torch's seeded draws)


def test_eval_batches_dense_and_evenly():
    data = _base()
    query, gallery = data.test_dataloader()
    assert data.val_dataloader() == []
    assert len(query) == 2 and len(gallery) == 3
    clips, pids, camids = next(iter(query))
    assert clips.shape == (1, 6, 3, 8, 4) and pids.tolist() == [1] and camids.tolist() == [0]
    assert pixels_of(clips)[0, :, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 0]  # 5 frames padded to 6
    assert (pixels_of(clips)[0, :, 2, :, 0] == 255).all()  # no flip in evaluation
    data = _base(eval_sampling="evenly", eval_batch_size=2, seq_len=4)
    query, gallery = data.test_dataloader()
    clips, pids, camids = next(iter(gallery))
    assert clips.shape == (2, 4, 3, 8, 4) and pids.dtype == torch.int64 and pids.tolist() == [1, 2]
    assert pixels_of(clips)[0, :, 0, 0, 0].tolist() == [0, 2, 4, 6]  # 7 frames, 4 evenly spaced


def test_frames_are_resized():
    data = _base(height=16, width=6)
    clips, _, _ = next(iter(data.train_dataloader()))
    assert clips.shape[-2:] == (16, 6)


def test_short_train_tracklets():
    train = [rendered(1, 0, 6), rendered(1, 1, 1), rendered(2, 0, 6), rendered(3, 0, 2), rendered(3, 1, 6)]
    query, gallery = [rendered(1, 0, 1)], [rendered(1, 1, 1)]
    with pytest.raises(ValueError, match=r"2 train tracklets have fewer than seq_len=4 frames, e.g. rendered "
                       r"tracklet \(person 1, camera 1, 1 frames\): give short_tracklets='repeat'"):  # fmt: skip
        ReIDData(train, query, gallery, **{**SMALL, "seq_len": 4})
    dropped = ReIDData(train, query, gallery, **{**SMALL, "seq_len": 4, "short_tracklets": "drop"})
    assert [t.num_frames for t in dropped.train] == [6, 6, 6] and dropped.num_classes == 3
    repeated = ReIDData(train, query, gallery, **{**SMALL, "seq_len": 4, "short_tracklets": "repeat", "p": 3})
    for clips, labels, _ in repeated.train_dataloader():
        for clip, label in zip(pixels_of(clips), labels):
            frames = clip[:, 0, 0, 0].tolist()
            assert frames in ([0, 0, 0, 0], [0, 1, 0, 1]) or len(set(frames)) == 4


def test_base_errors():
    with pytest.raises(ValueError, match="ids that do not match between query and gallery"):
        _base_with(query=[rendered(7, 0)])
    with pytest.raises(ValueError, match="eval_sampling must be one of dense, evenly"):
        _base(eval_sampling="all")
    with pytest.raises(ValueError, match="the train split has 4 identities, fewer than p=5"):
        _base(p=5)
    with pytest.raises(ValueError, match="the gallery split holds no tracklets"):
        _base_with(gallery=[])
    with pytest.raises(ValueError, match="give both val_query and val_gallery"):
        _base_with(val_query=[rendered(1, 0)])
    with pytest.raises(ValueError, match="give either frames"):
        Tracklet(1, 0)
    with pytest.raises(ValueError, match="frames must be a sequence of paths, not one str"):
        Tracklet(1, 0, "a.png")
    with pytest.raises(ValueError, match="num_frames \\(required with render\\) must be a positive integer"):
        Tracklet(1, 0, render=Frames(2))
    bad = Tracklet(1, 0, render=Frames(3), num_frames=4)
    with pytest.raises(ValueError, match=r"must return a uint8 array \(4, H, W, 3\), got uint8 \(3, 8, 4, 3\)"):
        bad.read([0], 8, 4)


def _base_with(**splits) -> ReIDData:
    train = [rendered(pid, cam) for pid in (1, 2) for cam in (0, 1)]
    return ReIDData(**{"train": train, "query": [rendered(1, 0)], "gallery": [rendered(1, 1)], **splits, **SMALL})


# ---------------------------------------------------------------------------------------------------- MARS


def _mars(root: Path, drop: str | None = None) -> Path:
    """Train: 0001 (camera 1: 5 frames, camera 2: 4), 0003 (camera 1: 6), 0005 (camera 4: 3).
    Test: 0002 (camera 1 query, camera 3 gallery), 0004 (camera 2 query, camera 5 gallery), 0000
    (distractors, camera 1 gallery), 00-1 (junk: one query row, one gallery row)."""
    splits = {
        "train": [("0001", 1, 5), ("0001", 2, 4), ("0003", 1, 6), ("0005", 4, 3)],
        "test": [("0002", 1, 4), ("0000", 1, 3), ("0002", 3, 5), ("00-1", 2, 2), ("0004", 2, 4), ("0004", 5, 3),
                 ("00-1", 6, 2)],
    }  # fmt: skip
    (root / "info").mkdir(parents=True)
    for split, tracks in splits.items():
        names, rows = [], []
        for t, (person, cam, count) in enumerate(tracks):
            start = len(names) + 1
            for f in range(count):
                name = f"{person}C{cam}T{t + 1:04d}F{f + 1:03d}.jpg"
                names.append(name)
                save_frame(root / f"bbox_{split}" / person / name, 10 * f)
            rows.append([start, len(names), int(person) if person != "00-1" else -1, cam])
        (root / "info" / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        scipy.io.savemat(root / "info" / f"tracks_{split}_info.mat", {f"track_{split}_info": np.array(rows)})
    scipy.io.savemat(root / "info" / "query_IDX.mat", {"query_IDX": np.array([[1, 4, 5]])})  # 1-based rows
    if drop:
        path = root / drop
        path.unlink() if path.is_file() else os.rename(path, root / "moved")
    return root


def test_mars_layout(tmp_path):
    data = MarsData(_mars(tmp_path / "mars"), **SMALL)
    assert data.dataset == "mars" and data.num_classes == 3 and data.train_pids == [1, 3, 5]
    assert [(t.pid, t.camid, t.num_frames) for t in data.train] == [(1, 0, 5), (1, 1, 4), (3, 0, 6), (5, 3, 3)]
    assert [(t.pid, t.camid) for t in data.query] == [(2, 0), (4, 1)]  # the junk query row dropped
    assert [(t.pid, t.camid) for t in data.gallery] == [(0, 0), (2, 2), (4, 4)]  # distractors kept, junk dropped
    frames = data.train[0].frames
    assert [Path(f).name for f in frames] == [f"0001C1T0001F{i:03d}.jpg" for i in range(1, 6)]
    assert all(Path(f).parent == tmp_path / "mars" / "bbox_train" / "0001" for f in frames)
    assert Path(data.gallery[0].frames[0]).parent.name == "0000"
    clips, pids, camids = next(iter(data.test_dataloader()[1]))
    assert clips.shape == (1, 4, 3, 8, 4) and pids.tolist() == [0] and camids.tolist() == [0]
    assert data.hparams["root"] == tmp_path / "mars" and data.hparams["short_tracklets"] == "repeat"


@pytest.mark.parametrize(
    "drop", ["info/query_IDX.mat", "info/test_name.txt", "bbox_test", "bbox_train/0003/0003C1T0003F004.jpg"]
)
def test_mars_missing_files_are_named(tmp_path, drop):
    root = _mars(tmp_path / "mars", drop)
    with pytest.raises(ValueError, match=f"{root / drop}.*expected the layout root/bbox_train/<pid>"):
        MarsData(root, **SMALL)


def test_mars_bad_info(tmp_path):
    root = _mars(tmp_path / "mars")
    scipy.io.savemat(root / "info" / "query_IDX.mat", {"query": np.array([[1]])})
    with pytest.raises(ValueError, match="query_IDX.mat holds no 'query_IDX'"):
        MarsData(root, **SMALL)
    scipy.io.savemat(root / "info" / "query_IDX.mat", {"query_IDX": np.array([[8]])})
    with pytest.raises(ValueError, match=r"1-based rows of track_test_info \(1..7\)"):
        MarsData(root, **SMALL)
    scipy.io.savemat(root / "info" / "query_IDX.mat", {"query_IDX": np.array([[1]])})
    scipy.io.savemat(root / "info" / "tracks_train_info.mat", {"track_train_info": np.array([[1, 7, 1, 1]])})
    with pytest.raises(ValueError, match="row 1 of the bbox_train tracks mixes persons or cameras"):
        MarsData(root, **SMALL)


# ----------------------------------------------------------------------------------------------- iLIDS-VID


ILIDS_PERSONS = ("person001", "person002", "person005", "person007", "person010", "person011")


def _ilids(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cam in (1, 2):
        for p, person in enumerate(ILIDS_PERSONS):
            numbers = 100 * cam + 7 * np.arange(4 + p)
            for n in rng.permutation(numbers):  # written out of order
                save_frame(root / "i-LIDS-VID" / "sequences" / f"cam{cam}" / person / f"cam{cam}_{person}_{n:05d}.png")
    ls_set = np.stack([rng.permutation(len(ILIDS_PERSONS)) + 1 for _ in range(10)])
    ls_set[0] = [6, 1, 3, 2, 4, 5]  # split 0: test persons 011, 001, 005; train 002, 007, 010
    (root / "train-test people splits").mkdir()
    scipy.io.savemat(root / "train-test people splits" / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set})
    return root


def test_ilidsvid_layout(tmp_path):
    data = ILidsVidData(_ilids(tmp_path / "ilids"), split=0, **SMALL)
    assert data.dataset == "ilidsvid" and data.train_pids == [2, 7, 10]
    assert [(t.pid, t.camid) for t in data.train] == [(2, 0), (7, 0), (10, 0), (2, 1), (7, 1), (10, 1)]
    assert [(t.pid, t.camid) for t in data.query] == [(1, 0), (5, 0), (11, 0)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(1, 1), (5, 1), (11, 1)]
    frames = [Path(f).name for f in data.query[1].frames]
    assert frames == [f"cam1_person005_{100 + 7 * i:05d}.png" for i in range(6)]  # time order
    other = ILidsVidData(tmp_path / "ilids", split=3, **SMALL)
    assert {t.pid for t in other.query} | set(other.train_pids) == {1, 2, 5, 7, 10, 11}


def test_ilidsvid_errors(tmp_path):
    root = _ilids(tmp_path / "ilids")
    with pytest.raises(ValueError, match="split must be below 10"):
        ILidsVidData(root, split=10, **SMALL)
    splits = root / "train-test people splits" / "train_test_splits_ilidsvid.mat"
    splits.unlink()
    with pytest.raises(ValueError, match=f"file {splits} does not exist; expected the layout root/i-LIDS-VID"):
        ILidsVidData(root, **SMALL)
    os.rename(root / "i-LIDS-VID", tmp_path / "moved")
    with pytest.raises(ValueError, match="folder .*i-LIDS-VID/sequences does not exist; expected the layout"):
        ILidsVidData(root, **SMALL)


# ---------------------------------------------------------------------------------------------- PRID-2011


def _prid(root: Path) -> Path:
    lengths = {"person_0001": (5, 6), "person_0002": (7, 5), "person_0003": (5, 2), "person_0004": (6, 6),
               "person_0005": (5, 5), "person_0006": (9, 9)}  # fmt: skip
    for person, counts in lengths.items():
        for cam, count in zip(("cam_a", "cam_b"), counts):
            for f in range(count):
                save_frame(root / "prid_2011" / "multi_shot" / cam / person / f"{f + 1:04d}.png")
    splits = [
        {"train": ["person_0001", "person_0003", "person_0004"], "test": ["person_0002", "person_0005", "person_0006"]},
        {"train": ["person_0002", "person_0005", "person_0006"], "test": ["person_0001", "person_0003", "person_0004"]},
    ]
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    return root


def test_prid2011_layout(tmp_path):
    data = Prid2011Data(_prid(tmp_path / "prid"), split=0, min_frames=4, **SMALL)
    assert data.dataset == "prid2011" and data.train_pids == [1, 4]  # person 3 has 2 frames in cam_b: left out
    assert [(t.pid, t.camid, t.num_frames) for t in data.train] == [(1, 0, 5), (1, 1, 6), (4, 0, 6), (4, 1, 6)]
    assert [(t.pid, t.camid) for t in data.query] == [(2, 0), (5, 0), (6, 0)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(2, 1), (5, 1), (6, 1)]
    assert [Path(f).name for f in data.gallery[2].frames] == [f"{i:04d}.png" for i in range(1, 10)]
    other = Prid2011Data(tmp_path / "prid", split=1, min_frames=0, **SMALL)
    assert [t.pid for t in other.query] == [1, 3, 4]


def test_prid2011_errors(tmp_path):
    root = _prid(tmp_path / "prid")
    with pytest.raises(ValueError, match="no person of split 0 has 21 frames in both cameras"):
        Prid2011Data(root, **SMALL)
    with pytest.raises(ValueError, match="split must be below 2"):
        Prid2011Data(root, split=2, min_frames=0, **SMALL)
    os.rename(root / "prid_2011" / "multi_shot" / "cam_a" / "person_0005", root / "moved")
    missing = root / "prid_2011" / "multi_shot" / "cam_a" / "person_0005"
    with pytest.raises(ValueError, match=f"folder {missing} does not exist; expected the layout root/prid_2011"):
        Prid2011Data(root, min_frames=0, **SMALL)
    (root / "splits_prid2011.json").unlink()
    with pytest.raises(ValueError, match="splits_prid2011.json does not exist; expected the layout"):
        Prid2011Data(root, min_frames=0, **SMALL)


# ---------------------------------------------------------------------------------------- your own folders


def _folders(root: Path, val: bool = False) -> Path:
    tracklets = {
        "train": {"0001_c1_a": 3, "0001_c2": 4, "0002_c1_x_y": 5, "0003_c3": 3},
        "query": {"0004_c1": 2, "0005_c1": 3},
        "gallery": {"0004_c2": 4, "0005_c3_late": 3, "0006_c2": 2},
    }
    if val:
        tracklets.update(val_query={"0007_c1": 2}, val_gallery={"0007_c2": 2, "0008_c2": 3})
    for split, folders in tracklets.items():
        for folder, count in folders.items():
            for f in reversed(range(count)):
                save_frame(root / split / folder / f"{f:03d}.png", 10 * f)
            (root / split / folder / "notes.txt").write_text("not a frame")
    return root


def test_tracklet_folder_layout(tmp_path):
    data = TrackletFolderData(_folders(tmp_path / "mine"), **SMALL)
    assert data.dataset == "mine" and data.num_classes == 3 and data.train_pids == [1, 2, 3]
    assert [(t.pid, t.camid, t.num_frames) for t in data.train] == [(1, 1, 3), (1, 2, 4), (2, 1, 5), (3, 3, 3)]
    assert [(t.pid, t.camid) for t in data.query] == [(4, 1), (5, 1)]
    assert [(t.pid, t.camid) for t in data.gallery] == [(4, 2), (5, 3), (6, 2)]
    assert [Path(f).name for f in data.train[1].frames] == ["000.png", "001.png", "002.png", "003.png"]
    assert data.val_dataloader() == []
    clips, pids, camids = next(iter(data.test_dataloader()[0]))
    assert clips.shape == (1, 2, 3, 8, 4) and (pids.tolist(), camids.tolist()) == ([4], [1])
    assert pixels_of(clips)[0, :, 0, 0, 0].tolist() == [0, 10]  # frames in name order
    clips, labels, camids = next(iter(data.train_dataloader()))
    assert clips.shape == (4, 2, 3, 8, 4) and labels.dtype == torch.int64

    with_val = TrackletFolderData(_folders(tmp_path / "with_val", val=True), **SMALL)
    query, gallery = with_val.val_dataloader()
    assert len(query) == 1 and len(gallery) == 2
    assert [t.pid for t in with_val.val_gallery] == [7, 8]


def test_tracklet_folder_errors(tmp_path):
    root = _folders(tmp_path / "mine")
    save_frame(root / "train" / "bob_c1" / "000.png")
    with pytest.raises(ValueError, match=r"bob_c1 is not a tracklet folder named <pid>_c<camid>\[_<anything>\]"):
        TrackletFolderData(root, **SMALL)
    os.rename(root / "train" / "bob_c1", root / "train" / "0009_c1")
    (root / "train" / "0009_c1" / "000.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*0009_c1/000.png"):
        TrackletFolderData(root, **SMALL)
    (root / "train" / "0009_c1" / "000.png").unlink()
    with pytest.raises(ValueError, match="no frames \\(image files\\) in .*0009_c1; expected the layout"):
        TrackletFolderData(root, **SMALL)
    os.rmdir(root / "train" / "0009_c1")
    os.rename(root / "gallery", root / "elsewhere")
    with pytest.raises(ValueError, match=f"folder {root / 'gallery'} does not exist; expected the layout"):
        TrackletFolderData(root, **SMALL)
    os.rename(root / "elsewhere", root / "gallery")
    save_frame(root / "val_query" / "0004_c1" / "000.png")
    with pytest.raises(ValueError, match="val_query exists but .*val_gallery does not"):
        TrackletFolderData(root, **SMALL)
    os.rename(root / "val_query", root / "elsewhere")
    for folder in ("0004_c2", "0005_c3_late"):
        os.rename(root / "gallery" / folder, root / folder)
    with pytest.raises(ValueError, match="ids that do not match between query and gallery"):
        TrackletFolderData(root, **SMALL)
    with pytest.raises(ValueError, match="2 train tracklets have fewer than seq_len=4 frames"):
        TrackletFolderData(_folders(tmp_path / "other"), **{**SMALL, "seq_len": 4})
