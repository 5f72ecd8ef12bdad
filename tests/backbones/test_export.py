"""Deployment paths of attention-configured backbones: ONNX export run by onnxruntime, and torch.compile."""
import io

import onnx
import onnxruntime as ort
import pytest
import torch

import attnzoo

from ..attention.helpers import randomize_batchnorm, randomize_zero_params

def random_model(name: str) -> torch.nn.Module:
    # Zero-initialised last BNs and identity-at-init scales would leave the attention acting on zeros;
    # random BN statistics keep eval-mode BN from being the near-identity that hides layout mistakes.
    model = attnzoo.create_model(name, num_classes=10)
    return randomize_batchnorm(randomize_zero_params(model)).eval()


def export_onnx(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    # The TorchScript exporter (dynamo=False) exports these networks about 4x faster than the dynamo one.
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (x,),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    return buffer.getvalue()


# The tracer warns about the Python-side channel check in every forward (a constant for the trace, rightly);
# torch warns that the TorchScript exporter is deprecated.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
@pytest.mark.parametrize("attention", ["se", "cbam", "sk", "gc", "eca"])
def test_onnx_export_matches_pytorch(attention):
    model = random_model(f"resnet18-{attention}")
    proto = export_onnx(model, torch.randn(1, 3, 64, 64))
    onnx.checker.check_model(onnx.load_from_string(proto))

    session = ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    # A batch other than the traced one: no reshape may have baked in batch size 1.
    x = torch.randn(3, 3, 64, 64)
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert got.shape == (3, 10)
    scale = expected.abs().max().item()
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=1e-4 * scale)


def test_torch_compile_fullgraph_matches_eager():
    model = random_model("resnet20-cbam")
    x = torch.randn(2, 3, 32, 32)
    # fullgraph=True raises on any graph break; the eager backend keeps the test to tracing, not codegen.
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)
