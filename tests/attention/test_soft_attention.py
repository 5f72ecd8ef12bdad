"""Soft attention pooling: softmax weights over items, the weighted sum, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.soft_attention  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, pool_scores, stable_softmax


def test_output_is_weighted_sum_of_items():
    torch.manual_seed(0)
    m = attnzoo.create_attention("soft", 6, hidden=5)
    x = torch.randn(3, 7, 6)
    w = stable_softmax(pool_scores(m, x), 1)
    expected = torch.stack([sum(w[b, n] * x[b, n] for n in range(7)) for b in range(3)])
    with record():
        out = m(x)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.attention_map, w, rtol=1e-5, atol=1e-6)


def test_weights_sum_to_one_and_lie_in_the_open_unit_interval():
    torch.manual_seed(0)
    m = attnzoo.create_attention("soft", 8)
    with record():
        m(torch.randn(4, 9, 8))
    w = m.attention_map
    assert w.shape == (4, 9)
    assert (w > 0).all() and (w < 1).all()
    torch.testing.assert_close(w.sum(1), torch.ones(4))


def test_single_item_passes_through():
    torch.manual_seed(0)
    m = attnzoo.create_attention("soft", 5)
    x = torch.randn(2, 1, 5)
    torch.testing.assert_close(m(x), x[:, 0])


def test_permutation_invariant_and_hidden_default():
    torch.manual_seed(0)
    m = attnzoo.create_attention("soft", 5)
    assert m.score[0].out_features == 5
    x = torch.randn(2, 6, 5)
    perm = torch.randperm(6)
    torch.testing.assert_close(m(x[:, perm]), m(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("channels", "kwargs"), [(0, {}), (3.0, {}), (4, {"hidden": 0}), (4, {"hidden": 2.5})])
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("soft", channels, **kwargs)
