"""Attention maps: capture them during a forward pass, and draw them.

Every attention module exposes ``attention_map``. It is filled only while
:func:`record` is active, so ordinary training and inference keep no extra
tensors alive::

    with attnzoo.viz.record():
        model(images)
    maps = {name: m.attention_map for name, m in model.named_modules()
            if getattr(m, "attention_map", None) is not None}

:func:`attention_maps` does that, and :func:`draw` turns the maps into a PNG (matplotlib, no display
needed). Each module is drawn in the form its paper used to explain it, chosen by the kind of map its
mechanism declares in the registry (``attnzoo.attention.MAP_KINDS``, layouts in ``MAP_LAYOUTS``), so a
mechanism you register with a ``map_kind`` is drawn too:

- ``spatial`` (cbam, canet, gc): the map laid over the image;
- ``pairwise`` (nl, dnl, cc, ann, psa, self): from three query positions marked on the image, the weights
  over the image (the non-local and CCNet papers' figures);
- ``assignment`` (ema, glore, ham): each position coloured by the basis or graph node it weighs most;
- ``channel`` (se, eca, srm, gsop, ge): each module's mean gate per channel, one line per class (SENet);
- ``paths`` (sk): per unit, the mean weight on the largest kernel, for objects zoomed x1, x1.5, x2 (SKNet);
- ``routing`` (condconv, dyconv): every example's routing or kernel weights, grouped by class;
- ``gate`` (highway): the mean gate of each layer, per class (highway networks);
- ``items`` (soft, hard, sta): the items (frames) with their weights, STA's per horizontal part.

``attnzoo show`` draws a model's maps on its task's pictures (``attnzoo.tasks.show``):
:func:`attnzoo.tasks.show_classifier` on test digits or bundled photos for a classifier,
:func:`show_detections` its boxes and its backbone's maps on images for a detector,
:func:`show_restoration` degraded, restored and clean images and its maps for a restoration network,
:func:`show_reid` query tracklets with their best-ranked gallery tracklets and the weight of each frame
for a video re-ID network.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Mechanism", "attention_maps", "draw", "is_recording", "mechanisms", "record", "show_detections", "show_reid",
    "show_restoration", "task_model", "zoom",
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


class Mechanism(NamedTuple):
    """An attention module's mechanism: its registry name and the kind of map it records."""

    name: str
    kind: str


def mechanisms(model: nn.Module) -> dict[str, Mechanism]:
    """Each attention module of ``model`` (a registered mechanism), by module name, in the model's order.

    The kind is the registry's ``map_kind``, unless the module refines it for its own settings with a
    ``map_kind`` attribute (gather-excite at a local extent records a spatial map).
    """
    from attnzoo.attention import attention_info, list_attentions

    registered = set(list_attentions())
    found = {}
    for name, module in model.named_modules():
        mechanism = getattr(module, "attention_name", None)
        if isinstance(mechanism, str) and mechanism in registered:
            found[name] = Mechanism(mechanism, getattr(module, "map_kind", None) or attention_info(mechanism).map_kind)
    return found


