import pytest
import torch

import attnzoo
import attnzoo.attention.disentangled_non_local  # noqa: F401
from attnzoo import viz

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize, stable_softmax


def _reference(m, x: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DNL written out with einsum: returns (output, whitened pairwise weights)."""
    b, c, h, w = x.shape
    q = conv1x1(m.theta, x).reshape(b, -1, h * w)
    k = conv1x1(m.phi, x).reshape(b, -1, h * w)
    v = conv1x1(m.g, x).reshape(b, -1, h * w)
    d = q.shape[1]
    q = q - q.mean(2, keepdim=True)
    k = k - k.mean(2, keepdim=True)
    pairwise = stable_softmax(torch.einsum("bdi,bdj->bij", q, k) / (d**0.5 * temperature), dim=-1)
    unary = stable_softmax(conv1x1(m.unary, x).reshape(b, h * w), dim=-1)  # (B, HW)
    weights = pairwise + unary[:, None, :]
    y = torch.einsum("bij,bdj->bdi", weights, v).reshape(b, d, h, w)
    return x + bn_eval(conv1x1(m.out, y), m.norm), pairwise


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_matches_hand_written_reference(temperature):
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 16, temperature=temperature), std=0.2, mean_std=0.5).eval()
    x = torch.randn(2, 16, 5, 7)
    expected, pairwise = _reference(m, x, temperature)
    with viz.record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert m.attention_map.shape == (2, 35, 35)
    torch.testing.assert_close(m.attention_map, pairwise, rtol=1e-4, atol=1e-5)


def test_pairwise_invariant_to_constant_shift_of_keys_and_queries():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dnl", 16, temperature=1.0)
    q, k = torch.randn(2, 30, 8), torch.randn(2, 30, 8)
    shift_k, shift_q = torch.randn(2, 1, 8) * 3, torch.randn(2, 1, 8) * 3
    base = m.pairwise_weights(q, k)
    torch.testing.assert_close(m.pairwise_weights(q, k + shift_k), base)
    torch.testing.assert_close(m.pairwise_weights(q + shift_q, k), base)
    torch.testing.assert_close(base.sum(-1), torch.ones(2, 30))
    # A shift of the keys alone cancels in any softmax over keys; a shift of the queries adds
    # shift . k_j, a key-dependent (unary) term that only the whitening removes.
    plain = lambda qq: torch.softmax(qq @ k.transpose(1, 2) * m.scale, -1)  # noqa: E731
    assert not torch.allclose(plain(q + shift_q), plain(q), atol=1e-3)


@pytest.mark.parametrize("projection", ["phi", "theta"])
def test_output_invariant_to_embedding_shift(projection):
    # A constant added to every position's key (or query) embedding, here through the weight on an
    # input channel held constant over positions, leaves the block's output unchanged.
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 8, temperature=1.0), std=0.2, mean_std=0.5).eval()
    x = torch.randn(1, 8, 4, 5)
    x[:, 0] = 1.5
    before = m(x)
    with torch.no_grad():
        getattr(m, projection).weight[:, 0] += 2.0
    torch.testing.assert_close(m(x), before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0}, {"temperature": -1.0}, {"temperature": True}, {"temperature": "hot"},
     {"rd_ratio": 0}, {"inner_channels": 0}],
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("dnl", 16, **kwargs)
