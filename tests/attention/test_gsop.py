"""GSoP: the covariance helper, the whole pipeline written out by hand, argument checks."""
import pytest
import torch

import attnzoo
import attnzoo.attention.gsop  # noqa: F401
from attnzoo.attention.gsop import covariance
from attnzoo.viz import record

from .helpers import assert_bad_arguments, bn_eval, conv1x1, randomize


def test_covariance_equals_biased_torch_cov_per_sample():
    torch.manual_seed(0)
    z = torch.randn(3, 5, 4, 7) * 2 + 1
    cov = covariance(z)
    assert cov.shape == (3, 5, 5) and cov.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(cov[i], torch.cov(z[i].flatten(1), correction=0), rtol=1e-5, atol=1e-5)
    # Explicit sum over positions, centred, divided by HW.
    zc = z.flatten(2) - z.flatten(2).mean(-1, keepdim=True)
    hand = torch.einsum("bin,bjn->bij", zc, zc) / 28
    torch.testing.assert_close(cov, hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cov, cov.transpose(1, 2))


def test_covariance_is_float32_under_autocast():
    z = torch.randn(2, 4, 3, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cov = covariance(z)
    assert cov.dtype == torch.float32
    torch.testing.assert_close(cov, covariance(z.float()))


def reference(m, x, stride=1):
    """GSoP-Net1's channel gate written out, (B, C); ``stride`` is the reduction conv's."""
    b, d = x.shape[0], m.reduce.out_channels
    f = m.row_conv.out_channels // d
    # ReLU -> 1x1 conv to d (a strided 1x1 conv reads every stride-th position) -> BN -> ReLU.
    z = bn_eval(conv1x1(m.reduce, x.clamp_min(0)[:, :, ::stride, ::stride]), m.bn).clamp_min(0)
    # Centred covariance / HW, (B, d, d).
    zf = z.flatten(2)
    zf = zf - zf.mean(-1, keepdim=True)
    cov = zf @ zf.transpose(1, 2) / zf.shape[-1]
    # BN over rows: row i is a channel.
    cov = bn_eval(cov, m.row_bn)
    # Row-wise conv: row i -> f features, each a dot product with the whole row.
    rw = m.row_conv.weight.view(d, f, d)  # (row, feature, column)
    rows = torch.einsum("ifk,bik->bif", rw, cov).reshape(b, d * f) + m.row_conv.bias
    return torch.sigmoid(rows @ m.fc.weight.flatten(1).T + m.fc.bias)


def test_output_matches_hand_written_pipeline():
    torch.manual_seed(0)
    c, d, f = 12, 6, 4
    m = attnzoo.create_attention("gsop", c, rd_channels=d, row_features=f)
    randomize(m, std=0.3).eval()
    x = torch.randn(2, c, 5, 4)
    gate = reference(m, x)

    with record():
        out = m(x)
    torch.testing.assert_close(out, x * gate[:, :, None, None], rtol=1e-4, atol=1e-5)
    assert m.attention_map.shape == (2, c, 1, 1)
    torch.testing.assert_close(m.attention_map, gate[:, :, None, None], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [(7, 9), (8, 6), (1, 1)])
def test_reduce_stride_estimates_the_covariance_from_every_other_position(size):
    # The authors' ResNet: stride 2 in the blocks of width (planes) <= 64, the first stage.
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gsop", 8, rd_channels=6, reduce_stride=2), std=0.3).eval()
    assert m.reduce.stride == (2, 2) and attnzoo.create_attention("gsop", 8).reduce.stride == (1, 1)
    x = torch.randn(2, 8, *size)
    out = m(x)
    assert out.shape == x.shape  # the gate still scales every position
    torch.testing.assert_close(out, x * reference(m, x, stride=2)[:, :, None, None], rtol=1e-4, atol=1e-5)
    if size != (1, 1):
        assert not torch.allclose(out, x * reference(m, x)[:, :, None, None], rtol=1e-4, atol=1e-5)


def test_float64_module_runs_in_float64():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gsop", 12, rd_channels=6), std=0.3).eval().double()
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64)
    out = m(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x * reference(m, x)[:, :, None, None], rtol=1e-10, atol=1e-12)
    assert covariance(x).dtype == torch.float64


def test_bf16_autocast_still_forms_the_covariance_in_float32():
    torch.manual_seed(0)
    m = randomize(attnzoo.create_attention("gsop", 12, rd_channels=6), std=0.3).eval()
    x = torch.randn(2, 12, 5, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    torch.testing.assert_close(out.float(), x * reference(m, x)[:, :, None, None], rtol=0.05, atol=0.05)


def test_defaults_follow_the_paper():
    m = attnzoo.create_attention("gsop", 32)
    assert m.reduce.out_channels == 128
    assert m.row_conv.out_channels == 4 * 128
    assert m.row_conv.kernel_size == (128, 1) and m.row_conv.groups == 128
    assert m.fc.out_channels == 32


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 0},
        {"channels": 3.0},
        {"rd_channels": 0},
        {"rd_channels": -1},
        {"row_features": 0},
        {"row_features": 1.5},
    ],
)
def test_bad_arguments_raise(kwargs):
    assert_bad_arguments("gsop", **{"channels": 16, **kwargs})


@pytest.mark.parametrize("stride", [0, 2.0, True])
def test_reduce_stride_must_be_a_positive_integer(stride):
    with pytest.raises(ValueError, match="attention 'gsop': reduce_stride must be a positive integer"):
        attnzoo.create_attention("gsop", 16, reduce_stride=stride)
