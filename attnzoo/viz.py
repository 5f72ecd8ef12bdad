"""Attention maps: capture them during a forward pass, and draw them.

Every attention module exposes ``attention_map``. It is filled only while
:func:`record` is active, so ordinary training and inference keep no extra
tensors alive::

    with attnzoo.viz.record():
        model(images)
    maps = {name: m.attention_map for name, m in model.named_modules()
            if getattr(m, "attention_map", None) is not None}

:func:`attention_maps` does that; :func:`draw` turns the maps into a PNG
(matplotlib). ``attnzoo show`` draws a model's maps on its task's pictures:
:func:`show_digits` on test digits for a classifier, :func:`show_detections`
its boxes and its backbone's maps on images for a detector, :func:`show_restoration`
degraded, restored and clean images and its maps for a restoration network, :func:`show_reid`
query tracklets with their best-ranked gallery tracklets and the weight of each frame for a
video re-ID network.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "attention_maps", "draw", "is_recording", "record", "show_detections", "show_digits", "show_reid",
    "show_restoration",
]

# A plain module global rather than a ContextVar: torch.compile traces reads of
# globals (and guards on them), whereas ContextVar.get() breaks the graph.
_recording = False


@contextmanager
def record() -> Iterator[None]:
    """Keep each attention module's last map in ``module.attention_map``."""
    global _recording
    previous = _recording
    _recording = True
    try:
        yield
    finally:
        _recording = previous


def is_recording() -> bool:
    """True inside :func:`record`."""
    return _recording


@torch.no_grad()
def attention_maps(model: nn.Module, images: Tensor | Sequence[Tensor]) -> tuple[Any, dict[str, Tensor]]:
    """The model's output on ``images`` (in eval mode) and each attention module's map, by module name.

    ``images`` is what the model takes: a batch (B, C, H, W), or a list of (C, H, W) images for a detector.
    """
    was_training = model.training
    model.eval()
    try:
        with record():
            output = model(images)
    finally:
        model.train(was_training)
    maps = {
        name: m.attention_map for name, m in model.named_modules() if getattr(m, "attention_map", None) is not None
    }
    return output, maps


def _drawable(maps: Mapping[str, Tensor | Sequence[Tensor]]) -> dict[str, list[Tensor]]:
    """Each image's map as drawn, by module name.

    ``maps`` holds, per module, a batch (B, K, H, W) or a list of (K, H, W), one per image (images of
    different sizes). Spatial maps are averaged over K to (H, W); without any, channel gates (C, 1, 1)
    become strips (1, C). Other layouts (token-by-token weights) are left out.
    """
    per_image = {name: list(m) for name, m in maps.items()}
    spatial = {
        name: [m.float().mean(0) for m in ms]
        for name, ms in per_image.items()
        if all(m.dim() == 3 and m.shape[-1] * m.shape[-2] > 1 for m in ms)
    }
    if spatial:
        return spatial
    return {
        name: [m.float().flatten()[None] for m in ms]
        for name, ms in per_image.items()
        if all(m.dim() == 3 and m.shape[-1] * m.shape[-2] == 1 for m in ms)
    }


def _picture(image: Tensor) -> Tensor:
    """(H, W) or (C, H, W) in [0, 1] as imshow takes it: (H, W, 3) for RGB, else grey (H, W)."""
    if image.dim() == 3:
        image = image.permute(1, 2, 0) if image.shape[0] == 3 else image.mean(0)
    return image.float().clamp(0, 1)


