from collections import Counter

import numpy as np
import pytest

from attnzoo.data import tracklet_synth
from attnzoo.data.tracklet_synth import (
    SPLITS,
    SynthConfig,
    render_tracklet,
    split_ids,
    split_index,
    synthesize_split,
    tracklets,
)

SMALL = SynthConfig(train_ids=6, val_ids=3, test_ids=4)


@pytest.fixture(scope="module")
def test_split():
    """Every tracklet of the default test split: {(pid, camid, number): (frames, corrupted)}."""
    return {
        (pid, camid, number): render_tracklet("test", pid, camid, number, return_corrupted=True)
        for pid, camid, number in synthesize_split("test")
    }


def test_defaults():
    config = SynthConfig()
    assert config.frame_size == (64, 32)
    assert (config.train_ids, config.val_ids, config.test_ids) == (64, 16, 32)
    assert config.cameras == 4 and config.min_cameras == 2
    assert config.tracklets_per_camera == (1, 2) and config.length == (8, 24)
    assert config.corrupted_fraction == 0.25
    assert SynthConfig(frame_size=[48, 24], length=[4, 6]).frame_size == (48, 24)  # lists, as from a YAML file


def test_ids_are_global_and_disjoint():
    assert [split_ids(s) for s in SPLITS] == [range(0, 64), range(64, 80), range(80, 112)]
    seen = [{pid for pid, _, _ in synthesize_split(s)} for s in SPLITS]
    assert [sorted(s) for s in seen] == [list(split_ids(s)) for s in SPLITS]  # every identity has tracklets
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]


@pytest.mark.parametrize("config", [SynthConfig(), SynthConfig(cameras=6, min_cameras=3, tracklets_per_camera=(2, 3))])
def test_index(config):
    for split in SPLITS:
        index = synthesize_split(split, config, seed=3)
        assert index == sorted(index) and len(set(index)) == len(index)
        assert index == synthesize_split(split, config, seed=3)
        cameras: dict[int, set[int]] = {}
        per_camera = Counter((pid, camid) for pid, camid, _ in index)
        for pid, camid, number in index:
            assert 0 <= camid < config.cameras
            cameras.setdefault(pid, set()).add(camid)
        assert all(config.min_cameras <= len(c) <= config.cameras for c in cameras.values())
        low, high = config.tracklets_per_camera
        assert all(low <= n <= high for n in per_camera.values())
        # Tracklets are numbered 0, 1, ... per (pid, camid).
        assert all(number < per_camera[pid, camid] for pid, camid, number in index)
        lengths = split_index(split, config, seed=3)
        assert [entry[:3] for entry in lengths] == index
        assert all(config.length[0] <= entry[3] <= config.length[1] for entry in lengths)


def test_index_is_seeded():
    assert synthesize_split("train", seed=0) != synthesize_split("train", seed=1)


def test_shapes_lengths_and_determinism():
    index = split_index("val")
    for pid, camid, number, length in index[:6]:
        frames = render_tracklet("val", pid, camid, number)
        assert frames.dtype == np.uint8 and frames.shape == (length, 64, 32, 3)
        assert 8 <= length <= 24
    pid, camid, number, _ = index[0]
    first = render_tracklet("val", pid, camid, number)
    render_tracklet("val", *index[1][:3])  # in between: nothing carried over
    for cache in (tracklet_synth._identity, tracklet_synth._camera, tracklet_synth._grey, tracklet_synth._photo):
        cache.cache_clear()
    assert np.array_equal(render_tracklet("val", pid, camid, number), first)
    frames, corrupted = render_tracklet("val", pid, camid, number, return_corrupted=True)
    assert np.array_equal(frames, first) and corrupted.dtype == bool and corrupted.shape == (len(first),)
    # Another tracklet, another seed: other pixels (and frames move and differ within a tracklet).
    assert not np.array_equal(render_tracklet("val", *index[1][:3])[:1], first[:1])
    other_seed = synthesize_split("val", seed=1)[0]
    assert not np.array_equal(render_tracklet("val", *other_seed, seed=1)[:1], first[:1])
    assert len({frame.tobytes() for frame in first}) == len(first)
    frames, pid, camid = next(tracklets("val"))
    assert (pid, camid) == index[0][:2] and np.array_equal(frames, first)


def test_other_config():
    config = SynthConfig(frame_size=(48, 24), cameras=3, length=(3, 5), corrupted_fraction=0.5)
    for pid, camid, number, length in split_index("test", config, seed=2)[:4]:
        frames = render_tracklet("test", pid, camid, number, config, seed=2)
        assert frames.shape == (length, 48, 24, 3) and 3 <= length <= 5
    tiny = SynthConfig(frame_size=(16, 8), train_ids=1, val_ids=1, test_ids=1, cameras=2)
    assert render_tracklet("test", *synthesize_split("test", tiny)[0], tiny).shape[1:] == (16, 8, 3)


