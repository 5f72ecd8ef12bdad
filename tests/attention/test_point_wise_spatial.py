"""PSA: the over-completed map crop, collect + distribute written out by hand, resizing, arguments."""
import pytest
import torch
import torch.nn.functional as F

import attnzoo
import attnzoo.attention.point_wise_spatial  # noqa: F401
from attnzoo.attention.point_wise_spatial import point_wise_maps
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize


def psa_buffer(over, mode):
    """The authors' PSAMask loops: (B, (2h-1)(2w-1), h, w) -> (B, hw source, hw target) buffer."""
    b, _, h, w = over.shape
    mask_w = 2 * w - 1
    buf = torch.zeros(b, h * w, h * w)
    count = torch.zeros(h * w, h * w, dtype=torch.long)
    for i in range(h):
        for j in range(w):
            for hidx in range(max(0, h - 1 - i), min(2 * h - 1, 2 * h - 1 - i)):
                for widx in range(max(0, w - 1 - j), min(mask_w, 2 * w - 1 - j)):
                    here = i * w + j
                    other = (hidx + i - (h - 1)) * w + (widx + j - (w - 1))
                    src, tgt = (other, here) if mode == "collect" else (here, other)
                    buf[:, src, tgt] = over[:, hidx * mask_w + widx, i, j]
                    count[src, tgt] += 1
    assert (count == 1).all()  # the (2h-1) x (2w-1) map covers every pair exactly once
    return buf


def test_crop_of_the_over_completed_map():
    torch.manual_seed(0)
    h, w = 3, 4
    over = torch.randn(2, (2 * h - 1) * (2 * w - 1), h, w)
    maps = point_wise_maps(over)  # [b, a, p]
    assert maps.shape == (2, h * w, h * w)
    assert torch.equal(maps, psa_buffer(over, "collect"))
    # Position (i, j) reads the h x w window of its own map whose centre (h-1, w-1) sits on (i, j).
    for i in range(h):
        for j in range(w):
            own = over[:, :, i, j].view(2, 2 * h - 1, 2 * w - 1)
            window = own[:, h - 1 - i : 2 * h - 1 - i, w - 1 - j : 2 * w - 1 - j]
            assert torch.equal(maps[:, :, i * w + j].view(2, h, w), window)


def test_point_wise_maps_checks_the_channel_count():
    with pytest.raises(ValueError, match="'psa'"):
        point_wise_maps(torch.randn(1, 12, 3, 4))


def hand_psa(m, x):
    """PSANet bi-direction as in the authors' code (PSAMask buffers, softmax over sources, bmm), then + x.

    Returns the output and the collect weights as (B, target, source).
    """
    resized = tuple(x.shape[-2:]) != m.feature_size
    aggregates, weights = [], {}
    for branch, mode in ((m.collect, "collect"), (m.distribute, "distribute")):
        z = bn_eval(conv1x1(branch.reduce[0], x), branch.reduce[1]).clamp_min(0)
        if resized:
            z = F.interpolate(z, size=m.feature_size, mode="bilinear", align_corners=True)
        a = bn_eval(conv1x1(branch.adapt[0], z), branch.adapt[1]).clamp_min(0)
        weights[mode] = torch.softmax(psa_buffer(conv1x1(branch.predict, a), mode), dim=1)  # (B, source, target)
        aggregates.append(torch.bmm(z.flatten(2), weights[mode]).view(z.shape))
    out = torch.cat(aggregates, 1)
    if resized:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True)
    return x + bn_eval(conv1x1(m.proj, out), m.norm), weights["collect"].transpose(1, 2)


@pytest.mark.parametrize("size", [(3, 4), (5, 7), (2, 2)])
def test_output_matches_hand_written_psa(size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("psa", 8, rd_ratio=1 / 2, feature_size=(3, 4))
    randomize(m, std=0.3).eval()
    x = torch.randn(2, 8, *size)
    expected, collect_weights = hand_psa(m, x)
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    # Each target of the 3 x 4 working size over its sources, whatever the input's size.
    assert m.attention_map.shape == (2, 12, 3, 4)
    torch.testing.assert_close(m.attention_map.flatten(-2), collect_weights, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.attention_map.sum((-2, -1)), torch.ones(2, 12))


def test_defaults():
    m = attnzoo.create_attention("psa", 64)
    assert m.feature_size == (14, 14)
    assert m.collect.reduce[0].out_channels == m.distribute.reduce[0].out_channels == 16
    assert m.collect.predict.out_channels == 27 * 27
    assert m.proj.in_channels == 32 and m.proj.out_channels == 64
    assert attnzoo.create_attention("psa", 2).collect.reduce[0].out_channels == 1
    assert attnzoo.create_attention("psa", 8, feature_size=5).feature_size == (5, 5)
    assert attnzoo.create_attention("psa", 8, feature_size=(1, 1)).collect.predict.out_channels == 1


@pytest.mark.parametrize(
    "channels, kwargs",
    [
        (0, {}),
        (8, {"rd_ratio": 0}),
        (8, {"rd_ratio": 1.5}),
        (8, {"feature_size": 0}),
        (8, {"feature_size": (3,)}),
        (8, {"feature_size": (3, 0)}),
        (8, {"feature_size": (3, 2.0)}),
        (8, {"feature_size": "14"}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("psa", channels, **kwargs)
