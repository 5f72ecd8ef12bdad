"""Regenerate the catalog table in docs/zoo.md from attnzoo/zoo/catalog.json (what `attnzoo zoo list` prints).

    python docs/zoo_table.py          # rewrite the table in place
    python docs/zoo_table.py --check  # exit 1 if the file is out of date

tests/test_docs.py runs the check, so the table cannot drift from the catalog.
"""
from __future__ import annotations

import sys
from pathlib import Path

from generated import regenerate, replace_between

from attnzoo.cli import zoo_table

DOC = Path(__file__).with_name("zoo.md")
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def updated(text: str) -> str:
    # Without the "cached" column, which depends on the machine.
    return replace_between(text, START, END, zoo_table(cached=False))


if __name__ == "__main__":
    sys.exit(regenerate(DOC, updated, Path(__file__).name))
