import pytest
import torch
from timm.layers import GlobalContext

import attnzoo
import attnzoo.attention.global_context  # noqa: F401
from attnzoo import viz

from .helpers import assert_bad_arguments, randomize, stable_softmax


def _reference(m, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x + fc2(relu(LN(fc1(sum_j softmax_j(w . x_j + b) x_j)))) written out; returns (output, weights)."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    logits = torch.einsum("c,bcj->bj", m.conv_attn.weight[0, :, 0, 0], flat) + m.conv_attn.bias
    weights = stable_softmax(logits, -1)
    context = torch.einsum("bcj,bj->bc", flat, weights)
    mlp = m.mlp_add
    t = context @ mlp.fc1.weight[:, :, 0, 0].T + mlp.fc1.bias
    t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + mlp.norm.eps)
    t = torch.relu(t * mlp.norm.weight + mlp.norm.bias)
    t = t @ mlp.fc2.weight[:, :, 0, 0].T + mlp.fc2.bias
    return x + t[:, :, None, None], weights.reshape(b, 1, h, w)


def test_weights_sum_to_one_over_positions():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gc", 32), std=0.5)
    x = torch.randn(3, 32, 5, 7)
    with viz.record():
        m(x)
    assert m.attention_map.shape == (3, 1, 5, 7)
    assert (m.attention_map >= 0).all()
    torch.testing.assert_close(m.attention_map.sum((1, 2, 3)), torch.ones(3))


def test_matches_hand_written_formula():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gc", 32), std=0.5).eval()
    x = torch.randn(2, 32, 5, 7)
    expected, weights = _reference(m, x)
    with viz.record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.attention_map, weights)


def test_context_is_query_independent():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gc", 16), std=0.5)
    x = torch.randn(1, 16, 6, 6)
    added = m(x) - x
    torch.testing.assert_close(added, added[:, :, :1, :1].expand_as(added))


def test_adds_nothing_at_init():
    torch.manual_seed(0)
    m = attnzoo.create_attention("gc", 32)
    x = torch.randn(2, 32, 5, 5)
    assert torch.equal(m(x), x)


def test_paper_width_and_timm_parameter_names():
    m = attnzoo.create_attention("gc", 256)
    assert m.mlp_add.fc1.out_channels == 16 and m.mlp_scale is None
    timm_gca = GlobalContext(256, fuse_add=True, fuse_scale=False, rd_ratio=1 / 16)
    m.load_state_dict(timm_gca.state_dict())
    x = torch.randn(1, 256, 3, 3)
    torch.testing.assert_close(m(x), timm_gca(x))


def test_small_channel_floor():
    assert attnzoo.create_attention("gc", 16).mlp_add.fc1.out_channels == 4
    assert attnzoo.create_attention("gc", 2).mlp_add.fc1.out_channels == 2
    assert attnzoo.create_attention("gc", 16, rd_channels=2).mlp_add.fc1.out_channels == 2


@pytest.mark.parametrize("kwargs", [{"rd_ratio": 0}, {"rd_ratio": 2.0}, {"rd_channels": 0}, {"rd_channels": 1.5}])
def test_bad_arguments(kwargs):
    assert_bad_arguments("gc", 16, **kwargs)