def draw(
    images: Tensor | Sequence[Tensor],
    maps: Mapping[str, Tensor | Sequence[Tensor]],
    path: str | Path,
    row_titles: Sequence[str] | None = None,
    max_columns: int = 9,
    boxes: Sequence[tuple[Tensor, Sequence[str]]] | None = None,
) -> Path:
    """A PNG with one row per image: the image, then each attention module's map.

    Args:
        images: (B, H, W) or (B, C, H, W) with values in [0, 1], as they should be seen; or a list of
            (H, W) or (C, H, W) images, which may differ in size.
        maps: module name -> ``attention_map`` as :func:`attention_maps` returns them, or a list of each
            image's map (K, H, W). Spatial maps (B, K, H, W) are averaged over K and laid over the image,
            each scaled to its own range (the colours compare places within a map, not maps); a model
            with channel gates only (B, C, 1, 1) gets them drawn as strips. Other layouts (token-by-token
            weights) are left out.
        path: the PNG to write (through a temporary file, so no half-written picture is left).
        row_titles: a caption per image, e.g. the predicted and true label.
        max_columns: at most this many modules, spread evenly over the network's depth.
        boxes: per image, boxes (N, 4) xyxy in its pixels and a caption for each, drawn on the image.
    """
    drawable = _drawable(maps)
    if not drawable:
        raise ValueError(
            f"none of the {len(maps)} attention maps is a spatial map (B, K, H, W) or a channel gate (B, C, 1, 1)"
        )
    return _render(images, drawable, path, row_titles, max_columns, boxes)


