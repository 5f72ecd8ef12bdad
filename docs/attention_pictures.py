"""Draw the pictures of docs/attention.md: one per kind of attention map, into docs/pictures/.

    python docs/attention_pictures.py          # all of them, offline, about a minute on a CPU
    python docs/attention_pictures.py channel  # one kind

Each is what ``attnzoo show`` draws (``attnzoo.viz.draw``) for one small network: a digits zoo entry
where the zoo has one for the mechanism, else the network with random weights, which still shows what
the picture looks like. They are kept small (two rows, 80 dpi, a palette of 128 colours) and committed;
tests/test_docs.py checks that every kind has its picture in the doc, and their size.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

import attnzoo

PICTURES_DIR = Path(__file__).with_name("pictures")
DPI = 80
# Every kind of map (attnzoo.attention.MAP_KINDS): the network drawn, by zoo or model name.
NETWORKS = {
    "spatial": "resnet20-cbam.digits",
    "pairwise": "resnet20-cc",
    "assignment": "resnet20-ema",
    "channel": "resnet20-se.digits",
    "paths": "resnet20-sk.digits",
    "routing": "resnet20-condconv",
    "gate": "resnet20-highway",
    "items": "resnet18n+sta.tracklets",
}


def picture(kind: str) -> Path:
    return PICTURES_DIR / f"{kind}.png"


def network(name: str) -> torch.nn.Module:
    """A zoo entry's trained network, else the named network with random weights (seeded)."""
    from attnzoo.zoo.catalog import is_zoo_name

    torch.manual_seed(0)
    return attnzoo.load(name) if is_zoo_name(name) else attnzoo.create_model(name)


def draw_items(model: torch.nn.Module, path: Path) -> Path:
    """A re-ID network's pool: two query tracklets of TrackletsData's test split, each frame with its weights."""
    from attnzoo.data import TrackletsData
    from attnzoo.data.reid import evenly_spaced_indices

    cfg = model.pretrained_cfg
    _, height, width = cfg["input_size"]
    seq_len = cfg["seq_len"]
    data = TrackletsData(frame_size=(height, width), seq_len=seq_len)
    clips = torch.stack([
        torch.from_numpy(q.read(evenly_spaced_indices(q.num_frames, seq_len), height, width)).permute(0, 3, 1, 2) / 255
        for q in data.query[:2]
    ])
    mean, std = (torch.tensor(cfg[key]).view(1, 1, 3, 1, 1) for key in ("mean", "std"))
    _, maps = attnzoo.viz.attention_maps(model, (clips - mean) / std)
    title = f"{cfg['name']}: two query tracklets of TrackletsData"
    return attnzoo.viz.draw(clips[:, 0], maps, path, model, items=clips, title=title, dpi=DPI)


def draw(kind: str) -> Path:
    """Draw one kind's picture and shrink it to a palette of 128 colours."""
    from attnzoo.tasks import show_classifier

    model = network(NETWORKS[kind])
    path = picture(kind)
    if kind == "items":
        draw_items(model, path)
    else:
        show_classifier(model, path, count=2, dpi=DPI)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128)
    small.save(path, optimize=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description="Draw docs/attention.md's pictures into docs/pictures/.")
    parser.add_argument("kinds", nargs="*", help=f"the kinds to draw, of {', '.join(NETWORKS)} (default: all)")
    kinds = parser.parse_args().kinds or list(NETWORKS)
    unknown = [kind for kind in kinds if kind not in NETWORKS]
    if unknown:
        parser.error(f"unknown kinds {', '.join(unknown)}: the kinds are {', '.join(NETWORKS)}")
    for kind in kinds:
        path = draw(kind)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
