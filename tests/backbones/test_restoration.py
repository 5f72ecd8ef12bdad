"""Restoration networks: CANet, DnCNN and rir (every placement of a mechanism), their names and spec,
create_restorer, and tiled inference."""
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from attnzoo.attention.canet import ConcatenatedAttention
from attnzoo.attention.cond_conv import CondConv
from attnzoo.attention.gsop import GSoP
from attnzoo.attention.highway import Highway
from attnzoo.attention.non_local import NonLocal
from attnzoo.attention.se import SqueezeExcite
from attnzoo.attention.selective_kernel import SelectiveKernel
from attnzoo.backbones.restoration import (
    CANet,
    DnCNN,
    ResidualInResidual,
    RestorationNetwork,
    RestorationSpec,
    create_restorer,
    is_restoration_name,
    list_restoration_models,
    parse_restoration_name,
    restore_tiled,
    self_ensemble,
)
from attnzoo.backbones.spec import backbone_attentions
from attnzoo.viz import record

from ..attention.helpers import randomize
from ..attention.test_canet import reference as canet_attention

TINY = {"channels": 8, "num_modules": 2, "convs_per_module": 2}


def hand_forward(net: CANet, x: torch.Tensor) -> torch.Tensor:
    """h0 = head(x); o_m = module_m(s_{m-1}); s_m = relu(1x1(cat[h0, o_1..o_m])); x + tail(s_M)."""

    def conv3x3(layer, t):
        return F.conv2d(t, layer.weight, layer.bias, padding=1)

    h0 = conv3x3(net.head, x)
    features, s = [h0], h0
    for module, select in zip(net.body, net.select):
        o = s
        for i in range(0, len(module), 3):
            o = torch.relu(canet_attention(module[i + 1], conv3x3(module[i], o))[0])
        features.append(o)
        s = torch.relu(F.conv2d(torch.cat(features, 1), select[0].weight, select[0].bias))
    return x + conv3x3(net.tail, s)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_matches_hand_written_network(in_channels):
    net = randomize(CANet(in_channels, **TINY), std=0.3)
    x = torch.rand(2, in_channels, 16, 17)
    expected = hand_forward(net, x)
    assert expected.min() < 0 or expected.max() > 1, "the weights should push some pixels out of [0, 1]"
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net.eval()(x), expected.clamp(0, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [(16, 17), (9, 5), (1, 1)])
def test_any_size_keeps_shape(in_channels, size):
    net = CANet(in_channels, **TINY)
    x = torch.rand(2, in_channels, *size)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_network_learns_the_residual():
    net = randomize(CANet(3, **TINY), std=0.3)
    with torch.no_grad():
        net.tail.weight.zero_()
        net.tail.bias.zero_()
    x = torch.rand(2, 3, 16, 17)
    assert torch.equal(net(x), x)


def test_feature_selection_widths_and_default_size():
    net = CANet(3, channels=8, num_modules=3, convs_per_module=1)
    assert [s[0].in_channels for s in net.select] == [16, 24, 32]
    assert all(s[0].out_channels == 8 and s[0].kernel_size == (1, 1) for s in net.select)
    for in_channels in (1, 3):
        c, modules, convs, h = 64, 8, 3, 8
        attention = (c * h + h) + (h * c + c) + (c * h + h) + (h + 1)
        layer = 9 * c * c + c + attention
        selects = sum((k + 1) * c * c + c for k in range(1, modules + 1))
        ends = 2 * 9 * c * in_channels + c + in_channels
        expected = modules * convs * layer + selects + ends
        assert sum(p.numel() for p in CANet(in_channels).parameters()) == expected
    assert expected == 1_109_531


def test_modules_use_the_registered_attention_and_record_maps():
    net = CANet(1, **TINY)
    attentions = [m for m in net.modules() if isinstance(m, ConcatenatedAttention)]
    assert len(attentions) == 4
    with record():
        net(torch.rand(2, 1, 9, 11))
    assert all(a.attention_map.shape == (2, 1, 9, 11) for a in attentions)


