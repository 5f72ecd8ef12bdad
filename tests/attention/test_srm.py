"""SRM: style pooling, the gate formula, the zero-initialised start, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.srm  # noqa: F401
from attnzoo.attention.srm import style_pool
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval


def test_style_pool_is_mean_and_biased_std():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3) * 3 + 1
    s = style_pool(x)
    assert s.shape == (2, 5, 2) and s.dtype == torch.float32
    n = 12
    mean = x.sum((2, 3)) / n
    var = ((x - mean[:, :, None, None]) ** 2).sum((2, 3)) / n  # biased, as in the paper
    torch.testing.assert_close(s[..., 0], mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s[..., 1], torch.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(style_pool(x, eps=0.5)[..., 1], torch.sqrt(var + 0.5), rtol=1e-5, atol=1e-6)


def test_style_pool_of_a_constant_channel():
    x = torch.full((1, 2, 3, 3), 4.0)
    s = style_pool(x)
    torch.testing.assert_close(s[..., 0], torch.full((1, 2), 4.0))
    torch.testing.assert_close(s[..., 1], torch.full((1, 2), 1e-5**0.5))


def test_output_matches_hand_written_formula():
    torch.manual_seed(0)
    c = 8
    m = attnzoo.create_attention("srm", c)
    with torch.no_grad():
        m.cfc.normal_()
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.normal_(0, 0.3)
        m.bn.running_mean.normal_(0, 0.3)
        m.bn.running_var.uniform_(0.5, 2.0)
    m.eval()
    x = torch.randn(3, c, 5, 6)
    mu = x.mean((2, 3))
    sigma = torch.sqrt(x.var((2, 3), unbiased=False) + 1e-5)
    z = m.cfc[:, 0] * mu + m.cfc[:, 1] * sigma  # channel-wise FC: 2 weights per channel
    gate = torch.sigmoid(bn_eval(z, m.bn))
    with record():
        out = m(x)
    torch.testing.assert_close(out, x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.attention_map, gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_gate_is_one_half_at_init():
    torch.manual_seed(0)
    m = attnzoo.create_attention("srm", 6).eval()
    assert torch.equal(m.cfc, torch.zeros(6, 2))
    x = torch.randn(2, 6, 4, 5)
    with record():
        out = m(x)
    torch.testing.assert_close(m.attention_map, torch.full((2, 6, 1, 1), 0.5))
    torch.testing.assert_close(out, 0.5 * x)


def test_four_parameters_per_channel():
    m = attnzoo.create_attention("srm", 10)
    assert sum(p.numel() for p in m.parameters()) == 4 * 10


@pytest.mark.parametrize("channels", [0, -2, 2.0, True])
def test_bad_arguments_raise(channels):
    assert_bad_arguments("srm", channels)
