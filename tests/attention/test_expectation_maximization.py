import copy

import attnzoo.attention.expectation_maximization  # noqa: F401
import pytest
import torch

import attnzoo

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize_batchnorm, stable_softmax

DDP_ITERATIONS, DDP_STEPS = (1, 3), 3


def bn_train(t, bn):
    """Training-mode BatchNorm over dim 1 of ``t``: the batch's mean and biased variance, then the affine map."""
    mean = t.mean((0, 2, 3), keepdim=True)
    var = ((t - mean) ** 2).mean((0, 2, 3), keepdim=True)
    return (t - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)


def reference(m, x, bases0, detach_before_last=False, norm=bn_eval):
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
    return x + norm(conv1x1(m.conv_out, recon), m.norm), mu, z


def test_output_matches_reference_em():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ema", 16, num_bases=8)).eval()
    x = torch.randn(2, 16, 5, 7)
    bases0 = m.bases.clone()
    with attnzoo.viz.record():
        out = m(x)
    ref, _, z = reference(m, x, bases0)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # An assignment map: each position's responsibilities (B, K, H, W), summing to 1 over the bases.
    assert m.attention_map.shape == (2, 8, 5, 7)
    torch.testing.assert_close(m.attention_map, z.transpose(1, 2).reshape(2, 8, 5, 7), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.attention_map.sum(1), torch.ones(2, 5, 7))


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


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_training_steps_update_bases_and_match_reference_gradients(iterations):
    # With iterations=1 the moving-average update once wrote into the bases that
    # backward still needed ("modified by an inplace operation").
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("ema", 8, num_bases=4, iterations=iterations)).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(3):
        x = torch.randn(2, 8, 3, 5)
        bases0 = m.bases.clone()
        opt.zero_grad()
        m(x).square().mean().backward()
        grads = [p.grad.clone() for p in m.parameters()]
        assert grads[0].abs().sum() > 0  # the input conv learns

        _, mu_t, _ = reference(m, x, bases0)
        torch.testing.assert_close(m.bases, 0.9 * bases0 + 0.1 * mu_t.mean(0, keepdim=True), rtol=1e-4, atol=1e-6)
        assert not torch.allclose(m.bases, bases0)

        opt.zero_grad()
        out, _, _ = reference(m, x, bases0, detach_before_last=True, norm=bn_train)
        out.square().mean().backward()
        for grad, p in zip(grads, m.parameters()):
            torch.testing.assert_close(grad, p.grad, rtol=1e-4, atol=1e-6)
        opt.step()


def _batch(rank: int, step: int) -> torch.Tensor:
    return torch.randn(2, 8, 5, 6, generator=torch.Generator().manual_seed(10 * step + rank))  # different data per rank


def _module(iterations: int):
    torch.manual_seed(0)  # the same module on both ranks
    return randomize_batchnorm(attnzoo.create_attention("ema", 8, num_bases=4, iterations=iterations)).train()


def _snapshot(m):
    return [m.bases.clone()] + [p.detach().clone() for p in m.parameters()]


def _ddp_rank(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    for iterations in DDP_ITERATIONS:
        m = _module(iterations)
        ddp = DistributedDataParallel(m)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
        history = []
        for step in range(DDP_STEPS):
            opt.zero_grad()
            ddp(_batch(rank, step)).square().mean().backward()
            opt.step()
            history.append(_snapshot(m))
        torch.save(history, f"{results}/rank{rank}-it{iterations}.pt")
    dist.destroy_process_group()


def _one_process_ddp(iterations: int) -> list:
    """DDP's steps replayed in one process: gradients and bases' batch means averaged over both ranks' batches."""
    m = _module(iterations)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    history = []
    for step in range(DDP_STEPS):
        start = copy.deepcopy(m.state_dict())
        grads, means = [], []
        for rank in range(2):
            m.load_state_dict(start)
            m.zero_grad()
            m(_batch(rank, step)).square().mean().backward()
            grads.append([p.grad.clone() for p in m.parameters()])
            means.append((m.bases - 0.9 * start["bases"]) / 0.1)
        m.load_state_dict(start)
        for p, g0, g1 in zip(m.parameters(), *grads):
            p.grad = (g0 + g1) / 2
        opt.step()
        m.bases.copy_(0.9 * start["bases"] + 0.1 * (means[0] + means[1]) / 2)
        history.append(_snapshot(m))
    return history


def test_ddp_training_steps_keep_ranks_in_step(tmp_path):
    torch.multiprocessing.spawn(_ddp_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for iterations in DDP_ITERATIONS:
        rank0 = torch.load(tmp_path / f"rank0-it{iterations}.pt")
        rank1 = torch.load(tmp_path / f"rank1-it{iterations}.pt")
        expected = _one_process_ddp(iterations)
        for step in range(DDP_STEPS):
            for a, b, e in zip(rank0[step], rank1[step], expected[step]):
                torch.testing.assert_close(a, b)  # the same bases and weights on every rank
                torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-6)
            previous = rank0[step - 1][0] if step else _module(iterations).bases
            assert not torch.allclose(rank0[step][0], previous)  # the bases move at every step
