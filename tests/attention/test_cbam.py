"""CBAM: channel-then-spatial gating written out by hand, the spatial map, argument checks."""
import pytest
import torch
import torch.nn.functional as F

import attnzoo
import attnzoo.attention.cbam  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, randomize


def hand_cbam(m, x):
    fc1_w, fc1_b = m.channel.fc1.weight.flatten(1), m.channel.fc1.bias
    fc2_w, fc2_b = m.channel.fc2.weight.flatten(1), m.channel.fc2.bias

    def mlp(v):  # (B, C) -> (B, C), shared between the two pooled vectors
        return torch.relu(v @ fc1_w.T + fc1_b) @ fc2_w.T + fc2_b

    avg = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    mx = x.flatten(2).max(-1).values
    channel_gate = torch.sigmoid(mlp(avg) + mlp(mx))
    y = x * channel_gate[:, :, None, None]

    pooled = torch.stack([y.mean(1), y.max(1).values], dim=1)  # (B, 2, H, W)
    conv = m.spatial.conv.conv
    k = conv.weight.shape[-1]
    s = F.conv2d(pooled, conv.weight, padding=k // 2)
    spatial_gate = torch.sigmoid(bn_eval(s, m.spatial.conv.bn))
    return y * spatial_gate, spatial_gate, channel_gate


@pytest.mark.parametrize(("size", "kernel"), [((6, 5), 7), ((3, 9), 3)])
def test_output_matches_hand_written_formula(size, kernel):
    torch.manual_seed(0)
    c = 32
    m = attnzoo.create_attention("cbam", c, spatial_kernel_size=kernel)
    randomize(m, std=0.5).eval()
    x = torch.randn(2, c, *size)
    expected, spatial_gate, channel_gate = hand_cbam(m, x)
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.attention_map, spatial_gate, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.channel_gate(x), channel_gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_spatial_map_shape_and_range():
    torch.manual_seed(0)
    m = attnzoo.create_attention("cbam", 16)
    x = torch.randn(3, 16, 7, 5)
    for mode in (m.train, m.eval):
        mode()
        with record():
            m(x)
        a = m.attention_map
        assert a.shape == (3, 1, 7, 5)
        assert (a > 0).all() and (a < 1).all()


def test_structure():
    m = attnzoo.create_attention("cbam", 64)
    assert m.channel.fc1.out_channels == 4  # C / 16
    assert m.channel.fc1.bias is not None and m.channel.fc2.bias is not None  # MLP keeps its biases
    assert m.spatial.conv.conv.kernel_size == (7, 7)
    assert m.spatial.conv.conv.in_channels == 2 and m.spatial.conv.conv.out_channels == 1
    assert isinstance(m.spatial.conv.bn, torch.nn.BatchNorm2d)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 0},
        {"rd_ratio": 0},
        {"rd_ratio": 2},
        {"spatial_kernel_size": 6},
        {"spatial_kernel_size": 0},
        {"spatial_kernel_size": 2.0},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("cbam", **{"channels": 16, **kwargs})
