"""Dynamic convolution: softmax kernel attention with temperature, the aggregated kernel, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.dynamic_conv  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, mixed_kernel_conv, stable_softmax


def hand_attention(m, x, temperature):
    pooled = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    hidden = torch.relu(pooled @ m.fc1.weight.flatten(1).T)
    return stable_softmax((hidden @ m.fc2.weight.flatten(1).T + m.fc2.bias) / temperature, 1)


def randomise(m):
    with torch.no_grad():
        m.fc1.weight.normal_(0, 1)
        m.fc2.weight.normal_(0, 1)
        m.fc2.bias.normal_(0, 1)
        if m.bias is not None:
            m.bias.normal_()


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        ({}, (6, 5)),
        ({"temperature": 1.0, "bias": True, "stride": 2, "groups": 2, "out_channels": 6}, (7, 8)),
        ({"temperature": 2.0, "num_kernels": 3, "kernel_size": 5, "dilation": 2}, (9, 7)),
        ({"temperature": 0.5, "kernel_size": 1, "out_channels": 3}, (3, 3)),
    ],
)
def test_output_is_per_example_conv_with_aggregated_kernel(kwargs, size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", 4, **kwargs)
    randomise(m)
    x = torch.randn(2, 4, *size)
    attn = hand_attention(m, x, kwargs.get("temperature", 30.0))
    with record():
        out = m(x)
    torch.testing.assert_close(m.attention_map, attn, rtol=1e-5, atol=1e-6)
    stride, dilation, groups = (kwargs.get(key, 1) for key in ("stride", "dilation", "groups"))
    expected = mixed_kernel_conv(x, attn, m.weight, m.bias, stride, dilation, groups)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_attention_sums_to_one_per_example():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", 8, temperature=1.0)
    randomise(m)
    x = torch.randn(3, 8, 5, 5)
    with record():
        m(x)
    a = m.attention_map
    assert a.shape == (3, 4)
    assert (a > 0).all()
    torch.testing.assert_close(a.sum(1), torch.ones(3))
    assert (a.amax(1) - a.amin(1) > 0.05).all()  # at temperature 1 the kernels are told apart


def test_huge_temperature_gives_near_uniform_attention():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", 8, temperature=1e6)
    randomise(m)
    with record():
        m(torch.randn(3, 8, 5, 5))
    torch.testing.assert_close(m.attention_map, torch.full((3, 4), 0.25), rtol=0, atol=1e-4)


def test_temperature_sharpens_attention():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", 8)
    randomise(m)
    x = torch.randn(2, 8, 4, 4)
    spread = []
    for t in (30.0, 1.0):
        m.set_temperature(t)
        with record():
            m(x)
        spread.append((m.attention_map.amax(1) - m.attention_map.amin(1)).mean())
    assert spread[1] > spread[0]


def test_temperature_is_a_saved_buffer():
    m = attnzoo.create_attention("dyconv", 4)
    assert "temperature" in m.state_dict()
    assert "temperature" not in dict(m.named_parameters())
    assert m.temperature.item() == 30.0
    m.set_temperature(3.0)
    assert m.state_dict()["temperature"].item() == 3.0
    fresh = attnzoo.create_attention("dyconv", 4)
    fresh.load_state_dict(m.state_dict())
    assert fresh.temperature.item() == 3.0


@pytest.mark.parametrize("t", [0, 0.0, -1.0])
def test_set_temperature_rejects_non_positive(t):
    m = attnzoo.create_attention("dyconv", 4)
    with pytest.raises(ValueError, match="'dyconv'"):
        m.set_temperature(t)
    assert m.temperature.item() == 30.0


@pytest.mark.parametrize(("in_channels", "groups", "kernel_size"), [(64, 1, 3), (96, 4, 3), (128, 1, 1)])
def test_each_kernel_is_kaiming_uniform_over_its_own_fan_in(in_channels, groups, kernel_size):
    # The reference code (kaijieshi7/Dynamic-convolution-Pytorch) calls kaiming_uniform_(weight[k]) with
    # its defaults: bound sqrt(6 / fan_in), fan_in = in_channels / groups * k * k of one kernel.
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", in_channels, out_channels=128, groups=groups, kernel_size=kernel_size)
    bound = (6 / (in_channels // groups * kernel_size**2)) ** 0.5
    for w in m.weight:
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
        assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.03)  # uniform on [-b, b]
    assert not torch.equal(m.weight[0], m.weight[1])


def test_attention_fcs_are_kaiming_normal_fan_out_with_zero_bias():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dyconv", 512)
    hidden = 512 // 4 + 1
    assert m.fc1.weight.std().item() == pytest.approx((2 / hidden) ** 0.5, rel=0.03)  # fan_out of fc1: hidden
    assert m.fc2.weight.std().item() == pytest.approx((2 / 4) ** 0.5, rel=0.1)  # fan_out of fc2: K = 4
    assert not m.fc2.bias.any()


def test_a_new_module_starts_where_the_temperature_schedule_starts():
    from attnzoo.attention.dynamic_conv import INITIAL_TEMPERATURE
    from attnzoo.tasks import DynamicConvTemperature

    assert attnzoo.create_attention("dyconv", 4).temperature.item() == INITIAL_TEMPERATURE == 30.0
    assert DynamicConvTemperature().temperature(0) == INITIAL_TEMPERATURE


def test_defaults_follow_the_paper():
    m = attnzoo.create_attention("dyconv", 16)
    assert m.weight.shape == (4, 16, 16, 3, 3)  # K = 4
    assert m.fc1.out_channels == 16 // 4 + 1
    assert m.bias is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 0},
        {"temperature": -5.0},
        {"num_kernels": 0},
        {"rd_ratio": 0},
        {"rd_ratio": 1.5},
        {"kernel_size": 2},
        {"stride": 0},
        {"groups": 3},
        {"dilation": 0},
        {"out_channels": 0},
        {"channels": 0},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("dyconv", **{"channels": 8, **kwargs})
