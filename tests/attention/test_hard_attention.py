"""Hard attention pooling: Gumbel-top-k sampling in training, the most probable items in eval,
straight-through gradients against hand-written references, the deterministic top-k option, arguments."""
import pytest
import torch

import attnzoo
import attnzoo.attention.hard_attention  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, pool_scores, stable_softmax


def gumbel_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The Gumbel(0, 1) noise the module draws in training after torch.manual_seed(seed): -log of Exp(1) draws."""
    torch.manual_seed(seed)
    return -torch.empty(shape).exponential_().log()


def selected_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the items where mask == 1, per batch element: (B, D)."""
    return torch.stack([x[b, mask[b].bool()].mean(0) for b in range(x.shape[0])])


def spread_scorer(m: torch.nn.Module) -> torch.nn.Module:
    """Scale the scorer's output layer so that the scores of N(0, 1) items spread over a few units."""
    with torch.no_grad():
        m.score[2].weight.mul_(8.0)
    return m


@pytest.mark.parametrize(("kwargs", "k"), [({}, 1), ({"k": 3}, 3), ({"k": 8}, 8), ({"ratio": 0.25}, 2)])
@pytest.mark.parametrize("selection", ["sample", "topk"])
def test_eval_keeps_the_most_probable_items(kwargs, k, selection):
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 6, selection=selection, **kwargs).eval()
    x = torch.randn(3, 8, 6)
    order = torch.argsort(pool_scores(m, x), dim=1, descending=True)
    with record():
        out = m(x)
    assert out.shape == (3, 6)
    mask = m.attention_map
    assert mask.shape == (3, 8)
    assert ((mask == 0) | (mask == 1)).all()
    for b in range(3):
        assert set(mask[b].nonzero().flatten().tolist()) == set(order[b, :k].tolist())
    torch.testing.assert_close(out, selected_mean(x, mask), rtol=1e-6, atol=1e-6)
    assert torch.equal(m(x), out)


def test_default_samples_one_item():
    m = attnzoo.create_attention("hard", 4)
    assert m.num_kept(2) == 1 and m.num_kept(16) == 1
    x = torch.randn(5, 7, 4)
    with record():
        out = m(x)
    mask = m.attention_map
    assert torch.equal(mask.sum(1), torch.ones(5))
    assert torch.equal(out, x[torch.arange(5), mask.argmax(1)])  # exactly the sampled item


@pytest.mark.parametrize("k", [1, 3])
def test_train_output_is_the_mean_of_the_sampled_items(k):
    torch.manual_seed(0)
    m = spread_scorer(attnzoo.create_attention("hard", 6, k=k)).train()
    x = torch.randn(4, 9, 6)
    noise = gumbel_noise(3, (4, 9))
    torch.manual_seed(3)
    with record():
        out = m(x)
    mask = m.attention_map
    assert ((mask == 0) | (mask == 1)).all() and torch.equal(mask.sum(1), torch.full((4,), float(k)))
    # The draw is the top k of scores + Gumbel noise (Gumbel-top-k), not of the scores alone.
    perturbed = pool_scores(m, x) + noise
    expected_mask = torch.zeros(4, 9).scatter_(1, perturbed.topk(k, dim=1).indices, 1.0)
    assert torch.equal(mask, expected_mask)
    unperturbed = torch.zeros(4, 9).scatter_(1, pool_scores(m, x).topk(k, dim=1).indices, 1.0)
    assert not torch.equal(mask, unperturbed)  # this draw tells sampling from top-k
    torch.testing.assert_close(out, selected_mean(x, mask), rtol=1e-6, atol=1e-6)


def test_train_draws_are_random_and_seeded():
    m = attnzoo.create_attention("hard", 6, k=2).train()
    x = torch.randn(16, 8, 6)
    masks = []
    for seed in (1, 2, 1):
        torch.manual_seed(seed)
        with record():
            m(x)
        masks.append(m.attention_map)
    assert not torch.equal(masks[0], masks[1])
    assert torch.equal(masks[0], masks[2])


def test_k1_draws_follow_the_softmax_of_the_scores():
    torch.manual_seed(0)
    m = spread_scorer(attnzoo.create_attention("hard", 4)).train()
    items = torch.randn(1, 5, 4)
    with torch.no_grad():
        p = stable_softmax(pool_scores(m, items), dim=1)[0]
    assert p.max() < 0.7 and (p - 0.2).abs().max() > 0.1, p  # neither the argmax nor uniform
    draws = 40_000
    with record():
        m(items.expand(draws, -1, -1))
    freq = m.attention_map.mean(0)
    # Binomial standard error <= sqrt(0.25 / 40000) = 0.0025: 0.01 is four of them.
    torch.testing.assert_close(freq, p, rtol=0, atol=0.01)


def test_k2_draws_are_without_replacement_from_the_softmax():
    torch.manual_seed(0)
    m = spread_scorer(attnzoo.create_attention("hard", 4, k=2)).train()
    items = torch.randn(1, 5, 4)
    with torch.no_grad():
        p = stable_softmax(pool_scores(m, items), dim=1)[0]
    # P(i in a 2-item draw without replacement) = p_i + sum_{j != i} p_j p_i / (1 - p_j).
    inclusion = torch.stack([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(5) if j != i) for i in range(5)])
    draws = 40_000
    with record():
        m(items.expand(draws, -1, -1))
    torch.testing.assert_close(m.attention_map.mean(0), inclusion, rtol=0, atol=0.012)
    assert (inclusion - 2 * p).abs().max() > 0.05  # distinguishable from k independent draws' 2 p_i