def test_gradients_reach_every_parameter():
    # At C = 8 and the default rd_ratio each gate has a single hidden ReLU unit, which can be dead for a batch.
    net = CANet(3, **TINY, rd_ratio=0.5)
    x = torch.rand(2, 3, 9, 10)
    net(x).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 2}, "in_channels must be 1 .grey. or 3 .colour., got 2"),
        ({"in_channels": True}, "in_channels"),
        ({"channels": 0}, "channels must be a positive integer, got 0"),
        ({"num_modules": 0}, "num_modules must be a positive integer"),
        ({"convs_per_module": 1.5}, "convs_per_module must be a positive integer"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=f"CANet: {message}"):
        CANet(**kwargs)
    with pytest.raises(ValueError, match="attention 'canet': rd_ratio"):
        CANet(rd_ratio=0)


def test_bad_input_raises():
    net = CANet(3, **TINY)
    with pytest.raises(ValueError, match=r"CANet expects images \(B, 3, H, W\), got shape \(2, 1, 8, 8\)"):
        net(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="CANet expects images"):
        net(torch.rand(3, 8, 8))


# ---------------------------------------------------------------------------------------------------------------
# DnCNN, the residual-in-residual body (rir), names, create_restorer, tiled inference.

RIR_TINY = {"channels": 8, "groups": 2, "blocks": 1}
# One mechanism of each placement rir takes; se with 4 hidden units at C = 8 (1 by default, which can be dead).
MECHANISMS = {
    "se": (SqueezeExcite, {"rd_ratio": 0.5}),
    "sk": (SelectiveKernel, {}),
    "highway": (Highway, {}),
    "nl": (NonLocal, {}),
}


