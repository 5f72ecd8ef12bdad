"""The zoo catalog: names, timm's ImageNet entries fetched through the Hub client, sha256 checks, `attnzoo zoo`."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg

import attnzoo
from attnzoo.cli import main
from attnzoo.zoo import hub as zoo_hub
from attnzoo.data import DigitsData
from attnzoo.zoo.catalog import CHECKPOINTS, catalog, resolve

from ..backbones.test_checkpoint import timm_model


def mirror_timm_weights(hub, timm_name: str) -> tuple[torch.nn.Module, str]:
    """timm's repo layout (model.safetensors, no attnzoo config) with random weights, served by the mirror."""
    model = timm_model(timm_name.split(".")[0])
    model.reset_classifier(1000)
    repo = hub.mirror / "models" / "timm" / timm_name
    repo.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, repo / "model.safetensors")
    zoo_hub._git(repo, "init", "-q", "-b", "main")
    zoo_hub._git(repo, "add", "-A")
    zoo_hub._git(repo, "commit", "-q", "-m", "weights")
    return model.eval(), hashlib.sha256((repo / "model.safetensors").read_bytes()).hexdigest()


def test_catalog_entries_are_complete():
    entries = catalog()
    assert set(attnzoo.list_models(pretrained=True)) == set(entries)
    for name, entry in entries.items():
        assert entry.spec.name in attnzoo.list_models(), name
        if entry.url is not None:
            # torchvision's published pickles: tests/zoo/test_torchvision_weights.py checks them.
            assert entry.source.keys() == {"url"} and entry.torchvision and entry.sha256_prefix, name
            continue
        if entry.folder is not None:
            assert entry.source.keys() == {"folder", "filename"} and (entry.folder / "config.json").is_file(), name
            assert json.loads((entry.folder / "config.json").read_text())["name"] == name
        else:
            assert entry.source.keys() == {"repo", "filename", "revision"}
        assert entry.filename.endswith(".safetensors")
        if entry.timm:
            assert get_pretrained_cfg(entry.timm).hf_hub_id == entry.repo
        else:
            assert entry.sha256, f"{name}: entries this project trains record their sha256"
        assert entry.metrics and entry.license
    bases = [e.spec.name for e in entries.values() if e.default]
    assert len(bases) == len(set(bases)), "one default entry per network"
    assert resolve("resnet50-sk").name == "resnet50-sk.ra_in1k"
    with pytest.raises(ValueError, match=r"'resnet50-cbam' is not in the zoo\. Did you mean"):
        resolve("resnet50-cbam")


def test_zoo_commands_list_every_entry(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in catalog():
        assert f"| {name}" in out
    assert "| resnet50-sk.ra_in1k (default) | classification | 27.48 | imagenet_top1 80.162 |" in out
    # A detector is counted as its config.json builds it (a 64-channel FPN), as loading it does.
    loaded = attnzoo.load("fcos-resnet18n.shapes")
    assert f"| fcos-resnet18n.shapes (default) | detection | {sum(p.numel() for p in loaded.parameters()) / 1e6:.2f} |" in out
    assert main(["zoo", "info", "resnet50-sk"]) == 0
    assert '"repo": "timm/skresnext50_32x4d.ra_in1k"' in capsys.readouterr().out
    assert main(["zoo", "info", "resnet50-cbam"]) == 2
    assert "not in the zoo" in capsys.readouterr().err


def test_load_by_zoo_name_fetches_timm_weights(hub):
    ref, _ = mirror_timm_weights(hub, "skresnet18.ra_in1k")
    model = attnzoo.load("resnet18-sk")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    cfg = model.pretrained_cfg
    assert cfg["name"] == "resnet18-sk.ra_in1k" and len(cfg["labels"]) == 1000 and cfg["labels"][0] == "n01440764"
    assert cfg["input_size"] == [3, 224, 224] and cfg["crop_pct"] == 0.875 and not model.training


def test_create_model_pretrained_replaces_the_head(hub):
    ref, _ = mirror_timm_weights(hub, "skresnet18.ra_in1k")
    model = attnzoo.create_model("resnet18-sk", pretrained=True, num_classes=10)
    assert model.fc.out_features == 10 and model.pretrained_cfg["labels"] is None
    torch.testing.assert_close(model.conv1.weight, ref.conv1.weight)
    feats = attnzoo.create_model("resnet18-sk.ra_in1k", pretrained=True, features_only=True)
    assert feats.feature_info.channels() == [64, 64, 128, 256, 512]


def test_sha256_mismatch_raises_and_removes_the_bad_copy(hub, monkeypatch):
    ref, digest = mirror_timm_weights(hub, "skresnet18.ra_in1k")
    entry = catalog()["resnet18-sk.ra_in1k"]
    monkeypatch.setitem(catalog(), entry.name, dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(ValueError, match=rf"model.safetensors has sha256 {digest}, the catalog expects 0{{64}}"):
        attnzoo.load("resnet18-sk")
    assert not isinstance(try_to_load_from_cache(entry.repo, entry.filename, revision=entry.revision), str)

    monkeypatch.setitem(catalog(), entry.name, dataclasses.replace(entry, sha256=digest))
    model = attnzoo.load("resnet18-sk")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


DIGITS = sorted(name for name in catalog() if name.endswith(".digits"))


def test_every_digits_recipe_has_its_entry():
    recipes = sorted(p.stem for p in (CHECKPOINTS.parent / "tasks" / "classify").glob("*.digits.yaml"))
    assert recipes == DIGITS and len(DIGITS) == 7


@pytest.mark.parametrize("name", DIGITS)
def test_digits_entry_loads_offline_and_classifies_the_test_split(name, monkeypatch, tmp_path):
    # No Hub at all: an unreachable endpoint, offline mode, an empty cache.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    model = attnzoo.load(name)
    assert model.pretrained_cfg["name"] == name and model.pretrained_cfg["dataset"] == "digits"
    data = DigitsData(augment=False)
    assert list(model.pretrained_cfg["mean"]) == list(data.mean)
    x = torch.stack([data.test_set[i][0] for i in range(len(data.test_set))])
    with torch.no_grad():
        top1 = (model(x).argmax(1) == data.test_set.targets).float().mean().item() * 100
    # What the catalog records, to within one of the 270 images (float rounding on another machine).
    assert top1 == pytest.approx(catalog()[name].metrics["digits_test_top1"], abs=0.38)
    if name == "resnet20-cbam.digits":
        assert top1 >= 98.0


def test_digits_entry_with_a_changed_file_is_refused(monkeypatch):
    entry = catalog()["resnet20-cbam.digits"]
    monkeypatch.setitem(catalog(), entry.name, dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(ValueError, match=r"resnet20-cbam\.digits' \(checkpoints/resnet20-cbam\.digits\).*the catalog expects 0{64}"):
        attnzoo.load("resnet20-cbam.digits")
    missing = dataclasses.replace(entry, source={"folder": "nowhere", "filename": "model.safetensors"})
    monkeypatch.setitem(catalog(), entry.name, missing)
    with pytest.raises(ValueError, match="install attnzoo from a clone"):
        attnzoo.create_model("resnet20-cbam.digits", pretrained=True)
