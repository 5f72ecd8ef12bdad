"""Attention-configured ResNets: placement, sizes, timm behaviour."""
import pytest
import timm
import torch
from timm.models.resnet import Bottleneck
from torch import nn

import attnzoo
from attnzoo.attention import registry
from attnzoo.attention.cond_conv import CondConv
from attnzoo.attention.dynamic_conv import DynamicConv
from attnzoo.attention.selective_kernel import SelectiveKernel
from attnzoo.backbones.spec import backbone_attentions

from ..attention.helpers import randomize_zero_params


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# shared/PAPERS.md: targets at 1000 classes, within 1 %.
@pytest.mark.parametrize(
    "name, millions",
    [
        ("resnet50", 25.56),
        ("resnet50-se", 28.09),
        ("resnet50-cbam", 28.09),
        ("resnet50-sk", 27.5),
        ("resnet50-gc", 28.08),
        ("resnet50-srm", 25.62),
        ("resnet50-gsop", 28.05),  # GSoP-Net1 as ECA-Net's Table 2 gives it
        ("resnet18-sk", 11.96),
        ("resnet34-sk", 22.28),
    ],
)
def test_parameter_counts_match_the_papers(name, millions):
    assert count(attnzoo.create_model(name)) == pytest.approx(millions * 1e6, rel=0.01)


def test_eca_adds_about_80_parameters():
    extra = count(attnzoo.create_model("resnet50-eca")) - count(attnzoo.create_model("resnet50"))
    assert 60 <= extra <= 100


def test_cifar_resnet20_is_he_et_al():
    model = attnzoo.create_model("resnet20", num_classes=10)
    assert count(model) == pytest.approx(0.27e6, rel=0.01)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [len(model.stage(i)) for i in (1, 2, 3)] == [3, 3, 3]
    assert [len(attnzoo.create_model(n).stage(1)) for n in ("resnet32", "resnet56")] == [5, 9]


def test_sknet50_is_resnext50_with_sk_units():
    model = attnzoo.create_model("resnet50-sk")
    block = model.layer2[0]
    assert isinstance(block.conv2, SelectiveKernel) and isinstance(block.bn2, nn.Identity)
    assert block.conv2.paths[0].conv.groups == 32 and block.conv2.paths[0].conv.stride == (2, 2)
    assert block.conv2.paths[1].conv.dilation == (2, 2)


def convs_of(model: nn.Module, kind: type) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, kind)]


def plain_convs(arch: str) -> dict[str, nn.Conv2d]:
    """The convolutions of the plain network, by name."""
    return {name: m for name, m in attnzoo.create_model(arch).named_modules() if isinstance(m, nn.Conv2d)}


def test_dyconv_makes_every_branch_conv_dynamic_but_the_stem_and_the_shortcut():
    # Chen et al. 2020: dynamic convolution in all convolution layers but the first; the shortcut
    # projection stays static, as in the authors' later ResNet code (liyunsheng13/dcd, resnet_dcd.py).
    for arch in ("resnet18", "resnet50", "resnet20"):
        plain = plain_convs(arch)
        expected = [n for n in plain if n.startswith("layer") and ".downsample." not in n]
        model = attnzoo.create_model(f"{arch}-dyconv")
        assert convs_of(model, DynamicConv) == expected
        assert all(isinstance(model.get_submodule(n), nn.Conv2d) for n in plain if n not in expected)
        for n in expected:  # each takes the shape, stride and groups of the conv it replaces
            old, new = plain[n], model.get_submodule(n)
            assert new.weight.shape[1:] == old.weight.shape and new.stride == old.stride[0] and new.groups == old.groups
    block = attnzoo.create_model("resnet18-dyconv").layer2[0]
    assert isinstance(block.bn1, nn.BatchNorm2d) and isinstance(block.act1, nn.ReLU)  # the BN and ReLU stay
    assert attnzoo.create_model("resnext50_32x4d-dyconv").layer2[0].conv2.groups == 32


