import attnzoo.attention.global_reasoning  # noqa: F401
import pytest
import torch

import attnzoo

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize_batchnorm


def reference(m, x):
    """GloRe written out node by node: returns the output and the projection."""
    b, _, h, w = x.shape
    states = conv1x1(m.conv_state, x).reshape(b, -1, h * w)
    proj = conv1x1(m.conv_proj, x).reshape(b, -1, h * w)
    num_nodes = proj.shape[1]
    # node i = mean over positions of the states weighted by projection row i
    nodes = torch.stack([(states * proj[:, i : i + 1]).mean(-1) for i in range(num_nodes)], -1)  # (B, S, N)
    adj = m.node_conv.weight[:, :, 0]  # (N, N)
    mixed = nodes + torch.einsum("mn,bsn->bsm", adj, nodes) + m.node_conv.bias[None, None, :]
    mixed = torch.einsum("ts,bsn->btn", m.state_conv.weight[:, :, 0], mixed.clamp_min(0))
    back = torch.einsum("bsn,bnl->bsl", mixed, proj).reshape(b, -1, h, w)
    return x + bn_eval(conv1x1(m.conv_extend, back), m.norm), proj.reshape(b, num_nodes, h, w)


def test_widths():
    m = attnzoo.create_attention("glore", 32)
    assert (m.num_states, m.num_nodes) == (16, 8)
    m = attnzoo.create_attention("glore", 32, state_ratio=1 / 4, node_ratio=1 / 8)
    assert (m.num_states, m.num_nodes) == (8, 4)


def test_output_matches_reference():
    torch.manual_seed(0)
    m = randomize_batchnorm(attnzoo.create_attention("glore", 16)).eval()
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
    m = randomize_batchnorm(attnzoo.create_attention("glore", 8)).eval()
    x = torch.randn(1, 8, 3, 5)
    torch.testing.assert_close(m(x.repeat(1, 1, 2, 2)), m(x).repeat(1, 1, 2, 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs", [dict(state_ratio=0), dict(node_ratio=1.5), dict(state_ratio="half"), dict(channels=-4)]
)
def test_bad_arguments(kwargs):
    assert_bad_arguments("glore", **{"channels": 16, **kwargs})
