"""Save, publish and load attnzoo models in the Hugging Face Hub layout.

A model folder (and a Hub repo) holds ``config.json`` (how to rebuild the
network and feed it), ``model.safetensors`` and ``README.md`` (a model card).
Weights are read from safetensors, with one exception: the COCO detectors that
torchvision publishes only as pickles (.pth, the catalog's ``url`` entries),
read with ``torch.load(weights_only=True)``. Downloads go through
huggingface_hub, so its cache and ``HF_ENDPOINT``, ``HF_HOME``,
``HF_HUB_OFFLINE`` and tokens apply; torchvision's files go through torch.hub,
into its cache (``TORCH_HOME``), where torchvision keeps them too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.hub
from huggingface_hub import HfApi, hf_hub_download, try_to_load_from_cache
from timm.data import ImageNetInfo
from timm.models import get_pretrained_cfg
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    FileMetadataError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from safetensors.torch import save_file
from torch import nn
from torchvision.models.detection._utils import overwrite_eps

from attnzoo.backbones import AttentionResNet, BackboneSpec
from attnzoo.backbones.checkpoint import load_checkpoint
from attnzoo.backbones.detection import _ZERO_EPS_COCO, DetectorSpec, create_detector
from attnzoo.backbones.restoration import RestorationNetwork, RestorationSpec, create_restorer
from attnzoo.backbones.video import VideoReIDNetwork, create_reid_network

from .cards import render_card
from .catalog import ZooEntry, is_zoo_name, resolve

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "load", "publish", "save_pretrained"]

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# org/name as the Hub allows them; no "..", no leading or trailing separators.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def _is_repo_id(value: object) -> bool:
    return isinstance(value, str) and bool(_REPO_ID.match(value)) and ".." not in value


def _version() -> str:
    from attnzoo import __version__

    return __version__


def _spec_dict(spec: BackboneSpec | RestorationSpec) -> dict[str, Any]:
    """A backbone's or restoration network's spec as JSON: its fields, in order (``arch`` or ``body`` first)."""
    return {
        **dataclasses.asdict(spec),
        "stages": list(spec.stages) if spec.stages else None,
        "attention_kwargs": dict(spec.attention_kwargs),
    }


def _detector_config(model: nn.Module) -> dict[str, Any]:
    spec, cfg = model.spec, model.pretrained_cfg
    return {
        "name": cfg.get("name", spec.name),
        "spec": {"detector": spec.detector, "backbone": _spec_dict(spec.backbone)},
        "task": "detection",
        "num_classes": cfg["num_classes"],
        "fpn_channels": cfg["fpn_channels"],
        "labels": cfg.get("labels"),
        "category_ids": cfg.get("category_ids"),
        "dataset": cfg.get("dataset"),
        "min_size": cfg["min_size"],
        "max_size": cfg["max_size"],
        "test_min_size": cfg.get("test_min_size"),
        "test_max_size": cfg.get("test_max_size"),
        "image_mean": list(cfg["image_mean"]),
        "image_std": list(cfg["image_std"]),
        "score_thresh": cfg["score_thresh"],
        "nms_thresh": cfg["nms_thresh"],
        "detections_per_img": cfg["detections_per_img"],
        # What the network is rebuilt with; the fields above say the same for a reader.
        "detector_kwargs": dict(cfg.get("detector_kwargs") or {}),
        "frozen_bn_eps": cfg.get("frozen_bn_eps"),
        "license": cfg.get("license", "apache-2.0"),
        "attnzoo_version": _version(),
    }


def _restorer_config(model: RestorationNetwork) -> dict[str, Any]:
    spec, cfg = model.spec, model.pretrained_cfg
    return {
        "name": cfg.get("name", spec.name),
        "spec": _spec_dict(spec),
        "task": "restoration",
        "in_chans": model.in_channels,
        "network_kwargs": dict(cfg.get("network_kwargs") or {}),
        # What it was trained to undo ({"kind": "gaussian", "sigma": 25} ...); None for an untrained network.
        "degradation": cfg.get("degradation"),
        "dataset": cfg.get("dataset"),
        "license": cfg.get("license", "apache-2.0"),
        "attnzoo_version": _version(),
    }


def _reid_config(model: VideoReIDNetwork) -> dict[str, Any]:
    spec, cfg = model.spec, model.pretrained_cfg
    return {
        "name": cfg.get("name", spec.name),
        "spec": {
            "backbone": _spec_dict(spec.backbone),
            "temporal": spec.temporal,
            "temporal_kwargs": dict(spec.temporal_kwargs),
        },
        "task": "reid",
        "num_classes": model.num_classes,
        "input_size": list(cfg["input_size"]),
        "seq_len": cfg["seq_len"],
        "embedding_dim": model.embedding_dim,
        "last_stride": model.last_stride,
        "mean": cfg.get("mean"),
        "std": cfg.get("std"),
        "dataset": cfg.get("dataset"),
        "license": cfg.get("license", "apache-2.0"),
        "attnzoo_version": _version(),
    }


def model_config(model: nn.Module) -> dict[str, Any]:
    """What ``config.json`` records of ``model``: enough to rebuild it and to feed it."""
    if isinstance(getattr(model, "spec", None), DetectorSpec):
        return _detector_config(model)
    if isinstance(model, RestorationNetwork):
        return _restorer_config(model)
    if isinstance(model, VideoReIDNetwork):
        return _reid_config(model)
    if not isinstance(model, AttentionResNet):
        raise ValueError(
            "save_pretrained takes an attnzoo network (attnzoo.create_model: a backbone, a detector, a "
            f"restoration network or a re-ID network), got {type(model).__name__}"
        )
    spec, cfg = model.spec, model.pretrained_cfg
    return {
        "name": cfg.get("name", spec.name),
        "spec": _spec_dict(spec),
        "task": cfg.get("task", "classification"),
        "num_classes": model.num_classes,
        "labels": cfg.get("labels"),
        "dataset": cfg.get("dataset"),
        "input_size": list(cfg["input_size"]),
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "interpolation": cfg["interpolation"],
        "crop_pct": cfg["crop_pct"],
        "license": cfg.get("license", "apache-2.0"),
        "attnzoo_version": _version(),
    }


def _replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` to ``target``, replacing what was there."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


def save_pretrained(
    model: nn.Module,
    directory: str | Path,
    *,
    metrics: Mapping[str, float] | None = None,
    recipe: str | None = None,
    training: str | None = None,
) -> Path:
    """Write a Hub-ready folder: config.json, model.safetensors and a model card (README.md).

    ``metrics``, ``recipe`` (the YAML it was trained with) and ``training`` (a sentence: how long,
    on what hardware) go into the card.

    It is written to a temporary folder beside ``directory`` and renamed into
    place, so an interrupted save leaves no half-written folder.
    """
    directory = Path(directory)
    config = model_config(model)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        render_card(config, metrics, recipe, training).save(tmp / CARD_NAME)
        _replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def build_from_config(config: Mapping[str, Any], weights: Path, **kwargs: Any) -> nn.Module:
    """The network that ``config`` describes, with ``weights`` loaded strictly.

    ``kwargs`` go to timm's ResNet for a backbone (a re-ID network's too), to torchvision's constructor for
    a detector, to the network for a restoration network.
    """
    if config.get("task") == "detection":
        # Loading trained weights freezes the backbone's BN and early layers, as torchvision does for
        # fine-tuning; a safetensors file carries no BN epsilon, so config.json does.
        model = create_detector(
            config["spec"],
            num_classes=config["num_classes"],
            fpn_channels=config["fpn_channels"],
            checkpoint_path=weights,
            **{**config.get("detector_kwargs", {}), **kwargs},
        )
        if config.get("frozen_bn_eps") is not None:
            overwrite_eps(model, config["frozen_bn_eps"])
        # kwargs may override config's min_size, thresholds ...: what the network was built with stands.
        model.pretrained_cfg.update({k: v for k, v in config.items() if model.pretrained_cfg.get(k) is None})
    elif config.get("task") == "restoration":
        model = create_restorer(
            config["spec"],
            in_channels=config["in_chans"],
            checkpoint_path=weights,
            **{**config.get("network_kwargs", {}), **kwargs},
        )
        model.pretrained_cfg.update(config)
    elif config.get("task") == "reid":
        model = create_reid_network(
            config["spec"],
            num_classes=config["num_classes"],
            last_stride=config["last_stride"],
            input_size=config["input_size"][1:],
            seq_len=config["seq_len"],
            checkpoint_path=weights,
            **{"in_chans": config["input_size"][0], **kwargs},
        )
        model.pretrained_cfg.update({**config, "input_size": tuple(config["input_size"])})
    else:
        model = AttentionResNet(BackboneSpec.from_any(config["spec"]), num_classes=config["num_classes"], **kwargs)
        load_checkpoint(model, weights)
        model.pretrained_cfg.update(config)
    return model


def _refuse_pickles(files: list[str], source: str) -> None:
    pickles = [f for f in files if f.endswith(_PICKLE_SUFFIXES)]
    raise ValueError(
        f"{source} has no {WEIGHTS_NAME}"
        + (f", only pickle files ({', '.join(pickles)}), which attnzoo never unpickles" if pickles else "")
        + "; publish it with attnzoo.save_pretrained / attnzoo.publish"
    )


def _read_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / CONFIG_NAME).read_text())


def _from_folder(folder: Path) -> nn.Module:
    if not (folder / CONFIG_NAME).is_file():
        raise ValueError(f"folder {str(folder)!r} has no {CONFIG_NAME}: it is not an attnzoo model folder")
    if not (folder / WEIGHTS_NAME).is_file():
        _refuse_pickles([p.name for p in folder.iterdir()], f"folder {str(folder)!r}")
    return build_from_config(_read_config(folder), folder / WEIGHTS_NAME).eval()


def _download(
    repo_id: str, filename: str, revision: str | None, local_files_only: bool, where: str, source: str | None = None
) -> Path:
    """A file of a Hub repo in the local cache; ``source`` is what to pass to attnzoo.load to fetch it again."""
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=local_files_only))
    except LocalEntryNotFoundError as err:
        missing = f"{where} is not in the local cache ({hf_constants.HF_HUB_CACHE})"
        fetch_once = f"python -c \"import attnzoo; attnzoo.load('{source or repo_id}')\""
        if local_files_only or hf_constants.HF_HUB_OFFLINE:
            raise ValueError(
                f"{missing} and downloads are off (HF_HUB_OFFLINE or local_files_only); "
                f"fetch it once with network access: {fetch_once}"
            ) from None
        # huggingface_hub says the same thing whether the network is down or the endpoint is not a Hub.
        cause = err.__cause__
        problem = (
            f"the server at {hf_constants.ENDPOINT} answered without the file's metadata ({cause}): "
            "is HF_ENDPOINT a Hub or a Hub mirror?"
            if isinstance(cause, FileMetadataError)
            else f"the Hub at {hf_constants.ENDPOINT} could not be reached ({cause or err})"
        )
        raise ValueError(
            f"{missing} and {problem}. Point HF_ENDPOINT at a Hub or a mirror you can reach (e.g. a self-hosted "
            f"olah: HF_ENDPOINT=http://mirror-host:8090), load a model folder by its path "
            f"(attnzoo.load('path/to/folder')), or fetch it once with network access: {fetch_once}"
        ) from None


def _from_hub(repo_id: str, revision: str | None, local_files_only: bool) -> nn.Module:
    where = f"Hub repo {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        config = _download(repo_id, CONFIG_NAME, revision, local_files_only, where)
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise ValueError(
            f"{where} does not exist, has no {CONFIG_NAME}, or needs a token you do not have (HF_TOKEN)"
        ) from None
    try:
        weights = _download(repo_id, WEIGHTS_NAME, revision, local_files_only, where)
    except (RepositoryNotFoundError, EntryNotFoundError):  # self-hosted mirrors answer a missing file as a missing repo
        _refuse_pickles(HfApi().list_repo_files(repo_id, revision=revision or "main"), where)
    return build_from_config(json.loads(config.read_text()), weights).eval()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _timm_config(entry: ZooEntry) -> dict[str, Any]:
    """config.json's fields for timm's ImageNet weights, from timm's own data config."""
    cfg = get_pretrained_cfg(entry.timm).to_dict()
    spec = entry.spec
    return {
        "name": entry.name,
        "spec": {"arch": spec.arch, "attention": spec.attention, "stages": None, "attention_kwargs": {}},
        "task": entry.task,
        "num_classes": cfg["num_classes"],
        "labels": ImageNetInfo().label_names(),
        "dataset": "imagenet-1k",
        "input_size": list(cfg["input_size"]),
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "interpolation": cfg["interpolation"],
        "crop_pct": cfg["crop_pct"],
        "license": entry.license,
    }


