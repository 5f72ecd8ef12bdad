"""What the tests of pictures share: a layout's PNG size, the figures and draw arguments viz is given, image files."""
from __future__ import annotations

import numpy as np
from PIL import Image

from attnzoo import viz


def layout(columns: int, rows: int) -> tuple[int, int]:
    """The PNG's size for a layout: 1.6 x 1.7 inches per column and row, at 120 dpi."""
    return round(1.6 * columns * 120), round(1.7 * rows * 120)


def capture_figures(monkeypatch) -> list:
    """The matplotlib figures viz saves, which it still writes."""
    figures = []
    save = viz._save

    def capture(figure, path, dpi=120):
        figures.append(figure)
        return save(figure, path, dpi)

    monkeypatch.setattr(viz, "_save", capture)
    return figures


def figure_titles(figure) -> list[str]:
    """Every title of a figure: its axes' and its (sub)figures' own, in drawing order."""
    texts = [ax.get_title() for ax in figure.axes]
    for part in [figure, *figure.subfigs]:
        if part._suptitle is not None:
            texts.append(part._suptitle.get_text())
    return texts


def capture_draw(monkeypatch) -> dict:
    """What the show functions hand to draw, which still writes the PNG."""
    drawn = {}
    draw_png = viz.draw

    def capture(images, maps, path, model, **kwargs):
        drawn.update(images=images, maps=maps, **kwargs)
        return draw_png(images, maps, path, model, **kwargs)

    monkeypatch.setattr(viz, "draw", capture)
    return drawn


def write_image(path, height: int, width: int, mode: str = "RGB"):
    # Grey, so that the boxes' lime is the only strong green in the picture.
    ramp = np.linspace(60, 160, width, dtype=np.uint8)[None].repeat(height, 0)
    Image.fromarray(ramp).convert(mode).save(path)
    return path
