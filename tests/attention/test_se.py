"""Squeeze-and-Excitation: the gate formula, the hidden width, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.se  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, randomize


def test_output_matches_hand_written_formula():
    torch.manual_seed(0)
    c = 32
    m = randomize(attnzoo.create_attention("se", c), std=0.5).eval()  # biases start at zero otherwise
    x = torch.randn(3, c, 5, 7)
    w1, b1 = m.fc1.weight.flatten(1), m.fc1.bias  # (r, C), (r,)
    w2, b2 = m.fc2.weight.flatten(1), m.fc2.bias  # (C, r), (C,)
    pooled = x.sum((2, 3)) / (x.shape[2] * x.shape[3])  # (B, C)
    gate = 1 / (1 + torch.exp(-((pooled @ w1.T + b1).clamp_min(0) @ w2.T + b2)))
    expected = x * gate[:, :, None, None]
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert m.attention_map.shape == (3, c, 1, 1)
    torch.testing.assert_close(m.attention_map, gate[:, :, None, None], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("channels", "hidden"), [(64, 4), (32, 2), (48, 3), (8, 1), (160, 10), (2048, 128)])
def test_hidden_width_is_round_c_over_16_not_a_multiple_of_8(channels, hidden):
    m = attnzoo.create_attention("se", channels)
    assert m.fc1.out_channels == hidden
    assert m.fc2.in_channels == hidden
    assert m.fc2.out_channels == channels


def test_explicit_reduction():
    assert attnzoo.create_attention("se", 32, rd_ratio=1 / 4).fc1.out_channels == 8
    assert attnzoo.create_attention("se", 32, rd_channels=5).fc1.out_channels == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 0},
        {"channels": -4},
        {"channels": 2.5},
        {"rd_ratio": 0},
        {"rd_ratio": 1.5},
        {"rd_ratio": -0.1},
        {"rd_channels": 0},
        {"rd_channels": 3.0},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("se", **{"channels": 16, **kwargs})
