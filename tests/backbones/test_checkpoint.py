"""timm's checkpoints load into the matching attnzoo networks, with the same logits."""
import pytest
import timm
import torch
from safetensors.torch import save_file

import attnzoo

PAIRS = [
    ("resnet18", "resnet18"),
    ("resnet50", "resnet50"),
    ("resnext50_32x4d", "resnext50_32x4d"),
    ("seresnet50", "resnet50-se"),
    ("skresnext50_32x4d", "resnet50-sk"),
    ("skresnet18", "resnet18-sk"),
    ("skresnet34", "resnet34-sk"),
]


def timm_model(name: str) -> torch.nn.Module:
    """A timm model with random weights and BN statistics, so that every tensor matters."""
    model = timm.create_model(name, num_classes=10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("timm_name, name", PAIRS)
def test_timm_checkpoint_gives_timm_logits(tmp_path, timm_name, name):
    ref = timm_model(timm_name)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    model = attnzoo.create_model(name, num_classes=10, checkpoint_path=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)


def test_pickled_timm_training_checkpoint_loads(tmp_path):
    ref = timm_model("skresnet18")
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    model = attnzoo.create_model("resnet18-sk", num_classes=10, checkpoint_path=path).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


def test_checkpoint_of_another_network_lists_the_mismatch(tmp_path):
    path = tmp_path / "se.safetensors"
    save_file(dict(timm_model("seresnet50").state_dict()), path)
    with pytest.raises(ValueError, match=r"(?s)does not fit 'resnet50-cbam'.*missing from the checkpoint: layer1\.0\.se\.channel"):
        attnzoo.create_model("resnet50-cbam", num_classes=10, checkpoint_path=path)
    with pytest.raises(ValueError, match=r"different shapes: fc\.bias: checkpoint \(10,\) vs model \(1000,\)"):
        attnzoo.create_model("resnet50-se", checkpoint_path=path)


def test_unreadable_checkpoints_raise(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        attnzoo.create_model("resnet20", checkpoint_path=tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        attnzoo.create_model("resnet20", checkpoint_path=bad)
    other = tmp_path / "weights.npz"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match="expected a .safetensors"):
        attnzoo.create_model("resnet20", checkpoint_path=other)
    pickled = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": print}, pickled)
    with pytest.raises(ValueError, match="could not be read with weights_only=True"):
        attnzoo.create_model("resnet20", checkpoint_path=pickled)