def conv3x3(layer: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
    return F.conv2d(t, layer.weight, layer.bias, padding=1)


def hand_rir(net: ResidualInResidual, x: torch.Tensor) -> torch.Tensor:
    """rir, plain or with SE in its blocks, from the weights: unshuffle, head, groups of blocks, long skip, tail."""

    def se(m, t):
        hidden = F.conv2d(t.mean((2, 3), keepdim=True), m.fc1.weight, m.fc1.bias).clamp_min(0)
        return t * torch.sigmoid(F.conv2d(hidden, m.fc2.weight, m.fc2.bias))

    r, (h, w) = net.unshuffle, x.shape[-2:]
    padded = F.pad(x, (0, -w % r, 0, -h % r), mode="reflect")
    head = conv3x3(net.head, F.pixel_unshuffle(padded, r))
    f = head
    for g in range(len(net.body) - 1):
        group = net.body[g]
        t = f
        for block in group.blocks:
            branch = conv3x3(block.conv2, torch.relu(conv3x3(block.conv1, t)))
            t = t + (branch if block.attention is None else se(block.attention, branch))
        f = f + conv3x3(group.conv, t)
    f = head + conv3x3(net.body.conv, f)
    return x + F.pixel_shuffle(conv3x3(net.tail, f), r)[..., :h, :w]


def count_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def input_radius(net: torch.nn.Module, size: int, at: tuple[int, int]) -> int:
    """How far from output pixel ``at`` the input pixels it depends on reach (Chebyshev distance), by autograd."""
    x = torch.rand(1, net.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, at[0], at[1]].backward()
    rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
    return int(torch.maximum((rows - at[0]).abs(), (cols - at[1]).abs()).max())


def test_dncnn_has_the_papers_layers_and_parameter_count():
    net = DnCNN()
    layers = list(net.layers)
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17 and all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [(c.in_channels, c.out_channels) for c in (convs[0], convs[1], convs[-1])] == [(1, 64), (64, 64), (64, 1)]
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Conv2d", "ReLU"] + ["Conv2d", "BatchNorm2d", "ReLU"] * 15 + ["Conv2d"]
    # The authors' PyTorch DnCNN: a bias in the first conv only (the BN'd ones and the last have none).
    assert [c.bias is not None for c in convs] == [True] + [False] * 16
    assert all(m.eps == 1e-4 for m in layers if isinstance(m, torch.nn.BatchNorm2d))
    c, d = 64, 17
    expected = (9 * c + c) + (d - 2) * (9 * c * c + 2 * c) + 9 * c
    assert count_params(net) == expected == 556_096
    assert count_params(DnCNN(3)) == (27 * c + c) + (d - 2) * (9 * c * c + 2 * c) + 27 * c
    assert net.receptive_radius == 17 and net.is_local


def test_dncnn_subtracts_the_estimated_noise():
    net = randomize(DnCNN(1, channels=8, depth=4), std=0.3)
    x = torch.rand(2, 1, 11, 9)
    torch.testing.assert_close(net(x), x - net.layers(x))


@pytest.mark.parametrize("name", list(MECHANISMS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_rir_with_each_placement_restores_odd_sizes_and_trains(name, in_channels):
    attention_class, kwargs = MECHANISMS[name]
    net = randomize(ResidualInResidual(in_channels, **RIR_TINY, attention=name, attention_kwargs=kwargs), std=0.2)
    x = torch.rand(2, in_channels, 33, 27)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.min() < 0 or y.max() > 1, "training mode is not clamped"
    y.square().mean().backward()
    attentions = [m for m in net.modules() if isinstance(m, attention_class)]
    assert attentions
    for i, attention in enumerate(attentions):
        # Not every parameter: with random weights a hidden ReLU unit can be dead for a whole batch.
        grads = [p.grad for p in attention.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, f"{name} #{i}"
    with torch.no_grad():
        restored = net.eval()(x)
    assert restored.shape == x.shape and restored.min() >= 0 and restored.max() <= 1


@pytest.mark.parametrize("unshuffle", [1, 2])
def test_rir_forward_matches_hand_written_network(unshuffle):
    for attention in (None, "se"):
        net = randomize(ResidualInResidual(1, **RIR_TINY, unshuffle=unshuffle, attention=attention), std=0.2)
        x = torch.rand(2, 1, 13, 11)
        torch.testing.assert_close(net(x), hand_rir(net, x), rtol=1e-5, atol=1e-5)


def test_block_mechanism_sits_before_the_add_of_every_block_of_the_groups_named():
    net = ResidualInResidual(1, channels=16, groups=3, blocks=2, attention="se")
    found = sorted(n for n, m in net.named_modules() if isinstance(m, SqueezeExcite))
    assert found == [f"body.{g}.blocks.{b}.attention" for g in range(3) for b in range(2)]
    net = ResidualInResidual(1, channels=16, groups=3, blocks=2, attention="se", stages=(1, 3))
    found = sorted(n for n, m in net.named_modules() if isinstance(m, SqueezeExcite))
    assert found == [f"body.{g}.blocks.{b}.attention" for g in (0, 2) for b in range(2)]
    # RCAN's RCAB: reduction 16, attnzoo's se default.
    rcab = ResidualInResidual(1, channels=64, groups=1, blocks=1, attention="se").body[0].blocks[0]
    assert rcab.attention.fc1.out_channels == 4
    # GSoP-Net1: one module, in the last block of each group.
    net = ResidualInResidual(1, channels=16, groups=2, blocks=3, attention="gsop")
    assert sorted(n for n, m in net.named_modules() if isinstance(m, GSoP)) == [
        "body.0.blocks.2.attention",
        "body.1.blocks.2.attention",
    ]


def test_conv_mechanisms_replace_the_blocks_convs():
    net = ResidualInResidual(1, **RIR_TINY, attention="sk")
    for block in (net.body[0].blocks[0], net.body[1].blocks[0]):
        # SK carries its own BN and ReLU: the first conv and its ReLU; the second stays plain, the residual signed.
        assert isinstance(block.conv1, SelectiveKernel) and isinstance(block.act, torch.nn.Identity)
        assert type(block.conv2) is torch.nn.Conv2d
    assert sum(isinstance(m, SelectiveKernel) for m in net.modules()) == 2
    net = ResidualInResidual(1, channels=8, groups=3, blocks=2, attention="condconv")
    found = sorted(n for n, m in net.named_modules() if isinstance(m, CondConv))
    assert found == [f"body.2.blocks.{b}.conv{i}" for b in range(2) for i in (1, 2)]
    assert all(isinstance(b.act, torch.nn.ReLU) for b in net.body[2].blocks)
    net = ResidualInResidual(1, channels=8, groups=3, blocks=2, attention="condconv", stages=(1,))
    assert sorted({n.split(".")[1] for n, m in net.named_modules() if isinstance(m, CondConv)}) == ["0"]


def test_gate_mechanism_replaces_every_add():
    net = randomize(ResidualInResidual(1, **RIR_TINY, attention="highway"), std=0.2)
    gates = sorted(n for n, m in net.named_modules() if isinstance(m, Highway))
    assert gates == ["body.0.blocks.0.gate", "body.1.blocks.0.gate"]
    block = net.body[0].blocks[0]
    assert isinstance(block.gate.transform, torch.nn.Identity)
    t = torch.rand(2, 8, 7, 6)
    branch = block.conv2(torch.relu(block.conv1(t)))
    gate = torch.sigmoid(F.conv2d(t, block.gate.gate.weight, block.gate.gate.bias, padding=1))
    torch.testing.assert_close(block(t), gate * branch + (1 - gate) * t)
    with pytest.raises(ValueError, match="stages=.* applies only to rir with a stage, block or conv attention"):
        ResidualInResidual(1, **RIR_TINY, attention="highway", stages=(1,))


def test_stage_mechanism_follows_the_middle_group_or_the_groups_named():
    net = ResidualInResidual(1, channels=8, groups=4, blocks=1, attention="nl")
    assert list(net.body._modules) == ["0", "1", "1_nl", "2", "3", "conv"]
    assert isinstance(net.body[2], NonLocal) and sum(isinstance(m, NonLocal) for m in net.modules()) == 1
    net = ResidualInResidual(1, channels=8, groups=3, blocks=1, attention="nl", stages=(1, 3))
    assert list(net.body._modules) == ["0", "0_nl", "1", "2", "2_nl", "conv"]
    net = ResidualInResidual(1, channels=8, groups=1, blocks=1, attention="nl")
    assert list(net.body._modules) == ["0", "0_nl", "conv"]
    with pytest.raises(ValueError, match=r"stages=\(4,\): ResidualInResidual \(rir-nl\) has groups 1 to 3, got 4"):
        ResidualInResidual(1, channels=8, groups=3, blocks=1, attention="nl", stages=(4,))


@pytest.mark.parametrize("size", [(33, 27), (5, 3), (1, 1), (8, 6)])
@pytest.mark.parametrize("unshuffle", [2, 3])
def test_unshuffle_keeps_any_size_and_runs_the_body_at_lower_resolution(size, unshuffle):
    net = ResidualInResidual(3, **RIR_TINY, unshuffle=unshuffle)
    assert net.head.in_channels == net.tail.out_channels == 3 * unshuffle**2
    seen = []
    net.body.register_forward_hook(lambda module, args, out: seen.append(out.shape[-2:]))
    x = torch.rand(2, 3, *size)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert seen == [(-(-size[0] // unshuffle), -(-size[1] // unshuffle))]


@pytest.mark.parametrize(
    ("make", "last_conv"),
    [
        (lambda: DnCNN(1, channels=8, depth=4), lambda net: net.layers[-1]),
        (lambda: ResidualInResidual(3, **RIR_TINY, attention="se"), lambda net: net.tail),
        (lambda: ResidualInResidual(1, **RIR_TINY, unshuffle=2), lambda net: net.tail),
        (lambda: CANet(3, **TINY), lambda net: net.tail),
    ],
)
def test_zero_last_conv_is_identity_and_eval_clamps(make, last_conv):
    net = randomize(make(), std=0.3)
    with torch.no_grad():
        for p in last_conv(net).parameters():
            p.zero_()
    x = torch.rand(2, net.in_channels, 13, 10) * 1.6 - 0.3
    assert torch.equal(net(x), x)
    assert torch.equal(net.eval()(x), x.clamp(0, 1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DnCNN(1, channels=4, depth=5),
        lambda: ResidualInResidual(1, channels=4, groups=2, blocks=1),
        lambda: ResidualInResidual(1, channels=4, groups=1, blocks=1, unshuffle=2),
        lambda: ResidualInResidual(1, channels=4, groups=1, blocks=1, attention="highway"),
        lambda: ResidualInResidual(
            1, channels=4, groups=1, blocks=2, attention="highway", attention_kwargs={"gate_kernel_size": 7}
        ),
    ],
)
def test_receptive_radius_is_exact_for_local_networks(make):
    net = randomize(make().double(), std=0.5)
    # Unclamped (a clamped pixel has no gradient), with BN on its running statistics as at inference.
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.eval()
    assert net.is_local
    radius = net.receptive_radius
    # The pixel at a multiple of the unshuffle factor sees the most context to its right and below.
    assert input_radius(net, 2 * radius + 9, (radius + 1, radius + 1)) == radius


def test_receptive_radii_and_locality():
    assert ResidualInResidual().receptive_radius == 4 * (2 * 4 + 1) + 3 == 39
    assert ResidualInResidual(unshuffle=2).receptive_radius == 2 * 40 - 1
    assert ResidualInResidual(attention="highway").receptive_radius == 39
    assert CANet().receptive_radius == 8 * 3 + 2 and not CANet().is_local
    assert ResidualInResidual(attention="highway").is_local
    assert not any(ResidualInResidual(**RIR_TINY, attention=a).is_local for a in ("se", "sk", "nl", "cbam"))


def test_default_sizes_fit_the_zoo():
    assert count_params(ResidualInResidual()) == 769_921
    for attention in backbone_attentions():
        limit = 1_300_000 if attention in ("condconv", "dyconv") else 1_250_000
        assert count_params(ResidualInResidual(attention=attention)) < limit, attention


def test_networks_carry_spec_and_config():
    for net, name in [
        (DnCNN(), "dncnn"),
        (CANet(1, **TINY), "canet"),
        (ResidualInResidual(3, **RIR_TINY, attention="cbam"), "rir-cbam"),
    ]:
        assert net.spec.name == name and isinstance(net, RestorationNetwork)
        assert net.pretrained_cfg == {"architecture": name, "in_chans": net.in_channels, "task": "restoration"}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DnCNN(1, channels=4, depth=3), r"DnCNN expects images \(B, 1, H, W\), got shape \(2, 3, 8, 8\)"),
        (
            lambda: ResidualInResidual(1, **RIR_TINY, attention="se"),
            r"ResidualInResidual \(rir-se\) expects images \(B, 1, H, W\), got shape \(2, 3, 8, 8\)",
        ),
    ],
)
def test_wrong_channels_or_rank_raise(make, message):
    net = make()
    with pytest.raises(ValueError, match=message):
        net(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="expects images"):
        net(torch.rand(1, 8, 8))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DnCNN(2), r"DnCNN: in_channels must be 1 \(grey\) or 3 \(colour\), got 2"),
        (lambda: DnCNN(depth=1), "DnCNN: depth must be at least 2"),
        (lambda: DnCNN(channels=0), "DnCNN: channels must be a positive integer, got 0"),
        (lambda: ResidualInResidual(groups=0), "ResidualInResidual: groups must be a positive integer"),
        (lambda: ResidualInResidual(unshuffle=1.5), "ResidualInResidual: unshuffle must be a positive integer"),
        (lambda: ResidualInResidual(attention="se", blocks=True), r"ResidualInResidual \(rir-se\): blocks must be"),
    ],
)
def test_bad_network_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("name", "spec", "tag"),
    [
        ("dncnn", RestorationSpec("dncnn"), None),
        ("canet.colour-q10", RestorationSpec("canet"), "colour-q10"),
        ("rir", RestorationSpec("rir"), None),
        ("rir-cbam.gray-s25", RestorationSpec("rir", "cbam"), "gray-s25"),
    ],
)
def test_names_parse(name, spec, tag):
    assert parse_restoration_name(name) == (spec, tag)
    assert RestorationSpec.from_any(name) == spec and spec.name == name.partition(".")[0]
    assert is_restoration_name(name)


