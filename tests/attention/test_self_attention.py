"""Self-attention: identity at init, multi-head attention with the sincos encoding by hand, argument checks."""
import pytest
import torch
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

import attnzoo
import attnzoo.attention.self_attention  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, stable_softmax


def hand_self_attention(m, x, heads, pos_embed):
    b, c, h, w = x.shape
    d = c // heads
    tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C); token i*w + j is position (i, j)
    qk_in = tokens + build_sincos2d_pos_embed([h, w], dim=c) if pos_embed else tokens
    wq, wk, wv = m.qkv.weight.flatten(1).split(c)
    bq, bk, bv = m.qkv.bias.split(c) if m.qkv.bias is not None else (0, 0, 0)
    q, k, v = qk_in @ wq.T + bq, qk_in @ wk.T + bk, tokens @ wv.T + bv
    outs, maps = [], []
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / d**0.5
        a = stable_softmax(scores, -1)
        maps.append(a)
        outs.append(a @ v[..., sl])
    y = torch.cat(outs, -1) @ m.proj.weight.flatten(1).T + m.proj.bias  # (B, HW, C)
    return x + bn_eval(y.transpose(1, 2), m.norm).reshape(b, c, h, w), torch.stack(maps, 1).mean(1)


def make(c, heads, pos_embed="sincos", qkv_bias=False):
    m = attnzoo.create_attention("self", c, num_heads=heads, pos_embed=pos_embed, qkv_bias=qkv_bias)
    with torch.no_grad():
        m.norm.weight.fill_(1.0)
        m.norm.bias.normal_(0, 0.3)
        m.norm.running_mean.normal_(0, 0.3)
        m.norm.running_var.uniform_(0.5, 2.0)
        if qkv_bias:
            m.qkv.bias.normal_(0, 0.3)
    return m.eval()


@pytest.mark.parametrize(
    ("c", "heads", "pos_embed", "qkv_bias", "size"),
    [
        (16, 4, "sincos", False, (5, 3)),
        (8, 2, "sincos", True, (4, 6)),
        (8, 8, "sincos", False, (1, 1)),
        (12, 3, None, True, (3, 5)),
        (6, 2, None, False, (2, 7)),
    ],
)
def test_output_matches_hand_written_multi_head_attention(c, heads, pos_embed, qkv_bias, size):
    torch.manual_seed(0)
    m = make(c, heads, pos_embed, qkv_bias)
    x = torch.randn(2, c, *size)
    expected, attn = hand_self_attention(m, x, heads, pos_embed)
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    hw = size[0] * size[1]
    assert m.attention_map.shape == (2, hw, *size)  # each query's weights over the positions
    torch.testing.assert_close(m.attention_map.flatten(-2), attn, rtol=1e-4, atol=1e-6)


def test_position_encoding_matters():
    torch.manual_seed(0)
    m = make(8, 2)
    x = torch.randn(1, 8, 4, 4)
    with_pos = m(x)
    m.pos_embed = None
    assert not torch.allclose(with_pos, m(x), atol=1e-4)


def test_attention_rows_sum_to_one():
    torch.manual_seed(0)
    m = attnzoo.create_attention("self", 16, num_heads=4)
    with record():
        m(torch.randn(2, 16, 3, 5))
    a = m.attention_map
    assert a.shape == (2, 15, 3, 5)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum((-2, -1)), torch.ones(2, 15))


@pytest.mark.parametrize("pos_embed", ["sincos", None])
def test_identity_at_init(pos_embed):
    torch.manual_seed(0)
    m = attnzoo.create_attention("self", 8, num_heads=2, pos_embed=pos_embed)
    assert torch.equal(m.norm.weight, torch.zeros(8))
    x = torch.randn(2, 8, 5, 4)
    assert torch.equal(m(x), x)  # training mode
    assert torch.equal(m.eval()(x), x)


@pytest.mark.parametrize(
    ("channels", "kwargs"),
    [
        (12, {"num_heads": 5}),
        (8, {"num_heads": 3}),
        (8, {"num_heads": 0}),
        (6, {"num_heads": 2}),  # sincos needs C % 4 == 0
        (8, {"pos_embed": "learned"}),
        (0, {}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("self", channels, **kwargs)
