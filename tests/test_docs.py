"""Generated tables in docs/ must match the code that generates them."""
import importlib.util
import sys
from pathlib import Path

from PIL import Image


DOCS = Path(__file__).resolve().parents[1] / "docs"


def load(script: str):
    # The scripts import their shared helper (docs/generated.py) as a sibling, as when run from the shell.
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
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


def test_backbones_table_lists_every_model():
    # The whole table takes minutes to render: check its names, and re-render a few cells.
    gen = load("backbones_table")
    text = gen.DOC.read_text()
    lines = gen.table(text).splitlines()
    assert lines[:2] == gen.HEADER.splitlines()
    rows = gen.table_rows(text)
    assert len(rows) == len(lines) - 2, "docs/backbones.md lists a model twice"
    assert list(rows) == gen.backbone_names(), "docs/backbones.md is stale: run python docs/backbones_table.py"
    params = gen.HEADER.splitlines()[0].split("|").index(" parameters (M) ")
    for name in ("resnet20-cbam", "resnet18-sk", "resnet50-se"):
        assert rows[name].split("|")[params].strip() == gen.parameters_cell(name), name
    assert rows["resnet20-cbam"] == gen.row("resnet20-cbam")


def test_detection_zoo_table_is_current():
    gen = load("detection_zoo_table")
    text = gen.DOC.read_text()
    assert gen.updated(text) == text, "docs/detection.md is stale: run python docs/detection_zoo_table.py"


def test_zoo_table_is_current():
    gen = load("zoo_table")
    text = gen.DOC.read_text()
    assert gen.updated(text) == text, "docs/zoo.md is stale: run python docs/zoo_table.py"


def test_every_map_kind_has_a_small_picture_in_the_attention_doc():
    import attnzoo

    gen = load("attention_pictures")
    text = (DOCS / "attention.md").read_text()
    assert list(gen.NETWORKS) == list(attnzoo.attention.MAP_KINDS)
    for kind in gen.NETWORKS:
        path = gen.picture(kind)
        assert f"](pictures/{path.name})" in text, f"docs/attention.md does not show {path.name}"
        assert Image.open(path).format == "PNG" and path.stat().st_size < 150 * 1024, path


def test_the_pictures_script_draws_offline(tmp_path, monkeypatch):
    gen = load("attention_pictures")
    monkeypatch.setattr(gen, "PICTURES_DIR", tmp_path)
    for kind in ("items", "routing"):
        path = gen.draw(kind)
        assert path == tmp_path / f"{kind}.png" and Image.open(path).mode == "P"  # a palette: kept small