def test_corrupted_fraction(test_split):
    masks = [corrupted for _, corrupted in test_split.values()]
    share = np.concatenate(masks).mean()
    assert abs(share - 0.25) < 0.02, share
    assert all(abs(m.sum() - 0.25 * len(m)) < 1 for m in masks)  # floor(f * L + u) per tracklet
    for fraction in (0.0, 1.0):
        config = SynthConfig(train_ids=2, val_ids=2, test_ids=2, corrupted_fraction=fraction)
        for entry in synthesize_split("val", config)[:3]:
            _, corrupted = render_tracklet("val", *entry, config, return_corrupted=True)
            assert corrupted.all() if fraction else not corrupted.any()


def _chroma_histograms(frames: np.ndarray, bins: int = 8) -> np.ndarray:
    """Per frame, the normalised (r, g) chromaticity histogram of the torso region (gain-free)."""
    region = frames[:, 16:36, 12:20].reshape(len(frames), -1, 3).astype(np.float64) + 1
    chroma = region[..., :2] / region.sum(axis=-1, keepdims=True)
    cells = np.minimum((chroma * bins).astype(int), bins - 1)
    codes = cells[..., 0] * bins + cells[..., 1]
    counts = np.stack([np.bincount(c, minlength=bins * bins) for c in codes]).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def test_identity_signal_across_cameras(test_split):
    # Clean frames of one person in two cameras look alike, more than two people in the same two cameras do;
    # corrupted frames look much less like the person than clean ones.
    hists = {key: _chroma_histograms(frames) for key, (frames, _) in test_split.items()}
    means = {key: hists[key][~corrupted].mean(axis=0) for key, (_, corrupted) in test_split.items()}
    cameras: dict[int, list[int]] = {}
    for pid, camid, number in test_split:
        if number == 0:
            cameras.setdefault(pid, []).append(camid)
    same, different, clean, bad = [], [], [], []
    for pid, cams in cameras.items():
        a, b = cams[0], cams[1]
        same.append(np.abs(means[pid, a, 0] - means[pid, b, 0]).sum())
        different += [
            np.abs(means[pid, a, 0] - means[other, b, 0]).sum()
            for other in cameras if other != pid and b in cameras[other]
        ]
        corrupted = test_split[pid, a, 0][1]
        distance = np.abs(hists[pid, a, 0] - means[pid, b, 0]).sum(axis=1)
        clean += list(distance[~corrupted])
        bad += list(distance[corrupted])
    assert len(same) == 32 and len(different) > 100 and len(bad) > 50
    assert np.mean(same) < 0.6 * np.mean(different), (np.mean(same), np.mean(different))
    assert np.mean(clean) < 0.75 * np.mean(bad), (np.mean(clean), np.mean(bad))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"frame_size": (0, 32)}, "frame_size"),
        ({"frame_size": (64, -1)}, "frame_size"),
        ({"frame_size": (8, 32)}, "frame_size"),
        ({"frame_size": 64}, "frame_size"),
        ({"train_ids": 0}, "train_ids"),
        ({"val_ids": -2}, "val_ids"),
        ({"test_ids": 1.5}, "test_ids"),
        ({"cameras": 1, "min_cameras": 1}, "cameras"),
        ({"min_cameras": 1}, "min_cameras"),
        ({"min_cameras": 5}, "min_cameras"),
        ({"tracklets_per_camera": (0, 2)}, "tracklets_per_camera"),
        ({"tracklets_per_camera": (3, 2)}, "tracklets_per_camera"),
        ({"length": (0, 8)}, "length"),
        ({"length": (9, 8)}, "length"),
        ({"length": (8,)}, "length"),
        ({"corrupted_fraction": -0.1}, "corrupted_fraction"),
        ({"corrupted_fraction": 1.5}, "corrupted_fraction"),
        ({"corrupted_fraction": True}, "corrupted_fraction"),
    ],
)
def test_bad_config(kwargs, name):
    with pytest.raises(ValueError, match=f"SynthConfig: {name} "):
        SynthConfig(**kwargs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        synthesize_split("training")
    with pytest.raises(ValueError, match="split must be one of"):
        split_index("Test")
    with pytest.raises(ValueError, match="seed"):
        synthesize_split("train", seed=-1)
    with pytest.raises(ValueError, match="config must be a SynthConfig"):
        synthesize_split("train", {"cameras": 4})
    pid, camid, number = synthesize_split("val", SMALL)[0]
    with pytest.raises(ValueError, match="split must be one of"):
        render_tracklet("dev", pid, camid, number, SMALL)
    with pytest.raises(ValueError, match="pid must be one of the train ids 0..5"):
        render_tracklet("train", pid, camid, number, SMALL)  # a val identity
    seen = {(p, c) for p, c, _ in synthesize_split("train", SMALL)}
    partly = [(p, c) for p in split_ids("train", SMALL) for c in range(SMALL.cameras) if (p, c) not in seen]
    assert partly  # some identity is not seen by every camera
    with pytest.raises(ValueError, match="camid must be one of the cameras that see person"):
        render_tracklet("train", *partly[0], 0, SMALL)
    with pytest.raises(ValueError, match="number"):
        render_tracklet("val", pid, camid, 5, SMALL)
    with pytest.raises(ValueError, match="seed"):
        render_tracklet("val", pid, camid, number, SMALL, seed=-3)
