"""CANet's attention: channel gate, then a pixel gate on the channel-gated features (FFA-Net's CA -> PA)."""
import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.viz import record

from .helpers import assert_bad_arguments, randomize


def reference(m, x):
    """Hand-written CA -> PA from the module's weights: (output, pixel gate)."""
    _, ca1, _, ca2, _ = m.channel_gate
    pa1, _, pa2, _ = m.pixel_gate
    pooled = x.mean((2, 3))
    hidden = torch.relu(pooled @ ca1.weight.flatten(1).T + ca1.bias)
    channel = torch.sigmoid(hidden @ ca2.weight.flatten(1).T + ca2.bias)
    gated = x * channel[:, :, None, None]
    pixel = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(gated, pa1.weight, pa1.bias)), pa2.weight, pa2.bias))
    return gated * pixel, pixel


def test_output_matches_channel_then_pixel_attention():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("canet", 32), std=0.5)
    x = torch.randn(2, 32, 5, 7)
    expected, pixel = reference(m, x)
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.attention_map, pixel, rtol=1e-5, atol=1e-6)


def test_pixel_gate_sees_the_channel_gated_features():
    # With the channel gate alone the pixel gate would be computed on x; the order matters.
    torch.manual_seed(1)
    m = randomize(attnzoo.create_attention("canet", 16), std=0.8)
    x = torch.randn(2, 16, 4, 5) * 3
    _, pa_on_gated = reference(m, x)
    with record():
        m(x)
    pa1, _, pa2, _ = m.pixel_gate
    pa_on_input = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(x, pa1.weight, pa1.bias)), pa2.weight, pa2.bias))
    torch.testing.assert_close(m.attention_map, pa_on_gated, rtol=1e-5, atol=1e-6)
    assert (m.attention_map - pa_on_input).abs().max() > 1e-3


def test_pixel_map_is_one_weight_per_position():
    torch.manual_seed(0)
    m = attnzoo.create_attention("canet", 8)
    x = torch.randn(3, 8, 7, 5) * 4
    with record():
        m(x)
    a = m.attention_map
    assert a.shape == (3, 1, 7, 5)
    assert (a > 0).all() and (a < 1).all()


@pytest.mark.parametrize(
    ("channels", "rd_ratio", "hidden"), [(64, 1 / 8, 8), (256, 1 / 8, 32), (8, 1 / 8, 1), (4, 1 / 8, 1), (8, 0.5, 4)]
)
def test_reduction(channels, rd_ratio, hidden):
    m = attnzoo.create_attention("canet", channels, rd_ratio=rd_ratio)
    assert m.channel_gate[1].out_channels == hidden and m.channel_gate[3].out_channels == channels
    assert m.pixel_gate[0].out_channels == hidden and m.pixel_gate[2].out_channels == 1
    # FFA-Net's CA and PA, both with biases.
    channel_gate = (channels * hidden + hidden) + (hidden * channels + channels)
    pixel_gate = (channels * hidden + hidden) + (hidden + 1)
    assert sum(p.numel() for p in m.parameters()) == channel_gate + pixel_gate


@pytest.mark.parametrize(("channels", "kwargs"), [(0, {}), (2.0, {}), (8, {"rd_ratio": 0}), (8, {"rd_ratio": 1.5})])
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("canet", channels, **kwargs)
