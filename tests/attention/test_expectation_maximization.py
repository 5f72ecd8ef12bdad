import attnzoo.attention.expectation_maximization  # noqa: F401
import pytest
import torch

import attnzoo

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize_batchnorm, stable_softmax


def reference(m, x, bases0, detach_before_last=False):
    """EM attention written out with einsum: returns output, final bases, responsibilities."""
    feats = conv1x1(m.conv_in, x)
    b, c, h, w = feats.shape
    feats = feats.reshape(b, c, h * w)
    mu = bases0.expand(b, -1, -1)
    for it in range(m.iterations):
        if detach_before_last and it == m.iterations - 1:
            mu = mu.detach()  # cuts the gradient through all earlier iterations
        logits = torch.einsum("bcn,bck->bnk", feats, mu)
        z = stable_softmax(logits, -1)
        mu = torch.einsum("bcn,bnk->bck", feats, z / (1e-6 + z.sum(1, keepdim=True)))
        mu = mu / (1e-6 + torch.sqrt((mu**2).sum(1, keepdim=True)))
    recon = torch.einsum("bck,bnk->bcn", mu, z).clamp_min(0).reshape(b, c, h, w)
    return x + bn_eval(conv1x1(m.conv_out, recon), m.norm), mu, z


def test_output_matches_reference_em():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ema", 16, num_bases=8)).eval()
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
    m = randomize_batchnorm(attnzoo.create_attention("ema", 16, num_bases=8))
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
    m = randomize_batchnorm(attnzoo.create_attention("ema", 8, num_bases=4)).eval()
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
    [
        dict(num_bases=0),
        dict(iterations=0),
        dict(momentum=1.5),
        dict(momentum=0),
        dict(num_bases=2.5),
        dict(channels=0),
    ],
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("ema", **{"channels": 16, **kwargs})


def _ddp_rank(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)  # the same module on both ranks
    m = attnzoo.create_attention("ema", 8, num_bases=4).train()
    x = torch.randn(2, 8, 5, 6, generator=torch.Generator().manual_seed(rank + 1))  # different data per rank
    m(x)
    torch.save(m.bases, f"{results}/rank{rank}.pt")
    dist.destroy_process_group()


def test_bases_are_averaged_over_ranks_under_ddp(tmp_path):
    torch.multiprocessing.spawn(_ddp_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    torch.testing.assert_close(rank0, rank1)
    # The same update computed in one process from both ranks' batches.
    torch.manual_seed(0)
    m = attnzoo.create_attention("ema", 8, num_bases=4).train()
    start = m.bases.clone()
    means = []
    for rank in range(2):
        m.bases.copy_(start)
        m(torch.randn(2, 8, 5, 6, generator=torch.Generator().manual_seed(rank + 1)))
        means.append((m.bases - 0.9 * start) / 0.1)
    torch.testing.assert_close(rank0, 0.9 * start + 0.1 * (means[0] + means[1]) / 2)
