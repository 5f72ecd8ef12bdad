"""Regenerate the mechanism table in docs/attention.md from the registry.

    python docs/attention_table.py          # rewrite the table in place
    python docs/attention_table.py --check  # exit 1 if the file is out of date

tests/test_docs.py runs the check, so the table cannot drift from the code.
"""
from __future__ import annotations

import sys
from pathlib import Path

from generated import regenerate, replace_between

import attnzoo

DOC = Path(__file__).with_name("attention.md")
START, END = "<!-- attention-table:start -->", "<!-- attention-table:end -->"
CHANNELS = 256


def render() -> str:
    rows = [
        f"| name | family | placement | map kind | paper | year | parameters at C = {CHANNELS} |",
        "|---|---|---|---|---|---|---:|",
    ]
    for name in attnzoo.list_attentions():
        info = attnzoo.attention_info(name)
        module = attnzoo.create_attention(name, CHANNELS)
        params = sum(p.numel() for p in module.parameters())
        rows.append(
            f"| `{name}` | {info.family} | {info.placement} | {info.map_kind} | [{info.title}]({info.paper_url}) "
            f"| {info.year} | {params:,} |"
        )
    return "\n".join(rows)


def updated(text: str) -> str:
    return replace_between(text, START, END, render())


if __name__ == "__main__":
    sys.exit(regenerate(DOC, updated, Path(__file__).name))
