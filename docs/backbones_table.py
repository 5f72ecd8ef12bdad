"""Regenerate the model table in docs/backbones.md: every backbone attnzoo.list_models() lists.

    python docs/backbones_table.py          # rewrite the table in place (several minutes on 2 cores)
    python docs/backbones_table.py --check  # exit 1 if the file is out of date

Each row builds the model and runs one image through it, so the whole table
is too slow for a test; tests/test_docs.py checks that the table lists every
model and re-renders a few rows with :func:`row` and :func:`parameters_cell`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from generated import between, regenerate, replace_between

import attnzoo
from attnzoo.backbones.detection import is_detector_name
from attnzoo.backbones.restoration import is_restoration_name
from attnzoo.backbones.video import is_reid_name

DOC = Path(__file__).with_name("backbones.md")
START, END = "<!-- backbones-table:start -->", "<!-- backbones-table:end -->"

# arch -> (input side, classes, decimals): the setting each family of networks is reported in,
# ImageNet (224 x 224, 1000 classes) or CIFAR-10 (32 x 32, 10 classes, He et al. 2016).
SETTINGS = {
    "resnet18": (224, 1000, 2),
    "resnet18n": (224, 1000, 2),
    "resnet34": (224, 1000, 2),
    "resnet50": (224, 1000, 2),
    "resnet101": (224, 1000, 2),
    "resnext50_32x4d": (224, 1000, 2),
    "resnet20": (32, 10, 3),
    "resnet32": (32, 10, 3),
    "resnet56": (32, 10, 3),
}

# Published figures (the papers, or timm for its SK ResNets); (~): read second-hand, not yet
# checked against the paper.
PAPER = {
    "resnet20": "0.27 M (He et al.)",
    "resnet50": "25.56 M / 4.09 GMACs",
    "resnet50-se": "28.09 M / 4.09 GMACs",
    "resnet50-srm": "about 25.62 M",
    "resnet50-eca": "R50 + about 80 parameters",
    "resnet50-gc": "about 28.08 M",
    "resnet50-sk": "27.5 M / 4.47 GMACs",
    "resnet50-cbam": "28.09 M",
    "resnet18-sk": "11.96 M (timm skresnet18)",
    "resnet34-sk": "22.28 M (timm skresnet34)",
    "resnet18-dyconv": "42.7 M, in units of 2^20 (= 44.8 M) / 1.85 GMACs (~)",
    "resnet50-gsop": "28.05 M (GSoP-Net1, ECA-Net's Table 2)",
}

HEADER = (
    "| name | architecture | attention | placement | input | parameters (M) | GMACs | paper |\n"
    "|---|---|---|---|---|---:|---:|---|"
)


def settings(name: str) -> tuple[int, int, int]:
    """(input side, num_classes, decimals) for a model name."""
    return SETTINGS[attnzoo.BackboneSpec.from_any(name).arch]


def build(name: str) -> torch.nn.Module:
    return attnzoo.create_model(name, num_classes=settings(name)[1]).eval()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, side: int) -> int:
    """Multiply-accumulates of one forward pass on one side x side image (FLOPs / 2)."""
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    # FlopCounterMode has no formula for the fused CPU attention kernel; the math backend
    # runs SDPA as matmuls, which it counts.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def parameters_cell(name: str, params: int | None = None) -> str:
    """The parameters cell of ``name``'s row; counts the parameters unless ``params`` is given."""
    decimals = settings(name)[2]
    params = count_parameters(build(name)) if params is None else params
    return f"{params / 1e6:.{decimals}f}"


def row(name: str) -> str:
    spec = attnzoo.BackboneSpec.from_any(name)
    side, _, decimals = settings(name)
    model = build(name)
    params = count_parameters(model)
    macs = count_macs(model, side)
    attention = f"`{spec.attention}`" if spec.attention else "none"
    placement = attnzoo.attention_info(spec.attention).placement if spec.attention else ""
    return (
        f"| `{name}` | {spec.arch} | {attention} | {placement} | {side} x {side} "
        f"| {parameters_cell(name, params)} | {macs / 1e9:.{decimals}f} | {PAPER.get(name, '')} |"
    )


def backbone_names() -> list[str]:
    """The names :func:`attnzoo.list_models` gives, but for the detectors, the restoration networks and the
    re-ID networks (docs/detection.md, docs/restoration.md and docs/reid.md have those)."""
    return [
        name
        for name in attnzoo.list_models()
        if not (is_detector_name(name) or is_restoration_name(name) or is_reid_name(name))
    ]


def render(progress: bool = False) -> str:
    names = backbone_names()
    rows = [HEADER]
    for i, name in enumerate(names, 1):
        if progress:
            print(f"[{i}/{len(names)}] {name}", file=sys.stderr, flush=True)
        rows.append(row(name))
    return "\n".join(rows)


def table(text: str) -> str:
    """The generated part of ``text``, between the markers."""
    return between(text, START, END)


def table_rows(text: str) -> dict[str, str]:
    """Model name -> its row, for the table in ``text``."""
    lines = table(text).splitlines()[2:]
    return {line.split("|")[1].strip().strip("`"): line for line in lines}


def updated(text: str, progress: bool = False) -> str:
    return replace_between(text, START, END, render(progress))


if __name__ == "__main__":
    sys.exit(regenerate(DOC, lambda text: updated(text, progress=True), Path(__file__).name))
