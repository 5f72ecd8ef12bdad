"""What the docs/*_table.py scripts share: a generated table lives between two markers in a doc."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def between(text: str, start: str, end: str) -> str:
    """The generated part of ``text``, between the markers."""
    _, found, rest = text.partition(start)
    body, found_end, _ = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"the doc must contain the markers {start} and {end}")
    return body.strip("\n")


def replace_between(text: str, start: str, end: str, body: str) -> str:
    """``text`` with the part between the markers replaced by ``body``."""
    between(text, start, end)
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n{body}\n{end}{tail}"


def regenerate(doc: Path, updated: Callable[[str], str], script: str) -> int:
    """Command line of a table script: rewrite ``doc`` (atomically), or with --check exit 1 if it is stale."""
    parser = argparse.ArgumentParser(description=f"Regenerate the generated table in {doc.name}.")
    parser.add_argument("--check", action="store_true", help="fail if the table is out of date")
    args = parser.parse_args()
    text = doc.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{doc} is out of date: run python docs/{script}", file=sys.stderr)
            return 1
        return 0
    fd, tmp = tempfile.mkstemp(dir=doc.parent, prefix=f".{doc.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, doc)
    return 0
