import math

import attnzoo.attention.spatial_temporal  # noqa: F401
import pytest
import torch

import attnzoo

from .helpers import assert_bad_arguments


def part_rows(h, k):
    """Row ranges of k horizontal parts: the first h % k parts get one extra row."""
    sizes = [h // k + (1 if i < h % k else 0) for i in range(k)]
    starts = [sum(sizes[:i]) for i in range(k)]
    return [range(s, s + n) for s, n in zip(starts, sizes)]


def reference(x, k):
    """STA written out clip by clip, frame by frame and part by part."""
    b, t, c, h, w = x.shape
    rows = part_rows(h, k)
    outs, all_scores = [], []
    for clip in x:
        energy = torch.zeros(t, h, w)
        for f in range(t):
            for i in range(h):
                for j in range(w):
                    energy[f, i, j] = math.sqrt(sum(float(v) ** 2 for v in clip[f, :, i, j]))
            energy[f] /= energy[f].sum()
        scores = torch.tensor([[sum(float(energy[f, i].sum()) for i in rows[p]) for p in range(k)] for f in range(t)])
        scores = scores / scores.sum(0, keepdim=True)
        discriminative = torch.zeros(c, h, w)
        global_ = torch.zeros(c, h, w)
        for p in range(k):
            best = int(scores[:, p].argmax())
            for i in rows[p]:
                discriminative[:, i] = clip[best, :, i]
                global_[:, i] = sum(scores[f, p] * clip[f, :, i] for f in range(t))
        outs.append(torch.cat([discriminative.mean((1, 2)), global_.mean((1, 2))]))
        all_scores.append(scores)
    return torch.stack(outs), torch.stack(all_scores)


def test_parameter_free_and_output_width():
    m = attnzoo.create_attention("sta", 8)
    assert len(list(m.parameters())) == 0
    assert m.out_channels == 16


@pytest.mark.parametrize("h", [4, 7, 9])
def test_output_and_scores_match_reference(h):
    torch.manual_seed(0)
    m = attnzoo.create_attention("sta", 6)
    x = torch.randn(2, 3, 6, h, 3)
    with attnzoo.viz.record():
        out = m(x)
    ref, scores = reference(x, 4)
    assert out.shape == (2, 12)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert m.attention_map.shape == (2, 3, 4)
    torch.testing.assert_close(m.attention_map, scores, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.attention_map.sum(1), torch.ones(2, 4))  # L1-normalised over frames


def test_zero_frame_gets_lowest_score():
    torch.manual_seed(0)
    m = attnzoo.create_attention("sta", 8, num_parts=2)
    x = torch.randn(1, 4, 8, 6, 5)
    x[:, 2] = 0
    with attnzoo.viz.record():
        out = m(x)
    scores = m.attention_map
    assert torch.equal(scores[:, 2], torch.zeros(1, 2))
    assert (scores.argmin(1) == 2).all()
    assert torch.isfinite(out).all()


def test_height_below_num_parts_raises():
    m = attnzoo.create_attention("sta", 8)
    with pytest.raises(ValueError, match="attention 'sta'.*num_parts=4"):
        m(torch.randn(1, 2, 8, 3, 5))


def test_input_checks():
    m = attnzoo.create_attention("sta", 8)
    with pytest.raises(ValueError, match="attention 'sta'"):
        m(torch.randn(2, 8, 6, 5))
    with pytest.raises(ValueError, match="attention 'sta'"):
        m(torch.randn(1, 2, 7, 6, 5))


@pytest.mark.parametrize("kwargs", [dict(num_parts=0), dict(num_parts=2.0)])
def test_bad_arguments(kwargs):
    assert_bad_arguments("sta", 8, **kwargs)


def test_inter_frame_regularization():
    torch.manual_seed(0)
    m = attnzoo.create_attention("sta", 4)
    x = torch.randn(2, 3, 4, 5, 3, requires_grad=True)
    energy = x.detach().pow(2).sum(2).sqrt()
    g = energy / energy.sum((-2, -1), keepdim=True)
    expected = torch.stack(
        [((g[:, i] - g[:, j]) ** 2).sum((-2, -1)).sqrt() for i, j in [(0, 1), (0, 2), (1, 2)]]
    ).mean()
    reg = m.inter_frame_regularization(x)
    torch.testing.assert_close(reg, expected)
    reg.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    same = torch.randn(1, 1, 4, 5, 3).repeat(1, 3, 1, 1, 1)
    assert m.inter_frame_regularization(same).abs() < 1e-6
    assert m.inter_frame_regularization(torch.randn(2, 1, 4, 5, 3)) == 0
