"""APNB: pyramid-pooled anchors, the block written out by hand, identity at init, arguments."""
import math

import pytest
import torch

import attnzoo
import attnzoo.attention.asymmetric_non_local  # noqa: F401
from attnzoo.attention.asymmetric_non_local import pyramid_pool
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize


def hand_pyramid_pool(t, sizes):
    """Adaptive average pooling by its bin rule: bin i of s spans [floor(i n / s), ceil((i + 1) n / s))."""
    b, c, h, w = t.shape
    anchors = []
    for s in sizes:
        for i in range(s):
            for j in range(s):
                r0, r1 = (i * h) // s, math.ceil((i + 1) * h / s)
                c0, c1 = (j * w) // s, math.ceil((j + 1) * w / s)
                anchors.append(t[:, :, r0:r1, c0:c1].mean((2, 3)))
    return torch.stack(anchors, dim=-1)  # (B, C, S)


def test_pyramid_pooling_gives_110_anchors():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9)
    pooled = pyramid_pool(x, (1, 3, 6, 8))
    assert pooled.shape == (2, 5, 110)
    torch.testing.assert_close(pooled, hand_pyramid_pool(x, (1, 3, 6, 8)))
    torch.testing.assert_close(pooled[..., 0], x.mean((2, 3)))
    m = attnzoo.create_attention("ann", 8)
    assert m.num_anchors == 110
    with record():
        m(torch.randn(2, 8, 7, 9))
    assert m.attention_map.shape == (2, 63, 7, 9)  # each query's weights over the positions
    torch.testing.assert_close(m.attention_map.sum((-2, -1)), torch.ones(2, 63))


@pytest.mark.parametrize("size", [(7, 9), (8, 8), (2, 3)])
def test_output_matches_matmul_softmax_matmul_over_pooled_keys(size):
    torch.manual_seed(0)
    c, dk, dv = 8, 6, 5
    m = attnzoo.create_attention("ann", c, key_channels=dk, value_channels=dv)
    randomize(m, std=0.3).eval()
    x = torch.randn(2, c, *size)
    sizes = (1, 3, 6, 8)

    conv, bn = m.query_key[0], m.query_key[1]
    qk = bn_eval(conv1x1(conv, x), bn).clamp_min(0)  # shared by queries and keys
    q = qk.flatten(2).transpose(1, 2)  # (B, HW, dk)
    k = hand_pyramid_pool(qk, sizes)  # (B, dk, S), pooled after BN + ReLU
    v = hand_pyramid_pool(conv1x1(m.value, x), sizes)  # (B, dv, S), conv then pool as the authors do
    attn = torch.softmax(q @ k / math.sqrt(dk), dim=-1)  # (B, HW, S)
    context = (attn @ v.transpose(1, 2)).transpose(1, 2).reshape(2, dv, *size)
    expected = x + bn_eval(conv1x1(m.proj, context), m.norm)

    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    # An anchor's weight spread evenly over the positions it pools: the weight each position's value gets.
    hw = size[0] * size[1]
    shares = hand_pyramid_pool(torch.eye(hw).view(hw, 1, *size), sizes)[:, 0]  # (HW, S)
    torch.testing.assert_close(m.attention_map, (attn @ shares.T).view(2, hw, *size), rtol=1e-4, atol=1e-6)
    values = conv1x1(m.value, x).flatten(2)  # (B, dv, HW): the values at every position, unpooled
    spread = m.attention_map.flatten(-2) @ values.transpose(1, 2)
    torch.testing.assert_close(spread.transpose(1, 2).reshape(2, dv, *size), context, rtol=1e-4, atol=1e-5)


def test_defaults_and_custom_pyramid():
    m = attnzoo.create_attention("ann", 32)
    assert m.pool_sizes == (1, 3, 6, 8)
    assert m.query_key[0].out_channels == 16 and m.value.out_channels == 16
    assert m.proj.out_channels == 32
    m = attnzoo.create_attention("ann", 8, pool_sizes=[2, 4])
    assert m.num_anchors == 20
    with record():
        m(torch.randn(1, 8, 5, 5))
    assert m.attention_map.shape == (1, 25, 5, 5)
    assert attnzoo.create_attention("ann", 1).query_key[0].out_channels == 1


@pytest.mark.parametrize(
    "channels, kwargs",
    [
        (0, {}),
        (8, {"key_channels": 0}),
        (8, {"value_channels": -2}),
        (8, {"pool_sizes": ()}),
        (8, {"pool_sizes": (1, 0)}),
        (8, {"pool_sizes": (1, 2.5)}),
        (8, {"pool_sizes": 3}),
        (8, {"pool_sizes": "136"}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("ann", channels, **kwargs)
