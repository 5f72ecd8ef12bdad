import attnzoo.attention.global_reasoning  # noqa: F401
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


def conv1x1(weight, bias, x):
    out = torch.einsum("oc,bchw->bohw", weight[:, :, 0, 0], x)
    return out if bias is None else out + bias[None, :, None, None]


def reference(m, x):
    """GloRe written out node by node: returns the output and the projection."""
    b, _, h, w = x.shape
    states = conv1x1(m.conv_state.weight, m.conv_state.bias, x).reshape(b, -1, h * w)
    proj = conv1x1(m.conv_proj.weight, m.conv_proj.bias, x).reshape(b, -1, h * w)
    num_nodes = proj.shape[1]
    # node i = mean over positions of the states weighted by projection row i
    nodes = torch.stack([(states * proj[:, i : i + 1]).mean(-1) for i in range(num_nodes)], -1)  # (B, S, N)
    adj = m.node_conv.weight[:, :, 0]  # (N, N)
    mixed = nodes + torch.einsum("mn,bsn->bsm", adj, nodes) + m.node_conv.bias[None, None, :]
    mixed = torch.einsum("ts,bsn->btn", m.state_conv.weight[:, :, 0], mixed.clamp_min(0))
    back = torch.einsum("bsn,bnl->bsl", mixed, proj).reshape(b, -1, h, w)
    out = conv1x1(m.conv_extend.weight, None, back)
    bn = m.norm
    out = (out - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    out = out * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    return x + out, proj.reshape(b, num_nodes, h, w)


def test_widths():
    m = attnzoo.create_attention("glore", 32)
    assert (m.num_states, m.num_nodes) == (16, 8)
    m = attnzoo.create_attention("glore", 32, state_ratio=1 / 4, node_ratio=1 / 8)
    assert (m.num_states, m.num_nodes) == (8, 4)


def test_identity_at_init():
    torch.manual_seed(0)
    m = attnzoo.create_attention("glore", 16)
    x = torch.randn(2, 16, 5, 7)
    for train in (True, False):
        m.train(train)
        assert torch.equal(m(x), x)


def test_output_matches_reference():
    torch.manual_seed(0)
    m = _randomise(attnzoo.create_attention("glore", 16)).eval()
    x = torch.randn(2, 16, 5, 7)
    with attnzoo.viz.record():
        out = m(x)
    ref, proj = reference(m, x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.attention_map, proj)
    assert m.attention_map.shape == (2, 4, 5, 7)


def test_node_features_do_not_grow_with_image_size():
    # Tiling the input 2 x 2 leaves the node features (means over positions) unchanged,
    # so the output is the tiled output.
    torch.manual_seed(0)
    m = _randomise(attnzoo.create_attention("glore", 8)).eval()
    x = torch.randn(1, 8, 3, 5)
    torch.testing.assert_close(m(x.repeat(1, 1, 2, 2)), m(x).repeat(1, 1, 2, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(state_ratio=0), dict(node_ratio=1.5), dict(state_ratio="half")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="attention 'glore'"):
        attnzoo.create_attention("glore", 16, **kwargs)


def test_bad_channels():
    with pytest.raises(ValueError, match="attention 'glore'"):
        attnzoo.create_attention("glore", -4)