def attention_parameters(c_in: int, kernels: int) -> int:
    hidden = c_in // 4 + 1  # the reference code's int(C * 0.25) + 1
    return c_in * hidden + hidden * kernels + kernels


def test_dy_resnet18_has_the_papers_size():
    # By hand: K = 4 copies of each replaced kernel, plus its attention (fc1 without bias, fc2 with).
    replaced = [m for n, m in plain_convs("resnet18").items() if n.startswith("layer") and ".downsample." not in n]
    extra = sum(3 * m.weight.numel() + attention_parameters(m.in_channels, 4) for m in replaced)
    expected = count(attnzoo.create_model("resnet18")) + extra
    measured = count(attnzoo.create_model("resnet18-dyconv"))
    assert measured == expected
    # The paper counts in units of 2**20: its ResNet-18 "11.1 M" is 11,689,512 parameters (11.15 * 2**20),
    # its DY-ResNet-18 42.7 M.
    assert count(attnzoo.create_model("resnet18")) / 2**20 == pytest.approx(11.1, abs=0.05)
    assert measured / 2**20 == pytest.approx(42.7, rel=0.01)


def test_condconv_replaces_every_conv_of_the_last_stage_shortcut_included():
    plain = plain_convs("resnet50")
    model = attnzoo.create_model("resnet50-condconv")
    replaced = [n for n in plain if n.startswith("layer4.")]
    assert convs_of(model, CondConv) == replaced
    assert model.layer4[0].downsample[0].conv.stride == (2, 2) and model.layer4[0].conv2.conv.stride == (2, 2)
    # By hand: E = 4 experts of each kernel, plus a routing FC (C_in -> E, with bias) per layer.
    extra = sum(3 * plain[n].weight.numel() + plain[n].in_channels * 4 + 4 for n in replaced)
    assert count(model) == count(attnzoo.create_model("resnet50")) + extra
    cifar = attnzoo.create_model("resnet20-condconv")
    assert convs_of(cifar, CondConv) == [n for n in plain_convs("resnet20") if n.startswith("layer3.")]
    chosen = attnzoo.create_model("resnet50-condconv", stages=(3, 4))
    assert convs_of(chosen, CondConv) == [n for n in plain if n.startswith(("layer3.", "layer4."))]


def test_sk_replaces_only_the_3x3_conv():
    model = attnzoo.create_model("resnet18-sk")
    assert convs_of(model, SelectiveKernel) == [f"layer{i}.{j}.conv1" for i in range(1, 5) for j in range(2)]
    assert isinstance(model.layer1[0].bn1, nn.Identity) and isinstance(model.layer1[0].bn2, nn.BatchNorm2d)


@pytest.mark.parametrize("attention", backbone_attentions())
@pytest.mark.parametrize("arch", ["resnet20", "resnet18"])
def test_every_backbone_attention_builds_and_trains(arch, attention):
    model = randomize_zero_params(attnzoo.create_model(f"{arch}-{attention}", num_classes=5))
    for size in (32, 64):
        x = torch.randn(2, 3, size, size)
        out = model(x)
        assert out.shape == (2, 5) and torch.isfinite(out).all()
        out.sum().backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        model.zero_grad()


STAGE_MECHANISMS = [n for n in backbone_attentions() if attnzoo.attention_info(n).placement == "stage"]


@pytest.mark.parametrize("attention", STAGE_MECHANISMS)
def test_stage_blocks_leave_the_network_unchanged_at_init(attention):
    plain = attnzoo.create_model("resnet20", num_classes=10).eval()
    model = attnzoo.create_model(f"resnet20-{attention}", num_classes=10, stages=(1, 2, 3)).eval()
    # The residual blocks keep their names, so a plain network's weights fill all but the new blocks.
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.split(".")[1].endswith(f"_{attention}") for k in missing)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)


