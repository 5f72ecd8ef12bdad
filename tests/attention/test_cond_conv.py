"""CondConv: per-example kernels mixed from experts by sigmoid routing, argument checks."""
import pytest
import torch
import torch.nn.functional as F

import attnzoo
import attnzoo.attention.cond_conv  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, mixed_kernel_conv


def hand_routing(m, x):
    pooled = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    return 1 / (1 + torch.exp(-(pooled @ m.routing.weight.T + m.routing.bias)))  # (B, E)


def experts(m):
    """The expert kernels as (E, C_out, C_in / groups, k, k)."""
    c = m.conv
    return c.weight.view(c.num_experts, *c.weight_shape)


def test_single_expert_scales_its_kernel_by_the_routing_weight():
    torch.manual_seed(0)
    m = attnzoo.create_attention("condconv", 6, out_channels=4, num_experts=1)
    x = torch.randn(3, 6, 5, 7)
    w = experts(m)[0]
    r = hand_routing(m, x)  # (B, 1)
    with torch.no_grad():
        out = m(x)
    for i in range(3):
        expected = F.conv2d(x[i : i + 1], r[i, 0] * w, padding=1)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        ({"num_experts": 4}, (6, 5)),
        ({"num_experts": 3, "bias": True, "stride": 2, "groups": 2, "out_channels": 8}, (7, 6)),
        ({"num_experts": 8, "kernel_size": 5, "dilation": 2}, (9, 9)),
        ({"num_experts": 2, "kernel_size": 1, "out_channels": 3}, (3, 4)),
    ],
)
def test_per_example_kernel_is_routing_weighted_sum_of_experts(kwargs, size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("condconv", 4, **kwargs)
    if m.conv.bias is not None:
        with torch.no_grad():
            m.conv.bias.normal_()
    x = torch.randn(2, 4, *size)
    r = hand_routing(m, x)
    with record():
        out = m(x)
    torch.testing.assert_close(m.attention_map, r, rtol=1e-5, atol=1e-6)
    assert m.attention_map.shape == (2, kwargs["num_experts"])
    stride, dilation, groups = (kwargs.get(key, 1) for key in ("stride", "dilation", "groups"))
    expected = mixed_kernel_conv(x, r, experts(m), m.conv.bias, stride, dilation, groups)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_examples_get_different_kernels():
    torch.manual_seed(0)
    m = attnzoo.create_attention("condconv", 4, num_experts=4)
    x = torch.randn(2, 4, 5, 5)
    x[1] = 3 * x[1] + 2
    with record():
        m(x)
    assert not torch.allclose(m.attention_map[0], m.attention_map[1])
    assert ((m.attention_map > 0) & (m.attention_map < 1)).all()  # sigmoid, not softmax
    # Each example's output depends only on that example.
    with torch.no_grad():
        torch.testing.assert_close(m(x)[1:], m(x[1:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(7, 9), (8, 8), (1, 1)])
def test_stride_two_output_size_matches_conv2d(size):
    m = attnzoo.create_attention("condconv", 4, out_channels=6, stride=2)
    x = torch.randn(2, 4, *size)
    assert m(x).shape == torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)(x).shape


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_experts": 0},
        {"num_experts": 2.0},
        {"kernel_size": 4},
        {"kernel_size": 0},
        {"stride": 0},
        {"groups": 3},
        {"out_channels": 6, "groups": 4},
        {"out_channels": 0},
        {"dilation": 0},
        {"channels": 0},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("condconv", **{"channels": 8, **kwargs})
