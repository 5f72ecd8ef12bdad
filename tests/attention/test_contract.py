"""The contract every registered mechanism keeps (shared/DESIGN.md, "Attention registry")."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.attention import check_attention_map

from .helpers import CHANNELS, example_input, expected_shape, randomize_zero_params

NAMES = attnzoo.list_attentions()
SHAPED = [n for n in NAMES if attnzoo.attention_info(n).placement in ("block", "stage", "gate")]
CONVS = [n for n in NAMES if attnzoo.attention_info(n).placement == "conv"]
STAGES = [n for n in NAMES if attnzoo.attention_info(n).placement == "stage"]


def build(name: str) -> nn.Module:
    return attnzoo.create_attention(name, CHANNELS)


@pytest.mark.parametrize("name", SHAPED)
@pytest.mark.parametrize("size", [(7, 9), (1, 1), (8, 8)])
def test_keeps_shape_at_any_size(name, size):
    m = build(name)
    x = example_input(name, batch=2, size=size)
    assert m(x).shape == x.shape
    m.eval()
    x1 = example_input(name, batch=1, size=size)
    assert m(x1).shape == x1.shape


@pytest.mark.parametrize("name", STAGES)
# 14 x 14 is psa's default feature_size (its no-resize path); the other sizes resize it.
@pytest.mark.parametrize("size", [(5, 7), (1, 1), (1, 7), (10, 3), (14, 14)])
def test_stage_is_identity_at_init(name, size):
    torch.manual_seed(0)
    m = build(name)
    x = example_input(name, batch=2, size=size)
    assert torch.equal(m.train()(x), x)
    assert torch.equal(m.eval()(x), x)
    assert torch.equal(m(x[:1]), x[:1])


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_matches_the_conv_it_replaces(name, stride):
    m = attnzoo.create_attention(name, CHANNELS, out_channels=24, kernel_size=3, stride=stride)
    ref = nn.Conv2d(CHANNELS, 24, 3, stride=stride, padding=1)
    for size in [(7, 9), (8, 8), (1, 1)]:
        x = torch.randn(2, CHANNELS, *size)
        assert m(x).shape == ref(x).shape


@pytest.mark.parametrize("name", [n for n in NAMES if attnzoo.attention_info(n).placement == "pool"])
def test_pool_reduces_the_set(name):
    m = build(name)
    x = example_input(name, batch=3)
    assert m(x).shape == expected_shape(name, m, x)
    m.eval()
    x1 = example_input(name, batch=1)
    assert m(x1).shape == expected_shape(name, m, x1)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter_and_the_input(name):
    m = randomize_zero_params(build(name))
    x = example_input(name, batch=2).requires_grad_()
    y = m(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    for pname, p in m.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} got a zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic(name):
    m = randomize_zero_params(build(name))
    m.train()
    m(example_input(name, batch=2))  # move running statistics away from their initial values
    m.eval()
    x = example_input(name, batch=2)
    torch.testing.assert_close(m(x), m(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_is_close_to_fp32(name):
    m = randomize_zero_params(build(name)).eval()
    x = example_input(name, batch=2)
    ref = m(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert torch.isfinite(y).all()
    err = (y.float() - ref).norm() / ref.norm().clamp_min(1e-6)
    assert err < 0.05, f"{name}: bf16 relative error {err:.3f}"

    m.train()
    xg = example_input(name, batch=2).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(xg)
    out.float().sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NAMES)
def test_attention_map_is_kept_only_while_recording(name):
    m = build(name)
    x = example_input(name, batch=2)
    m(x)
    assert m.attention_map is None
    with attnzoo.viz.record():
        m(x)
    amap = m.attention_map
    assert isinstance(amap, torch.Tensor) and amap.shape[0] == 2 and torch.isfinite(amap).all()
    assert not amap.requires_grad
    m(x)
    assert m.attention_map is None


# Besides its kind's layout, what each built-in's map holds: the dimensions over which its weights sum to 1
# (a softmax over positions, bases, paths, kernels or items; hard's one selected item), or gates in [0, 1].
SUMS_TO_ONE = {
    "nl": (-2, -1), "dnl": (-2, -1), "cc": (-2, -1), "ann": (-2, -1), "psa": (-2, -1), "self": (-2, -1),
    "gc": (1, 2, 3), "ema": (1,), "sk": (1,), "dyconv": (1,), "soft": (1,), "hard": (1,), "sta": (1,),
}
GATES = {"se", "eca", "srm", "gsop", "ge", "cbam", "canet", "highway", "condconv"}


@pytest.mark.parametrize("name", NAMES)
def test_attention_map_has_the_layout_of_its_kind(name):
    m = randomize_zero_params(build(name)).eval()
    x = example_input(name, batch=2)
    with attnzoo.viz.record():
        m(x)
    kind = attnzoo.viz.mechanisms(m)[""].kind  # the module itself
    assert kind == attnzoo.attention_info(name).map_kind
    amap = m.attention_map
    check_attention_map(name, kind, amap)
    if kind in ("spatial", "pairwise", "assignment", "gate") and name != "psa":  # psa: at its working size
        assert amap.shape[-2:] == x.shape[-2:]
    if name in SUMS_TO_ONE:
        torch.testing.assert_close(amap.sum(SUMS_TO_ONE[name]), torch.ones_like(amap.sum(SUMS_TO_ONE[name])))
        assert (amap >= 0).all()
    elif name in GATES:
        assert ((amap >= 0) & (amap <= 1)).all()
    else:  # glore's projection may take any value; ham's coefficients are non-negative
        assert name in ("glore", "ham") and (name == "glore" or (amap >= 0).all())


@pytest.mark.parametrize("name", NAMES)
def test_compiles_without_graph_breaks(name):
    torch._dynamo.reset()
    m = randomize_zero_params(build(name)).eval()
    x = example_input(name, batch=2)
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), m(x))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank_and_channels_raise(name):
    m = build(name)
    x = example_input(name, batch=2)
    with pytest.raises(ValueError, match=repr(name)):
        m(x[0])
    wrong = example_input(name, batch=2, channels=CHANNELS + 4)
    with pytest.raises(ValueError, match=repr(name)):
        m(wrong)


@pytest.mark.parametrize("name", NAMES)
def test_invalid_arguments_raise(name):
    with pytest.raises(ValueError, match=repr(name)):
        attnzoo.create_attention(name, CHANNELS, no_such_argument=1)
    with pytest.raises(ValueError, match=repr(name)):
        attnzoo.create_attention(name, 0)
