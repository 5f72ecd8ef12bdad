"""Selective Kernel: path weights, dilated paths, the fused output by hand, argument checks."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnzoo
import attnzoo.attention.selective_kernel  # noqa: F401
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, randomize, stable_softmax


def hand_sk(m, x, stride, groups, split_input=False):
    paths = []
    parts = x.chunk(len(m.paths), dim=1) if split_input else [x] * len(m.paths)
    for i, (path, part) in enumerate(zip(m.paths, parts)):
        dil = i + 1  # path m: 3x3 with dilation m + 1
        y = F.conv2d(part, path.conv.weight, stride=stride, padding=dil, dilation=dil, groups=groups)
        paths.append(torch.relu(bn_eval(y, path.bn)))
    u = sum(paths)
    s = u.mean((2, 3))  # (B, C)
    a = m.attn
    z = torch.relu(bn_eval(s @ a.fc_reduce.weight.flatten(1).T, a.bn))
    logits = (z @ a.fc_select.weight.flatten(1).T).view(x.shape[0], len(paths), -1)  # (B, M, C)
    w = stable_softmax(logits, 1)
    out = sum(w[:, i, :, None, None] * p for i, p in enumerate(paths))
    return out, w


@pytest.mark.parametrize(
    ("cin", "cout", "stride", "groups", "paths", "size", "split"),
    [
        (8, 8, 1, 1, 2, (6, 5), False),
        (8, 12, 2, 4, 2, (7, 9), False),
        (6, 6, 1, 2, 3, (5, 5), False),
        (8, 6, 1, 2, 2, (4, 5), True),
    ],
)
def test_output_matches_hand_written_selection(cin, cout, stride, groups, paths, size, split):
    torch.manual_seed(0)
    m = attnzoo.create_attention(
        "sk",
        cin,
        out_channels=cout,
        stride=stride,
        groups=groups,
        num_paths=paths,
        min_rd_channels=4,
        split_input=split,
    )
    randomize(m, std=0.3).eval()
    x = torch.randn(2, cin, *size)
    expected, w = hand_sk(m, x, stride, groups, split)
    with record():
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    assert m.attention_map.shape == (2, paths, cout)
    torch.testing.assert_close(m.attention_map, w, rtol=1e-5, atol=1e-6)


def test_path_weights_sum_to_one_per_channel():
    torch.manual_seed(0)
    m = attnzoo.create_attention("sk", 16)
    x = torch.randn(3, 16, 5, 7)
    with record():
        m(x)
    a = m.attention_map
    assert a.shape == (3, 2, 16)
    assert (a > 0).all() and (a < 1).all()
    torch.testing.assert_close(a.sum(1), torch.ones(3, 16))


def test_paths_are_dilated_3x3():
    m = attnzoo.create_attention("sk", 8, num_paths=3)
    for i, path in enumerate(m.paths):
        assert path.conv.kernel_size == (3, 3)
        assert path.conv.dilation == (i + 1, i + 1)
        assert path.conv.padding == (i + 1, i + 1)
    assert m.paths[1].conv.dilation == (2, 2)


def test_every_path_sees_the_whole_input():
    m = attnzoo.create_attention("sk", 8)
    assert all(p.conv.in_channels == 8 for p in m.paths)


@pytest.mark.parametrize("size", [(7, 9), (8, 8), (1, 1), (5, 2)])
def test_stride_two_output_size_matches_conv2d(size):
    torch.manual_seed(0)
    m = attnzoo.create_attention("sk", 4, out_channels=6, stride=2).eval()
    x = torch.randn(1, 4, *size)
    ref = nn.Conv2d(4, 6, 3, stride=2, padding=1)(x)
    assert m(x).shape == ref.shape


@pytest.mark.parametrize(
    ("channels", "rd_ratio", "min_rd", "hidden"), [(16, 1 / 16, 32, 32), (128, 1 / 2, 32, 64), (32, 1 / 4, 4, 8)]
)
def test_reduction_width_is_max_of_c_over_r_and_l(channels, rd_ratio, min_rd, hidden):
    m = attnzoo.create_attention("sk", channels, rd_ratio=rd_ratio, min_rd_channels=min_rd)
    assert m.attn.fc_reduce.out_channels == hidden


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 5},
        {"kernel_size": 4},
        {"kernel_size": 1},
        {"groups": 3},
        {"groups": 0},
        {"out_channels": 10, "groups": 4},
        {"out_channels": 0},
        {"stride": 0},
        {"num_paths": 1},
        {"num_paths": 2.0},
        {"rd_ratio": 0},
        {"min_rd_channels": 0},
        {"rd_channels": 0},
        {"split_input": True, "num_paths": 3},
        {"channels": 0},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("sk", **{"channels": 8, **kwargs})
