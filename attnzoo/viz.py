"""Attention maps: capture them during a forward pass, and draw them.

Every attention module exposes ``attention_map``. It is filled only while
:func:`record` is active, so ordinary training and inference keep no extra
tensors alive::

    with attnzoo.viz.record():
        model(images)
    maps = {name: m.attention_map for name, m in model.named_modules()
            if getattr(m, "attention_map", None) is not None}

:func:`attention_maps` does that; :func:`draw` turns the maps into a PNG
(matplotlib), and :func:`show_digits` draws a model's maps on test digits
(``attnzoo show``).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["attention_maps", "draw", "is_recording", "record", "show_digits"]

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
def attention_maps(model: nn.Module, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The model's logits on ``images`` (in eval mode) and each attention module's map, by module name."""
    was_training = model.training
    model.eval()
    try:
        with record():
            logits = model(images)
    finally:
        model.train(was_training)
    maps = {
        name: m.attention_map for name, m in model.named_modules() if getattr(m, "attention_map", None) is not None
    }
    return logits, maps


def _drawable(maps: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Spatial maps (B, K, H, W) averaged over K to (B, H, W); without any, channel gates (B, C, 1, 1) as (B, 1, C)."""
    spatial = {n: m.float().mean(1) for n, m in maps.items() if m.dim() == 4 and m.shape[-1] * m.shape[-2] > 1}
    if spatial:
        return spatial
    return {n: m.float().flatten(1)[:, None] for n, m in maps.items() if m.dim() == 4 and m.shape[-1] * m.shape[-2] == 1}


def draw(
    images: Tensor,
    maps: Mapping[str, Tensor],
    path: str | Path,
    row_titles: Sequence[str] | None = None,
    max_columns: int = 9,
) -> Path:
    """A PNG with one row per image: the image, then each attention module's map.

    Args:
        images: (B, H, W) or (B, C, H, W) with values in [0, 1], as they should be seen.
        maps: module name -> ``attention_map`` as :func:`attention_maps` returns them. Spatial maps
            (B, K, H, W) are averaged over K and laid over the image, each scaled to its own range
            (the colours compare places within a map, not maps); a model with channel gates only
            (B, C, 1, 1) gets them drawn as strips. Other layouts (token-by-token weights) are left out.
        path: the PNG to write (through a temporary file, so no half-written picture is left).
        row_titles: a caption per image, e.g. the predicted and true label.
        max_columns: at most this many modules, spread evenly over the network's depth.
    """
    from matplotlib.figure import Figure  # drawn without pyplot: no display, no global state

    drawable = _drawable(maps)
    if not drawable:
        raise ValueError(
            f"none of the {len(maps)} attention maps is a spatial map (B, K, H, W) or a channel gate (B, C, 1, 1)"
        )
    if images.dim() == 4:
        images = images.mean(1) if images.shape[1] != 3 else images
    count = images.shape[0]
    if row_titles is not None and len(row_titles) != count:
        raise ValueError(f"{len(row_titles)} row titles for {count} images")
    names = list(drawable)
    if len(names) > max_columns:
        names = [names[round(i * (len(names) - 1) / (max_columns - 1))] for i in range(max_columns)]
    size = images.shape[-2:]
    figure = Figure(figsize=(1.6 * (len(names) + 1), 1.7 * count), layout="constrained")
    axes = figure.subplots(count, len(names) + 1, squeeze=False)
    for row in range(count):
        image = images[row].permute(1, 2, 0) if images.dim() == 4 else images[row]
        axes[row, 0].imshow(image.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(row_titles[row] if row_titles else "input", fontsize=8)
        for column, name in enumerate(names, start=1):
            attention = drawable[name][row]
            ax = axes[row, column]
            if attention.shape[0] == 1:  # a channel-gate strip
                ax.imshow(attention.numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
            else:
                up = F.interpolate(attention[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
                ax.imshow(image.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
                ax.imshow(up.numpy(), cmap="inferno", alpha=0.6)
            if row == 0:
                ax.set_title(f"{name}\n{'x'.join(map(str, drawable[name].shape[1:]))}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
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


def show_digits(model: nn.Module | str | Path, path: str | Path, count: int = 4) -> Path:
    """Draw ``model``'s attention maps on the first ``count`` test digits of DigitsData.

    ``model`` is a module from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load`` takes.
    The digits are resized and normalised to the model's ``pretrained_cfg`` (input size, mean, std).
    """
    from attnzoo.data import DigitsData
    from attnzoo.zoo import load

    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 32:
        raise ValueError(f"count must be an integer in 1..32, got {count!r}")
    if not isinstance(model, nn.Module):
        model = load(model)
    cfg = model.pretrained_cfg
    if cfg.get("task", "classification") != "classification":
        raise ValueError(
            f"{cfg.get('name', cfg.get('architecture'))!r} is a {cfg['task']} model; attnzoo show draws "
            "classification models on test digits (pictures for the other tasks are still to come)"
        )
    channels, height, width = cfg["input_size"]
    test = DigitsData(augment=False, in_chans=1).test_set
    plain = F.interpolate(test.images[:count], size=(height, width), mode="bilinear", align_corners=False)
    mean = torch.tensor(cfg["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    logits, maps = attention_maps(model, (plain.expand(-1, channels, -1, -1) - mean) / std)
    labels = cfg.get("labels") or [str(i) for i in range(logits.shape[1])]
    titles = [f"{labels[p]} (true {t})" for p, t in zip(logits.argmax(1).tolist(), test.targets[:count].tolist())]
    return draw(plain[:, 0], maps, path, row_titles=titles)
