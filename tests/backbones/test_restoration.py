"""CANet: head, attention modules joined by concatenation + 1x1 feature selection, tail, global residual."""
import pytest
import torch
import torch.nn.functional as F

from attnzoo.attention.canet import ConcatenatedAttention
from attnzoo.backbones.restoration import CANet
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
    net = randomize(CANet(in_channels, **TINY), std=0.3).eval()
    x = torch.rand(2, in_channels, 16, 17)
    torch.testing.assert_close(net(x), hand_forward(net, x), rtol=1e-5, atol=1e-5)


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
