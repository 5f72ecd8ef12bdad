"""Concatenated attention: pixel and channel branches fused by a 1x1 conv, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.canet  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, conv1x1


def test_output_matches_hand_written_formula():
    torch.manual_seed(0)
    c = 32
    m = attnzoo.create_attention("canet", c)
    x = torch.randn(2, c, 5, 6)
    pixel = torch.sigmoid(conv1x1(m.pixel, x))
    _, down, _, up = m.channel
    pooled = x.mean((2, 3))
    channel = torch.sigmoid(
        torch.relu(pooled @ down.weight.flatten(1).T + down.bias) @ up.weight.flatten(1).T + up.bias
    )
    expected = conv1x1(m.fuse, torch.cat([x * pixel, x * channel[:, :, None, None]], 1))
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.attention_map, pixel, rtol=1e-5, atol=1e-6)


def test_pixel_map_shape_and_range():
    torch.manual_seed(0)
    m = attnzoo.create_attention("canet", 8)
    with record():
        m(torch.randn(3, 8, 7, 5) * 4)
    a = m.attention_map
    assert a.shape == (3, 8, 7, 5)
    assert (a > 0).all() and (a < 1).all()


@pytest.mark.parametrize(
    ("channels", "rd_ratio", "hidden"), [(32, 1 / 16, 2), (64, 1 / 16, 4), (8, 1 / 16, 1), (8, 0.5, 4)]
)
def test_channel_reduction(channels, rd_ratio, hidden):
    m = attnzoo.create_attention("canet", channels, rd_ratio=rd_ratio)
    assert m.channel[1].out_channels == hidden
    assert m.fuse.in_channels == 2 * channels and m.fuse.out_channels == channels


@pytest.mark.parametrize(("channels", "kwargs"), [(0, {}), (2.0, {}), (8, {"rd_ratio": 0}), (8, {"rd_ratio": 1.5})])
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("canet", channels, **kwargs)
