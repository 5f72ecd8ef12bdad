"""TrackletsData: the synthetic tracklets as a re-ID data module: splits, query and gallery, batches."""
from __future__ import annotations

import numpy as np
import torch

from attnzoo.data import TrackletsData
from attnzoo.data.tracklet_synth import SynthConfig, render_tracklet, split_index

SMALL = {"train_ids": 8, "val_ids": 4, "test_ids": 6, "p": 4, "k": 2}


def test_splits_query_and_gallery_follow_the_protocol():
    data = TrackletsData(**SMALL)
    config = SynthConfig(train_ids=8, val_ids=4, test_ids=6)
    assert data.num_classes == 8 and data.train_pids == list(range(8)) and data.dataset == "tracklets"
    train, val, test = ({t.pid for t in s} for s in (data.train, data.val_gallery, data.gallery))
    assert train == set(range(8)) and val == set(range(8, 12)) and test == set(range(12, 18))
    index = split_index("test", config)
    assert [(t.pid, t.camid, t.num_frames) for t in data.gallery] == [(p, c, n) for p, c, _, n in index]
    assert [(t.pid, t.camid) for t in data.query] == [(p, c) for p, c, number, _ in index if number == 0]
    # Each person is seen by at least two cameras, so every query has a true match in another camera.
    for q in data.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in data.gallery)


def test_batches_are_normalised_clips_of_the_rendered_frames():
    data = TrackletsData(**SMALL)
    data.trainer = None
    x, labels, camids = next(iter(data.train_dataloader()))
    assert x.shape == (8, 4, 3, 64, 32) and x.dtype == torch.float32
    assert labels.dtype == torch.int64 and camids.dtype == torch.int64 and labels.max() < 8
    assert all((labels == label).sum() == 2 for label in labels.unique())  # P x K: 4 people, 2 tracklets each
    query, gallery = data.test_dataloader()
    clip, pid, camid = next(iter(query))
    first = data.query[0]
    assert clip.shape == (1, -(-first.num_frames // 4) * 4, 3, 64, 32)  # all frames, padded to whole clips
    frames = render_tracklet("test", first.pid, first.camid, 0, SynthConfig(train_ids=8, val_ids=4, test_ids=6))
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (torch.from_numpy(frames[0]).float() / 255 - mean) / std
    torch.testing.assert_close(clip[0, 0].permute(1, 2, 0), expected, rtol=0, atol=1e-5)
    assert (pid.item(), camid.item()) == (first.pid, first.camid)
    assert len(query.dataset) == len(data.query) and len(gallery.dataset) == len(data.gallery)


def test_the_same_seed_gives_the_same_tracklets():
    a, b = TrackletsData(**SMALL), TrackletsData(**SMALL)
    c = TrackletsData(**SMALL, data_seed=1)
    pixels = [d.gallery[0].read([0, 1], 64, 32) for d in (a, b, c)]
    assert np.array_equal(pixels[0], pixels[1]) and not np.array_equal(pixels[0], pixels[2])
