"""Highway: y = T h + (1 - T) x, carry and transform limits, the negative gate bias, argument checks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnzoo
import attnzoo.attention.highway  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments


def gate_reference(layer, x):
    """sigmoid of a zero-padded k x k convolution written as a sum of shifted 1x1 products, (B, C, H, W)."""
    k = layer.weight.shape[-1]
    h, w = x.shape[-2:]
    padded = F.pad(x, [k // 2] * 4)
    out = layer.bias.view(1, -1, 1, 1).expand(x.shape[0], -1, h, w)
    for i in range(k):
        for j in range(k):
            out = out + torch.einsum("oc,bchw->bohw", layer.weight[:, :, i, j], padded[:, :, i : i + h, j : j + w])
    return torch.sigmoid(out)


def test_output_matches_hand_written_formula():
    torch.manual_seed(0)
    c = 6
    transform = nn.Conv2d(c, c, 3, padding=1)
    m = attnzoo.create_attention("highway", c, transform=transform, gate_bias=-1.0)
    with torch.no_grad():
        m.gate.weight.normal_(0, 0.5)
    x = torch.randn(2, c, 5, 4)
    h = F.conv2d(x, transform.weight, transform.bias, padding=1)
    t = gate_reference(m.gate, x)
    with record():
        out = m(x)
    torch.testing.assert_close(out, t * h + (1 - t) * x, rtol=1e-5, atol=1e-6)
    assert m.attention_map.shape == (2, c, 5, 4)
    torch.testing.assert_close(m.attention_map, t, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("kernel_size", "size"), [(1, (5, 4)), (3, (5, 4)), (5, (3, 7)), (3, (1, 1))])
def test_gate_is_a_same_padded_conv_of_the_given_kernel_size(kernel_size, size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("highway", 6, transform=nn.Identity(), gate_kernel_size=kernel_size)
    with torch.no_grad():
        m.gate.weight.normal_(0, 0.5)
    x, h = torch.randn(2, 6, *size), torch.randn(2, 6, *size)
    t = gate_reference(m.gate, x)
    with record():
        out = m(x, h)
    torch.testing.assert_close(m.attention_map, t, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, t * h + (1 - t) * x, rtol=1e-5, atol=1e-6)


def test_gate_kernel_defaults_to_the_transform_kernel():
    # The paper's convolutional highway layers give T the receptive field of H (3x3 by default).
    m = attnzoo.create_attention("highway", 8)
    assert m.gate.kernel_size == m.transform.conv.kernel_size == (3, 3)
    assert attnzoo.create_attention("highway", 8, transform=nn.Identity()).gate.kernel_size == (3, 3)


@pytest.mark.parametrize("bias", [-1e4, float("-inf")])
def test_closed_gate_carries_the_input_exactly(bias):
    torch.manual_seed(0)
    m = attnzoo.create_attention("highway", 8).eval()
    with torch.no_grad():
        m.gate.bias.fill_(bias)
    x = torch.randn(2, 8, 5, 3)
    assert torch.equal(m(x), x)


def test_open_gate_returns_the_transform():
    torch.manual_seed(0)
    m = attnzoo.create_attention("highway", 8).eval()
    with torch.no_grad():
        m.gate.bias.fill_(1e4)
        m.transform.bn.running_mean.normal_()
        m.transform.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 8, 5, 3)
    out = m(x)
    torch.testing.assert_close(out, m.transform(x), rtol=0, atol=0)
    assert not torch.allclose(out, x)


def test_default_gate_bias_is_negative_so_the_layer_starts_as_carry():
    torch.manual_seed(0)
    m = attnzoo.create_attention("highway", 8)
    assert (m.gate.bias < 0).all()
    assert -3 <= m.gate.bias.max().item() <= -1
    with record():
        m(torch.zeros(2, 8, 4, 4))
    assert (m.attention_map < 0.5).all()  # T(0) = sigmoid(bias)
    assert torch.equal(attnzoo.create_attention("highway", 4, gate_bias=-3.0).gate.bias, torch.full((4,), -3.0))


def test_default_transform_is_shape_preserving_conv_bn_relu():
    m = attnzoo.create_attention("highway", 8)
    assert m.transform.conv.kernel_size == (3, 3)
    x = torch.randn(1, 8, 5, 7)
    assert m.transform.eval()(x).shape == x.shape
    assert (m.transform(x) >= 0).all()


@pytest.mark.parametrize(
    "transform",
    [nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 8, 1), nn.Conv2d(4, 4, 3)],
)
def test_shape_changing_transform_raises(transform):
    m = attnzoo.create_attention("highway", 4, transform=transform)
    with pytest.raises(ValueError, match="'highway'"):
        m(torch.randn(1, 4, 6, 6))


@pytest.mark.parametrize(
    ("channels", "kwargs"),
    [
        (0, {}),
        (-1, {}),
        (2.0, {}),
        (4, {"transform": lambda x: x}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("highway", channels, **kwargs)


@pytest.mark.parametrize(("kernel_size", "expected"), [(2, "odd"), (0, "a positive integer"), (3.0, "a positive integer")])
def test_gate_kernel_size_must_be_a_positive_odd_integer(kernel_size, expected):
    with pytest.raises(ValueError, match=f"attention 'highway': gate_kernel_size must be {expected}"):
        attnzoo.create_attention("highway", 4, gate_kernel_size=kernel_size)


def test_given_branch_output_is_gated_against_the_input():
    m = attnzoo.create_attention("highway", 4, transform=nn.Identity()).eval()
    x, h = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    t = gate_reference(m.gate, x)
    torch.testing.assert_close(m(x, h), t * h + (1 - t) * x)
    with pytest.raises(ValueError, match="attention 'highway'.*keep the input shape"):
        m(x, h[:, :, :2])
