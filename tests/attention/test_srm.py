"""SRM: style pooling, the gate formula, the zero-initialised start, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.srm  # noqa: F401
from attnzoo.attention.srm import style_pool
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval


def test_style_pool_is_mean_and_unbiased_std_without_eps():
    # The authors' code: x.view(N, C, -1).std(dim=2), divided by HW - 1, no eps.
    torch.manual_seed(0)
    x = torch.randn(2, 5, 4, 3) * 3 + 1
    s = style_pool(x)
    assert s.shape == (2, 5, 2) and s.dtype == torch.float32
    n = 12
    mean = x.sum((2, 3)) / n
    var = ((x - mean[:, :, None, None]) ** 2).sum((2, 3)) / (n - 1)
    torch.testing.assert_close(s[..., 0], mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s[..., 1], torch.sqrt(var), rtol=1e-5, atol=1e-6)


def test_style_pool_of_a_constant_channel_has_zero_std_and_finite_gradient():
    x = torch.full((1, 2, 3, 3), 4.0, requires_grad=True)
    s = style_pool(x)
    torch.testing.assert_close(s[..., 0], torch.full((1, 2), 4.0))
    torch.testing.assert_close(s[..., 1], torch.zeros(1, 2))
    s.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 1 / 9))  # d mean / dx only


def test_one_by_one_map_has_zero_std_instead_of_nan():
    # The unbiased std of one value is undefined (NaN in the authors' code).
    x = torch.randn(3, 4, 1, 1, requires_grad=True)
    s = style_pool(x)
    torch.testing.assert_close(s, torch.stack([x.detach().flatten(1), torch.zeros(3, 4)], -1))
    m = attnzoo.create_attention("srm", 4)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.cfc.grad).all()


def reference(m, x):
    """SRM's gate written out, (B, C)."""
    mu = x.mean((2, 3))
    sigma = torch.sqrt(((x - mu[:, :, None, None]) ** 2).sum((2, 3)) / (x.shape[2] * x.shape[3] - 1))
    z = m.cfc[:, 0] * mu + m.cfc[:, 1] * sigma  # channel-wise FC: 2 weights per channel
    return torch.sigmoid(bn_eval(z, m.bn))


def randomized(c):
    m = attnzoo.create_attention("srm", c)
    with torch.no_grad():
        m.cfc.normal_()
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.normal_(0, 0.3)
        m.bn.running_mean.normal_(0, 0.3)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_output_matches_hand_written_formula():
    torch.manual_seed(0)
    m = randomized(8)
    x = torch.randn(3, 8, 5, 6)
    gate = reference(m, x)
    with record():
        out = m(x)
    torch.testing.assert_close(out, x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.attention_map, gate[:, :, None, None], rtol=1e-5, atol=1e-6)


def test_float64_module_runs_in_float64():
    torch.manual_seed(0)
    m = randomized(8).double()
    x = torch.randn(3, 8, 5, 6, dtype=torch.float64)
    out = m(x)
    assert out.dtype == torch.float64 and style_pool(x).dtype == torch.float64
    torch.testing.assert_close(out, x * reference(m, x)[:, :, None, None], rtol=1e-10, atol=1e-12)


def test_bf16_autocast_takes_statistics_in_float32():
    torch.manual_seed(0)
    m = randomized(8)
    x = torch.randn(3, 8, 5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
        assert style_pool(x.bfloat16()).dtype == torch.float32
    torch.testing.assert_close(out.float(), x * reference(m, x)[:, :, None, None], rtol=0.02, atol=0.02)


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