# Where each paper put its blocks in ResNet-50: (stage, the children of that stage in order).
PAPER_POSITIONS = {
    "nl": (3, ["0", "1", "2", "3", "4", "4_nl", "5"]),  # Wang et al.: one block before the last block of res4
    "dnl": (3, ["0", "1", "2", "3", "4", "4_dnl", "5"]),
    "self": (3, ["0", "1", "2", "3", "4", "4_self", "5"]),
    "glore": (3, ["0", "0_glore", "1", "2", "2_glore", "3", "4", "4_glore", "5"]),  # 3 units in res4
    # Heads on the backbone's last feature map: after the last block of res5.
    **{name: (4, ["0", "1", "2", f"2_{name}"]) for name in ("cc", "ema", "ann", "ham", "psa")},
}


def test_every_stage_mechanism_has_a_paper_position():
    assert sorted(PAPER_POSITIONS) == sorted(STAGE_MECHANISMS)


@pytest.mark.parametrize("attention", sorted(PAPER_POSITIONS))
def test_stage_blocks_go_where_the_paper_put_them(attention):
    model = attnzoo.create_model(f"resnet50-{attention}")
    stage, children = PAPER_POSITIONS[attention]
    assert [n for n, _ in model.stage(stage).named_children()] == children
    plain_lengths = {1: 3, 2: 4, 3: 6, 4: 3}
    assert all(len(model.stage(i)) == plain_lengths[i] for i in (1, 2, 3, 4) if i != stage)
    assert [info["num_chs"] for info in model.feature_info] == [64, 256, 512, 1024, 2048]


def test_stages_keep_the_papers_position_in_each_stage_named():
    assert len(attnzoo.create_model("resnet50-nl").layer3) == 7
    model = attnzoo.create_model("resnet50-nl", stages=(2, 3))
    assert [n for n, _ in model.layer2.named_children()] == ["0", "1", "2", "2_nl", "3"]
    assert [n for n, _ in model.layer3.named_children()] == ["0", "1", "2", "3", "4", "4_nl", "5"]
    cc = attnzoo.create_model("resnet20-cc", stages=(1, 2))
    assert [[n for n, _ in cc.stage(i).named_children()] for i in (1, 2, 3)] == [
        ["0", "1", "2", "2_cc"], ["0", "1", "2", "2_cc"], ["0", "1", "2"]
    ]
    glore = attnzoo.create_model("resnet20-glore", stages=(3,))  # unit positions a 3-block stage lacks are left out
    assert [n for n, _ in glore.layer3.named_children()] == ["0", "0_glore", "1", "2", "2_glore"]
    with pytest.raises(ValueError, match="has stages 1 to 3, got 4"):
        attnzoo.create_model("resnet20-nl", stages=(4,))


def test_features_only_includes_the_stage_blocks_of_a_stage():
    feats = attnzoo.create_model("resnet50-cc", features_only=True, out_indices=(3, 4))
    assert feats.feature_info.channels() == [1024, 2048] and feats.feature_info.reduction() == [16, 32]
    model = attnzoo.create_model("resnet50-cc").eval()
    feats.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(feats.eval()(x)[1], model.forward_features(x))
    assert [n for n, _ in feats.layer4.named_children()] == ["0", "1", "2", "2_cc"]