def test_spec_from_dict_and_spec():
    spec = RestorationSpec.from_any({"body": "rir", "attention": "nl", "stages": [1, 2]})
    assert spec == RestorationSpec("rir", "nl", (1, 2)) and RestorationSpec.from_any(spec) is spec
    assert not any(is_restoration_name(n) for n in ("resnet50-se", "rirx", "fcos-resnet50", "", None))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("dncnn-se", "dncnn-se: dncnn and canet are fixed networks that take no attention; use rir-se"),
        ("canet-cbam.gray", "dncnn and canet are fixed networks"),
        ("dncn", "unknown restoration body 'dncn'. Did you mean 'dncnn'?"),
        ("rir-cbma", "unknown attention 'cbma'. Did you mean 'cbam'.*rir takes: .*highway"),
        ("rir-soft", "attention 'soft' has placement 'pool'.*rir takes: ann, canet, cbam"),
        ("rir-", "empty attention"),
        ("rir.", "empty tag"),
        ({"body": "rir", "attention": "highway", "stages": (1,)}, "applies only to rir with a stage, block or conv"),
        ({"body": "dncnn", "stages": (1,)}, "applies only to rir"),
        ({"body": "rir", "attention": "se", "stages": ()}, "non-empty sequence of group numbers"),
        ({"body": "rir", "attention_kwargs": {"rd_ratio": 0.5}}, "attention_kwargs given without an attention"),
        ({"attention": "se"}, "needs 'body'"),
        (3, "expected a restoration name, a dict or a RestorationSpec, got int"),
    ],
)
def test_bad_names_and_specs_raise(value, message):
    with pytest.raises(ValueError, match=message):
        RestorationSpec.from_any(value)


