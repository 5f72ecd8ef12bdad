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

What a model's picture shows besides its maps (digits, boxes, restored images, ranked tracklets) belongs
to its task: ``attnzoo show`` draws a model with its task's function (``attnzoo.tasks.show``), which
hands :func:`draw` the examples, their maps, and its own pictures (``boxes``, ``panels``, ``sections``).
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

from attnzoo._checks import check_int

__all__ = ["Mechanism", "Section", "attention_maps", "draw", "is_recording", "mechanisms", "record", "zoom"]

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
class Section:
    """One picture of :func:`draw`'s page: its size in inches, a caption, and how it draws itself into a
    matplotlib (sub)figure; a task gives its own (a re-ID network's rankings) as ``draw(sections=...)``."""

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
    sections: Sequence[Section] = (),
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
        sections: the caller's own pictures, drawn first, above the maps' (each a :class:`Section`).
        dpi: the PNG's resolution, dots per inch.
    """
    page = _page(images, maps, model, rows, row_titles, groups, group_by, zoomed, items, max_columns, boxes, panels)
    drawers = (_rows_section, _channel_section, _paths_section, _routing_section, _gate_section)
    drawn = [section for section in (drawer(page) for drawer in drawers) if section is not None]
    drawn += [_items_section(page, name) for name in page.names("items") if page.rows]
    if not drawn and not sections:
        raise ValueError(
            "nothing to draw: no attention maps (a model without attention modules, or a forward pass outside "
            "attnzoo.viz.record()), no boxes, no panels"
        )
    return _save(_compose([*sections, *drawn], title), path, dpi)


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
    check_int("draw", "max_columns", max_columns)
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


def _compose(sections: Sequence[Section], title: str | None) -> Any:
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


def _rows_section(page: _Page) -> Section | None:
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

    return Section(1.6 * (1 + extra + len(columns)), 1.7 * page.rows, None, paint)


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


def _channel_section(page: _Page) -> Section | None:
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
    return Section(2.6 * across + 0.9, 2.0 * down + 0.4, caption, paint)


def _paths_section(page: _Page) -> Section | None:
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
    return Section(max(4.5, 0.3 * len(names) + 2.0), 3.4, caption, paint)


def _routing_section(page: _Page) -> Section | None:
    """Every example's routing or kernel weights (a row each), the examples grouped."""
    names = _spread(page.names("routing"), 4)
    if not names:
        return None
    order = [index for members in page.groups.values() for index in members]
    ends = np.cumsum([len(members) for members in page.groups.values()])
    starts = np.concatenate([[0], ends[:-1]])

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
            ax.set_yticks((starts + ends - 1) / 2, list(page.groups) if ax is axes[0] else [])

    caption = f"routing weights: every example (a row), grouped by {page.group_by}"
    return Section(2.2 * len(names) + 0.8, 3.8, caption, paint)


def _gate_section(page: _Page) -> Section | None:
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
    return Section(max(4.5, 0.3 * len(names) + 2.5), 3.4, caption, paint)


def _items_section(page: _Page, name: str) -> Section:
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
    return Section(max(3.0, 0.9 * count + 0.3), 1.5 * page.rows + 0.4, caption, paint)


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
