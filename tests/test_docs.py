"""Generated tables in docs/ must match the code that generates them."""
import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load(script: str):
    spec = importlib.util.spec_from_file_location(script, DOCS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attention_table_is_current():
    gen = load("attention_table")
    text = gen.DOC.read_text()
    assert gen.updated(text) == text, "docs/attention.md is stale: run python docs/attention_table.py"
    for line in gen.render().splitlines()[2:]:
        assert line in text
