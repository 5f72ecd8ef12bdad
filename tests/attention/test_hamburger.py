import attnzoo.attention.hamburger  # noqa: F401
import pytest
import torch

import attnzoo

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize_batchnorm, stable_softmax


def nmf_reference(x, bases, steps):
    """Lee-Seung multiplicative updates written with einsum, coefficients first in every step."""
    logits = torch.einsum("bdn,bdr->bnr", x, bases)
    coef = stable_softmax(logits, -1)
    for _ in range(steps):
        gram = torch.einsum("bdr,bds->brs", bases, bases)
        coef = coef * torch.einsum("bdn,bdr->bnr", x, bases) / (torch.einsum("bnr,brs->bns", coef, gram) + 1e-6)
        gram = torch.einsum("bnr,bns->brs", coef, coef)
        bases = bases * torch.einsum("bdn,bnr->bdr", x, coef) / (torch.einsum("bdr,brs->bds", bases, gram) + 1e-6)
    return bases, coef


def reference(m, x, steps, detach=True):
    b, c, h, w = x.shape
    feats = conv1x1(m.lower, x).clamp_min(0).reshape(b, c, h * w)
    bases, coef = nmf_reference(feats.detach() if detach else feats, m.init_bases.expand(b, -1, -1), steps)
    gram = torch.einsum("bdr,bds->brs", bases, bases)
    coef = coef * torch.einsum("bdn,bdr->bnr", feats, bases) / (torch.einsum("bnr,brs->bns", coef, gram) + 1e-6)
    recon = torch.einsum("bdr,bnr->bdn", bases, coef).reshape(b, c, h, w)
    return x + bn_eval(conv1x1(m.upper, recon), m.norm), coef


def test_rank_is_capped_by_channels():
    assert attnzoo.create_attention("ham", 128).rank == 64
    assert attnzoo.create_attention("ham", 16).rank == 16
    assert attnzoo.create_attention("ham", 16, rank=4).init_bases.shape == (1, 16, 4)


def test_reconstruction_error_falls_with_steps():
    torch.manual_seed(0)
    m = attnzoo.create_attention("ham", 16, rank=4)
    x = torch.randn(2, 16, 40).clamp_min(0)
    errors = []
    for steps in (0, 1, 7, 20):
        bases, coef = m.decompose(x, steps)
        errors.append(torch.linalg.matrix_norm(x - bases @ coef.transpose(1, 2)).sum().item())
        assert (bases >= 0).all() and (coef >= 0).all()
    assert errors[0] > errors[1] > errors[2] > errors[3], errors
    ref_bases, ref_coef = nmf_reference(x, m.init_bases.expand(2, -1, -1), 7)
    bases, coef = m.decompose(x, 7)
    torch.testing.assert_close(bases, ref_bases, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(coef, ref_coef, rtol=1e-4, atol=1e-6)


def test_eval_matches_reference_with_seven_steps():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ham", 16, rank=4)).eval()
    x = torch.randn(2, 16, 5, 7)
    with attnzoo.viz.record():
        out = m(x)
    ref, coef = reference(m, x, steps=7)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert m.attention_map.shape == (2, 4, 5, 7)  # each position's coefficient on each basis
    torch.testing.assert_close(m.attention_map, coef.transpose(1, 2).reshape(2, 4, 5, 7), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(out, reference(m, x, steps=6)[0], rtol=1e-4, atol=1e-5)


def test_steps_train_six_eval_seven_and_eval_deterministic():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ham", 16, rank=4))
    calls = []
    decompose = m.decompose

    def spy(x, steps, bases=None):
        calls.append((steps, bases is None))
        return decompose(x, steps, bases)

    m.decompose = spy
    x = torch.randn(2, 16, 5, 7)
    m.train()
    first, second = m(x), m(x)
    assert not torch.allclose(first, second)  # fresh random bases at every training forward
    m.eval()
    assert torch.equal(m(x), m(x))  # fixed starting bases in eval
    assert calls == [(6, False), (6, False), (7, True), (7, True)]


def test_gradient_only_through_the_last_step():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ham", 8, rank=3)).eval()
    x = torch.randn(2, 8, 3, 5)
    feats = torch.randn(2, 8, 15, requires_grad=True).clamp_min(0)
    bases, coef = m.decompose(feats, 7)
    assert not bases.requires_grad and not coef.requires_grad

    m(x).square().sum().backward()
    grad = m.lower.weight.grad.clone()
    assert grad.abs().sum() > 0
    m.zero_grad()
    reference(m, x, steps=7)[0].square().sum().backward()
    torch.testing.assert_close(grad, m.lower.weight.grad, rtol=1e-4, atol=1e-6)
    m.zero_grad()
    reference(m, x, steps=7, detach=False)[0].square().sum().backward()  # full unrolled gradient differs
    assert not torch.allclose(grad, m.lower.weight.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [dict(rank=0), dict(train_steps=0), dict(eval_steps=-1), dict(rank=True), dict(channels=0)]
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("ham", **{"channels": 16, **kwargs})
