"""torchvision's COCO detectors in the zoo: the catalog's URL entries, downloaded through torch.hub from a real
HTTP server on loopback, their sha256 prefix checked; create_model(..., pretrained=True); init_from."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants
from torch import nn
from torchvision.models.detection import FCOS_ResNet50_FPN_Weights
from torchvision.ops import FrozenBatchNorm2d

import attnzoo
from attnzoo.backbones import create_detector
from attnzoo.cli import main
from attnzoo.tasks.detection import ObjectDetector
from attnzoo.zoo.catalog import catalog, resolve

from ..backbones.test_detection import LOW_THRESH, assert_same_detections, torchvision_published

SMALL = dict(min_size=96, max_size=128)
ENTRIES = {f"{d}-resnet50": f"{d}-resnet50.tv_coco" for d in ("fasterrcnn", "retinanet", "fcos")}


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        self.server.requests.append(self.path)


@dataclass
class Server:
    root: Path
    url: str
    requests: list[str]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """torch.hub's checkpoint cache under a fresh TORCH_HOME, with downloads allowed."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def publish(server: Server, monkeypatch, detector: str, prefix: str | None = None) -> tuple[nn.Module, str]:
    """torchvision's network with random weights, served as torchvision names its files (the name ends in the
    sha256's first 8 hex digits); the catalog entry points at it and expects ``prefix`` (the true one by default)."""
    theirs = torchvision_published(detector, **SMALL, **LOW_THRESH[detector])
    buffer = io.BytesIO()
    torch.save(theirs.state_dict(), buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    filename = f"{detector}_resnet50_fpn_coco-{digest[:8]}.pth"
    (server.root / filename).write_bytes(buffer.getvalue())
    entry = catalog()[ENTRIES[f"{detector}-resnet50"]]
    served = dataclasses.replace(entry, source={"url": f"{server.url}/{filename}"}, sha256_prefix=prefix or digest[:8])
    monkeypatch.setitem(catalog(), entry.name, served)
    return theirs, filename


def images() -> list[torch.Tensor]:
    return [torch.rand(3, 100, 120, generator=torch.Generator().manual_seed(3))]


def test_catalog_entries_are_torchvisions_published_files():
    for network, name in ENTRIES.items():
        entry = resolve(network)
        weights = entry.torchvision_weights
        assert entry.name == name and entry.task == "detection" and entry.url == weights.url
        assert entry.filename.endswith(f"-{entry.sha256_prefix}.pth") and len(entry.sha256_prefix) == 8
        assert entry.metrics == {"coco_val2017_box_map": weights.meta["_metrics"]["COCO-val2017"]["box_map"]}
        assert "torchvision" in entry.metrics_source and entry.license == "bsd-3-clause"
    assert attnzoo.list_models("*.tv_coco", pretrained=True) == sorted(ENTRIES.values())


@pytest.mark.parametrize("detector", ["fasterrcnn", "retinanet", "fcos"])
def test_pretrained_downloads_into_torch_hub_and_gives_torchvisions_detections(server, hub_dir, monkeypatch, detector):
    theirs, filename = publish(server, monkeypatch, detector)
    ours = attnzoo.create_model(f"{detector}-resnet50", pretrained=True, **SMALL, **LOW_THRESH[detector])
    assert [p.name for p in hub_dir.iterdir()] == [filename] and server.requests == [f"/{filename}"]
    eps = {m.eps for m in ours.modules() if isinstance(m, FrozenBatchNorm2d)}
    assert eps == ({1e-5} if detector == "fcos" else {0.0})
    assert_same_detections(ours, theirs, images())

    cfg = ours.pretrained_cfg
    assert cfg["name"] == ENTRIES[f"{detector}-resnet50"] and cfg["num_classes"] == 91 and cfg["min_size"] == 96
    # Label i is COCO's category id i, as in torchvision: its 91 categories with "__background__" and "N/A".
    categories = FCOS_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    assert cfg["labels"] == categories[1:] and cfg["category_ids"] == list(range(1, 91))
    assert cfg["labels"][0] == "person" and cfg["labels"][11] == "N/A" and cfg["labels"][89] == "toothbrush"
    assert cfg["dataset"] == "coco" and cfg["license"] == "bsd-3-clause"


def test_a_cached_file_is_not_downloaded_again(server, hub_dir, monkeypatch):
    theirs, filename = publish(server, monkeypatch, "fcos")
    hub_dir.mkdir(parents=True)
    shutil.copy(server.root / filename, hub_dir / filename)  # as torchvision's own builder leaves it
    model = attnzoo.load("fcos-resnet50.tv_coco", local_files_only=True)
    assert server.requests == [] and not model.training
    assert model.pretrained_cfg["min_size"] == 800 and model.pretrained_cfg["score_thresh"] == 0.2
    mine, ref = model.state_dict(), theirs.state_dict()
    assert mine.keys() == ref.keys() and all(torch.equal(mine[k], ref[k]) for k in ref)


def test_a_wrong_sha256_prefix_is_refused_and_nothing_is_cached(server, hub_dir, monkeypatch):
    _, filename = publish(server, monkeypatch, "fcos", prefix="00000000")
    with pytest.raises(ValueError, match=r"fcos-resnet50\.tv_coco.*sha256 does not start with 00000000.*nothing was kept"):
        attnzoo.create_model("fcos-resnet50", pretrained=True)
    assert server.requests == [f"/{filename}"] and list(hub_dir.iterdir()) == []

    # A bad file already in the cache (under the name the entry expects) is removed, not loaded.
    (hub_dir / filename).write_bytes(b"not the weights")
    with pytest.raises(ValueError, match=r"does not start with 00000000, the catalog's .*the bad copy .* was removed"):
        attnzoo.load("fcos-resnet50.tv_coco")
    assert list(hub_dir.iterdir()) == []


def test_offline_or_unreachable_is_a_clear_error(hub_dir, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = catalog()["fcos-resnet50.tv_coco"]
    url = f"http://127.0.0.1:{port}/{entry.filename}"
    monkeypatch.setitem(catalog(), entry.name, dataclasses.replace(entry, source={"url": url}))
    with pytest.raises(ValueError, match=rf"is not in torch.hub's cache \({re.escape(str(hub_dir))}.*could not be downloaded.*TORCH_HOME"):
        attnzoo.create_model("fcos-resnet50", pretrained=True)
    with pytest.raises(ValueError, match=r"downloads are off \(HF_HUB_OFFLINE or local_files_only\): download http"):
        attnzoo.load("fcos-resnet50", local_files_only=True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="downloads are off"):
        attnzoo.load("fcos-resnet50")
    assert not hub_dir.exists() or list(hub_dir.iterdir()) == []


def test_init_from_loads_what_matches_and_reports_the_rest(server, hub_dir, monkeypatch):
    theirs, _ = publish(server, monkeypatch, "fcos")
    settings = dict(num_classes=9, min_size=64, max_size=64)
    torch.manual_seed(1)
    fresh = create_detector("fcos-resnet50-gc", **settings).state_dict()
    torch.manual_seed(1)  # the same initialisation for what is not loaded
    kept = r"Kept their initialisation .*: backbone\.body\.layer2\.0\.se, .*, head\.classification_head\.cls_logits\."
    unused = r" Unused from 'fcos-resnet50.tv_coco': head\.classification_head\.cls_logits\."
    with pytest.warns(UserWarning, match=r"init_from 'fcos-resnet50.tv_coco' loaded \d+ of \d+ tensors\. " + kept + unused):
        model = create_detector("fcos-resnet50-gc", init_from="fcos-resnet50.tv_coco", **settings)

    state, ref = model.state_dict(), theirs.state_dict()
    head = ["head.classification_head.cls_logits.weight", "head.classification_head.cls_logits.bias"]
    attention = [k for k in state if ".se." in k]
    assert {"backbone.body.layer2.0.se.mlp_add.fc1.weight", "backbone.body.layer4.2.se.mlp_add.fc2.bias"} < set(attention)
    report = model.pretrained_cfg["init_from"]
    assert report["name"] == "fcos-resnet50.tv_coco"
    assert sorted(report["not_loaded"]) == sorted(attention + head) and sorted(report["unused"]) == sorted(head)
    loaded = [k for k in state if k not in report["not_loaded"]]
    assert all(torch.equal(state[k], ref[k]) for k in loaded)
    torch.testing.assert_close(state["backbone.body.conv1.weight"], ref["backbone.body.conv1.weight"], rtol=0, atol=0)
    assert all(torch.equal(state[k], fresh[k]) for k in attention + head)
    assert not state["backbone.body.layer3.0.se.mlp_add.fc2.weight"].any()  # GC's last conv starts at 0
    assert state[head[0]].shape[0] == 9

    # Trained weights: frozen BN, and torchvision's 3 trainable layers.
    assert not [m for m in model.backbone.body.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not model.backbone.body.conv1.weight.requires_grad
    assert model.backbone.body.layer2[0].se.mlp_add.fc1.weight.requires_grad
    assert model.pretrained_cfg["frozen_bn"] and model.pretrained_cfg["trainable_backbone_layers"] == 3

    # The task takes it too (attnzoo fit --model.init_from fcos-resnet50.tv_coco), for K = 8 categories.
    with pytest.warns(UserWarning, match="cls_logits"):
        task = ObjectDetector("resnet50-gc", num_classes=8, init_from="fcos-resnet50.tv_coco",
                              detector_kwargs=dict(min_size=64, max_size=64))
    assert task.hparams.init_from == "fcos-resnet50.tv_coco"
    assert torch.equal(task.model.backbone.body.layer4[2].conv3.weight, ref["backbone.body.layer4.2.conv3.weight"])
    # With another class count, pretrained=True starts the same way (a new class head, reported).
    with pytest.warns(UserWarning, match="cls_logits"):
        nine = attnzoo.create_model("fcos-resnet50", pretrained=True, **settings)
    assert nine.pretrained_cfg["init_from"]["not_loaded"] == head


@pytest.mark.parametrize(
    "name, init_from, message",
    [
        ("retinanet-resnet50-gc", "fcos-resnet50.tv_coco", r"retinanet-resnet50-gc: init_from takes .* 'fcos-resnet50.tv_coco' is 'fcos-resnet50'"),
        ("fcos-resnet18", "fcos-resnet50", r"fcos-resnet18: init_from takes .*\(fcos-resnet18\[-<attention>\]\).*'fcos-resnet50'"),
        ("fcos-resnet50", "resnet50-sk", r"'resnet50-sk.ra_in1k' is 'resnet50-sk'"),
        ("fcos-resnet50", "fcos-resnet50-gc.coco", "is not in the zoo"),
    ],
)
def test_init_from_another_network_is_refused(hub_dir, name, init_from, message):
    with pytest.raises(ValueError, match=message):
        create_detector(name, init_from=init_from)
    assert not hub_dir.exists()


def test_bad_combinations_are_refused():
    with pytest.raises(ValueError, match="not both checkpoint_path and init_from"):
        create_detector("fcos-resnet50", checkpoint_path="x.pth", init_from="fcos-resnet50.tv_coco")
    with pytest.raises(ValueError, match=r"no weights for this detector \(its detectors: fasterrcnn-resnet50.tv_coco, "):
        attnzoo.create_model("fcos-resnet50-gc", pretrained=True)
    with pytest.raises(ValueError, match="cannot be changed with pretrained=True"):
        attnzoo.create_model("fcos-resnet50", pretrained=True, stages=(3,))


def test_zoo_commands_show_the_coco_entries(capsys):
    assert main(["zoo", "list", "*.tv_coco"]) == 0
    out = capsys.readouterr().out
    assert "| fcos-resnet50.tv_coco (default) | detection | 32.32 | coco_val2017_box_map 39.2 | https://" in out
    assert main(["zoo", "info", "retinanet-resnet50"]) == 0
    out = capsys.readouterr().out
    assert '"sha256_prefix": "eeacb38b"' in out and '"detector": "retinanet"' in out
