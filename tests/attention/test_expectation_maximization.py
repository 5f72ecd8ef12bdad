import attnzoo.attention.expectation_maximization  # noqa: F401
import pytest
import torch

import attnzoo


def _randomise(m):
    with torch.no_grad():
        m.norm.weight.normal_(1.0, 0.2)
        m.norm.bias.normal_(0.0, 0.2)
        m.norm.running_mean.normal_(0.0, 0.2)
        m.norm.running_var.uniform_(0.5, 1.5)
    return m


def reference(m, x, bases0, detach_before_last=False):
    """EM attention written out with einsum: returns output, final bases, responsibilities."""
    feats = torch.einsum("oc,bchw->bohw", m.conv_in.weight[:, :, 0, 0], x) + m.conv_in.bias[None, :, None, None]
    b, c, h, w = feats.shape
    feats = feats.reshape(b, c, h * w)
    mu = bases0.expand(b, -1, -1)
    for it in range(m.iterations):
        if detach_before_last and it == m.iterations - 1:
            mu = mu.detach()  # cuts the gradient through all earlier iterations
        logits = torch.einsum("bcn,bck->bnk", feats, mu)
        z = logits.exp() / logits.exp().sum(-1, keepdim=True)
        mu = torch.einsum("bcn,bnk->bck", feats, z / (1e-6 + z.sum(1, keepdim=True)))
        mu = mu / (1e-6 + torch.sqrt((mu**2).sum(1, keepdim=True)))
    recon = torch.einsum("bck,bnk->bcn", mu, z).clamp_min(0).reshape(b, c, h, w)
    out = torch.einsum("oc,bchw->bohw", m.conv_out.weight[:, :, 0, 0], recon)
    bn = m.norm
    out = (out - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    out = out * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    return x + out, mu, z


def test_identity_at_init():
    torch.manual_seed(0)
    m = attnzoo.create_attention("ema", 16)
    x = torch.randn(2, 16, 5, 7)
    for train in (True, False):
        m.train(train)
        assert torch.equal(m(x), x)


def test_output_matches_reference_em():
    torch.manual_seed(0)
    m = _randomise(attnzoo.create_attention("ema", 16, num_bases=8)).eval()
    x = torch.randn(2, 16, 5, 7)
    bases0 = m.bases.clone()
    with attnzoo.viz.record():
        out = m(x)
    ref, _, z = reference(m, x, bases0)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.attention_map, z, rtol=1e-4, atol=1e-6)
    assert m.attention_map.shape == (2, 35, 8)


def test_bases_fixed_in_eval_and_moving_average_in_training():
    torch.manual_seed(0)
    m = _randomise(attnzoo.create_attention("ema", 16, num_bases=8))
    x = torch.randn(3, 16, 4, 6)
    bases0 = m.bases.clone()
    assert torch.allclose(bases0.norm(dim=1), torch.ones(1, 8), atol=1e-5)

    m.eval()
    m(x)
    assert torch.equal(m.bases, bases0)

    m.train()
    m(x)
    assert not torch.allclose(m.bases, bases0)
    _, mu_t, _ = reference(m, x, bases0)
    torch.testing.assert_close(m.bases, 0.9 * bases0 + 0.1 * mu_t.mean(0, keepdim=True), rtol=1e-4, atol=1e-6)


def test_gradient_flows_through_last_iteration_only():
    torch.manual_seed(0)
    m = _randomise(attnzoo.create_attention("ema", 8, num_bases=4)).eval()
    x = torch.randn(2, 8, 3, 5)
    m(x).square().sum().backward()
    grad = m.conv_in.weight.grad.clone()
    assert grad.abs().sum() > 0  # the input conv learns (the reference's does not)

    m.zero_grad()
    out, _, _ = reference(m, x, m.bases.clone(), detach_before_last=True)
    out.square().sum().backward()
    torch.testing.assert_close(grad, m.conv_in.weight.grad, rtol=1e-4, atol=1e-6)

    m.zero_grad()
    out, _, _ = reference(m, x, m.bases.clone())  # gradient through every iteration differs
    out.square().sum().backward()
    assert not torch.allclose(grad, m.conv_in.weight.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_bases=0), dict(iterations=0), dict(momentum=1.5), dict(momentum=0), dict(num_bases=2.5)],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="attention 'ema'"):
        attnzoo.create_attention("ema", 16, **kwargs)


def test_bad_channels():
    with pytest.raises(ValueError, match="attention 'ema'"):
        attnzoo.create_attention("ema", 0)
