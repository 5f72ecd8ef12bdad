"""What the tasks' pictures (``attnzoo show``) share: the model of a task, argument checks, image files."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attnzoo.data._common import load_image

__all__ = ["check_count", "model_name", "read_image", "task_model"]


def model_name(cfg: Mapping[str, Any]) -> str:
    """A model's name for titles and messages: its zoo or given name, else its architecture."""
    return cfg.get("name") or cfg.get("architecture")


def check_count(count: int, most: int = 32) -> None:
    """A ValueError unless ``count`` (the examples a picture draws) is an integer in 1..``most``."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
        raise ValueError(f"count must be an integer in 1..{most}, got {count!r}")


def task_model(model: nn.Module | str | Path, task: str) -> nn.Module:
    """``model`` (a module, or anything ``attnzoo.load`` takes, loaded), which must be a ``task`` model; else a
    ValueError saying which function draws which models (``attnzoo.tasks.SHOWS``)."""
    # Imported here: the tasks package imports every task module, which import this one.
    from attnzoo.tasks import SHOWS
    from attnzoo.zoo import load

    if not isinstance(model, nn.Module):
        model = load(model)
    cfg = model.pretrained_cfg
    given = cfg.get("task", "classification")
    if given != task:
        function, whom = SHOWS[task]
        others = ", ".join(f"{f.__name__} draws {w}" for t, (f, w) in SHOWS.items() if t != task)
        raise ValueError(f"{model_name(cfg)!r} is a {given} model; {function.__name__} draws {whom} ({others})")
    return model


def read_image(path: str | Path, mode: str = "RGB") -> Tensor:
    """An image file as RGB (3, H, W), or with ``mode`` "L" grey (1, H, W), float in [0, 1]; ValueError
    naming the file when it cannot be read."""
    pixels = np.atleast_3d(np.asarray(load_image(path, mode), dtype=np.float32) / 255)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