def test_list_restoration_models():
    names = list_restoration_models()
    assert {"dncnn", "canet", "rir", "rir-se", "rir-sk", "rir-highway", "rir-nl"} <= set(names)
    assert "rir-soft" not in names and "dncnn-se" not in names
    assert len(names) == 3 + len(backbone_attentions()) and names == sorted(names)
    assert all(is_restoration_name(n) and RestorationSpec.from_any(n).name == n for n in names)


def test_create_restorer_builds_each_body_with_its_arguments():
    assert isinstance(create_restorer("dncnn", channels=8, depth=3), DnCNN)
    net = create_restorer("canet", in_channels=3, **TINY)
    assert isinstance(net, CANet) and net.in_channels == 3
    net = create_restorer("rir-se.gray-s25", **RIR_TINY, unshuffle=2)
    assert isinstance(net, ResidualInResidual) and net.unshuffle == 2 and net.spec == RestorationSpec("rir", "se")
    net = create_restorer("rir-nl", **RIR_TINY, stages=[1, 2], attention_kwargs={"rd_ratio": 0.25})
    assert net.spec == RestorationSpec("rir", "nl", (1, 2), {"rd_ratio": 0.25})
    assert [m.theta.out_channels for m in net.modules() if isinstance(m, NonLocal)] == [2, 2]
    with pytest.raises(ValueError, match="dncnn takes no argument blocks, groups; its arguments: channels, depth"):
        create_restorer("dncnn", groups=2, blocks=1)
    with pytest.raises(ValueError, match="canet is a fixed network"):
        create_restorer("canet", stages=(1,))