def register_counting(monkeypatch, name: str, placement: str, built: list[int]) -> None:
    """Register ``name``: a module that records the channels it is built for, and passes its input on."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @attnzoo.register_attention(
        name, family="channel", title="t", year=2026, paper_url="https://e.org", placement=placement
    )
    class Recorded(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            built.append(channels)
            self.channels = channels

        def forward(self, x):
            return x


def test_user_stage_mechanism_goes_where_the_non_local_block_goes(monkeypatch):
    built = []
    register_counting(monkeypatch, "mine", "stage", built)
    model = attnzoo.create_model("resnet50-mine")
    assert [n for n, _ in model.layer3.named_children()] == ["0", "1", "2", "3", "4", "4_mine", "5"] and built == [1024]


def test_block_attention_is_built_only_for_the_stages_that_carry_it(monkeypatch):
    built = []
    register_counting(monkeypatch, "counted", "block", built)
    model = attnzoo.create_model("resnet50-counted", stages=(2, 4))
    assert built == [512] * 4 + [2048] * 3  # one per block of stages 2 and 4, none built to be dropped
    assert [all(b.se is not None for b in model.stage(i)) for i in (1, 2, 3, 4)] == [False, True, False, True]
    built.clear()
    attnzoo.create_model("resnet20-counted")
    assert built == [16] * 3 + [32] * 3 + [64] * 3

    gc_built = []
    factory, info = registry._REGISTRY["gc"]
    def counted_gc(channels, **kwargs):
        gc_built.append(channels)
        return factory(channels, **kwargs)

    monkeypatch.setitem(registry._REGISTRY, "gc", (counted_gc, info))
    gc = attnzoo.create_model("resnet50-gc")  # GCNet: c3-c5
    assert gc_built == [512] * 4 + [1024] * 6 + [2048] * 3
    assert [all(b.se is not None for b in gc.stage(i)) for i in (1, 2, 3, 4)] == [False, True, True, True]
    assert all(b.se is None for b in gc.layer1)
    se = attnzoo.create_model("resnet20-se", stages=(3,))
    assert [all(b.se is not None for b in se.stage(i)) for i in (1, 2, 3)] == [False, False, True]
    assert all(b.se is not None for b in attnzoo.create_model("resnet20-se").layer1)


def test_gsop_reduces_with_stride_two_in_the_first_stage_of_imagenet_resnets():
    # GSoP-Net's authors: stride-2 reduction conv where planes <= 64, i.e. res2 of their ImageNet ResNets.
    def strides(model):
        stages = (model.stage(i) for i in range(1, model.num_stages + 1))
        return [{b.se.reduce.stride for b in stage if b.se is not None} for stage in stages]

    assert strides(attnzoo.create_model("resnet50-gsop")) == [{(2, 2)}, {(1, 1)}, {(1, 1)}, {(1, 1)}]
    # GSoP-Net1: one GSoP block per stage, in its last residual block.
    for name, stages in (("resnet50-gsop", None), ("resnet20-gsop", None), ("resnet50-gsop", (2, 3))):
        model = attnzoo.create_model(name, stages=stages)
        carried = stages or range(1, model.num_stages + 1)
        assert [[b.se is not None for b in model.stage(i)] for i in range(1, model.num_stages + 1)] == [
            [i in carried and j == len(model.stage(i)) - 1 for j in range(len(model.stage(i)))]
            for i in range(1, model.num_stages + 1)
        ]
    assert strides(attnzoo.create_model("resnet18-gsop")) == [{(2, 2)}, {(1, 1)}, {(1, 1)}, {(1, 1)}]
    assert strides(attnzoo.create_model("resnet20-gsop")) == [{(1, 1)}] * 3  # CIFAR: not the paper's network
    assert strides(attnzoo.create_model("resnet50-gsop", attention_kwargs={"reduce_stride": 1})) == [{(1, 1)}] * 4
    assert strides(attnzoo.create_model("resnet50-gsop", stages=(2,)))[:2] == [set(), {(1, 1)}]


def test_dict_spec_builds_the_same_model_as_the_name():
    by_name = attnzoo.create_model("resnet20-glore", stages=(2,), attention_kwargs={"node_ratio": 0.5})
    by_spec = attnzoo.create_model(
        {"arch": "resnet20", "attention": "glore", "stages": (2,), "attention_kwargs": {"node_ratio": 0.5}}
    )
    assert by_name.spec == by_spec.spec
    assert {k: v.shape for k, v in by_name.state_dict().items()} == {k: v.shape for k, v in by_spec.state_dict().items()}
    assert by_name.layer2.get_submodule("2_glore").num_nodes == 16  # half of stage 2's 32 channels (default: a quarter)


def test_block_attention_sits_before_the_add_in_every_block():
    model = attnzoo.create_model("resnet50-cbam")
    blocks = [b for i in range(1, 5) for b in model.stage(i)]
    assert all(isinstance(b, Bottleneck) and b.se is not None for b in blocks)
    assert blocks[0].se.channels == 256 and blocks[-1].se.channels == 2048


def test_highway_gate_replaces_the_residual_add():
    model = attnzoo.create_model("resnet20-highway", num_classes=10).eval()
    with torch.no_grad():
        for block in model.layer1:
            block.gate.gate.bias.fill_(-1e4)  # gate shut: each block carries its input
        x = torch.relu(torch.randn(2, 16, 8, 8))
        torch.testing.assert_close(model.layer1(x), x)
        for block in model.layer1:
            block.gate.gate.bias.fill_(1e4)  # gate open: the block is its residual branch alone
        block = model.layer1[0]
        expected = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
        torch.testing.assert_close(block(x), expected)


def test_highway_gate_has_the_kernel_of_the_convs_it_gates_beside():
    # Basic blocks: the branch's 3x3. Bottlenecks: the 1x1 of the branch's ends (a 3x3 over 4 x planes
    # channels would hold 144 planes^2 weights against the branch's 17 planes^2).
    for name, kernel in (("resnet18-highway", 3), ("resnet20-highway", 3), ("resnet50-highway", 1)):
        gates = [b.gate.gate for m in (attnzoo.create_model(name),) for i in range(1, m.num_stages + 1) for b in m.stage(i)]
        assert {g.kernel_size for g in gates} == {(kernel, kernel)}, name
    wide = attnzoo.create_model("resnet50-highway", attention_kwargs={"gate_kernel_size": 3})
    assert wide.layer1[0].gate.gate.kernel_size == (3, 3)
    assert count(attnzoo.create_model("resnet50-highway")) == pytest.approx(45.69e6, rel=0.001)


def test_user_registered_attention_builds_into_backbones(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @attnzoo.register_attention("halve", family="channel", title="t", year=2026, paper_url="https://e.org", placement="block")
    class Halve(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.channels = channels

        def forward(self, x):
            return x / 2

    assert "resnet20-halve" in attnzoo.list_models("*-halve")
    model = attnzoo.create_model("resnet20-halve", num_classes=3)
    assert isinstance(model.layer3[2].se, Halve) and model.layer3[2].se.channels == 64
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_features_only_matches_timm():
    feats = attnzoo.create_model("resnet50-se", features_only=True)
    ref = timm.create_model("seresnet50", features_only=True)
    assert feats.feature_info.channels() == ref.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert feats.feature_info.reduction() == ref.feature_info.reduction() == [2, 4, 8, 16, 32]
    outs = feats(torch.randn(1, 3, 64, 64))
    assert [o.shape[1:] for o in outs] == [(64, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]

    cifar = attnzoo.create_model("resnet20-cbam", features_only=True, out_indices=(1, 3))
    assert cifar.feature_info.channels() == [16, 64] and cifar.feature_info.reduction() == [1, 4]
    assert [o.shape[1:] for o in cifar(torch.randn(1, 3, 32, 32))] == [(16, 32, 32), (64, 8, 8)]
    with pytest.raises(ValueError, match="out_indices must lie in 0..3"):
        attnzoo.create_model("resnet20", features_only=True, out_indices=(4,))


def test_forward_features_and_reset_classifier():
    model = attnzoo.create_model("resnet18-eca")
    x = torch.randn(2, 3, 64, 64)
    assert model.forward_features(x).shape == (2, 512, 2, 2)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7)
    assert attnzoo.create_model("resnet20", num_classes=0)(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_classes"):
        attnzoo.create_model("resnet20", num_classes=-1)
    with pytest.raises(ValueError, match="'resnet32-se' is not in the zoo"):
        attnzoo.create_model("resnet32-se", pretrained=True)
    with pytest.raises(ValueError, match="cannot be changed with pretrained=True"):
        attnzoo.create_model("resnet20-gc", pretrained=True, stages=(3,))
    with pytest.raises(ValueError, match="attention 'se'.*unexpected keyword"):
        attnzoo.create_model("resnet20-se", attention_kwargs={"reduction": 4})
