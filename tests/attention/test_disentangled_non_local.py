"""DNL: both forms against hand-written references (W_z + BN, the authors' code), whitening, arguments."""
import pytest
import torch

import attnzoo
import attnzoo.attention.disentangled_non_local  # noqa: F401
from attnzoo import viz

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize, stable_softmax


def _reference(m, x: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DNL written out with einsum: returns (output, whitened pairwise weights)."""
    b, c, h, w = x.shape
    q = conv1x1(m.theta, x).reshape(b, -1, h * w)
    k = conv1x1(m.phi, x).reshape(b, -1, h * w)
    v = conv1x1(m.g, x).reshape(b, -1, h * w)
    d = q.shape[1]
    q = q - q.mean(2, keepdim=True)
    k = k - k.mean(2, keepdim=True)
    pairwise = stable_softmax(torch.einsum("bdi,bdj->bij", q, k) / (d**0.5 * temperature), dim=-1)
    unary = stable_softmax(conv1x1(m.unary, x).reshape(b, h * w), dim=-1)  # (B, HW)
    weights = pairwise + unary[:, None, :]
    y = torch.einsum("bij,bdj->bdi", weights, v).reshape(b, d, h, w)
    return x + bn_eval(conv1x1(m.out, y), m.norm), pairwise


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_matches_hand_written_reference(temperature):
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 16, temperature=temperature), std=0.2, mean_std=0.5).eval()
    x = torch.randn(2, 16, 5, 7)
    expected, pairwise = _reference(m, x, temperature)
    with viz.record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert m.attention_map.shape == (2, 35, 5, 7)  # each query's weights over the 5 x 7 positions
    torch.testing.assert_close(m.attention_map.flatten(-2), pairwise, rtol=1e-4, atol=1e-5)


def test_pairwise_invariant_to_constant_shift_of_keys_and_queries():
    torch.manual_seed(0)
    m = attnzoo.create_attention("dnl", 16, temperature=1.0)
    q, k = torch.randn(2, 30, 8), torch.randn(2, 30, 8)
    shift_k, shift_q = torch.randn(2, 1, 8) * 3, torch.randn(2, 1, 8) * 3
    base = m.pairwise_weights(q, k)
    torch.testing.assert_close(m.pairwise_weights(q, k + shift_k), base)
    torch.testing.assert_close(m.pairwise_weights(q + shift_q, k), base)
    torch.testing.assert_close(base.sum(-1), torch.ones(2, 30))
    # A shift of the keys alone cancels in any softmax over keys; a shift of the queries adds
    # shift . k_j, a key-dependent (unary) term that only the whitening removes.
    plain = lambda qq: torch.softmax(qq @ k.transpose(1, 2) * m.scale, -1)  # noqa: E731
    assert not torch.allclose(plain(q + shift_q), plain(q), atol=1e-3)


@pytest.mark.parametrize("projection", ["phi", "theta"])
def test_output_invariant_to_embedding_shift(projection):
    # A constant added to every position's key (or query) embedding, here through the weight on an
    # input channel held constant over positions, leaves the block's output unchanged.
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 8, temperature=1.0), std=0.2, mean_std=0.5).eval()
    x = torch.randn(1, 8, 4, 5)
    x[:, 0] = 1.5
    before = m(x)
    with torch.no_grad():
        getattr(m, projection).weight[:, 0] += 2.0
    torch.testing.assert_close(m(x), before, rtol=1e-4, atol=1e-5)


def _authors_reference(m, x: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward of the authors' _NonLocalNd_bn (yinmh17/DNL-Semantic-Segmentation, model/seg/ops/nonlocal_block.py)
    with whiten_type ['channel'], with_gc, no downsample, use_out and out_bn off, written with bmm.

    Returns (output, pairwise weights)."""
    b, c, h, w = x.shape
    query = conv1x1(m.theta, x).reshape(b, -1, h * w)  # (B, planes, HW)
    key = conv1x1(m.phi, x).reshape(b, -1, h * w)
    value = conv1x1(m.g, x).reshape(b, c, h * w)  # C -> C
    query = query - query.mean(2, keepdim=True)
    key = key - key.mean(2, keepdim=True)
    sim = torch.bmm(query.transpose(1, 2), key) / query.shape[1] ** 0.5 / temperature
    sim = stable_softmax(sim, dim=2)
    out_sim = torch.bmm(sim, value.transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
    out_sim = m.gamma * out_sim  # gamma scales the pairwise term only
    mask = stable_softmax(conv1x1(m.unary, x).reshape(b, 1, h * w), dim=2)
    out_gc = torch.bmm(value, mask.transpose(1, 2)).unsqueeze(-1)  # (B, C, 1, 1)
    return x + out_sim + out_gc, sim


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_authors_form_matches_reference_from_authors_code(temperature):
    torch.manual_seed(0)
    m = attnzoo.create_attention("dnl", 16, temperature=temperature, form="authors")
    randomize(m, std=0.2).train()  # no BN: train and eval agree
    x = torch.randn(2, 16, 5, 7)
    expected, pairwise = _authors_reference(m, x, temperature)
    with viz.record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(m.attention_map.flatten(-2), pairwise, rtol=1e-4, atol=1e-5)


def test_authors_form_parameters():
    m = attnzoo.create_attention("dnl", 16, form="authors")
    shapes = {name: tuple(p.shape) for name, p in m.named_parameters()}
    assert shapes == {
        "theta.weight": (8, 16, 1, 1),
        "phi.weight": (8, 16, 1, 1),
        "unary.weight": (1, 16, 1, 1),
        "g.weight": (16, 16, 1, 1),  # values keep C channels, no bias, no W_z
        "gamma": (1,),
    }
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
    assert m.gamma.item() == 0
    for name in ("theta", "phi", "unary"):
        std = getattr(m, name).weight.std().item()
        assert 0.005 < std < 0.02, (name, std)


def test_authors_form_gamma_scales_only_the_pairwise_term():
    # With gamma = 0 the block still adds the unary term: the same vector at every position.
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 8, form="authors"), std=0.3)
    with torch.no_grad():
        m.gamma.zero_()
    x = torch.randn(2, 8, 4, 5)
    added = m(x) - x
    b, c, h, w = x.shape
    mask = stable_softmax(conv1x1(m.unary, x).reshape(b, h * w), dim=-1)
    expected = torch.einsum("bcj,bj->bc", conv1x1(m.g, x).reshape(b, c, h * w), mask)
    torch.testing.assert_close(added, expected[:, :, None, None].expand_as(x), rtol=1e-4, atol=1e-5)
    assert added.abs().amax() > 0.01


@pytest.mark.parametrize("size", [(5, 7), (1, 1), (3, 8)])
def test_authors_form_starts_as_identity(size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("dnl", 16, form="authors")
    x = torch.randn(2, 16, *size)
    assert torch.equal(m.train()(x), x)
    assert torch.equal(m.eval()(x[:1]), x[:1])


def test_authors_form_gradients_reach_every_parameter():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 16, form="authors"), std=0.2)
    x = torch.randn(2, 16, 5, 7, requires_grad=True)
    y = m(x)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_authors_form_compiles_and_runs_under_bf16_autocast():
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("dnl", 16, form="authors"), std=0.2).eval()
    x = torch.randn(2, 16, 5, 7)
    ref = m(x)
    torch.testing.assert_close(torch.compile(m, fullgraph=True, backend="eager")(x), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert torch.isfinite(y).all()
    assert (y.float() - ref).norm() / ref.norm() < 0.05


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": 0}, {"temperature": -1.0}, {"temperature": True}, {"temperature": "hot"},
     {"rd_ratio": 0}, {"inner_channels": 0}, {"form": "mmseg"}, {"form": None}],
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("dnl", 16, **kwargs)