def zoom(images: Tensor, factor: float) -> Tensor:
    """The central 1/``factor`` of each image (..., H, W), resized back to H x W (bilinear): what is in the
    middle looks ``factor`` times larger."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
        raise ValueError(f"zoom factor must be a number >= 1, got {factor!r}")
    height, width = images.shape[-2:]
    rows, columns = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = (height - rows) // 2, (width - columns) // 2
    centre = images[..., top : top + rows, left : left + columns]
    batch = centre.reshape(-1, 1, rows, columns).float()
    return F.interpolate(batch, size=(height, width), mode="bilinear", align_corners=False).view(images.shape)


def _picture(image: Tensor) -> Tensor:
    """(H, W) or (C, H, W) in [0, 1] as imshow takes it: (H, W, 3) for RGB, else grey (H, W)."""
    if image.dim() == 3:
        image = image.permute(1, 2, 0) if image.shape[0] == 3 else image.mean(0)
    return image.float().clamp(0, 1)


def _spread(names: Sequence[str], most: int) -> list[str]:
    """At most ``most`` of ``names``, spread evenly over them (over the network's depth)."""
    if len(names) <= most:
        return list(names)
    if most == 1:
        return [names[len(names) // 2]]
    return [names[round(i * (len(names) - 1) / (most - 1))] for i in range(most)]


# Where the pairwise pictures put their queries, as (row, column) fractions of the map, and its marker colour.
_QUERIES = (((0.5, 0.5), "cyan"), ((0.25, 0.25), "lime"), ((0.75, 0.75), "magenta"))
# How many of an assignment's bases or nodes get a colour: those that win the most positions.
_COLOURED = 8
# Lines or panels a statistics picture holds at most.
_MOST_GROUPS, _MOST_PANELS = 10, 6


@dataclass
class _Page:
    """What :func:`draw` was given, checked, and shared by the pictures of every kind."""

    images: Sequence[Tensor]
    maps: dict[str, list[Tensor]]  # each example's map, by module name
    found: dict[str, Mechanism]
    rows: int
    row_titles: Sequence[str] | None
    boxes: Sequence[tuple[Tensor, Sequence[str]]] | None
    panels: Sequence[Sequence[tuple[Tensor, str]]] | None
    groups: dict[str, list[int]]  # the examples of each group, by group name; one group "all" without groups
    group_by: str
    zoomed: dict[float, dict[str, list[Tensor]]]
    items: Sequence[Sequence[Tensor]] | None
    max_columns: int

    def names(self, kind: str) -> list[str]:
        return [name for name in self.maps if self.found[name].kind == kind]

    def title(self, name: str) -> str:
        """A module's caption: its name in the model and its mechanism's registry name."""
        return f"{name} · {self.found[name].name}"

    def mechanism_names(self, names: Sequence[str]) -> str:
        """The registry names of the modules ``names``, each once."""
        return ", ".join(dict.fromkeys(self.found[name].name for name in names))

    def stacked(self, name: str, maps: Mapping[str, list[Tensor]] | None = None) -> Tensor:
        """Every example's map of one module as a batch, float32."""
        return torch.stack([m.float() for m in (self.maps if maps is None else maps)[name]])


@dataclass(frozen=True)
class _Section:
    """One picture of the page: its size in inches, a caption, and how it draws itself into a (sub)figure."""

    width: float
    height: float
    caption: str | None
    paint: Callable[[Any], None]


# A column of the per-image rows: its title, and how it draws one row's axes (ax, row, picture).
_Column = tuple[str, Callable[[Any, int, np.ndarray], None]]


def draw(
    images: Tensor | Sequence[Tensor],
    maps: Mapping[str, Tensor | Sequence[Tensor]],
    path: str | Path,
    model: nn.Module,
    *,
    rows: int | None = None,
    row_titles: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    group_by: str = "class",
    zoomed: Mapping[float, Mapping[str, Tensor | Sequence[Tensor]]] | None = None,
    items: Tensor | Sequence[Sequence[Tensor]] | None = None,
    title: str | None = None,
    max_columns: int = 9,
    boxes: Sequence[tuple[Tensor, Sequence[str]]] | None = None,
    panels: Sequence[Sequence[tuple[Tensor, str]]] | None = None,
    dpi: int = 120,
) -> Path:
    """A PNG of what each attention module of ``model`` does, drawn as its map's kind is explained.

    The maps of the per-image kinds (spatial, pairwise, assignment) are drawn in one row per image: the
    image, then a column per module (pairwise: per module and query), titled ``<module> · <mechanism>``,
    each map scaled to its own range (the colours compare places within a map, not maps). The other kinds
    are drawn below from every example: channel gates per channel and routing weights per example,
    compared across ``groups``; each SK unit's weight on its largest kernel against the ``zoomed``
    objects; the mean gate per layer; the ``items`` with their weights. A module of an unknown
    mechanism, or whose map has not its kind's layout, is a ValueError naming it.

    Args:
        images: the examples as they should be seen, (B, H, W) or (B, C, H, W) with values in [0, 1],
            or a list of (H, W) or (C, H, W) images, which may differ in size.
        maps: module name -> ``attention_map`` as :func:`attention_maps` returns them (B, ...), or a
            list of each image's map.
        path: the PNG to write (through a temporary file, so no half-written picture is left).
        model: the module whose ``named_modules()`` the map names are, which tells each one's mechanism.
        rows: how many of the examples (the first) get a row; all by default.
        row_titles: a caption per row, e.g. the predicted and true label.
        groups: a group per example (its class, or the photo it was cropped from), which the channel,
            routing and gate pictures compare (the 10 largest groups); without, all examples together.
        group_by: what the groups are, for the captions.
        zoomed: for a factor > 1, the maps of the same examples with their centres zoomed by it
            (:func:`zoom`): the paths picture draws each factor.
        items: per example, the N items its pool mechanism weighed, (B, N, C, H, W) or (B, N, H, W) in
            [0, 1]: the items picture draws them with their weights.
        title: the picture's title.
        max_columns: per-image columns of a kind, at most (modules spread evenly over the network's depth).
        boxes: per row, boxes (N, 4) xyxy in its image's pixels and a caption for each, drawn on the image.
        panels: per row, more pictures with their captions, (H, W) or (C, H, W) in [0, 1], drawn after the
            image and before the maps; every row has as many.
        dpi: the PNG's resolution, dots per inch.
    """
    page = _page(images, maps, model, rows, row_titles, groups, group_by, zoomed, items, max_columns, boxes, panels)
    drawers = (_rows_section, _channel_section, _paths_section, _routing_section, _gate_section)
    sections = [section for section in (drawer(page) for drawer in drawers) if section is not None]
    sections += [_items_section(page, name) for name in page.names("items") if page.rows]
    if not sections:
        raise ValueError(
            "nothing to draw: no attention maps (a model without attention modules, or a forward pass outside "
            "attnzoo.viz.record()), no boxes, no panels"
        )
    return _save(_compose(sections, title), path, dpi)


def _page(
    images: Tensor | Sequence[Tensor],
    maps: Mapping[str, Tensor | Sequence[Tensor]],
    model: nn.Module,
    rows: int | None,
    row_titles: Sequence[str] | None,
    groups: Sequence[str] | None,
    group_by: str,
    zoomed: Mapping[float, Mapping[str, Tensor | Sequence[Tensor]]] | None,
    items: Tensor | Sequence[Sequence[Tensor]] | None,
    max_columns: int,
    boxes: Sequence[tuple[Tensor, Sequence[str]]] | None,
    panels: Sequence[Sequence[tuple[Tensor, str]]] | None,
) -> _Page:
    """:func:`draw`'s arguments checked, with each example's map by module name."""
    count = len(images)
    if rows is None:
        rows = count
    if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows <= count:
        raise ValueError(f"rows must be an integer in 0..{count} (the images given), got {rows!r}")
    for name, given in (("row titles", row_titles), ("box lists", boxes), ("panel lists", panels)):
        if given is not None and len(given) != rows:
            raise ValueError(f"{len(given)} {name} for {rows} images")
    for name, given in (("groups", groups), ("item lists", items)):
        if given is not None and len(given) != count:
            raise ValueError(f"{len(given)} {name} for {count} images: give one per image")
    if isinstance(max_columns, bool) or not isinstance(max_columns, int) or max_columns < 1:
        raise ValueError(f"max_columns must be a positive integer, got {max_columns!r}")
    found = mechanisms(model)
    per_example = _checked(maps, found, count)
    zoomed_maps = {}
    for factor, factor_maps in (zoomed or {}).items():
        missing = [name for name in per_example if name not in factor_maps]
        if missing:
            raise ValueError(f"the maps zoomed x{factor:g} lack the modules {', '.join(missing)}")
        zoomed_maps[float(factor)] = _checked({name: factor_maps[name] for name in per_example}, found, count)
    return _Page(
        images, per_example, found, rows, row_titles, boxes, panels, _grouped(groups, count), group_by,
        dict(sorted(zoomed_maps.items())), items, max_columns,
    )


def _checked(
    maps: Mapping[str, Tensor | Sequence[Tensor]], found: Mapping[str, Mechanism], count: int
) -> dict[str, list[Tensor]]:
    """Each example's map by module name, each module checked to be a known mechanism with its kind's layout."""
    from attnzoo.attention import check_attention_map

    per_example = {}
    for name, given in maps.items():
        if name not in found:
            raise ValueError(
                f"module {name!r} recorded an attention map, but the model has no registered mechanism of that "
                "name to say how to draw it (attnzoo.register_attention with a map_kind)"
            )
        per_example[name] = list(given)
        if len(per_example[name]) != count:
            raise ValueError(f"module {name!r} has maps of {len(per_example[name])} images for {count} images")
        mechanism, kind = found[name]
        for example in per_example[name]:
            check_attention_map(f"module {name!r} ({mechanism})", kind, example[None])
    return per_example


def _grouped(groups: Sequence[str] | None, count: int) -> dict[str, list[int]]:
    """The examples of each group (the largest, at most 10), in the groups' sorted order."""
    if groups is None:
        return {"all": list(range(count))}
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(str(group), []).append(index)
    largest = sorted(members, key=lambda g: -len(members[g]))[:_MOST_GROUPS]
    return {group: members[group] for group in sorted(largest)}


def _compose(sections: Sequence[_Section], title: str | None) -> Any:
    """One figure holding the sections one below the other (each a subfigure when there are several)."""
    from matplotlib.figure import Figure  # drawn without pyplot: no display, no global state

    width, height = max(s.width for s in sections), sum(s.height for s in sections)
    figure = Figure(figsize=(width, height), layout="constrained")
    if len(sections) == 1:
        heading = "\n".join(text for text in (title, sections[0].caption) if text)
        if heading:
            figure.suptitle(heading, fontsize=8, wrap=True)
        sections[0].paint(figure)
        return figure
    if title:
        figure.suptitle(title, fontsize=8, wrap=True)
    parts = figure.subfigures(len(sections), 1, height_ratios=[s.height for s in sections], squeeze=False)[:, 0]
    for part, section in zip(parts, sections):
        if section.caption:
            part.suptitle(section.caption, fontsize=8)
        section.paint(part)
    return figure


def _save(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure as a PNG through a temporary file, so no half-written picture is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _no_ticks(axes: Any) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def _overlay(ax: Any, picture: np.ndarray, attention: Tensor) -> None:
    """A map (h, w) upsampled onto the picture and laid over it, scaled to its own range."""
    up = F.interpolate(attention.float()[None, None], size=picture.shape[:2], mode="bilinear", align_corners=False)
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax.imshow(up[0, 0].numpy(), cmap="inferno", alpha=0.6)


def _rows_section(page: _Page) -> _Section | None:
    """A row per image: the image (with its boxes), its panels, then the per-image kinds' columns."""
    columns = _spatial_columns(page) + _pairwise_columns(page) + _assignment_columns(page)
    extra = len(page.panels[0]) if page.panels else 0
    if page.rows == 0 or not (columns or extra or page.boxes):
        return None

    def paint(figure: Any) -> None:
        axes = figure.subplots(page.rows, 1 + extra + len(columns), squeeze=False)
        for row in range(page.rows):
            picture = _picture(page.images[row]).numpy()
            axes[row, 0].imshow(picture, cmap="gray", vmin=0, vmax=1)
            axes[row, 0].set_title(page.row_titles[row] if page.row_titles else "input", fontsize=8)
            if page.boxes:
                _draw_boxes(axes[row, 0], *page.boxes[row])
            for column, (panel, caption) in enumerate(page.panels[row] if page.panels else (), start=1):
                axes[row, column].imshow(_picture(panel).numpy(), cmap="gray", vmin=0, vmax=1)
                axes[row, column].set_title(caption, fontsize=8)
            for column, (title, paint_column) in enumerate(columns, start=1 + extra):
                paint_column(axes[row, column], row, picture)
                if row == 0:
                    axes[row, column].set_title(title, fontsize=7)
        _no_ticks(axes)

    return _Section(1.6 * (1 + extra + len(columns)), 1.7 * page.rows, None, paint)


def _spatial_columns(page: _Page) -> list[_Column]:
    """Spatial maps (K, H, W), averaged over K, laid over the image."""
    columns = []
    for name in _spread(page.names("spatial"), page.max_columns):

        def paint(ax: Any, row: int, picture: np.ndarray, name: str = name) -> None:
            _overlay(ax, picture, page.maps[name][row].float().mean(0))

        columns.append((f"{page.title(name)}\n{'x'.join(map(str, page.maps[name][0].shape))}", paint))
    return columns


def _pairwise_columns(page: _Page) -> list[_Column]:
    """For each query of ``_QUERIES``, marked, its weights (HW, H, W)[query] laid over the image."""
    columns = []
    for name in _spread(page.names("pairwise"), max(1, page.max_columns // len(_QUERIES))):
        for (along, across), colour in _QUERIES:

            def paint(
                ax: Any, row: int, picture: np.ndarray, name: str = name, at=(along, across), colour=colour
            ) -> None:
                weights = page.maps[name][row]
                height, width = weights.shape[-2:]
                i, j = (min(int(f * n), n - 1) for f, n in zip(at, (height, width)))
                _overlay(ax, picture, weights[i * width + j])
                # The query's cell centre in the picture's pixels (imshow centres pixel k on k).
                x, y = (j + 0.5) * picture.shape[1] / width - 0.5, (i + 0.5) * picture.shape[0] / height - 0.5
                ax.plot(x, y, marker="+", color=colour, markersize=9, markeredgewidth=2)

            columns.append((f"{page.title(name)}\nfrom the {colour} +", paint))
    return columns


def _assignment_columns(page: _Page) -> list[_Column]:
    """Each position coloured by the basis or node it weighs most; the 8 that win the most positions are coloured."""
    from matplotlib import colormaps

    palette = torch.tensor([colormaps["tab10"](i) for i in range(_COLOURED)], dtype=torch.float32)
    palette[:, 3] = 0.6
    columns = []
    for name in _spread(page.names("assignment"), page.max_columns):

        def paint(ax: Any, row: int, picture: np.ndarray, name: str = name) -> None:
            weights = page.maps[name][row].float()
            strongest = weights.argmax(0)
            wins = strongest.flatten().bincount(minlength=len(weights))
            colours = torch.zeros(len(weights), 4)  # transparent: a basis not among the 8
            colours[wins.argsort(descending=True)[:_COLOURED]] = palette[: min(_COLOURED, len(weights))]
            up = F.interpolate(strongest[None, None].float(), size=picture.shape[:2], mode="nearest")[0, 0].long()
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            ax.imshow(colours[up].numpy())

        count = page.maps[name][0].shape[0]
        columns.append((f"{page.title(name)}\nstrongest of {count}", paint))
    return columns


def _group_lines(ax: Any, page: _Page, values: Tensor) -> None:
    """Each group's mean of ``values`` (B, X) as a line over X, and all examples' mean, bold."""
    from matplotlib import colormaps

    ax.plot(values.mean(0).numpy(), color="black", linewidth=2, alpha=0.5, label="all")
    if len(page.groups) > 1:
        for colour, (group, members) in enumerate(page.groups.items()):
            ax.plot(values[members].mean(0).numpy(), color=colormaps["tab10"](colour), linewidth=0.8, label=group)


def _legend(figure: Any, ax: Any) -> None:
    figure.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=6)


def _channel_section(page: _Page) -> _Section | None:
    """SENet's figure: per module, each channel's mean gate in each group."""
    names = _spread(page.names("channel"), _MOST_PANELS)
    if not names:
        return None
    across = min(3, len(names))
    down = math.ceil(len(names) / across)

    def paint(figure: Any) -> None:
        axes = figure.subplots(down, across, squeeze=False)
        for ax, name in zip(axes.flat, names):
            _group_lines(ax, page, page.stacked(name).flatten(1))
            ax.set_title(page.title(name), fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_xlabel("channel", fontsize=6)
            ax.tick_params(labelsize=6)
        for ax in axes.flat[len(names):]:
            ax.set_visible(False)
        _legend(figure, axes.flat[0])

    caption = f"channel gates: each channel's mean gate, by {page.group_by}"
    return _Section(2.6 * across + 0.9, 2.0 * down + 0.4, caption, paint)


def _paths_section(page: _Page) -> _Section | None:
    """SKNet's figure: per unit, the mean weight on the largest kernel, for each zoom of the objects."""
    names = page.names("paths")
    if not names:
        return None

    def paint(figure: Any) -> None:
        ax = figure.subplots()
        for factor, maps in [(1.0, page.maps), *page.zoomed.items()]:
            means = [page.stacked(name, maps)[:, -1].mean().item() for name in names]
            ax.plot(means, marker="o", markersize=3, linewidth=1, label=f"x{factor:g}")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_ylabel("mean weight on the largest kernel", fontsize=7)
        ax.set_title(f"{page.mechanism_names(names)}: each unit's attention on its largest kernel", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.legend(title="object zoom", fontsize=6, title_fontsize=6)

    caption = "selected kernels: the same images with their centres zoomed" if page.zoomed else None
    return _Section(max(4.5, 0.3 * len(names) + 2.0), 3.4, caption, paint)


def _routing_section(page: _Page) -> _Section | None:
    """Every example's routing or kernel weights (a row each), the examples grouped."""
    names = _spread(page.names("routing"), 4)
    if not names:
        return None
    order = [index for members in page.groups.values() for index in members]
    ends = np.cumsum([len(members) for members in page.groups.values()])

    def paint(figure: Any) -> None:
        axes = figure.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names):
            weights = page.stacked(name)[order]
            image = ax.imshow(weights.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
            figure.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)
            ax.set_title(page.title(name), fontsize=7)
            ax.set_xticks(range(weights.shape[1]))
            ax.set_xlabel("kernel", fontsize=6)
            ax.tick_params(labelsize=6)
            for end in ends[:-1]:
                ax.axhline(end - 0.5, color="white", linewidth=0.8)
            starts = np.concatenate([[0], ends[:-1]])
            ax.set_yticks((starts + ends - 1) / 2, list(page.groups) if ax is axes[0] else [])

    caption = f"routing weights: every example (a row), grouped by {page.group_by}"
    return _Section(2.2 * len(names) + 0.8, 3.8, caption, paint)


def _gate_section(page: _Page) -> _Section | None:
    """The highway networks' figure: each layer's mean gate, per group."""
    names = page.names("gate")
    if not names:
        return None

    def paint(figure: Any) -> None:
        ax = figure.subplots()
        means = torch.stack([torch.stack([m.float().mean() for m in page.maps[name]]) for name in names], 1)
        _group_lines(ax, page, means)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean gate", fontsize=7)
        ax.set_title(f"{page.mechanism_names(names)}: the mean gate of each layer", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        _legend(figure, ax)

    caption = f"gates, by {page.group_by}"
    return _Section(max(4.5, 0.3 * len(names) + 2.5), 3.4, caption, paint)


def _items_section(page: _Page, name: str) -> _Section:
    """A row per example: the items its pool mechanism weighed, each with its weight (per part: bands)."""
    if page.items is None:
        raise ValueError(
            f"module {name!r} ({page.found[name].name}) weighs items: give draw their pictures, "
            "items=(B, N, C, H, W)"
        )
    count = page.maps[name][0].shape[0]
    for row in range(page.rows):
        if len(page.items[row]) != count:
            raise ValueError(f"module {name!r} weighs {count} items, but example {row} has {len(page.items[row])}")

    def paint(figure: Any) -> None:
        axes = figure.subplots(page.rows, count, squeeze=False)
        for row in range(page.rows):
            for index, ax in enumerate(axes[row]):
                picture = _picture(page.items[row][index]).numpy()
                ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
                weight = page.maps[name][row][index].float()
                if weight.dim() == 0:
                    ax.set_title(f"{weight.item():.2f}", fontsize=7)
                else:
                    _part_bands(ax, weight, picture.shape[0])
        _no_ticks(axes)

    parts = page.maps[name][0].dim() == 2
    caption = f"{page.title(name)}: the weight of each item" + (", per part (top to bottom)" if parts else "")
    return _Section(max(3.0, 0.9 * count + 0.3), 1.5 * page.rows + 0.4, caption, paint)


def _part_bands(ax: Any, weights: Tensor, height: int) -> None:
    """An item's weight per horizontal part, as bands tinted by it and labelled with it."""
    edges = np.linspace(-0.5, height - 0.5, len(weights) + 1)
    for weight, top, bottom in zip(weights.tolist(), edges[:-1], edges[1:]):
        ax.axhspan(top, bottom, color="orange", alpha=0.6 * weight, linewidth=0)
        ax.text(0, (top + bottom) / 2, f"{weight:.2f}", fontsize=5, va="center", color="white")
        ax.axhline(bottom, color="white", linewidth=0.4)


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


# What each task's picture function draws, for the message that sends a model of another task to its own.
_DRAWERS = {
    "classification": ("show_classifier", "classification models"),
    "detection": ("show_detections", "detectors"),
    "restoration": ("show_restoration", "restoration networks"),
    "reid": ("show_reid", "video re-ID networks"),
}


def task_model(model: nn.Module | str | Path, task: str, drawer: str) -> nn.Module:
    """``model`` (a module, or anything ``attnzoo.load`` takes, loaded), which must be a ``task`` model;
    else a ValueError saying which function ``drawer`` draws which models."""
    from attnzoo.zoo import load

    if not isinstance(model, nn.Module):
        model = load(model)
    cfg = model.pretrained_cfg
    given = cfg.get("task", "classification")
    if given != task:
        others = ", ".join(f"{function} draws {what}" for t, (function, what) in _DRAWERS.items() if t != task)
        raise ValueError(f"{_model_name(cfg)!r} is a {given} model; {drawer} draws {_DRAWERS[task][1]} ({others})")
    return model


# The map kinds whose last two dimensions are the feature map's rows and columns (a pairwise map's queries are too).
_ON_THE_GRID = ("spatial", "pairwise", "assignment", "gate")


def _crop(attention: Tensor, kind: str | None, resized: Sequence[int], padded: Sequence[int]) -> Tensor:
    """The part of a map (B, K, h, w) of a padded detector batch that lies over the image, at the map's resolution.

    The detector's transform resizes the image to ``resized`` (H, W) and pads it at the bottom and right
    to ``padded``. The image covers ``h * resized / padded`` map rows, rarely a whole number: cutting at a
    cell boundary would stretch the map over the picture by up to a cell, so the map is resampled
    (bilinearly, roi_align) at ceil of that many points spread over exactly the image's region. A
    pairwise map has its queries resampled so too. Maps of the other kinds (channel gates, weights per
    example) are returned as they are.
    """
    if kind not in _ON_THE_GRID:
        return attention
    keys = _crop_grid(attention, resized, padded)
    if kind != "pairwise":
        return keys
    # The queries as the grid, the keys as channels: (B, h'w', H, W), cropped, and back.
    queries = _crop_grid(keys.flatten(2).transpose(1, 2).unflatten(-1, attention.shape[-2:]), resized, padded)
    return queries.flatten(2).transpose(1, 2).unflatten(-1, keys.shape[-2:])


def _crop_grid(attention: Tensor, resized: Sequence[int], padded: Sequence[int]) -> Tensor:
    """:func:`_crop` of the last two dimensions of (B, K, h, w)."""
    from torchvision.ops import roi_align

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
    found = mechanisms(model.backbone.body)
    maps = {name.removeprefix("backbone.body."): m for name, m in maps.items()}
    return detections, {n: _crop(m, found[n].kind if n in found else None, resized, padded) for n, m in maps.items()}


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
    attention maps as :func:`draw` draws them (the images compared as the groups). The maps are recorded
    while the detector runs on each image alone (in eval mode) and cropped to the image's part of the
    resized, padded input. A backbone without attention gets the boxes alone, and the title says so.

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
    model = task_model(model, "detection", "show_detections")
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
    title = f"{_model_name(cfg)}: boxes with score >= {score_thresh:g}"
    if not maps[0]:
        title += "; no attention maps in its backbone, boxes only"
    return draw(
        pictures, {name: [image_maps[name][0] for image_maps in maps] for name in maps[0]}, path, model.backbone.body,
        row_titles=titles, boxes=boxes, groups=sources, group_by="image", title=title,
    )


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
    network's attention maps as :func:`draw` draws them (over the degraded image; the photos compared as
    the groups). The maps are recorded while the network runs on each degraded image alone (in eval
    mode). A network without attention gets the images alone, and the title says so.

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
    model = task_model(model, "restoration", "show_restoration")
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
    title = f"{name}: {shown.kind} {shown.field} {shown.level:g}"
    if trained.is_blind:
        title += f" (trained on [{trained.low:g}, {trained.high:g}])"
    if not maps[0]:
        title += "; no attention maps, images only"
    return draw(
        [degraded for degraded, _ in pairs],
        {module: [image_maps[module][0] for image_maps in maps] for module in maps[0]}, path, model, row_titles=titles, panels=panels, groups=sources, group_by="photo", title=title,
    )


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
    model = task_model(model, "reid", "show_reid")
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
