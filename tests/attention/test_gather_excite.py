import pytest
import torch

import attnzoo
import attnzoo.attention.gather_excite  # noqa: F401
from attnzoo import viz

from .helpers import assert_bad_arguments


def _reference(x: torch.Tensor, e: int) -> torch.Tensor:
    """GE-theta-minus written out with loops: average over the (2e-1)^2 window around e*p (inside the
    map), nearest-neighbour upsampling (output i reads pooled floor(i * Hp / H)), sigmoid, multiply."""
    b, c, h, w = x.shape
    hp, wp = -(-h // e), -(-w // e)
    pooled = torch.empty(b, c, hp, wp)
    for p in range(hp):
        for q in range(wp):
            rows = slice(max(e * p - (e - 1), 0), min(e * p + e, h))
            cols = slice(max(e * q - (e - 1), 0), min(e * q + e, w))
            pooled[:, :, p, q] = x[:, :, rows, cols].mean((2, 3))
    ri = torch.tensor([i * hp // h for i in range(h)])
    ci = torch.tensor([j * wp // w for j in range(w)])
    return x * torch.sigmoid(pooled[:, :, ri][:, :, :, ci])


def test_global_extent_is_sigmoid_of_mean():
    torch.manual_seed(0)
    m = attnzoo.create_attention("ge", 8)
    x = torch.randn(2, 8, 5, 7)
    with viz.record():
        out = m(x)
    gate = torch.sigmoid(x.sum((2, 3), keepdim=True) / 35)
    torch.testing.assert_close(out, x * gate)
    assert m.attention_map.shape == (2, 8, 1, 1)
    torch.testing.assert_close(m.attention_map, gate)
    assert len(list(m.parameters())) == 0


@pytest.mark.parametrize("e, size", [(2, (7, 9)), (2, (8, 8)), (4, (9, 5)), (8, (12, 11))])
def test_local_extent_matches_reference(e, size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("ge", 4, extent=e)
    x = torch.randn(2, 4, *size)
    with viz.record():
        out = m(x)
    assert out.shape == x.shape
    assert m.attention_map.shape == x.shape
    torch.testing.assert_close(out, _reference(x, e))


def test_local_extent_differs_from_global():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 8)
    assert not torch.allclose(attnzoo.create_attention("ge", 4, extent=2)(x), attnzoo.create_attention("ge", 4)(x))


@pytest.mark.parametrize("e", [0, 2, 4, 8])
def test_one_by_one_input(e):
    x = torch.randn(3, 4, 1, 1)
    torch.testing.assert_close(attnzoo.create_attention("ge", 4, extent=e)(x), x * torch.sigmoid(x))


@pytest.mark.parametrize(
    ("channels", "kwargs"), [(4, {"extent": e}) for e in (1, 3, 16, -2, True, 2.0, None)] + [(0, {})]
)
def test_bad_arguments(channels, kwargs):
    assert_bad_arguments("ge", channels, **kwargs)


def test_map_kind_follows_the_extent():
    # The registry's kind is the global extent's; a local extent gates per channel and place.
    assert attnzoo.attention_info("ge").map_kind == "channel"
    assert viz.mechanisms(attnzoo.create_attention("ge", 4))[""].kind == "channel"
    assert viz.mechanisms(attnzoo.create_attention("ge", 4, extent=2))[""].kind == "spatial"
