"""Criss-cross attention: row + column locality, the full masked-attention equivalent, recurrence, arguments."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import attnzoo
import attnzoo.attention.criss_cross  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, conv1x1


def build(c: int = 16, gamma: float = 0.7, **kwargs) -> torch.nn.Module:
    m = attnzoo.create_attention("cc", c, **kwargs)
    with torch.no_grad():
        m.gamma.fill_(gamma)
    return m.eval()


def full_criss_cross(m, x):
    """One step written as dense attention over all HW positions with a criss-cross mask."""
    b, c, h, w = x.shape
    xf = x.flatten(2)
    q, k, v = conv1x1(m.query, xf), conv1x1(m.key, xf), conv1x1(m.value, xf)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    allowed = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])  # (HW query, HW key)
    energy = (q.transpose(1, 2) @ k).masked_fill(~allowed, float("-inf"))
    attn = torch.softmax(energy, dim=-1)
    return x + m.gamma * (v @ attn.transpose(1, 2)).view(b, c, h, w), attn


def test_one_step_changes_only_the_row_and_column_of_a_changed_pixel():
    torch.manual_seed(0)
    m = build(recurrence=1)
    x = torch.randn(2, 16, 5, 6)
    i, j = 2, 4
    x2 = x.clone()
    x2[:, :, i, j] += torch.randn(2, 16)
    moved = (m(x2) - m(x)).abs().sum(1)  # (B, H, W)
    cross = torch.zeros(5, 6, dtype=torch.bool)
    cross[i, :] = True
    cross[:, j] = True
    assert (moved[:, ~cross] == 0).all(), "a position off the criss-cross path changed"
    assert (moved[:, cross] > 0).all()


def test_two_recurrences_reach_every_position():
    torch.manual_seed(0)
    m = build(recurrence=2)
    x = torch.randn(1, 16, 5, 6)
    x2 = x.clone()
    x2[:, :, 2, 4] += torch.randn(1, 16)
    assert ((m(x2) - m(x)).abs().sum(1) > 0).all()


@pytest.mark.parametrize("recurrence", [1, 2])
def test_equals_dense_attention_with_a_criss_cross_mask(recurrence):
    torch.manual_seed(0)
    m = build(recurrence=recurrence)
    x = torch.randn(2, 16, 5, 6)
    ref = x
    for _ in range(recurrence):
        ref, dense = full_criss_cross(m, ref)
    with record():
        out = m(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)

    # The recorded map of the last step is the dense masked attention, each query over the 5 x 6 positions.
    assert m.attention_map.shape == (2, 30, 5, 6)
    torch.testing.assert_close(m.attention_map.flatten(-2), dense, rtol=1e-5, atol=1e-6)


def test_weights_cover_the_h_plus_w_minus_one_positions_of_the_cross_and_sum_to_one():
    torch.manual_seed(0)
    m = build()
    with record():
        m(torch.randn(2, 16, 5, 6))
    amap = m.attention_map.view(2, 5, 6, 5, 6)  # query (i, j), key (r, s)
    torch.testing.assert_close(amap.sum((-2, -1)), torch.ones(2, 5, 6))
    assert ((amap > 0).sum((-2, -1)) == 5 + 6 - 1).all()
    for i in range(5):
        for j in range(6):
            off_cross = torch.ones(5, 6, dtype=torch.bool)
            off_cross[i, :] = off_cross[:, j] = False
            assert (amap[:, i, j][:, off_cross] == 0).all()


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_never_forms_an_hw_by_hw_matrix():
    b, c, h, w = 2, 8, 12, 12
    m = build(c)
    with LargestTensor() as probe:
        m(torch.randn(b, c, h, w)).sum().backward()
    # Largest: the (B, H, W, H + W) energies; a dense map would be B * (HW)^2 = 41472.
    assert probe.largest == b * h * w * (h + w)


@pytest.mark.parametrize("size", [(5, 6), (1, 1), (1, 7), (7, 9)])
def test_identity_at_init(size):
    m = attnzoo.create_attention("cc", 16)
    assert m.gamma.item() == 0
    x = torch.randn(2, 16, *size)
    assert torch.equal(m(x), x)


def test_defaults_follow_the_paper():
    m = attnzoo.create_attention("cc", 64)
    assert m.recurrence == 2
    assert m.query.out_channels == m.key.out_channels == 8
    assert m.value.out_channels == 64
    assert attnzoo.create_attention("cc", 4).query.out_channels == 1
    info = attnzoo.attention_info("cc")
    assert (info.family, info.placement) == ("spatial", "stage")


@pytest.mark.parametrize(
    "channels, kwargs",
    [(0, {}), (16, {"recurrence": 0}), (16, {"recurrence": 1.5}), (16, {"rd_ratio": 0}), (16, {"rd_ratio": 2})],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("cc", channels, **kwargs)