def test_create_restorer_loads_a_checkpoint(tmp_path):
    net = randomize(create_restorer("rir-se", **RIR_TINY), std=0.2).eval()
    path = tmp_path / "model.safetensors"
    save_file(net.state_dict(), str(path))
    loaded = create_restorer("rir-se", **RIR_TINY, checkpoint_path=path).eval()
    x = torch.rand(1, 1, 9, 8)
    torch.testing.assert_close(loaded(x), net(x))
    with pytest.raises(ValueError, match="does not fit 'rir-cbam'"):
        create_restorer("rir-cbam", **RIR_TINY, checkpoint_path=path)


class WindowSizes:
    """Records the spatial size of every input a model sees."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.sizes: list[tuple[int, int]] = []
        net.register_forward_pre_hook(lambda module, args: self.sizes.append(tuple(args[0].shape[-2:])))


@pytest.mark.parametrize(
    ("size", "tile"),
    [((700, 500), 128), ((131, 77), 40), ((45, 51), 64)],
)
def test_tiled_equals_untiled_for_a_convolutional_network(size, tile):
    net = randomize(DnCNN(1, channels=4, depth=5), std=0.3).eval()
    x = torch.rand(1, 1, *size)
    expected = net(x)
    windows = WindowSizes(net)
    tiled = restore_tiled(net, x, tile=tile)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-4)
    assert max(max(s) for s in windows.sizes) <= tile
    if max(size) <= tile:
        assert windows.sizes == [size]
    else:
        assert len(windows.sizes) > 1


def test_tiled_equals_untiled_with_unshuffle_and_keeps_device_and_dtype():
    net = randomize(ResidualInResidual(3, channels=4, groups=1, blocks=1, unshuffle=2), std=0.3).eval()
    assert net.receptive_radius == (1 * (2 * 1 + 1) + 3 + 1) * 2 - 1
    x = torch.rand(2, 3, 97, 83, dtype=torch.float64)
    expected = net(x.float()).double()
    tiled = restore_tiled(net, x, tile=40)
    assert tiled.dtype == torch.float64 and tiled.device == x.device
    torch.testing.assert_close(tiled, expected, rtol=0, atol=1e-4)
    # Too little overlap for the receptive field: the seams show.
    assert not torch.allclose(restore_tiled(net, x, tile=40, overlap=2), expected, atol=1e-4)


def test_tiling_a_non_local_network_runs():
    net = ResidualInResidual(1, **RIR_TINY, attention="se").eval()
    x = torch.rand(1, 1, 70, 50)
    y = restore_tiled(net, x, tile=48)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not y.requires_grad


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 0}, "restore_tiled: tile must be a positive integer, got 0"),
        ({"tile": 30}, r"tile=30 leaves nothing inside an overlap of 15 on each side; tile must be at least 31"),
        ({"overlap": -1}, "overlap must be a non-negative integer, got -1"),
        ({"overlap": 2.5}, "overlap must be a non-negative integer"),
    ],
)
def test_bad_tiles_raise(kwargs, message):
    net = DnCNN(1, channels=4, depth=15)
    with pytest.raises(ValueError, match=message):
        restore_tiled(net, torch.rand(1, 1, 40, 40), **kwargs)
    with pytest.raises(ValueError, match=r"restore_tiled expects images \(B, C, H, W\)"):
        restore_tiled(net, torch.rand(1, 40, 40))
    with pytest.raises(ValueError, match="Sequential has no receptive_radius; give overlap"):
        restore_tiled(torch.nn.Sequential(), torch.rand(1, 1, 40, 40))


def test_self_ensemble_puts_every_pixel_back_in_place():
    # A "network" that weights each pixel by its row index in the frame it is given: over the eight flips and
    # rotations that row index, read in the original frame, is i, H-1-i, j and W-1-j twice each, so the
    # average weight is (H + W - 2) / 4 at every pixel, and each pixel must come back to where it was.
    def by_row(x):
        return x * torch.arange(x.shape[-2], dtype=x.dtype)[:, None]

    x = torch.rand(2, 3, 7, 10, dtype=torch.float64)
    torch.testing.assert_close(self_ensemble(by_row, x), x * (7 + 10 - 2) / 4, rtol=0, atol=1e-12)
    half = self_ensemble(lambda t: by_row(t).half(), x)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half, (x * (7 + 10 - 2) / 4).half(), rtol=1e-3, atol=1e-3)


def test_self_ensemble_of_an_equivariant_network_is_the_network():
    net = randomize(torch.nn.Conv2d(3, 3, 1), std=0.3)
    x = torch.rand(1, 3, 9, 14)
    with torch.no_grad():
        torch.testing.assert_close(self_ensemble(net, x), net(x), rtol=0, atol=1e-6)
        dncnn = randomize(DnCNN(1, channels=4, depth=3), std=0.3).eval()
        grey = x[:, :1]
        assert not torch.allclose(self_ensemble(dncnn, grey), dncnn(grey), atol=1e-4)  # 3 x 3 kernels are not
    with pytest.raises(ValueError, match=r"self_ensemble expects images \(B, C, H, W\), got shape \(3, 9, 14\)"):
        self_ensemble(net, x[0])


def test_create_model_and_list_models_serve_restoration_names():
    import attnzoo

    assert {"dncnn", "canet", "rir", "rir-se", "rir-nl"} <= set(attnzoo.list_models())
    assert attnzoo.list_models("rir-s*") == ["rir-se", "rir-self", "rir-sk", "rir-srm"]
    model = attnzoo.create_model("rir-se", in_channels=3, channels=8, groups=1, blocks=1)
    assert isinstance(model, ResidualInResidual) and model.in_channels == 3
    assert model.pretrained_cfg["network_kwargs"] == {"channels": 8, "groups": 1, "blocks": 1}
    spec = {"body": "rir", "attention": "nl", "stages": (1,)}
    assert attnzoo.create_model(spec, groups=2, channels=8, blocks=1).spec == RestorationSpec("rir", "nl", (1,))
    with pytest.raises(ValueError, match="num_classes, features_only and out_indices apply to backbones"):
        attnzoo.create_model("dncnn", num_classes=10)
    with pytest.raises(ValueError, match="'rir-se.xyz' is not in the zoo"):
        attnzoo.create_model("rir-se.xyz", pretrained=True)
