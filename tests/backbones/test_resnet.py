"""Attention-configured ResNets: placement, sizes, timm behaviour."""
import pytest
import timm
import torch
from timm.models.resnet import Bottleneck
from torch import nn

import attnzoo
from attnzoo.attention import registry
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


def test_conv_mechanism_replaces_the_3x3_conv_of_basic_blocks():
    model = attnzoo.create_model("resnet18-dyconv")
    first = model.layer2[0]
    assert isinstance(first.conv1, DynamicConv) and first.conv1.stride == 2
    assert isinstance(first.bn1, nn.BatchNorm2d)  # a plain conv mechanism keeps the BN after it
    assert isinstance(first.conv2, nn.Conv2d) and not isinstance(first.conv2, DynamicConv)


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


@pytest.mark.parametrize("attention", [n for n in backbone_attentions() if attnzoo.attention_info(n).placement == "stage"])
def test_stage_blocks_leave_the_network_unchanged_at_init(attention):
    plain = attnzoo.create_model("resnet20", num_classes=10).eval()
    model = attnzoo.create_model(f"resnet20-{attention}", num_classes=10, stages=(1, 2, 3)).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.split(".")[1] == "3" for k in missing)  # layerN.3: the new blocks
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)


def test_block_attention_stages():
    gc = attnzoo.create_model("resnet50-gc")  # GCNet: c3-c5 only
    assert [all(b.se is not None for b in gc.stage(i)) for i in (1, 2, 3, 4)] == [False, True, True, True]
    assert all(b.se is None for b in gc.layer1)
    se = attnzoo.create_model("resnet20-se", stages=(3,))
    assert [all(b.se is not None for b in se.stage(i)) for i in (1, 2, 3)] == [False, False, True]
    assert all(b.se is None for b in se.layer1) and all(b.se is not None for b in attnzoo.create_model("resnet20-se").layer1)


def test_stages_argument_and_default():
    assert len(attnzoo.create_model("resnet50-nl").layer3) == 7  # the paper's: one block in res4
    model = attnzoo.create_model("resnet20-nl", stages=(1, 3))
    assert [len(model.stage(i)) for i in (1, 2, 3)] == [4, 3, 4]
    with pytest.raises(ValueError, match="has stages 1 to 3, got 4"):
        attnzoo.create_model("resnet20-nl", stages=(4,))


def test_dict_spec_builds_the_same_model_as_the_name():
    by_name = attnzoo.create_model("resnet20-glore", stages=(2,), attention_kwargs={"node_ratio": 0.5})
    by_spec = attnzoo.create_model(
        {"arch": "resnet20", "attention": "glore", "stages": (2,), "attention_kwargs": {"node_ratio": 0.5}}
    )
    assert by_name.spec == by_spec.spec
    assert {k: v.shape for k, v in by_name.state_dict().items()} == {k: v.shape for k, v in by_spec.state_dict().items()}
    assert by_name.layer2[-1].num_nodes == 16  # half of stage 2's 32 channels (default: a quarter)


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
