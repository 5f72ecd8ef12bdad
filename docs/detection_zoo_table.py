"""Regenerate the table of the ShapesData detection entries in docs/detection.md from the catalog and their cards.

    python docs/detection_zoo_table.py          # rewrite the table in place
    python docs/detection_zoo_table.py --check  # exit 1 if the file is out of date

tests/test_docs.py runs the check, so the table cannot drift from the catalog.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from generated import regenerate, replace_between

from attnzoo.zoo.catalog import catalog

DOC = Path(__file__).with_name("detection.md")
START, END = "<!-- detection-zoo:start -->", "<!-- detection-zoo:end -->"
METRICS = ("map", "map_50", "map_75", "map_small", "map_medium")


def render() -> str:
    rows = [
        "| entry | attention | size (MB) | " + " | ".join(f"test {m}" for m in METRICS) + " | training |",
        "|---|---|---:|" + "---:|" * len(METRICS) + "---|",
    ]
    for entry in catalog().values():
        if entry.task != "detection" or entry.folder is None:
            continue
        attention = entry.spec.backbone.attention
        size = (entry.folder / entry.filename).stat().st_size / 1e6
        figures = " | ".join(f"{entry.metrics[f'shapes_test_{m}']:.3f}" for m in METRICS)
        # The card says how long the run took and on what (attnzoo publish writes it from the checkpoint).
        trained = re.search(r"^Trained for .*? steps\) in ([^:]*)", (entry.folder / "README.md").read_text(), re.MULTILINE)
        rows.append(
            f"| `{entry.name}` | {f'`{attention}`' if attention else 'none'} | {size:.2f} | {figures} | "
            f"{trained.group(1) if trained else ''} |"
        )
    return "\n".join(rows)


def updated(text: str) -> str:
    return replace_between(text, START, END, render())


if __name__ == "__main__":
    sys.exit(regenerate(DOC, updated, Path(__file__).name))
