"""Attention maps: collected by name during a forward pass, drawn into a PNG. What each task shows around
them (``attnzoo show``) is tested with the task, in tests/tasks/."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import attnzoo
from attnzoo import viz
from attnzoo.attention.cbam import CBAM
from attnzoo.viz import attention_maps, draw

from .picture_helpers import capture_figures, figure_titles, layout


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


def test_draw_writes_a_png_with_a_column_per_map(tmp_path, monkeypatch):
    model = attnzoo.create_model("resnet20-cbam", num_classes=10)
    images = torch.rand(3, 32, 32)
    _, maps = attention_maps(model, images[:, None].expand(-1, 3, -1, -1))
    figures = capture_figures(monkeypatch)
    path = draw(images, maps, tmp_path / "maps.png", model, row_titles=["a", "b", "c"], max_columns=4)
    picture = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert path == tmp_path / "maps.png" and picture.std() > 10  # drawn, not blank
    assert Image.open(path).size == layout(5, 3)  # the image and four maps, spread over the depth
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temporary file left
    # Titled with the module (timm's slot, "se") and the mechanism's registry name.
    assert figure_titles(figures[-1])[:5] == [
        "a", "layer1.0.se · cbam\n1x32x32", "layer2.0.se · cbam\n1x16x16", "layer2.2.se · cbam\n1x16x16",
        "layer3.2.se · cbam\n1x8x8",
    ]


# One small network per map kind, and what its picture must say; the items kind is a re-ID network's pool.
KIND_MODELS = {
    "spatial": "resnet20-gc",
    "pairwise": "resnet20-nl",
    "assignment": "resnet20-ham",
    "channel": "resnet20-eca",
    "paths": "resnet20-sk",
    "routing": "resnet20-dyconv",
    "gate": "resnet20-highway",
    "items": "resnet18n+sta",
}


def test_every_kind_has_a_model_here():
    assert set(KIND_MODELS) == set(attnzoo.attention.MAP_KINDS)


@pytest.mark.parametrize("kind", list(KIND_MODELS))
def test_each_kind_is_drawn_headless_with_titles_naming_the_mechanism(kind, tmp_path, monkeypatch):
    model = attnzoo.create_model(KIND_MODELS[kind])
    mechanism = model.spec.temporal if kind == "items" else model.spec.attention
    figures = capture_figures(monkeypatch)
    if kind == "items":
        clips = torch.rand(2, 4, 3, 64, 32)
        _, maps = attention_maps(model, clips)
        path = draw(clips[:, 0], maps, tmp_path / "x.png", model, items=clips)
    else:
        images = torch.rand(4, 3, 32, 32)
        _, maps = attention_maps(model, images)
        zoomed = {2: attention_maps(model, viz.zoom(images, 2))[1]} if kind == "paths" else None
        path = draw(images, maps, tmp_path / "x.png", model, groups=["a", "b", "a", "b"], zoomed=zoomed)
    assert Image.open(path).format == "PNG" and np.asarray(Image.open(path).convert("L")).std() > 10
    assert [viz.mechanisms(model)[name].kind for name in maps] == [kind] * len(maps)
    titles = figure_titles(figures[-1])
    assert any(mechanism in title for title in titles), titles
    if kind in ("spatial", "pairwise", "assignment", "channel", "routing"):  # a column or panel per module
        assert any(title.startswith(f"{next(iter(maps))} · {mechanism}") for title in titles), titles


def test_drawing_needs_no_display_and_no_pyplot(tmp_path):
    script = (
        "import sys, torch, attnzoo\n"
        "from attnzoo import viz\n"
        "model = attnzoo.create_model('resnet20-cc')\n"
        "images = torch.rand(2, 3, 16, 16)\n"
        f"viz.draw(images, viz.attention_maps(model, images)[1], {str(tmp_path / 'x.png')!r}, model)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Image.open(tmp_path / "x.png").format == "PNG"


def test_zoom_enlarges_the_centre():
    images = torch.zeros(2, 3, 8, 8)
    images[..., 3:5, 3:5] = 1  # a 2 x 2 square in the middle
    torch.testing.assert_close(viz.zoom(images, 1), images)
    zoomed = viz.zoom(images, 2)
    assert zoomed.shape == images.shape
    assert (zoomed[..., 3:5, 3:5] == 1).all() and zoomed[..., 2, 2].min() > 0.2  # now about 4 x 4
    with pytest.raises(ValueError, match="zoom factor must be a number >= 1, got 0.5"):
        viz.zoom(images, 0.5)


def test_pairwise_pictures_show_each_querys_row_of_the_weights(tmp_path, monkeypatch):
    model = attnzoo.create_model("resnet20-cc")
    images = torch.rand(1, 3, 32, 32)
    _, maps = attention_maps(model, images)
    weights = maps["layer3.2_cc"][0]  # (64, 8, 8): the query at the centre is (4, 4), index 36
    figures = capture_figures(monkeypatch)
    draw(images, maps, tmp_path / "x.png", model)
    axes = figures[-1].axes
    assert [ax.get_title() for ax in axes[1:]] == [
        f"layer3.2_cc · cc\nfrom the {colour} +" for colour in ("cyan", "lime", "magenta")
    ]
    shown = axes[1].get_images()[1].get_array()  # the overlay: the centre query's weights, upsampled
    expected = torch.nn.functional.interpolate(weights[36][None, None], size=(32, 32), mode="bilinear")[0, 0]
    np.testing.assert_allclose(shown, expected.numpy(), rtol=1e-5, atol=1e-7)
    assert [tuple(line.get_xydata()[0]) for line in axes[1].lines] == [(4.5 * 4 - 0.5, 4.5 * 4 - 0.5)]


def test_channel_gates_are_compared_across_groups(tmp_path, monkeypatch):
    model = attnzoo.create_model("resnet20-se", num_classes=10)
    _, maps = attention_maps(model, torch.randn(4, 3, 32, 32))
    assert all(m.shape[-2:] == (1, 1) for m in maps.values())
    figures = capture_figures(monkeypatch)
    draw(torch.rand(4, 32, 32), maps, tmp_path / "se.png", model, groups=["7", "1", "7", "1"], group_by="digit")
    panels = [ax for ax in figures[-1].axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{name} · se" for name in viz._spread(list(maps), 6)]
    first = maps[panels[0].get_title().split(" · ")[0]].flatten(1)
    lines = {line.get_label(): line.get_ydata() for line in panels[0].lines}
    assert list(lines) == ["all", "1", "7"]
    np.testing.assert_allclose(lines["7"], first[[0, 2]].mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(lines["all"], first.mean(0).numpy(), rtol=1e-6)
    assert "channel gates: each channel's mean gate, by digit" in figure_titles(figures[-1])[-1]


def test_a_user_registered_mechanism_is_drawn_as_its_kind(tmp_path, monkeypatch):
    from attnzoo.attention import registry
    from attnzoo.attention.base import AttentionModule

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @attnzoo.register_attention(
        "brightest", family="spatial", title="t", year=2026, paper_url="https://e.org", placement="block",
        map_kind="routing",
    )
    class Brightest(AttentionModule, torch.nn.Module):
        """Weighs two halves of the channels by their mean: a (B, 2) routing map."""

        def __init__(self, channels: int):
            super().__init__()

        def forward(self, x):
            weights = torch.softmax(torch.stack([h.mean((1, 2, 3)) for h in x.chunk(2, 1)], 1), 1)
            self._record(weights)
            return x

    model = attnzoo.create_model("resnet20-brightest")
    _, maps = attention_maps(model, torch.randn(2, 3, 32, 32))
    assert set(viz.mechanisms(model).values()) == {viz.Mechanism("brightest", "routing")}
    figures = capture_figures(monkeypatch)
    draw(torch.rand(2, 32, 32), maps, tmp_path / "mine.png", model)
    assert "layer1.0.se · brightest" in figure_titles(figures[-1])

    # A map without its kind's layout is named, with the layout expected.
    maps["layer1.0.se"] = maps["layer1.0.se"][:, :, None]
    with pytest.raises(ValueError, match=r"module 'layer1.0.se' \(brightest\): a routing attention map is \(B, K\)"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "bad.png", model)
    with pytest.raises(ValueError, match="module 'fc' recorded an attention map, but the model has no registered"):
        draw(torch.rand(2, 32, 32), {"fc": torch.rand(2, 4)}, tmp_path / "bad.png", model)
    assert not (tmp_path / "bad.png").exists()


def test_bad_input(tmp_path):
    model = attnzoo.create_model("resnet20", num_classes=10)
    _, maps = attention_maps(model, torch.randn(1, 3, 32, 32))
    assert maps == {}
    with pytest.raises(ValueError, match="nothing to draw: no attention maps"):
        draw(torch.rand(1, 32, 32), maps, tmp_path / "x.png", model)
    model = attnzoo.create_model("resnet20-cbam", num_classes=10)
    _, maps = attention_maps(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="1 row titles for 2 images"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "x.png", model, row_titles=["a"])
    with pytest.raises(ValueError, match="3 groups for 2 images"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "x.png", model, groups=["a", "b", "c"])
    assert not (tmp_path / "x.png").exists()


def test_a_callers_own_sections_are_drawn_above_the_maps(tmp_path, monkeypatch):
    model = attnzoo.create_model("resnet20-se", num_classes=10)
    images = torch.rand(2, 3, 32, 32)
    _, maps = attention_maps(model, images)
    painted = []

    def paint(figure):
        figure.subplots().set_title("mine")
        painted.append(figure)

    mine = viz.Section(4.0, 2.0, "my caption", paint)
    figures = capture_figures(monkeypatch)
    draw(images, maps, tmp_path / "x.png", model, sections=[mine], title="both")
    assert painted[0] is figures[-1].subfigs[0]  # the first of the page's parts
    assert figure_titles(painted[0])[:2] == ["mine", "my caption"]
    assert "channel gates: each channel's mean gate, by class" in figure_titles(figures[-1].subfigs[1])
    # A section alone is a picture: no maps needed.
    path = draw(images, {}, tmp_path / "alone.png", model, sections=[mine])
    assert Image.open(path).size == (4 * 120, 2 * 120)