def test_k1_straight_through_gradient_is_the_gumbel_softmax_gradient():
    torch.manual_seed(0)
    tau = 0.5
    m = spread_scorer(attnzoo.create_attention("hard", 5, tau=tau)).train()
    x = torch.randn(3, 6, 5, requires_grad=True)
    c = torch.randn(3, 5)
    noise = gumbel_noise(7, (3, 6))
    torch.manual_seed(7)
    with record():
        (m(x) * c).sum().backward()
    mask = m.attention_map
    # By hand, for a = softmax((s + g) / tau) and u_n = c . x_n: dL/ds_n = a_n (u_n - sum_m a_m u_m) / tau.
    with torch.no_grad():
        s = pool_scores(m, x)
        a = stable_softmax((s + noise) / tau, dim=1)
        u = (x * c[:, None, :]).sum(-1)
        grad_s = a * (u - (a * u).sum(1, keepdim=True)) / tau
        h = torch.tanh(x @ m.score[0].weight.T + m.score[0].bias)
    torch.testing.assert_close(m.score[2].bias.grad, grad_s.sum().reshape(1), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m.score[2].weight.grad, (grad_s[..., None] * h).sum((0, 1))[None], rtol=1e-4, atol=1e-6)
    # The input's gradient: c through the selected item, plus dL/ds back through the scorer.
    x_ref = x.detach().requires_grad_()
    (grad_s * pool_scores(m, x_ref)).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad + mask[..., None] * c[:, None, :], rtol=1e-4, atol=1e-6)


def test_k3_straight_through_gradient_is_the_relaxed_subset_gradient():
    torch.manual_seed(0)
    tau, k = 0.7, 3
    m = spread_scorer(attnzoo.create_attention("hard", 5, k=k, tau=tau)).train()
    x = torch.randn(3, 8, 5)
    c = torch.randn(3, 5)
    noise = gumbel_noise(11, (3, 8))
    torch.manual_seed(11)
    with record():
        (m(x) * c).sum().backward()
    mask = m.attention_map
    # Xie and Ermon (2019): k softmaxes of (s + g) / tau, each after adding log(1 - previous one).
    ref = attnzoo.create_attention("hard", 5, k=k, tau=tau)
    ref.load_state_dict(m.state_dict())
    r = pool_scores(ref, x) + noise
    khot, onehot = torch.zeros_like(r), torch.zeros_like(r)
    for _ in range(k):
        r = r + torch.log(torch.clamp(1 - onehot, min=torch.finfo(torch.float32).tiny))
        onehot = stable_softmax(r / tau, dim=1)
        khot = khot + onehot
    torch.testing.assert_close(khot.sum(1), torch.full((3,), float(k)))
    weights = mask + khot - khot.detach()
    ((weights[..., None] * x).sum(1) / k * c).sum().backward()
    for (name, p), p_ref in zip(m.named_parameters(), ref.parameters()):
        assert p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_eval_gradient_reaches_the_scorer_through_the_noiseless_relaxation():
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 5).eval()
    x = torch.randn(3, 6, 5)
    m(x).sum().backward()
    with torch.no_grad():
        a = stable_softmax(pool_scores(m, x), dim=1)
        u = x.sum(-1)
        grad_s = a * (u - (a * u).sum(1, keepdim=True))
    torch.testing.assert_close(m.score[2].bias.grad, grad_s.sum().reshape(1), rtol=1e-4, atol=1e-6)


def test_topk_selection_is_deterministic_with_a_sigmoid_straight_through_gradient():
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 5, k=2, selection="topk").train()
    x = torch.randn(3, 6, 5)
    s = pool_scores(m, x).detach()
    top = torch.zeros(3, 6).scatter_(1, s.topk(2, dim=1).indices, 1.0)
    for seed in (1, 2):
        torch.manual_seed(seed)
        with record():
            out = m(x)
        assert torch.equal(m.attention_map, top)
    torch.testing.assert_close(out, selected_mean(x, top), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    # d sum(out) / d c = sum_n sigmoid'(s_n) sum_d x_nd / k for the final bias c.
    sig = torch.sigmoid(s)
    expected = (sig * (1 - sig) * x.sum(-1)).sum() / 2
    torch.testing.assert_close(m.score[2].bias.grad, expected.reshape(1), rtol=1e-4, atol=1e-6)


def test_training_compiles_and_runs_under_bf16_autocast():
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = attnzoo.create_attention("hard", 8, k=2).train()
    x = torch.randn(3, 6, 8)
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    torch.manual_seed(5)
    with record():
        eager = m(x)
    mask = m.attention_map
    torch.manual_seed(5)
    torch.testing.assert_close(compiled(x), eager, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16), record():
        y = m(x)
    assert torch.equal(m.attention_map.sum(1), torch.full((3,), 2.0))
    torch.testing.assert_close(y, selected_mean(x, m.attention_map), rtol=1e-6, atol=1e-6)
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in m.parameters())
    assert mask.shape == (3, 6)


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
        (4, {"tau": 0}),
        (4, {"tau": -1.0}),
        (4, {"tau": True}),
        (4, {"tau": "cold"}),
        (4, {"selection": "gumbel"}),
        (0, {}),
    ],
)
def test_bad_arguments_raise(channels, kwargs):
    assert_bad_arguments("hard", channels, **kwargs)
