import pytest
import torch

import attnzoo
import attnzoo.attention.non_local  # noqa: F401
from attnzoo import viz

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize, stable_softmax


def _reference(m, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Embedded-Gaussian non-local block written out with einsum, returns (output, weights)."""
    b, c, h, w = x.shape
    theta = conv1x1(m.theta, x).reshape(b, -1, h * w)
    phi = conv1x1(m.phi, x).reshape(b, -1, h * w)
    g = conv1x1(m.g, x).reshape(b, -1, h * w)
    logits = torch.einsum("bdi,bdj->bij", theta, phi) * scale
    weights = stable_softmax(logits, -1)
    y = torch.einsum("bij,bdj->bdi", weights, g).reshape(b, -1, h, w)
    return x + bn_eval(conv1x1(m.out, y), m.norm), weights


@pytest.mark.parametrize("use_scale", [False, True])
def test_matches_hand_written_embedded_gaussian(use_scale):
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("nl", 16, use_scale=use_scale), std=0.3, mean_std=0.5).eval()
    assert m.theta.out_channels == 8
    x = torch.randn(2, 16, 5, 7)
    scale = 8**-0.5 if use_scale else 1.0
    expected, weights = _reference(m, x, scale)
    with viz.record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    # A pairwise map: query q's row of the weights, over the 5 x 7 positions.
    assert m.attention_map.shape == (2, 35, 5, 7)
    torch.testing.assert_close(m.attention_map.flatten(-2), weights, rtol=1e-4, atol=1e-6)


def test_no_scale_by_default():
    # The paper's f = exp(theta^T phi): the default must differ from the 1/sqrt(d)-scaled variant.
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("nl", 16), std=0.3, mean_std=0.5).eval()
    x = torch.randn(1, 16, 4, 4)
    unscaled, _ = _reference(m, x, 1.0)
    scaled, _ = _reference(m, x, 8**-0.5)
    torch.testing.assert_close(m(x), unscaled, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(m(x), scaled, rtol=1e-3, atol=1e-4)


def test_inner_channels():
    assert attnzoo.create_attention("nl", 32, inner_channels=4).theta.out_channels == 4
    assert attnzoo.create_attention("nl", 32, rd_ratio=1 / 4).g.out_channels == 8
    assert attnzoo.create_attention("nl", 1).phi.out_channels == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rd_ratio": 0},
        {"rd_ratio": 1.5},
        {"inner_channels": 0},
        {"inner_channels": 2.5},
        {"use_scale": "yes"},
        {"channels": 0},
    ],
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("nl", **{"channels": 16, **kwargs})
