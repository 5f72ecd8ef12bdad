"""Attention maps: collected by name during a forward pass, drawn into a PNG."""
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
from attnzoo.data import DigitsData
from attnzoo.data.degradation import Degradation
from attnzoo.data.photos import protocol_pair
from attnzoo.tasks import show_classifier
from attnzoo.viz import attention_maps, draw, record, show_detections, show_restoration


def _layout(columns: int, rows: int) -> tuple[int, int]:
    """The PNG's size for a layout: 1.6 x 1.7 inches per column and row, at 120 dpi."""
    return round(1.6 * columns * 120), round(1.7 * rows * 120)


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
    figures = _capture_figures(monkeypatch)
    path = draw(images, maps, tmp_path / "maps.png", model, row_titles=["a", "b", "c"], max_columns=4)
    picture = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert path == tmp_path / "maps.png" and picture.std() > 10  # drawn, not blank
    assert Image.open(path).size == _layout(5, 3)  # the image and four maps, spread over the depth
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temporary file left
    # Titled with the module (timm's slot, "se") and the mechanism's registry name.
    assert _titles(figures[-1])[:5] == [
        "a", "layer1.0.se · cbam\n1x32x32", "layer2.0.se · cbam\n1x16x16", "layer2.2.se · cbam\n1x16x16",
        "layer3.2.se · cbam\n1x8x8",
    ]


def _capture_figures(monkeypatch) -> list:
    """The matplotlib figures viz saves, which it still writes."""
    figures = []
    save = viz._save

    def capture(figure, path, dpi=120):
        figures.append(figure)
        return save(figure, path, dpi)

    monkeypatch.setattr(viz, "_save", capture)
    return figures


