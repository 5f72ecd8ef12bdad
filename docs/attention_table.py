"""Regenerate the mechanism table in docs/attention.md from the registry.

    python docs/attention_table.py          # rewrite the table in place
    python docs/attention_table.py --check  # exit 1 if the file is out of date

tests/test_docs.py runs the check, so the table cannot drift from the code.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import attnzoo

DOC = Path(__file__).with_name("attention.md")
START, END = "<!-- attention-table:start -->", "<!-- attention-table:end -->"
CHANNELS = 256


def render() -> str:
    rows = [
        f"| name | family | placement | paper | year | parameters at C = {CHANNELS} |",
        "|---|---|---|---|---|---:|",
    ]
    for name in attnzoo.list_attentions():
        info = attnzoo.attention_info(name)
        module = attnzoo.create_attention(name, CHANNELS)
        params = sum(p.numel() for p in module.parameters())
        rows.append(
            f"| `{name}` | {info.family} | {info.placement} | [{info.title}]({info.paper_url}) "
            f"| {info.year} | {params:,} |"
        )
    return "\n".join(rows)


def updated(text: str) -> str:
    head, found, rest = text.partition(START)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"{DOC} must contain the markers {START} and {END}")
    return f"{head}{START}\n{render()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the table is out of date")
    args = parser.parse_args()
    text = DOC.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    fd, tmp = tempfile.mkstemp(dir=DOC.parent, prefix=".attention.md.")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
