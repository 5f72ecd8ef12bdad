"""ECA: the adaptive kernel size, the 1-D conv across channels, argument checks."""
import math

import pytest
import torch

import attnzoo
import attnzoo.attention.eca  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments


def paper_kernel_size(c: int, gamma: float = 2, b: float = 1) -> int:
    t = int(abs(math.log2(c) / gamma + b / gamma))
    return max(t if t % 2 else t + 1, 3)


@pytest.mark.parametrize(("channels", "k"), [(16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_kernel_size_adapts_to_channels(channels, k):
    assert paper_kernel_size(channels) == k
    m = attnzoo.create_attention("eca", channels)
    assert m.conv.kernel_size == (k,)
    assert m.conv.padding == ((k - 1) // 2,)
    assert m.conv.bias is None
    assert sum(p.numel() for p in m.parameters()) == k


def test_gamma_and_beta_change_the_kernel_size():
    # |log2(256) / 1 + 1 / 1| = 9 (odd) -> 9.
    assert attnzoo.create_attention("eca", 256, gamma=1).conv.kernel_size == (9,)
    # |log2(256) / 2 + 5 / 2| = 6 -> 7.
    assert attnzoo.create_attention("eca", 256, beta=5).conv.kernel_size == (7,)


def test_explicit_kernel_size_overrides():
    assert attnzoo.create_attention("eca", 64, kernel_size=5).conv.kernel_size == (5,)
    assert attnzoo.create_attention("eca", 64, kernel_size=1).conv.kernel_size == (1,)


@pytest.mark.parametrize("k", [3, 5])
def test_output_matches_hand_written_conv_over_channels(k):
    torch.manual_seed(0)
    c = 12
    m = attnzoo.create_attention("eca", c, kernel_size=k).eval()
    x = torch.randn(2, c, 5, 3)
    w = m.conv.weight.flatten()  # (k,)
    pad = (k - 1) // 2
    pooled = x.mean((2, 3))  # (B, C)
    padded = torch.cat([pooled.new_zeros(2, pad), pooled, pooled.new_zeros(2, pad)], dim=1)
    # Cross-correlation: channel i sees channels i - pad .. i + pad, zero beyond the ends.
    logits = sum(w[j] * padded[:, j : j + c] for j in range(k))
    gate = torch.sigmoid(logits)
    with record():
        out = m(x)
    torch.testing.assert_close(out, x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.attention_map, gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    # Locality: a channel's gate depends only on its k neighbours.
    x2 = x.clone()
    x2[:, c - 1] += 10.0
    with record():
        m(x2)
    changed = (m.attention_map - gate[:, :, None, None]).abs().amax((0, 2, 3)) > 1e-6
    assert changed.nonzero().flatten().tolist() == list(range(c - 1 - pad, c))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 4},
        {"kernel_size": 2},
        {"kernel_size": 0},
        {"kernel_size": -3},
        {"gamma": 0},
        {"gamma": -2},
        {"channels": 0},
        {"channels": 1.5},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("eca", **{"channels": 16, **kwargs})
