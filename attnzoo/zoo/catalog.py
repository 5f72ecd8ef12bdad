"""The zoo's catalog: every published name with its weights source, integrity and metrics.

The data lives in ``catalog.json`` beside this file. A name is
``<arch>-<attention>.<tag>`` (``<detector>-<arch>[-<attention>].<tag>`` for a
detector, ``<body>[-<attention>].<tag>`` for a restoration network); the name without its tag means the entry marked ``default`` for
that network (``resnet50-sk`` -> ``resnet50-sk.ra_in1k``).

An entry's ``source`` is a Hub repo (``repo``, ``filename``, ``revision``), a
model folder under the source tree's ``checkpoints/`` (``folder``,
``filename``): the small models that the recipes under ``tasks/`` train on
bundled data, or a ``url``: a file that torchvision publishes (its COCO
detectors), named by the weights enum member in ``torchvision``. torchvision's
file names end in the leading hex digits of the file's sha256 (torch.hub's
``check_hash``); ``sha256_prefix`` records them, as the full digest of a file
that could not be downloaded here is unknown.
"""
from __future__ import annotations

import difflib
import fnmatch
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from torchvision.models import WeightsEnum
from torchvision.models import detection as tv_detection

from attnzoo.backbones.detection import DetectorSpec, is_detector_name, parse_detector_name
from attnzoo.backbones.restoration import RestorationSpec, is_restoration_name, parse_restoration_name
from attnzoo.backbones.spec import BackboneSpec, parse_model_name
from attnzoo.backbones.video import ReIDSpec, is_reid_name, parse_reid_name

__all__ = ["CHECKPOINTS", "ZooEntry", "catalog", "list_pretrained", "resolve"]

# The trained entries ship with the source tree, beside the package (an editable install of a clone).
CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    task: str
    source: dict[str, str]
    sha256: str | None
    metrics: dict[str, float]
    license: str
    default: bool = False
    timm: str | None = None
    metrics_source: str | None = None
    torchvision: str | None = None
    sha256_prefix: str | None = None

    @property
    def spec(self) -> BackboneSpec | DetectorSpec | RestorationSpec | ReIDSpec:
        if is_reid_name(self.name):
            return parse_reid_name(self.name)[0]
        if is_detector_name(self.name):
            return parse_detector_name(self.name)[0]
        if is_restoration_name(self.name):
            return parse_restoration_name(self.name)[0]
        return parse_model_name(self.name)[0]

    @property
    def folder(self) -> Path | None:
        """The entry's model folder under ``checkpoints/``; None for a Hub or URL entry."""
        return CHECKPOINTS / self.source["folder"] if "folder" in self.source else None

    @property
    def repo(self) -> str | None:
        return self.source.get("repo")

    @property
    def url(self) -> str | None:
        return self.source.get("url")

    @property
    def torchvision_weights(self) -> WeightsEnum:
        """The torchvision weights enum member that ``torchvision`` names: its meta gives labels and metrics."""
        enum, _, member = self.torchvision.partition(".")
        return getattr(getattr(tv_detection, enum), member)

    @property
    def filename(self) -> str:
        """The weights' file name; for a URL entry, the URL's last part, the name torch.hub caches it under."""
        return PurePosixPath(urlparse(self.url).path).name if self.url is not None else self.source["filename"]

    @property
    def revision(self) -> str | None:
        return self.source.get("revision")

    @property
    def location(self) -> str:
        """Where the weights are, for people: ``checkpoints/<folder>``, ``<repo>@<revision>`` or the URL."""
        if self.folder is not None:
            return f"checkpoints/{self.source['folder']}"
        return self.url if self.url is not None else f"{self.repo}@{self.revision}"


@cache
def catalog() -> dict[str, ZooEntry]:
    """Name -> entry, read once from catalog.json."""
    data = json.loads(resources.files("attnzoo.zoo").joinpath("catalog.json").read_text())
    return {name: ZooEntry(name=name, **fields) for name, fields in data["entries"].items()}


def resolve(name: str) -> ZooEntry:
    """The entry for a zoo name, tagged or not; ValueError with the closest names otherwise."""
    entries = catalog()
    if name in entries:
        return entries[name]
    defaults = [e for e in entries.values() if e.default and e.spec.name == name]
    if defaults:
        return defaults[0]
    close = difflib.get_close_matches(name, list(entries) + [e.spec.name for e in entries.values()], n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{name!r} is not in the zoo.{hint} See attnzoo.list_models(pretrained=True) or `attnzoo zoo list`.")


def is_zoo_name(name: str) -> bool:
    try:
        resolve(name)
    except ValueError:
        return False
    return True


def list_pretrained(pattern: str = "*") -> list[str]:
    """Zoo names (with their tags) matching ``pattern``."""
    return sorted(fnmatch.filter(catalog(), pattern))
