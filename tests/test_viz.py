"""Attention maps: collected by name during a forward pass, drawn into a PNG."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import attnzoo
from attnzoo.attention.cbam import CBAM
from attnzoo.viz import attention_maps, draw, show_digits


def test_attention_maps_are_each_modules_spatial_gate():
    model = attnzoo.create_model("resnet20-cbam", num_classes=10).train()
    x = torch.randn(2, 3, 32, 32)
    logits, maps = attention_maps(model, x)
    cbams = {name: m for name, m in model.named_modules() if isinstance(m, CBAM)}
    assert list(maps) == list(cbams) and len(maps) == 9
    assert model.training  # the mode is given back
    with torch.no_grad():
        torch.testing.assert_close(logits, model.eval()(x))
    # Recompute one block's gate from its input: sigmoid(conv7x7+BN([mean_c; max_c])) after the channel gate.
    model.eval()
    block = model.layer2[1]
    features = {}
    hook = block.se.register_forward_hook(lambda m, inp, out: features.update(x=inp[0]))
    with torch.no_grad():
        model(x)
    hook.remove()
    gated = features["x"] * block.se.channel_gate(features["x"])
    pooled = torch.cat([gated.mean(1, keepdim=True), gated.amax(1, keepdim=True)], 1)
    expected = torch.sigmoid(block.se.spatial.conv(pooled))
    torch.testing.assert_close(maps["layer2.1.se"], expected)
    assert maps["layer1.0.se"].shape == (2, 1, 32, 32) and maps["layer3.0.se"].shape == (2, 1, 8, 8)
    with torch.no_grad():
        model(x)  # outside record(): no maps kept
    assert all(m.attention_map is None for m in cbams.values())


def test_draw_writes_a_png_with_a_column_per_map(tmp_path):
    model = attnzoo.create_model("resnet20-cbam", num_classes=10)
    images = torch.rand(3, 32, 32)
    _, maps = attention_maps(model, images[:, None].expand(-1, 3, -1, -1))
    path = draw(images, maps, tmp_path / "maps.png", row_titles=["a", "b", "c"], max_columns=4)
    picture = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert path == tmp_path / "maps.png" and picture.std() > 10  # drawn, not blank
    width, height = Image.open(path).size
    assert width > height  # five columns, three rows
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temporary file left


def test_channel_gates_are_drawn_when_there_is_no_spatial_map(tmp_path):
    model = attnzoo.create_model("resnet20-se", num_classes=10)
    _, maps = attention_maps(model, torch.randn(2, 3, 32, 32))
    assert all(m.shape[-2:] == (1, 1) for m in maps.values())
    assert draw(torch.rand(2, 32, 32), maps, tmp_path / "se.png").is_file()


def test_bad_input(tmp_path):
    model = attnzoo.create_model("resnet20", num_classes=10)
    _, maps = attention_maps(model, torch.randn(1, 3, 32, 32))
    assert maps == {}
    with pytest.raises(ValueError, match="none of the 0 attention maps"):
        draw(torch.rand(1, 32, 32), maps, tmp_path / "x.png")
    _, maps = attention_maps(attnzoo.create_model("resnet20-cbam", num_classes=10), torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="1 row titles for 2 images"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "x.png", row_titles=["a"])
    with pytest.raises(ValueError, match="count must be an integer in 1..32"):
        show_digits(attnzoo.create_model("resnet20-cbam", num_classes=10), tmp_path / "x.png", count=0)
    with pytest.raises(ValueError, match="'fcos-resnet18' is a detection model"):
        show_digits(attnzoo.create_model("fcos-resnet18", num_classes=3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_zoo_entry(tmp_path, capsys):
    from attnzoo.cli import main

    assert main(["show", "resnet20-cbam.digits", "--output", str(tmp_path / "digits.png"), "--count", "2"]) == 0
    assert f"wrote {tmp_path / 'digits.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "digits.png").format == "PNG"