def _titles(figure) -> list[str]:
    """Every title of a figure: its axes' and its (sub)figures' own, in drawing order."""
    texts = [ax.get_title() for ax in figure.axes]
    for part in [figure, *figure.subfigs]:
        if part._suptitle is not None:
            texts.append(part._suptitle.get_text())
    return texts


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
    figures = _capture_figures(monkeypatch)
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
    titles = _titles(figures[-1])
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
    figures = _capture_figures(monkeypatch)
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
    figures = _capture_figures(monkeypatch)
    draw(torch.rand(4, 32, 32), maps, tmp_path / "se.png", model, groups=["7", "1", "7", "1"], group_by="digit")
    panels = [ax for ax in figures[-1].axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{name} · se" for name in viz._spread(list(maps), 6)]
    first = maps[panels[0].get_title().split(" · ")[0]].flatten(1)
    lines = {line.get_label(): line.get_ydata() for line in panels[0].lines}
    assert list(lines) == ["all", "1", "7"]
    np.testing.assert_allclose(lines["7"], first[[0, 2]].mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(lines["all"], first.mean(0).numpy(), rtol=1e-6)
    assert "channel gates: each channel's mean gate, by digit" in _titles(figures[-1])[-1]


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
    figures = _capture_figures(monkeypatch)
    draw(torch.rand(2, 32, 32), maps, tmp_path / "mine.png", model)
    assert "layer1.0.se · brightest" in _titles(figures[-1])

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
    with pytest.raises(ValueError, match="'resnet20' has no attention modules: there is nothing to draw"):
        show_classifier(model, tmp_path / "x.png")
    model = attnzoo.create_model("resnet20-cbam", num_classes=10)
    _, maps = attention_maps(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="1 row titles for 2 images"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "x.png", model, row_titles=["a"])
    with pytest.raises(ValueError, match="3 groups for 2 images"):
        draw(torch.rand(2, 32, 32), maps, tmp_path / "x.png", model, groups=["a", "b", "c"])
    with pytest.raises(ValueError, match="count must be an integer in 1..32"):
        show_classifier(model, tmp_path / "x.png", count=0)
    with pytest.raises(ValueError, match="count must be an integer in 1..4, got 5"):  # photos for a 224 network
        show_classifier(attnzoo.create_model("resnet18-cbam"), tmp_path / "x.png", count=5)
    with pytest.raises(ValueError, match="'fcos-resnet18' is a detection model; show_classifier draws classification"):
        show_classifier(attnzoo.create_model("fcos-resnet18", num_classes=3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_show_classifier_draws_digits_rows_and_compares_classes(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    model = attnzoo.load("resnet20-cbam.digits")
    path = show_classifier(model, tmp_path / "digits.png", count=2)
    assert Image.open(path).size == _layout(10, 2)  # the digit and the nine CBAM maps
    assert drawn["images"].shape == (200, 1, 32, 32) and drawn["rows"] == 2
    assert drawn["groups"][:5] == [str(t) for t in DigitsData(augment=False).test_set.targets[:5].tolist()]
    assert drawn["row_titles"][0].endswith(f"(true {drawn['groups'][0]})")
    assert drawn["title"] == "resnet20-cbam.digits: DigitsData test digits"


def test_show_classifier_shows_photos_to_an_imagenet_network(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    figures = _capture_figures(monkeypatch)
    model = attnzoo.create_model("resnet18-sk", num_classes=5)
    show_classifier(model, tmp_path / "photos.png", count=2)
    assert drawn["images"].shape == (16, 3, 224, 224) and drawn["groups"][:5] == [
        "astronaut", "chelsea", "coffee", "rocket", "astronaut"
    ]
    assert sorted(drawn["zoomed"]) == [1.5, 2.0]
    assert drawn["title"] == "resnet18-sk: scikit-image photos, 4 crops of each"
    title = next(t for t in _titles(figures[-1]) if "largest kernel" in t)
    assert title.startswith("sk: ")


def _capture_draw(monkeypatch) -> dict:
    """What the show functions hand to draw, which still writes the PNG."""
    drawn = {}
    draw_png = viz.draw

    def capture(images, maps, path, model, **kwargs):
        drawn.update(images=images, maps=maps, **kwargs)
        return draw_png(images, maps, path, model, **kwargs)

    monkeypatch.setattr(viz, "draw", capture)
    return drawn


def test_show_command_draws_a_zoo_entry(tmp_path, capsys):
    from attnzoo.cli import main

    assert main(["show", "resnet20-cbam.digits", "--output", str(tmp_path / "digits.png"), "--count", "2"]) == 0
    assert f"wrote {tmp_path / 'digits.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "digits.png").format == "PNG"


def test_show_command_draws_selective_kernels_and_random_networks(tmp_path, capsys):
    from attnzoo.cli import main

    output = tmp_path / "x.png"
    assert main(["show", "resnet20-sk.digits", "--output", str(output)]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert main(["show", "resnet20-ema", "--output", str(output), "--count", "1"]) == 0  # no zoo weights: random
    assert "resnet20-ema: random weights, not trained" in capsys.readouterr().out
    assert Image.open(output).size == _layout(2, 1)
    assert main(["show", "resnet20.digits", "--output", str(output)]) == 2
    assert "'resnet20.digits' has no attention modules" in capsys.readouterr().err
    assert main(["show", "resnet20", "--random", "--output", str(output)]) == 2
    assert "'resnet20' has no attention modules" in capsys.readouterr().err


def _detector(name: str = "fcos-resnet18n-cbam", **kwargs) -> torch.nn.Module:
    model = attnzoo.create_model(name, num_classes=9, fpn_channels=64, min_size=128, max_size=128, **kwargs)
    model.pretrained_cfg["labels"] = [f"class {i}" for i in range(1, 9)]
    return model


def _write_image(path, height: int, width: int, mode: str = "RGB"):
    # Grey, so that the boxes' lime is the only strong green in the picture.
    ramp = np.linspace(60, 160, width, dtype=np.uint8)[None].repeat(height, 0)
    Image.fromarray(ramp).convert(mode).save(path)
    return path


def _lime_pixels(path, columns: int) -> int:
    picture = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    first = picture[:, : picture.shape[1] // columns]
    return int(((first[..., 1] > 200) & (first[..., 0] < 100) & (first[..., 2] < 100)).sum())


def test_show_detections_draws_boxes_and_maps_on_image_files(tmp_path):
    # Every box is kept (random weights score low), at most three an image.
    model = _detector(score_thresh=0.0, detections_per_img=3)
    files = [_write_image(tmp_path / "wide.jpg", 60, 100), _write_image(tmp_path / "grey.png", 128, 128, "L")]
    modules = sum(isinstance(m, CBAM) for m in model.backbone.body.modules())
    assert modules == 8
    path = show_detections(model, tmp_path / "out" / "boxes.png", images=files, score_thresh=0.0)
    assert Image.open(path).format == "PNG" and Image.open(path).size == _layout(modules + 1, 2)
    assert _lime_pixels(path, modules + 1) > 50
    assert sorted(p.name for p in path.parent.iterdir()) == ["boxes.png"]  # no temporary file left
    none_kept = show_detections(model, tmp_path / "none.png", images=files, score_thresh=1.0)
    assert _lime_pixels(none_kept, modules + 1) == 0


def test_show_detections_defaults_to_shapes_test_images(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    figures = _capture_figures(monkeypatch)
    path = show_detections(_detector(), tmp_path / "shapes.png", count=2)
    assert Image.open(path).size == _layout(9, 2)
    assert len(drawn["images"]) == 2 and drawn["images"][0].shape == (3, 128, 128)
    assert list(drawn["maps"]) == [f"layer{s}.{b}.se" for s in range(1, 5) for b in range(2)]
    assert drawn["title"] == "fcos-resnet18n-cbam: boxes with score >= 0.3"
    assert "layer4.1.se · cbam\n1x4x4" in _titles(figures[-1])

    # A backbone without attention: the boxes alone, and the title says why.
    path = show_detections(_detector("fcos-resnet18n"), tmp_path / "plain.png", count=1)
    assert Image.open(path).size == _layout(1, 1) and drawn["maps"] == {}
    assert "no attention maps in its backbone, boxes only" in drawn["title"]


def test_a_detectors_channel_gates_are_compared_across_its_images(tmp_path, monkeypatch):
    figures = _capture_figures(monkeypatch)
    show_detections(_detector("fcos-resnet18n-se"), tmp_path / "se.png", count=2)
    titles = _titles(figures[-1])
    assert "layer1.0.se · se" in titles and "channel gates: each channel's mean gate, by image" in titles


def test_maps_are_cropped_to_the_image_in_the_padded_batch():
    # 60 x 100 is resized by 1.28 to 76 x 128, then padded to 96 x 128 (a multiple of 32).
    model = _detector().eval()
    image = torch.rand(3, 60, 100)
    _, cropped = viz._detect(model, image)
    with record(), torch.no_grad():
        model([image])
    raw = {n.removeprefix("backbone.body."): m.attention_map for n, m in model.named_modules() if n.endswith("se")}
    assert raw["layer1.0.se"].shape == (1, 1, 24, 32)
    # Stride 4: the image covers 19 of the 24 rows exactly, and all 32 columns.
    torch.testing.assert_close(cropped["layer1.0.se"], raw["layer1.0.se"][..., :19, :])
    # Strides 8, 16, 32: 9.5, 4.75 and 2.375 rows, resampled at 10, 5 and 3 points.
    assert [cropped[f"layer{s}.0.se"].shape[-2:] for s in (2, 3, 4)] == [(10, 16), (5, 8), (3, 4)]

    # A map whose value is its row: the k-th of n points sits at the centre of the k-th of n equal
    # bins over the image's rows, in row units (row i centred on i); above row 0 the map is row 0's.
    ramp = torch.arange(3.0).view(1, 1, 3, 1).expand(2, 4, 3, 5)
    out = viz._crop(ramp, "spatial", resized=(80, 160), padded=(96, 160))
    assert out.shape == (2, 4, 3, 5)
    covered = 3 * 80 / 96
    expected = ((torch.arange(3.0) + 0.5) * covered / 3 - 0.5).clamp(min=0)
    torch.testing.assert_close(out, expected.view(1, 1, 3, 1).expand(2, 4, 3, 5))
    gate = torch.rand(1, 8, 1, 1)
    assert viz._crop(gate, "channel", (80, 160), (96, 160)) is gate  # channel gates have no place to crop

    # A pairwise map has its queries cropped as its keys: a query's weights on the kept grid, resampled.
    pairwise = torch.rand(1, 6 * 5, 6, 5)
    out = viz._crop(pairwise, "pairwise", resized=(64, 160), padded=(96, 160))  # 4 of the 6 rows
    assert out.shape == (1, 4 * 5, 4, 5)
    torch.testing.assert_close(out, pairwise.view(1, 6, 5, 6, 5)[:, :4, :, :4].reshape(1, 20, 4, 5))


def test_show_detections_bad_input(tmp_path):
    model = _detector()
    good = _write_image(tmp_path / "good.png", 32, 32)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image file '.*missing.jpg'"):
        show_detections(model, tmp_path / "x.png", images=[good, tmp_path / "missing.jpg"])
    with pytest.raises(ValueError, match="cannot read image file '.*notes.png'"):
        show_detections(model, tmp_path / "x.png", images=[tmp_path / "notes.png"])
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_detections(model, tmp_path / "x.png", images=str(good))
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_detections(model, tmp_path / "x.png", images=[])
    with pytest.raises(ValueError, match="'resnet20-cbam' is a classification model; show_detections draws detectors"):
        show_detections(attnzoo.create_model("resnet20-cbam", num_classes=10), tmp_path / "x.png")
    with pytest.raises(ValueError, match="count must be an integer in 1..32, got 33"):
        show_detections(model, tmp_path / "x.png", count=33)
    with pytest.raises(ValueError, match=r"score_thresh must be a number in \[0, 1\], got 1.5"):
        show_detections(model, tmp_path / "x.png", score_thresh=1.5)
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_detector(tmp_path, capsys):
    from attnzoo.cli import main

    folder = attnzoo.save_pretrained(_detector(), tmp_path / "detector")
    image = _write_image(tmp_path / "photo.jpg", 96, 128)
    output = tmp_path / "boxes.png"
    assert main(["show", str(folder), "--output", str(output), "--image", str(image), "--score_thresh", "0.1"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert Image.open(output).size == _layout(9, 1)
    assert main(["show", str(folder), "--output", str(output), "--count", "2"]) == 0
    assert Image.open(output).size == _layout(9, 2)

    assert main(["show", "resnet20-cbam.digits", "--output", str(output), "--image", str(image)]) == 2
    assert "--image is for detectors and restoration models; 'resnet20-cbam.digits' is a classification model" in (
        capsys.readouterr().err
    )
    assert main(["show", str(folder), "--output", str(output), "--image", str(tmp_path / "nope.jpg")]) == 2
    assert "cannot read image file" in capsys.readouterr().err


def _restorer(name: str = "rir-cbam", degradation: dict | None = None, **kwargs) -> torch.nn.Module:
    sizes = {"channels": 8, "groups": 1, "blocks": 1} if name.startswith("rir") else {"channels": 8, "depth": 3}
    model = attnzoo.create_model(name, **sizes, **kwargs)
    model.pretrained_cfg["degradation"] = degradation or {"kind": "gaussian", "sigma": 25}
    return model


def _psnr(caption: str) -> float:
    return float(caption.split("\n")[1].removesuffix(" dB"))


def test_show_restoration_draws_degraded_restored_clean_and_maps(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    model = _restorer()
    path = show_restoration(model, tmp_path / "out" / "restored.png", count=2)
    # Degraded, restored, clean, then the one residual block's CBAM map.
    assert Image.open(path).size == _layout(4, 2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["restored.png"]  # no temporary file left
    assert list(drawn["maps"]) == ["body.0.blocks.0.attention"]
    assert drawn["title"] == "rir-cbam: gaussian sigma 25"
    for row, photo in enumerate(["camera", "moon"]):
        degraded, clean = (torch.from_numpy(x).float()[None] for x in protocol_pair(photo, "gaussian", 25))
        (restored, restored_caption), (shown_clean, clean_caption) = drawn["panels"][row]
        torch.testing.assert_close(drawn["images"][row], degraded)
        with torch.no_grad():
            torch.testing.assert_close(restored, model.eval()(degraded[None])[0])
        torch.testing.assert_close(shown_clean, clean)
        assert clean_caption == "clean" and drawn["row_titles"][row].startswith(f"{photo}, degraded\n")
        for caption, image in ((drawn["row_titles"][row], degraded), (restored_caption, restored)):
            assert _psnr(caption) == pytest.approx(-10 * torch.log10(((image - clean) ** 2).mean()).item(), abs=0.01)
    assert _psnr(drawn["row_titles"][0]) == pytest.approx(20.17, abs=0.05)  # sigma 25's usual input PSNR

    # A blind model: at the protocol's level by default, else at the one given.
    blind = _restorer(degradation={"kind": "gaussian", "sigma": [0, 50]})
    show_restoration(blind, tmp_path / "blind.png", count=1)
    assert drawn["title"] == "rir-cbam: gaussian sigma 25 (trained on [0, 50])"
    show_restoration(blind, tmp_path / "blind.png", count=1, level=40)
    torch.testing.assert_close(
        drawn["images"][0], torch.from_numpy(protocol_pair("camera", "gaussian", 40)[0]).float()[None]
    )


def test_show_restoration_degrades_image_files(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    # Wider than 512: its central 512 columns are restored and shown.
    file = _write_image(tmp_path / "wide.png", 40, 600)
    path = show_restoration(_restorer(), tmp_path / "file.png", images=[file])
    assert Image.open(path).size == _layout(4, 1)
    clean = torch.from_numpy(np.asarray(Image.open(file).convert("L"), dtype=np.float32) / 255)[None, :, 44:556]
    degraded = Degradation.fixed("gaussian", 25).degrade(clean, torch.Generator().manual_seed(0))
    torch.testing.assert_close(drawn["images"][0], degraded)
    torch.testing.assert_close(drawn["panels"][0][1][0], clean)
    assert drawn["row_titles"][0].startswith("wide.png, degraded\n")


def test_show_restoration_of_a_network_without_attention(tmp_path, monkeypatch):
    drawn = _capture_draw(monkeypatch)
    # A colour JPEG model: the grey test photos repeated to RGB, an image file read as RGB.
    model = _restorer("dncnn", {"kind": "jpeg", "quality": 10}, in_channels=3)
    path = show_restoration(model, tmp_path / "plain.png", count=1)
    assert Image.open(path).size == _layout(3, 1) and drawn["maps"] == {}
    assert drawn["title"] == "dncnn: jpeg quality 10; no attention maps, images only"
    degraded = torch.from_numpy(protocol_pair("camera", "jpeg", 10)[0]).float()[None].expand(3, -1, -1)
    torch.testing.assert_close(drawn["images"][0], degraded)
    show_restoration(model, tmp_path / "plain.png", images=[_write_image(tmp_path / "photo.jpg", 24, 32)])
    assert drawn["images"][0].shape == (3, 24, 32)


def test_show_restoration_bad_input(tmp_path):
    model = _restorer()
    with pytest.raises(ValueError, match="count must be an integer in 1..4, got 5"):
        show_restoration(model, tmp_path / "x.png", count=5)
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_restoration(model, tmp_path / "x.png", images=str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="cannot read image file '.*missing.png'"):
        show_restoration(model, tmp_path / "x.png", images=[tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="'resnet20-cbam' is a classification model; show_restoration draws"):
        show_restoration(attnzoo.create_model("resnet20-cbam", num_classes=10), tmp_path / "x.png")
    untrained = attnzoo.create_model("rir-cbam", channels=8, groups=1, blocks=1)
    with pytest.raises(ValueError, match="'rir-cbam' records no degradation .*nothing to show"):
        show_restoration(untrained, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'rir-cbam' undoes gaussian sigma 25, not 50: leave level out"):
        show_restoration(model, tmp_path / "x.png", level=50)
    blind = _restorer(degradation={"kind": "gaussian", "sigma": [30, 50]})
    with pytest.raises(ValueError, match=r"undoes gaussian sigma range \[30, 50\], not 25: give level, a sigma in"):
        show_restoration(blind, tmp_path / "x.png")
    jpeg = _restorer(degradation={"kind": "jpeg", "quality": [10, 40]})
    with pytest.raises(ValueError, match="level 10.5 does not fit: degradation: quality must be an integer"):
        show_restoration(jpeg, tmp_path / "x.png", level=10.5)
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_restoration_network(tmp_path, capsys):
    from attnzoo.cli import main

    folder = attnzoo.save_pretrained(_restorer(degradation={"kind": "jpeg", "quality": [10, 40]}), tmp_path / "net")
    output = tmp_path / "restored.png"
    assert main(["show", str(folder), "--output", str(output), "--count", "1", "--level", "20"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert Image.open(output).size == _layout(4, 1)
    image = _write_image(tmp_path / "photo.png", 24, 32)
    assert main(["show", str(folder), "--output", str(output), "--image", str(image), str(image)]) == 0
    assert Image.open(output).size == _layout(4, 2)

    assert main(["show", str(folder), "--output", str(output), "--level", "50"]) == 2
    assert "undoes jpeg quality range [10, 40], not 50" in capsys.readouterr().err
    assert main(["show", str(folder), "--output", str(output), "--score_thresh", "0.1"]) == 2
    assert f"--score_thresh is for detectors; {str(folder)!r} is a restoration model" in capsys.readouterr().err
    assert main(["show", "resnet20-cbam.digits", "--output", str(output), "--level", "25"]) == 2
    err = capsys.readouterr().err
    assert "--level is for restoration models; 'resnet20-cbam.digits' is a classification model" in err


@pytest.mark.parametrize("temporal", ["avg", "max", "soft", "hard", "sta"])
def test_a_frames_weight_is_its_share_in_the_temporal_mechanism(temporal):
    from attnzoo.viz import _frame_weights

    torch.manual_seed(0)
    model = attnzoo.create_model(f"resnet18n+{temporal}").eval()
    _, maps = attention_maps(model, torch.rand(1, 4, 3, 64, 32))
    weights = _frame_weights(maps, temporal, 4)
    if temporal == "max":
        assert weights is None
        return
    if temporal == "sta":  # each part's scores over the frames, averaged over the 4 parts
        expected = maps["pool"][0].mean(-1)
    elif temporal == "hard":  # the selected frame takes it all
        expected = maps["pool"][0] / maps["pool"][0].sum()
    else:
        expected = maps["pool"][0] if temporal == "soft" else torch.full((4,), 0.25)
    torch.testing.assert_close(torch.tensor(weights), expected.float())
    assert sum(weights) == pytest.approx(1)


def test_show_command_draws_a_reid_network(tmp_path, capsys):
    from attnzoo.cli import main

    torch.manual_seed(0)
    folder = attnzoo.save_pretrained(attnzoo.create_model("resnet18n+soft", input_size=(64, 32)), tmp_path / "net")
    output = tmp_path / "ranks.png"
    assert main(["show", str(folder), "--output", str(output), "--count", "2"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    # Two rows of the query's 4 frames and 5 gallery tracklets, 0.75 x 1.6 inches each, at 120 dpi.
    assert Image.open(output).size == (round((0.75 * 9 + 0.5) * 120), round(1.6 * 2 * 120))
    assert main(["show", str(folder), "--output", str(output), "--level", "25"]) == 2
    assert "--level is for restoration models" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is a classification model; show_reid draws video re-ID networks"):
        viz.show_reid(attnzoo.create_model("resnet20"), output)
