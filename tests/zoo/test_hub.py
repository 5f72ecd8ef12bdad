"""save_pretrained -> publish -> load, through the real huggingface_hub client against olah on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import huggingface_hub.constants as hf_constants
import pytest
import torch
from huggingface_hub import ModelCard

import attnzoo
from attnzoo.zoo import hub as zoo_hub

from ..attention.helpers import randomize_batchnorm, randomize_zero_params


def trained_like(name: str = "resnet20-cbam", classes: int = 4) -> torch.nn.Module:
    model = randomize_batchnorm(randomize_zero_params(attnzoo.create_model(name, num_classes=classes)))
    model.pretrained_cfg.update(labels=[f"class{i}" for i in range(classes)], dataset="digits")
    return model.eval()


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_save_writes_a_hub_folder_and_loads_back(tmp_path):
    model = trained_like()
    folder = attnzoo.save_pretrained(model, tmp_path / "m", metrics={"top1": 98.5}, recipe="trainer:\n  max_epochs: 3\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"] == {"arch": "resnet20", "attention": "cbam", "stages": None, "attention_kwargs": {}}
    assert config["labels"] == ["class0", "class1", "class2", "class3"] and config["input_size"] == [3, 32, 32]
    assert config["attnzoo_version"] == attnzoo.__version__

    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "attnzoo" and "attention:cbam" in card.data.tags
    assert card.data.eval_results[0].metric_type == "top1" and card.data.eval_results[0].metric_value == 98.5
    assert "max_epochs: 3" in card.text and "CBAM: Convolutional Block Attention Module" in card.text

    loaded = attnzoo.load(folder)
    assert not loaded.training and loaded.pretrained_cfg["labels"] == config["labels"]
    same_outputs(model, loaded)


def test_save_replaces_an_existing_folder(tmp_path):
    attnzoo.save_pretrained(trained_like(), tmp_path / "m")
    (tmp_path / "m" / "stale.txt").write_text("old")
    model = trained_like("resnet20-se")
    attnzoo.save_pretrained(model, tmp_path / "m")
    assert not (tmp_path / "m" / "stale.txt").exists()
    same_outputs(model, attnzoo.load(tmp_path / "m"))


def test_round_trip_through_the_mirror_and_revision_pinning(tmp_path, hub):
    first = trained_like()
    attnzoo.save_pretrained(first, tmp_path / "v1")
    commit = attnzoo.publish(tmp_path / "v1", "acme/digits-cbam", revision="v1", mirror=hub.mirror)
    assert (hub.mirror / "models" / "acme" / "digits-cbam" / "model.safetensors").is_file()
    same_outputs(first, attnzoo.load("acme/digits-cbam"))

    second = trained_like()
    attnzoo.save_pretrained(second, tmp_path / "v2")
    attnzoo.publish(tmp_path / "v2", "acme/digits-cbam", mirror=hub.mirror)
    same_outputs(second, attnzoo.load("acme/digits-cbam"))
    same_outputs(first, attnzoo.load("acme/digits-cbam", revision="v1"))  # the tag keeps the old weights
    same_outputs(first, attnzoo.load("acme/digits-cbam", revision=commit))


def test_cached_copy_loads_offline(tmp_path, hub, monkeypatch):
    model = trained_like()
    attnzoo.save_pretrained(model, tmp_path / "m")
    attnzoo.publish(tmp_path / "m", "acme/cached", mirror=hub.mirror)
    attnzoo.load("acme/cached")  # fills the cache
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    same_outputs(model, attnzoo.load("acme/cached"))
    same_outputs(model, attnzoo.load("acme/cached", local_files_only=True))
    with pytest.raises(ValueError, match=r"(?s)'acme/never-fetched' is not in the local cache.*attnzoo.load\('acme/never-fetched'\)"):
        attnzoo.load("acme/never-fetched")


def test_an_unreachable_hub_is_not_called_offline_mode(tmp_path, monkeypatch):
    """No network (a closed port), offline mode not set: the error says so, and where else to load from."""
    import huggingface_hub.utils._http as hf_http

    from .conftest import _free_port

    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)  # huggingface_hub's retries, without the waits
    for name in ("resnet50-sk", "acme/somewhere"):
        with pytest.raises(ValueError) as raised:
            attnzoo.load(name)
        message = str(raised.value)
        assert f"the Hub at {endpoint} could not be reached" in message, message
        assert "HF_ENDPOINT" in message and "attnzoo.load('path/to/folder')" in message
        assert "downloads are off" not in message and str(tmp_path / "hub") in message


def test_environment_variables_are_honoured(tmp_path, hub):
    """HF_ENDPOINT and HF_HOME as a user sets them, then HF_HUB_OFFLINE=1 reusing the cache: in fresh processes."""
    attnzoo.save_pretrained(trained_like(), tmp_path / "m")
    attnzoo.publish(tmp_path / "m", "acme/env", mirror=hub.mirror)
    home = tmp_path / "user-home"
    script = "import attnzoo, torch; m = attnzoo.load('acme/env'); print(m.pretrained_cfg['name'])"
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home)}
    env.pop("HF_HUB_OFFLINE", None)
    online = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert online.returncode == 0, online.stderr
    assert online.stdout.strip() == "resnet20-cbam" and (home / "hub").is_dir()
    env.update(HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens there: only the cache can answer
    offline = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr


def test_pickle_only_repo_is_refused(tmp_path, hub):
    folder = tmp_path / "m"
    attnzoo.save_pretrained(trained_like(), folder)
    (folder / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"only pickle files \(pytorch_model.bin\), which attnzoo never unpickles"):
        attnzoo.load(folder)
    repo = hub.mirror / "models" / "acme" / "pickled"
    repo.mkdir(parents=True)
    for f in folder.iterdir():
        (repo / f.name).write_bytes(f.read_bytes())
    zoo_hub._git(repo, "init", "-q", "-b", "main")
    zoo_hub._git(repo, "add", "-A")
    zoo_hub._git(repo, "commit", "-q", "-m", "pickles")
    with pytest.raises(ValueError, match=r"'acme/pickled' has no model.safetensors, only pickle files \(pytorch_model.bin\)"):
        attnzoo.load("acme/pickled")


def test_truncated_weights_name_the_file(tmp_path):
    folder = attnzoo.save_pretrained(trained_like(), tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model.safetensors' is not a readable safetensors file"):
        attnzoo.load(folder)


def test_missing_repo_and_bad_sources(tmp_path, hub):
    with pytest.raises(ValueError, match="'acme/nothing' does not exist"):
        attnzoo.load("acme/nothing")
    for bad in ("../etc", "acme/../x", "not a repo", "a/b/c"):
        with pytest.raises(ValueError, match=r"is neither a zoo name .*, a model folder, nor a Hub repo id"):
            attnzoo.load(bad)
    with pytest.raises(ValueError, match="no config.json"):
        attnzoo.load(tmp_path)
    with pytest.raises(ValueError, match="repo_id must look like 'org/name'"):
        attnzoo.publish(attnzoo.save_pretrained(trained_like(), tmp_path / "m"), "../evil", mirror=hub.mirror)
    with pytest.raises(ValueError, match="not a saved model folder"):
        attnzoo.publish(tmp_path / "empty", "acme/x", mirror=hub.mirror)


def test_publish_to_the_hub_calls_huggingface_hub(tmp_path, monkeypatch):
    """No network here: record what publish asks of huggingface_hub, and check it asks nothing more."""
    folder = attnzoo.save_pretrained(trained_like(), tmp_path / "m")
    calls = []

    class Recorder:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def create_branch(self, repo_id, **kwargs):
            calls.append(("create_branch", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return type("CommitInfo", (), {"oid": "abc123"})()

    monkeypatch.setattr(zoo_hub, "HfApi", Recorder)
    assert attnzoo.publish(folder, "acme/digits", revision="v2", token="tok", private=True) == "abc123"
    assert calls == [
        ("init", "tok"),
        ("create_repo", "acme/digits", {"private": True, "exist_ok": True}),
        ("create_branch", "acme/digits", {"branch": "v2", "exist_ok": True}),
        (
            "upload_folder",
            {"folder_path": str(folder), "repo_id": "acme/digits", "revision": "v2", "commit_message": "Publish resnet20-cbam"},
        ),
    ]


def test_a_detector_saves_and_loads_back_with_its_settings(tmp_path):
    from timm.layers import freeze_batch_norm_2d
    from torchvision.ops.misc import FrozenBatchNorm2d

    # A frozen-BN state dict in torchvision's COCO format: RetinaNet then runs with BN epsilon 0.
    # Evaluation at other sizes than training's must survive: the detections below differ otherwise.
    settings = dict(min_size=64, max_size=96, test_min_size=80, test_max_size=112, score_thresh=0.0, fpn_channels=32)
    source = attnzoo.create_model("retinanet-resnet18-se", num_classes=4, **settings)
    source.backbone.body = freeze_batch_norm_2d(source.backbone.body)
    randomize_batchnorm(source)
    torch.save(source.state_dict(), tmp_path / "retinanet.pth")
    model = attnzoo.create_model("retinanet-resnet18-se", num_classes=4, checkpoint_path=tmp_path / "retinanet.pth",
                                 **settings).eval()
    model.pretrained_cfg.update(labels=["a", "b", "c"], category_ids=[5, 7, 9], dataset="shapes")
    attnzoo.save_pretrained(model, tmp_path / "det", metrics={"test/map_50": 0.5})

    config = json.loads((tmp_path / "det" / "config.json").read_text())
    assert config["task"] == "detection" and config["spec"]["detector"] == "retinanet"
    assert config["spec"]["backbone"]["attention"] == "se" and config["frozen_bn_eps"] == 0.0
    assert config["min_size"] == 64 and config["fpn_channels"] == 32 and config["category_ids"] == [5, 7, 9] and config["labels"] == ["a", "b", "c"]
    assert (config["test_min_size"], config["test_max_size"]) == (80, 112)
    card = ModelCard.load(tmp_path / "det" / "README.md").content
    assert "object-detection" in card and "min_size 80 / max_size 112 for evaluation" in card

    loaded = attnzoo.load(tmp_path / "det")
    assert {m.eps for m in loaded.modules() if isinstance(m, FrozenBatchNorm2d)} == {0.0}
    assert loaded.pretrained_cfg["category_ids"] == [5, 7, 9] and not loaded.training
    images = [torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(1))]
    with torch.no_grad():
        expected, got = model(images)[0], loaded(images)[0]
    assert len(expected["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_a_restoration_network_saves_and_loads_back_with_its_sizes_and_degradation(tmp_path):
    model = attnzoo.create_model("rir-cbam", in_channels=3, channels=8, groups=2, blocks=1, unshuffle=2, stages=(2,))
    model = randomize_zero_params(model).eval()
    model.pretrained_cfg.update(degradation={"kind": "jpeg", "quality": [10, 40]}, dataset="photos")
    attnzoo.save_pretrained(model, tmp_path / "rir", metrics={"test/psnr": 31.2})

    config = json.loads((tmp_path / "rir" / "config.json").read_text())
    assert config["task"] == "restoration" and config["in_chans"] == 3
    assert config["spec"] == {"body": "rir", "attention": "cbam", "stages": [2], "attention_kwargs": {}}
    assert config["network_kwargs"] == {"channels": 8, "groups": 2, "blocks": 1, "unshuffle": 2}
    assert config["degradation"] == {"kind": "jpeg", "quality": [10, 40]}
    card = ModelCard.load(tmp_path / "rir" / "README.md")
    assert card.data.pipeline_tag == "image-to-image" and "JPEG artefacts of quality [10, 40]" in card.content

    loaded = attnzoo.load(tmp_path / "rir")
    assert not loaded.training and loaded.pretrained_cfg["degradation"] == config["degradation"]
    images = torch.rand(2, 3, 23, 18, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
