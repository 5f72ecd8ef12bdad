"""Load weights into a backbone: attnzoo's own, or timm's for the same network.

timm's SK networks wrap a conv and its BN in one module (``conv1.conv``,
``conv1.bn``) where attnzoo's blocks keep timm's plain ResNet names
(``conv1``, ``bn1``); those keys are renamed. Everything else must match
exactly: a checkpoint of another network fails with the keys that differ.
Pickled checkpoints are read with ``weights_only=True``, which refuses
arbitrary objects.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = ["load_checkpoint", "load_state", "map_timm_keys", "read_state_dict"]

_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# timm's ConvNormAct inside SK blocks -> the ResNet block's own conv/bn names.
_TIMM_RENAMES = ((re.compile(r"\.conv(\d)\.conv\."), r".conv\1."), (re.compile(r"\.conv(\d)\.bn\."), r".bn\1."))


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a safetensors file, or of a pickled checkpoint read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ValueError(f"checkpoint {str(path)!r} is not a readable safetensors file: {err}") from None
    if path.suffix not in _PICKLE_SUFFIXES:
        raise ValueError(f"checkpoint {str(path)!r}: expected a .safetensors or {'/'.join(_PICKLE_SUFFIXES)} file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {str(path)!r} could not be read with weights_only=True: {err}") from None
    # Training scripts wrap the weights (timm: state_dict / state_dict_ema; others: model).
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {str(path)!r} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def map_timm_keys(state: Mapping[str, Tensor], target_keys: set[str]) -> dict[str, Tensor]:
    """Rename timm's keys that differ from attnzoo's for the same network; other keys are kept."""
    mapped = {}
    for key, value in state.items():
        new = key
        if key not in target_keys:
            for pattern, repl in _TIMM_RENAMES:
                new = pattern.sub(repl, new)
            if new not in target_keys:
                new = key
        mapped[new] = value
    return mapped


def load_state(model: nn.Module, state: Mapping[str, Tensor], source: str | Path) -> None:
    """Load ``state`` into ``model`` strictly; ValueError lists missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)

        def listing(title: str, keys: list[str]) -> str:
            shown = ", ".join(keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "")
            return f"\n  {title}: {shown}" if keys else ""

        raise ValueError(
            f"checkpoint {str(source)!r} does not fit {name!r}:"
            + listing("missing from the checkpoint", missing)
            + listing("not in the model", unexpected)
            + listing("different shapes", shapes)
        )
    model.load_state_dict(state, strict=True)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load ``path`` (attnzoo's or timm's keys) into ``model`` strictly (see :func:`load_state`)."""
    load_state(model, map_timm_keys(read_state_dict(path), set(model.state_dict())), path)