def _render(
    images: Tensor | Sequence[Tensor],
    drawable: Mapping[str, Sequence[Tensor]],
    path: str | Path,
    row_titles: Sequence[str] | None,
    max_columns: int,
    boxes: Sequence[tuple[Tensor, Sequence[str]]] | None,
    title: str | None = None,
    panels: Sequence[Sequence[tuple[Tensor, str]]] | None = None,
) -> Path:
    """:func:`draw`'s picture from maps already made drawable; with none, the images (and boxes) alone.

    ``panels``: per image, more pictures with their captions, (H, W) or (C, H, W) in [0, 1], drawn after
    the image and before the maps; every image has as many.
    """
    from matplotlib.figure import Figure  # drawn without pyplot: no display, no global state

    count = len(images)
    for name, given in (("row titles", row_titles), ("box lists", boxes), ("panel lists", panels)):
        if given is not None and len(given) != count:
            raise ValueError(f"{len(given)} {name} for {count} images")
    names = list(drawable)
    if len(names) > max_columns:
        names = [names[round(i * (len(names) - 1) / (max_columns - 1))] for i in range(max_columns)]
    extra = len(panels[0]) if panels else 0
    figure = Figure(figsize=(1.6 * (len(names) + 1 + extra), 1.7 * count), layout="constrained")
    if title:
        figure.suptitle(title, fontsize=8, wrap=True)
    axes = figure.subplots(count, len(names) + 1 + extra, squeeze=False)
    for row in range(count):
        picture = _picture(images[row])
        axes[row, 0].imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(row_titles[row] if row_titles else "input", fontsize=8)
        if boxes:
            _draw_boxes(axes[row, 0], *boxes[row])
        for column, (panel, caption) in enumerate(panels[row] if panels else (), start=1):
            axes[row, column].imshow(_picture(panel).numpy(), cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(caption, fontsize=8)
        for column, name in enumerate(names, start=1 + extra):
            attention = drawable[name][row]
            ax = axes[row, column]
            if attention.shape[0] == 1:  # a channel-gate strip
                ax.imshow(attention.numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
            else:
                size = picture.shape[:2]
                up = F.interpolate(attention[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
                ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1)
                ax.imshow(up.numpy(), cmap="inferno", alpha=0.6)
            if row == 0:
                ax.set_title(f"{name}\n{'x'.join(map(str, attention.shape))}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(figure, path)


def _save(figure: Any, path: str | Path) -> Path:
    """Write a matplotlib figure as a PNG through a temporary file, so no half-written picture is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _draw_boxes(ax: Any, boxes: Tensor, captions: Sequence[str]) -> None:
    """Boxes (N, 4), xyxy in pixels, with their captions, on an image drawn by imshow."""
    from matplotlib.patches import Rectangle

    for (x0, y0, x1, y1), caption in zip(boxes.tolist(), captions):
        # imshow centres pixel i on i, where box coordinates put its left edge.
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=0.8))
        ax.text(
            x0 - 0.5, y0 - 0.5, caption, fontsize=5, va="top", clip_on=True,
            bbox={"facecolor": "lime", "edgecolor": "none", "pad": 0.3},
        )


def _check_count(count: int, most: int = 32) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
        raise ValueError(f"count must be an integer in 1..{most}, got {count!r}")


def _model_name(cfg: Mapping[str, Any]) -> str:
    return cfg.get("name") or cfg.get("architecture")


# What each show_* function draws, for the message that sends a model of another task to its own.
_DRAWERS = {
    "classification": ("show_digits", "classification models"),
    "detection": ("show_detections", "detectors"),
    "restoration": ("show_restoration", "restoration networks"),
    "reid": ("show_reid", "video re-ID networks"),
}


def _model_for(model: nn.Module | str | Path, task: str, drawer: str) -> nn.Module:
    """``model`` (a module, or anything ``attnzoo.load`` takes, loaded), which must be a ``task`` model."""
    from attnzoo.zoo import load

    if not isinstance(model, nn.Module):
        model = load(model)
    cfg = model.pretrained_cfg
    given = cfg.get("task", "classification")
    if given != task:
        others = ", ".join(f"{function} draws {what}" for t, (function, what) in _DRAWERS.items() if t != task)
        raise ValueError(f"{_model_name(cfg)!r} is a {given} model; {drawer} draws {_DRAWERS[task][1]} ({others})")
    return model


def show_digits(model: nn.Module | str | Path, path: str | Path, count: int = 4) -> Path:
    """Draw ``model``'s attention maps on the first ``count`` test digits of DigitsData.

    ``model`` is a module from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
    The digits are resized and normalised to the model's ``pretrained_cfg`` (input size, mean, std).
    """
    from attnzoo.data import DigitsData

    _check_count(count)
    model = _model_for(model, "classification", "show_digits")
    cfg = model.pretrained_cfg
    channels, height, width = cfg["input_size"]
    test = DigitsData(augment=False, in_chans=1).test_set
    plain = F.interpolate(test.images[:count], size=(height, width), mode="bilinear", align_corners=False)
    mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    logits, maps = attention_maps(model, (plain.expand(-1, channels, -1, -1) - mean) / std)
    labels = cfg.get("labels") or [str(i) for i in range(logits.shape[1])]
    titles = [f"{labels[p]} (true {t})" for p, t in zip(logits.argmax(1).tolist(), test.targets[:count].tolist())]
    return draw(plain[:, 0], maps, path, row_titles=titles)


def _crop(attention: Tensor, resized: Sequence[int], padded: Sequence[int]) -> Tensor:
    """The part of a map (B, K, h, w) of a padded detector batch that lies over the image, at the map's resolution.

    The detector's transform resizes the image to ``resized`` (H, W) and pads it at the bottom and right
    to ``padded``. The image covers ``h * resized / padded`` map rows, rarely a whole number: cutting at a
    cell boundary would stretch the map over the picture by up to a cell, so the map is resampled
    (bilinearly, roi_align) at ceil of that many points spread over exactly the image's region.
    Channel gates and other layouts are returned as they are.
    """
    from torchvision.ops import roi_align

    if attention.dim() != 4 or attention.shape[-1] * attention.shape[-2] == 1:
        return attention
    height, width = attention.shape[-2:]
    rows = -(-height * resized[0] // padded[0])  # integer ceil: a float product may land just above a whole number
    columns = -(-width * resized[1] // padded[1])
    region = [0.0, 0.0, width * resized[1] / padded[1], height * resized[0] / padded[0]]
    boxes = torch.tensor([[i, *region] for i in range(attention.shape[0])], dtype=torch.float32)
    return roi_align(attention.float(), boxes, (rows, columns), sampling_ratio=1, aligned=True)


def _detect(model: nn.Module, image: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """A detector's detections on one image (3, H, W) and its backbone's attention maps, cropped to the image."""
    batches = []
    # The transform's output tells how the image was resized and padded before the backbone saw it.
    hook = model.transform.register_forward_hook(lambda module, args, output: batches.append(output[0]))
    try:
        (detections,), maps = attention_maps(model, [image])
    finally:
        hook.remove()
    resized, padded = batches[0].image_sizes[0], batches[0].tensors.shape[-2:]
    return detections, {n.removeprefix("backbone.body."): _crop(m, resized, padded) for n, m in maps.items()}


def _read_image(path: str | Path, mode: str = "RGB") -> Tensor:
    """An image file as RGB (3, H, W), or with ``mode`` "L" grey (1, H, W), float in [0, 1]; ValueError
    naming the file when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.atleast_3d(np.asarray(image.convert(mode), dtype=np.float32) / 255)
    # OSError: missing, a folder, not an image, truncated; SyntaxError: some of PIL's decoders on broken files.
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image file {str(path)!r}: {err}") from err
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def show_detections(
    model: nn.Module | str | Path,
    path: str | Path,
    images: Sequence[str | Path] | None = None,
    count: int = 4,
    score_thresh: float = 0.3,
) -> Path:
    """Draw a detector's boxes and its backbone's attention maps, one row per image.

    Each row is the image with the detections scoring at least ``score_thresh``, captioned with the
    class name (``pretrained_cfg["labels"]``, else the label number) and score, then the backbone's
    attention maps laid over the image as :func:`draw` lays them. The maps are recorded while the
    detector runs on each image alone (in eval mode) and cropped to the image's part of the resized,
    padded input. A backbone without attention gets the boxes alone, and the title says so.

    Args:
        model: a detector from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
        path: the PNG to write.
        images: image files (PNG, JPEG ... anything PIL reads), drawn in RGB; by default the first
            ``count`` test images of ShapesData (bundled, no download).
        count: how many ShapesData images to draw without ``images`` (1..32).
        score_thresh: the least score of a box drawn, in [0, 1].
    """

    _check_count(count)
    if isinstance(score_thresh, bool) or not isinstance(score_thresh, (int, float)) or not 0 <= score_thresh <= 1:
        raise ValueError(f"score_thresh must be a number in [0, 1], got {score_thresh!r}")
    if images is not None:
        if isinstance(images, (str, Path)) or not 1 <= len(images) <= 32:
            raise ValueError(f"images must be a list of 1 to 32 image files, got {images!r}")
        pictures = [_read_image(file) for file in images]  # before a model download, so a typo fails fast
        sources = [Path(file).name for file in images]
    model = _model_for(model, "detection", "show_detections")
    cfg = model.pretrained_cfg
    if images is None:
        from attnzoo.data import ShapesData

        test = ShapesData(test_size=count).splits["test"]
        pictures = [test[i][0] for i in range(count)]
        sources = [f"ShapesData test {i}" for i in range(count)]
    labels = cfg.get("labels")
    boxes, titles, maps = [], [], []
    for picture, source in zip(pictures, sources):
        detections, image_maps = _detect(model, picture)
        keep = detections["scores"] >= score_thresh
        captions = [
            f"{labels[label - 1] if labels and 1 <= label <= len(labels) else label} {score:.2f}"
            for label, score in zip(detections["labels"][keep].tolist(), detections["scores"][keep].tolist())
        ]
        boxes.append((detections["boxes"][keep], captions))
        titles.append(f"{source}: {len(captions)} boxes")
        maps.append(image_maps)
    drawable = _drawable({name: [image_maps[name][0] for image_maps in maps] for name in maps[0]})
    title = f"{_model_name(cfg)}: boxes with score >= {score_thresh:g}"
    if not drawable:
        title += "; no attention maps in its backbone, boxes only"
    return _render(pictures, drawable, path, titles, 9, boxes, title)


# An image larger than this on a side is shown (and restored) by its central part only.
_LARGEST_SHOWN = 512


def _centre_crop(image: Tensor, side: int) -> Tensor:
    """The central ``side`` x ``side`` part of an image (C, H, W); a dimension no longer than ``side`` stays whole."""
    top, left = ((length - side) // 2 if length > side else 0 for length in image.shape[-2:])
    return image[..., top : top + side, left : left + side]


def show_restoration(
    model: nn.Module | str | Path,
    path: str | Path,
    images: Sequence[str | Path] | None = None,
    count: int = 4,
    level: float | None = None,
) -> Path:
    """Draw a restoration network's work and its attention maps, one row per image.

    Each row is the degraded image, the network's restoration of it and the clean image, captioned with
    the PSNR of the degraded and the restored image against the clean one (dB, data range 1, over all
    channels: a colour network's figures are not the Y-channel ones ``attnzoo test`` reports), then the
    network's attention maps laid over the degraded image as :func:`draw` lays them. The maps are
    recorded while the network runs on each degraded image alone (in eval mode). A network without
    attention gets the images alone, and the title says so.

    The degradation is the one the network was trained to undo (``pretrained_cfg["degradation"]``, which
    ImageRestorer records), at its level; a blind network's (a range) at ``level``, by default the
    benchmark's (``PROTOCOL_LEVELS``: sigma 25, JPEG quality 10).

    Args:
        model: a restoration network from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load``
            takes, with a degradation in its ``pretrained_cfg``.
        path: the PNG to write.
        images: clean image files (PNG, JPEG ... anything PIL reads), read as grey or RGB as the network
            takes them, and each degraded by a generator seeded with 0. An image larger than 512 pixels
            on a side is centre-cropped to 512 first: that part alone is restored and shown. By default
            the first ``count`` of the benchmark's test photos (``TEST_PHOTOS``), degraded exactly as the
            benchmark degrades them (:func:`attnzoo.data.photos.protocol_pair`); they are grey, repeated
            to three channels for a colour network.
        count: how many test photos to draw without ``images`` (1..4).
        level: a blind network's sigma or JPEG quality, in its range; a network trained at one level
            takes that one only.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from attnzoo.data.degradation import Degradation
    from attnzoo.data.photos import PROTOCOL_LEVELS, TEST_PHOTOS, protocol_pair

    _check_count(count, len(TEST_PHOTOS))
    if images is not None and (isinstance(images, (str, Path)) or not 1 <= len(images) <= 32):
        raise ValueError(f"images must be a list of 1 to 32 image files, got {images!r}")
    model = _model_for(model, "restoration", "show_restoration")
    cfg = model.pretrained_cfg
    name = _model_name(cfg)
    if cfg.get("degradation") is None:
        raise ValueError(
            f"{name!r} records no degradation (it was not trained by ImageRestorer), so there is nothing to show"
        )
    trained = Degradation.from_any(cfg["degradation"])
    if level is None:
        level = PROTOCOL_LEVELS[trained.kind] if trained.is_blind else trained.level
    try:
        shown = Degradation.fixed(trained.kind, level)
    except ValueError as err:
        raise ValueError(f"level {level!r} does not fit: {err}") from None
    if not trained.low <= shown.level <= trained.high:
        span = f"range [{trained.low:g}, {trained.high:g}]" if trained.is_blind else f"{trained.low:g}"
        hint = f"give level, a {trained.field} in that range" if trained.is_blind else "leave level out"
        raise ValueError(f"{name!r} undoes {trained.kind} {trained.field} {span}, not {shown.level:g}: {hint}")
    channels = cfg["in_chans"]
    if images is None:
        sources = list(TEST_PHOTOS[:count])
        grey = [protocol_pair(photo, shown.kind, shown.level) for photo in sources]
        # A colour network gets the grey photos repeated to RGB, as PhotosData serves them.
        pairs = [tuple(torch.from_numpy(x).float()[None].repeat(channels, 1, 1) for x in pair) for pair in grey]
    else:
        sources = [Path(file).name for file in images]
        cleans = [_centre_crop(_read_image(file, "L" if channels == 1 else "RGB"), _LARGEST_SHOWN) for file in images]
        pairs = [(shown.degrade(clean, torch.Generator().manual_seed(0)), clean) for clean in cleans]
    titles, panels, maps = [], [], []
    for (degraded, clean), source in zip(pairs, sources):
        (restored,), image_maps = attention_maps(model, degraded[None])
        before, after = (float(peak_signal_noise_ratio(x, clean, data_range=1.0)) for x in (degraded, restored))
        titles.append(f"{source}, degraded\n{before:.2f} dB")
        panels.append([(restored, f"restored\n{after:.2f} dB"), (clean, "clean")])
        maps.append(image_maps)
    drawable = _drawable({module: [image_maps[module][0] for image_maps in maps] for module in maps[0]})
    title = f"{name}: {shown.kind} {shown.field} {shown.level:g}"
    if trained.is_blind:
        title += f" (trained on [{trained.low:g}, {trained.high:g}])"
    if not drawable:
        title += "; no attention maps, images only"
    return _render([degraded for degraded, _ in pairs], drawable, path, titles, 9, None, title, panels)


def _frame_weights(maps: Mapping[str, Tensor], temporal: str, frames: int) -> list[float] | None:
    """Each frame's share of a clip's embedding, from the temporal mechanism's map: soft's weights, hard's
    selection, STA's part scores averaged over the parts (each part's scores sum to 1 over the frames);
    ``avg`` weighs every frame the same; ``max`` has no per-frame weight."""
    if temporal == "avg":
        return [1 / frames] * frames
    if "pool" not in maps:
        return None
    weights = maps["pool"][0].float()
    return (weights.mean(-1) if temporal == "sta" else weights / weights.sum()).tolist()


def show_reid(model: nn.Module | str | Path, path: str | Path, count: int = 4, top: int = 5) -> Path:
    """Draw a video re-ID network's ranking on TrackletsData's test split, one row per query.

    Each row is the query tracklet's clip (``seq_len`` evenly spaced frames, as the network embeds one)
    with each frame's weight in the embedding where the temporal mechanism has one (soft, hard, STA;
    equal for avg), then the ``top`` best-ranked gallery tracklets (their middle frame), framed green
    for the query's person and red otherwise, by the Market-1501 rule (the query's person in the
    query's camera is not ranked). The tracklets are those of TrackletsData at the network's frame size,
    embedded densely (all frames, in clips of ``seq_len``), as ``attnzoo test`` ranks them.

    Args:
        model: a re-ID network from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
        path: the PNG to write.
        count: how many queries (1..32), the first of the test split's.
        top: gallery tracklets shown per query (1..10).
    """
    from matplotlib.figure import Figure

    from attnzoo.backbones.video import embed_loader
    from attnzoo.data import TrackletsData
    from attnzoo.data.reid import evenly_spaced_indices
    from attnzoo.tasks.reid_metrics import pairwise_distance

    _check_count(count)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 10:
        raise ValueError(f"top must be an integer in 1..10, got {top!r}")
    model = _model_for(model, "reid", "show_reid")
    cfg = model.pretrained_cfg
    name = _model_name(cfg)
    _, height, width = cfg["input_size"]
    seq_len, temporal = cfg["seq_len"], model.spec.temporal
    data = TrackletsData(frame_size=(height, width), seq_len=seq_len, num_workers=0)
    data.trainer = None
    query_loader, gallery_loader = data.test_dataloader()
    query_embeddings = embed_loader(model, query_loader, seq_len)[0]
    gallery_embeddings = embed_loader(model, gallery_loader, seq_len)[0]
    queries, gallery = data.query[:count], data.gallery
    distances = pairwise_distance(query_embeddings[:count], gallery_embeddings)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    figure = Figure(figsize=(0.75 * (seq_len + top) + 0.5, 1.6 * count), layout="constrained")
    figure.suptitle(f"{name}: queries, their {top} best-ranked gallery tracklets (green: same person)", fontsize=8)
    axes = figure.subplots(count, seq_len + top, squeeze=False)
    for row, query in enumerate(queries):
        frames = query.read(evenly_spaced_indices(query.num_frames, seq_len), height, width)
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        _, maps = attention_maps(model, ((clip - mean) / std)[None])
        weights = _frame_weights(maps, temporal, seq_len)
        for column in range(seq_len):
            ax = axes[row, column]
            ax.imshow(frames[column])
            caption = f"w {weights[column]:.3f}" if weights is not None else ""
            if column == 0:
                caption = f"query {query.pid}, cam {query.camid}\n{caption}"
            ax.set_title(caption, fontsize=6)
        allowed = torch.tensor([not (g.pid == query.pid and g.camid == query.camid) for g in gallery])
        order = distances[row].masked_fill(~allowed, float("inf")).argsort()[:top].tolist()
        for rank, index in enumerate(order, start=1):
            match = gallery[index]
            ax = axes[row, seq_len + rank - 1]
            ax.imshow(match.read([match.num_frames // 2], height, width)[0])
            colour = "lime" if match.pid == query.pid else "red"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
            ax.set_title(f"#{rank}: {match.pid}, cam {match.camid}", fontsize=6, color="green" if colour == "lime" else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(figure, path)
