"""Attention maps: collected by name during a forward pass, drawn into a PNG."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import attnzoo
from attnzoo import viz
from attnzoo.attention.cbam import CBAM
from attnzoo.data.degradation import Degradation
from attnzoo.data.photos import protocol_pair
from attnzoo.viz import attention_maps, draw, record, show_detections, show_digits, show_restoration


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
    with pytest.raises(ValueError, match="'fcos-resnet18' is a detection model; show_digits draws classification"):
        show_digits(attnzoo.create_model("fcos-resnet18", num_classes=3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_zoo_entry(tmp_path, capsys):
    from attnzoo.cli import main

    assert main(["show", "resnet20-cbam.digits", "--output", str(tmp_path / "digits.png"), "--count", "2"]) == 0
    assert f"wrote {tmp_path / 'digits.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "digits.png").format == "PNG"


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
    drawn = {}

    def render(images, drawable, *args):
        drawn.update(images=images, drawable=drawable, title=args[-1])
        return render_png(images, drawable, *args)

    render_png = viz._render
    monkeypatch.setattr(viz, "_render", render)
    path = show_detections(_detector(), tmp_path / "shapes.png", count=2)
    assert Image.open(path).size == _layout(9, 2)
    assert len(drawn["images"]) == 2 and drawn["images"][0].shape == (3, 128, 128)
    assert list(drawn["drawable"]) == [f"layer{s}.{b}.se" for s in range(1, 5) for b in range(2)]
    assert drawn["title"] == "fcos-resnet18n-cbam: boxes with score >= 0.3"

    # A backbone without attention: the boxes alone, and the title says why.
    path = show_detections(_detector("fcos-resnet18n"), tmp_path / "plain.png", count=1)
    assert Image.open(path).size == _layout(1, 1) and drawn["drawable"] == {}
    assert "no attention maps in its backbone, boxes only" in drawn["title"]


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
    out = viz._crop(ramp, resized=(80, 160), padded=(96, 160))
    assert out.shape == (2, 4, 3, 5)
    covered = 3 * 80 / 96
    expected = ((torch.arange(3.0) + 0.5) * covered / 3 - 0.5).clamp(min=0)
    torch.testing.assert_close(out, expected.view(1, 1, 3, 1).expand(2, 4, 3, 5))
    gate = torch.rand(1, 8, 1, 1)
    assert viz._crop(gate, (80, 160), (96, 160)) is gate  # channel gates have no place to crop


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


def _capture_render(monkeypatch) -> dict:
    """What show_restoration hands to _render, which still writes the PNG."""
    drawn = {}
    render_png = viz._render

    def render(images, drawable, path, row_titles, max_columns, boxes, title=None, panels=None):
        drawn.update(images=images, drawable=drawable, titles=row_titles, title=title, panels=panels)
        return render_png(images, drawable, path, row_titles, max_columns, boxes, title, panels)

    monkeypatch.setattr(viz, "_render", render)
    return drawn


def _psnr(caption: str) -> float:
    return float(caption.split("\n")[1].removesuffix(" dB"))


def test_show_restoration_draws_degraded_restored_clean_and_maps(tmp_path, monkeypatch):
    drawn = _capture_render(monkeypatch)
    model = _restorer()
    path = show_restoration(model, tmp_path / "out" / "restored.png", count=2)
    # Degraded, restored, clean, then the one residual block's CBAM map.
    assert Image.open(path).size == _layout(4, 2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["restored.png"]  # no temporary file left
    assert list(drawn["drawable"]) == ["body.0.blocks.0.attention"]
    assert drawn["title"] == "rir-cbam: gaussian sigma 25"
    for row, photo in enumerate(["camera", "moon"]):
        degraded, clean = (torch.from_numpy(x).float()[None] for x in protocol_pair(photo, "gaussian", 25))
        (restored, restored_caption), (shown_clean, clean_caption) = drawn["panels"][row]
        torch.testing.assert_close(drawn["images"][row], degraded)
        with torch.no_grad():
            torch.testing.assert_close(restored, model.eval()(degraded[None])[0])
        torch.testing.assert_close(shown_clean, clean)
        assert clean_caption == "clean" and drawn["titles"][row].startswith(f"{photo}, degraded\n")
        for caption, image in ((drawn["titles"][row], degraded), (restored_caption, restored)):
            assert _psnr(caption) == pytest.approx(-10 * torch.log10(((image - clean) ** 2).mean()).item(), abs=0.01)
    assert _psnr(drawn["titles"][0]) == pytest.approx(20.17, abs=0.05)  # sigma 25's usual input PSNR

    # A blind model: at the protocol's level by default, else at the one given.
    blind = _restorer(degradation={"kind": "gaussian", "sigma": [0, 50]})
    show_restoration(blind, tmp_path / "blind.png", count=1)
    assert drawn["title"] == "rir-cbam: gaussian sigma 25 (trained on [0, 50])"
    show_restoration(blind, tmp_path / "blind.png", count=1, level=40)
    torch.testing.assert_close(
        drawn["images"][0], torch.from_numpy(protocol_pair("camera", "gaussian", 40)[0]).float()[None]
    )


def test_show_restoration_degrades_image_files(tmp_path, monkeypatch):
    drawn = _capture_render(monkeypatch)
    # Wider than 512: its central 512 columns are restored and shown.
    file = _write_image(tmp_path / "wide.png", 40, 600)
    path = show_restoration(_restorer(), tmp_path / "file.png", images=[file])
    assert Image.open(path).size == _layout(4, 1)
    clean = torch.from_numpy(np.asarray(Image.open(file).convert("L"), dtype=np.float32) / 255)[None, :, 44:556]
    degraded = Degradation.fixed("gaussian", 25).degrade(clean, torch.Generator().manual_seed(0))
    torch.testing.assert_close(drawn["images"][0], degraded)
    torch.testing.assert_close(drawn["panels"][0][1][0], clean)
    assert drawn["titles"][0].startswith("wide.png, degraded\n")


def test_show_restoration_of_a_network_without_attention(tmp_path, monkeypatch):
    drawn = _capture_render(monkeypatch)
    # A colour JPEG model: the grey test photos repeated to RGB, an image file read as RGB.
    model = _restorer("dncnn", {"kind": "jpeg", "quality": 10}, in_channels=3)
    path = show_restoration(model, tmp_path / "plain.png", count=1)
    assert Image.open(path).size == _layout(3, 1) and drawn["drawable"] == {}
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
