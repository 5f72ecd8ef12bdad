"""Hard attention pooling: exactly k items kept, their mean, straight-through gradients, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.hard_attention  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, pool_scores


@pytest.mark.parametrize(("kwargs", "k"), [({"k": 3}, 3), ({"k": 1}, 1), ({"k": 8}, 8), ({}, 4), ({"ratio": 0.25}, 2)])
def test_output_is_mean_of_top_k_scored_items(kwargs, k):
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 6, **kwargs)
    x = torch.randn(3, 8, 6)
    s = pool_scores(m, x)
    order = torch.argsort(s, dim=1, descending=True)
    with record():
        out = m(x)
    assert out.shape == (3, 6)
    mask = m.attention_map
    assert mask.shape == (3, 8)
    assert ((mask == 0) | (mask == 1)).all()
    assert torch.equal(mask.sum(1), torch.full((3,), float(k)))
    for b in range(3):
        kept = order[b, :k]
        assert set(mask[b].nonzero().flatten().tolist()) == set(kept.tolist())
        expected = sum(x[b, n] for n in kept.tolist()) / k
        torch.testing.assert_close(out[b], expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_scorer_straight_through():
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 5, k=2)
    x = torch.randn(3, 6, 5)
    m(x).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Backward uses d sigmoid(score): d sum(out) / d c = sum_n sigmoid'(s_n) sum_d x_nd / k for the final bias c.
    with torch.no_grad():
        sig = torch.sigmoid(pool_scores(m, x))
        expected = (sig * (1 - sig) * x.sum(-1)).sum() / 2
    torch.testing.assert_close(m.score[2].bias.grad, expected.reshape(1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("ratio", "n", "k"), [(0.5, 8, 4), (0.4, 7, 3), (0.3, 10, 3), (0.1, 4, 1), (0.01, 9, 1), (1.0, 5, 5)]
)
def test_ratio_is_rounded_with_at_least_one_item(ratio, n, k):
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 4, ratio=ratio)
    assert m.num_kept(n) == k
    with record():
        m(torch.randn(2, n, 4))
    assert torch.equal(m.attention_map.sum(1), torch.full((2,), float(k)))


def test_k_larger_than_items_raises():
    m = attnzoo.create_attention("hard", 4, k=5)
    m(torch.randn(1, 5, 4))
    with pytest.raises(ValueError, match="'hard'"):
        m(torch.randn(1, 4, 4))


@pytest.mark.parametrize(
    ("channels", "kwargs"),
    [
        (4, {"k": 2, "ratio": 0.5}),
        (4, {"k": 0}),
        (4, {"k": 1.5}),
        (4, {"ratio": 0}),
        (4, {"ratio": 1.5}),
        (4, {"hidden": 0}),
        (0, {}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("hard", channels, **kwargs)