def _torchvision_config(entry: ZooEntry) -> dict[str, Any]:
    """config.json's fields for torchvision's COCO weights, from its weights enum; the rest (min_size,
    thresholds ...) are the torchvision constructor's defaults, which the built network records."""
    categories = entry.torchvision_weights.meta["categories"]
    spec = entry.spec
    return {
        "name": entry.name,
        "spec": {"detector": spec.detector, "backbone": _spec_dict(spec.backbone)},
        "task": entry.task,
        "num_classes": len(categories),
        "fpn_channels": 256,
        # torchvision's label i is COCO's category id i; "N/A" fills the ids COCO leaves unused.
        "labels": categories[1:],
        "category_ids": list(range(1, len(categories))),
        "dataset": "coco",
        "detector_kwargs": {},
        "frozen_bn_eps": 0.0 if spec.detector in _ZERO_EPS_COCO else None,
        "license": entry.license,
    }


def _torch_hub_file(entry: ZooEntry) -> Path:
    # torchvision's own cache (load_state_dict_from_url): a file it fetched before is not fetched again.
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.filename


def _fetch_url(entry: ZooEntry, local_files_only: bool) -> Path:
    """torchvision's published file in torch.hub's cache, downloaded if missing, its sha256 prefix checked."""
    path = _torch_hub_file(entry)
    where = f"zoo entry {entry.name!r} ({entry.url})"
    mismatch = f"{where}: the file's sha256 does not start with {entry.sha256_prefix}, the catalog's"
    if path.is_file():
        actual = _sha256(path)
        if not actual.startswith(entry.sha256_prefix):
            path.unlink()
            raise ValueError(f"{mismatch} ({actual}); the bad copy {path} was removed from the cache")
        return path
    fetch = (
        f"download {entry.url} where there is network access and put it at {path} (torch.hub's cache; set "
        "TORCH_HOME to move it), or pass the file as checkpoint_path"
    )
    if local_files_only or hf_constants.HF_HUB_OFFLINE:
        raise ValueError(
            f"{where} is not in torch.hub's cache ({path}) and downloads are off (HF_HUB_OFFLINE or "
            f"local_files_only): {fetch}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # torch.hub writes to a temporary file beside path and renames it only once the hash matches.
        torch.hub.download_url_to_file(entry.url, str(path), hash_prefix=entry.sha256_prefix)
    except RuntimeError as err:  # torch.hub's hash check; the temporary file is already gone
        raise ValueError(f"{mismatch} ({err}); nothing was kept in the cache") from None
    except OSError as err:  # URLError, HTTPError, timeouts
        raise ValueError(f"{where} is not in torch.hub's cache ({path}) and could not be downloaded ({err}): {fetch}") from None
    return path


def fetch_pretrained(
    entry: ZooEntry, revision: str | None = None, local_files_only: bool = False
) -> tuple[dict[str, Any], Path]:
    """A zoo entry's config and its weights file (in the local cache, or its folder), its sha256 checked."""
    if entry.folder is not None:
        return _fetch_folder(entry)
    if entry.url is not None:
        # torchvision publishes its COCO weights only as pickles: this is the one place attnzoo reads a
        # downloaded pickle, and create_detector reads it with torch.load(weights_only=True), torch's
        # restricted unpickler, which builds tensors and plain containers only.
        return _torchvision_config(entry), _fetch_url(entry, local_files_only)
    revision = revision or entry.revision
    where = f"zoo entry {entry.name!r} (Hub repo {entry.repo!r} at revision {revision!r})"
    try:
        weights = _download(entry.repo, entry.filename, revision, local_files_only, where, entry.name)
        if entry.timm is None:
            config_file = _download(entry.repo, CONFIG_NAME, revision, local_files_only, where, entry.name)
            config = json.loads(config_file.read_text())
        else:
            config = _timm_config(entry)
    except (RepositoryNotFoundError, EntryNotFoundError):
        raise ValueError(f"{where}: the repo or its {entry.filename} cannot be found") from None
    if entry.sha256 is not None:
        actual = _sha256(weights)
        if actual != entry.sha256:
            # The cache holds a link to a blob: remove both, so the next call downloads again.
            blob = weights.resolve()
            weights.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise ValueError(
                f"{where}: {entry.filename} has sha256 {actual}, the catalog expects {entry.sha256}; "
                "the bad copy was removed from the cache"
            )
    return config, weights


def _fetch_folder(entry: ZooEntry) -> tuple[dict[str, Any], Path]:
    where = f"zoo entry {entry.name!r} ({entry.location})"
    weights = entry.folder / entry.filename
    if not weights.is_file():
        raise ValueError(
            f"{where}: {weights} is missing. The zoo's trained entries ship with attnzoo's source tree: "
            "install attnzoo from a clone (pip install -e .) to have them"
        )
    actual = _sha256(weights)
    if actual != entry.sha256:
        raise ValueError(f"{where}: {weights} has sha256 {actual}, the catalog expects {entry.sha256}")
    return _read_config(entry.folder), weights


def is_cached(entry: ZooEntry) -> bool:
    """Whether the entry's weights are on this machine (always, for a folder entry that ships)."""
    if entry.folder is not None:
        return (entry.folder / entry.filename).is_file()
    if entry.url is not None:
        return _torch_hub_file(entry).is_file()
    return isinstance(try_to_load_from_cache(entry.repo, entry.filename, revision=entry.revision), str)


def _from_catalog(entry: ZooEntry, revision: str | None, local_files_only: bool) -> nn.Module:
    # timm's entries have no attnzoo config.json: their config is built from timm's data config,
    # and load_checkpoint maps timm's key names onto attnzoo's.
    return build_from_config(*fetch_pretrained(entry, revision, local_files_only)).eval()


def load(source: str | Path, *, revision: str | None = None, local_files_only: bool = False) -> nn.Module:
    """A pretrained model from a zoo name, a local folder or a Hub repo id (``org/name``), in eval mode.

    The network is rebuilt from config.json and its weights loaded strictly;
    ``model.pretrained_cfg`` holds the config (labels, input size, mean/std).
    """
    if isinstance(source, Path) or Path(str(source)).is_dir():
        return _from_folder(Path(source))
    if isinstance(source, str) and "/" not in source and is_zoo_name(source):
        return _from_catalog(resolve(source), revision, local_files_only)
    if not _is_repo_id(source):
        raise ValueError(
            f"{source!r} is neither a zoo name (attnzoo.list_models(pretrained=True)), a model folder, "
            "nor a Hub repo id of the form 'org/name'"
        )
    return _from_hub(source, revision, local_files_only)


def _check_folder(directory: Path) -> None:
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME) if not (directory / n).is_file()]
    if missing:
        raise ValueError(f"{str(directory)!r} is not a saved model folder: no {', '.join(missing)} (save_pretrained writes them)")


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=attnzoo", "-c", "user.email=attnzoo@localhost"]
    return subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def publish(
    directory: str | Path,
    repo_id: str,
    *,
    revision: str = "main",
    token: str | None = None,
    private: bool = False,
    mirror: str | Path | None = None,
) -> str:
    """Publish a saved model folder; returns the commit id.

    Without ``mirror`` it is uploaded to the Hub (create_repo, a branch for a
    ``revision`` other than main, upload_folder).
    With ``mirror=ROOT`` it is committed into the git repo ``ROOT/models/<repo_id>``,
    the layout a self-hosted Hub mirror (olah) serves to machines without
    internet; a ``revision`` other than main is set as a tag on that commit.
    """
    directory = Path(directory)
    _check_folder(directory)
    if not _is_repo_id(repo_id):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    name = json.loads((directory / CONFIG_NAME).read_text()).get("name", repo_id)
    message = f"Publish {name}"
    if mirror is None:
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=str(directory), repo_id=repo_id, revision=revision, commit_message=message)
        return info.oid
    repo = Path(mirror) / "models" / repo_id
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", "main")
    for old in _git(repo, "ls-files", "-z").split("\0"):
        if old:
            (repo / old).unlink()
    for path in directory.iterdir():
        if path.is_file():
            shutil.copy2(path, repo / path.name)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    if revision != "main":
        _git(repo, "tag", "-f", revision)
    return _git(repo, "rev-parse", "HEAD").strip()
