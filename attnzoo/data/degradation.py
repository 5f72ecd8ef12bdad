"""Degradation: what an image restoration model undoes, additive Gaussian noise or JPEG compression.

Written as a dict in configs and ``config.json`` files:

    {"kind": "gaussian", "sigma": 25}          noise of standard deviation 25 / 255
    {"kind": "gaussian", "sigma": [0, 50]}     a range: a blind denoiser's data
    {"kind": "jpeg", "quality": 10}            Pillow's JPEG at quality 10 (1..100)
    {"kind": "jpeg", "quality": [10, 40]}      a range: a blind deartifacter's data

The conventions are KAIR's (github.com/cszn/KAIR), which the restoration papers' figures follow:

- images are float in [0, 1], (C, H, W) or (B, C, H, W), with C = 1 (grey) or 3 (RGB);
- Gaussian: sigma is on the 0-255 scale; ``N(0, 1) * sigma / 255`` is added to the float image
  and the sum is *not* clipped to [0, 1], so the noise stays zero-mean Gaussian of the stated
  level also on dark and bright pixels;
- JPEG: the image is rounded to uint8, encoded by Pillow at the quality (Pillow's other
  defaults: 4:2:0 chroma subsampling for colour; KAIR uses OpenCV's encoder, libjpeg as well),
  decoded and divided by 255. A grey image is encoded as a grey ("L") JPEG, not as an RGB one,
  as KAIR's grey models are trained. The clean target of such a pair is the uint8 image the
  JPEG was made from: :func:`quantize` rounds a float image to that grid;
- a range gives each image its own level: sigma uniform in [low, high], the quality uniform
  among the integers in [low, high].

Randomness comes only from the ``torch.Generator`` handed to :meth:`Degradation.degrade`: the
same seed gives the same degraded images.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["FIELDS", "Degradation", "jpeg_roundtrip", "quantize"]

# Each kind's level field and its bounds: sigma on the 0-255 scale, Pillow's JPEG qualities.
FIELDS = {"gaussian": "sigma", "jpeg": "quality"}
_BOUNDS = {"gaussian": (0, 255), "jpeg": (1, 100)}
_UNITS = {"gaussian": "a number in [0, 255] (the 0-255 scale)", "jpeg": "an integer in [1, 100]"}


def quantize(images: Tensor) -> Tensor:
    """Float images in [0, 1] rounded to the 8-bit grid (k / 255), as float32: what a uint8 file holds."""
    return (images.float() * 255).round().clamp(0, 255) / 255


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """A uint8 image, (H, W) grey or (H, W, 3) RGB, through Pillow's JPEG encoder and decoder at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=int(quality))
    with Image.open(buffer) as decoded:
        return np.asarray(decoded)


def _is_number(value: object, kind: str) -> bool:
    number = Integral if kind == "jpeg" else Real
    return isinstance(value, number) and not isinstance(value, bool)


@dataclass(frozen=True)
class Degradation:
    """A degradation of ``kind`` "gaussian" (level: sigma) or "jpeg" (level: quality), at a level in [low, high].

    ``low == high`` is a fixed level; ``low < high`` a blind model's range. Build it from the dict
    form with :meth:`from_any`; :meth:`to_dict` gives that form back. Sigmas are kept as floats
    and qualities as ints, so ``{"sigma": 25}`` and ``{"sigma": 25.0}`` are the same degradation.
    """

    kind: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in FIELDS:
            raise ValueError(f"degradation: kind must be one of {', '.join(map(repr, FIELDS))}, got {self.kind!r}")
        field, (bottom, top) = FIELDS[self.kind], _BOUNDS[self.kind]
        fixed = self.low is self.high or self.low == self.high  # `is`: a NaN level given once
        given = self.low if fixed else [self.low, self.high]
        if not (_is_number(self.low, self.kind) and _is_number(self.high, self.kind)):
            raise ValueError(
                f"degradation: {field} must be {_UNITS[self.kind]} or a [low, high] pair of them, got {given!r}"
            )
        if not bottom <= self.low <= self.high <= top:
            what = _UNITS[self.kind] if fixed else f"a [low, high] pair with {bottom} <= low <= high <= {top}"
            raise ValueError(f"degradation: {field} must be {what}, got {given!r}")
        cast = float if self.kind == "gaussian" else int
        # Plain Python numbers (not numpy's), so that to_dict() is JSON and equal levels compare equal.
        object.__setattr__(self, "low", cast(self.low))
        object.__setattr__(self, "high", cast(self.high))

    @classmethod
    def from_any(cls, value: Degradation | Mapping[str, Any]) -> Degradation:
        """A Degradation as it is, or one from its dict form, such as ``{"kind": "jpeg", "quality": [10, 40]}``."""
        if isinstance(value, Degradation):
            return value
        example, kinds = "{'kind': 'gaussian', 'sigma': 25}", ", ".join(map(repr, FIELDS))
        if not isinstance(value, Mapping):
            raise ValueError(f"degradation must be a dict such as {example}, got {value!r}")
        if "kind" not in value:
            raise ValueError(f"degradation: kind is missing (one of {kinds}), got {dict(value)}")
        kind = value["kind"]
        if not isinstance(kind, str) or kind not in FIELDS:
            raise ValueError(f"degradation: kind must be one of {kinds}, got {kind!r}")
        field = FIELDS[kind]
        if field not in value:
            raise ValueError(f"degradation: a {kind} degradation needs {field} ({_UNITS[kind]} or a [low, high] pair)")
        extra = sorted(set(value) - {"kind", field})
        if extra:
            unknown = ", ".join(map(repr, extra))
            raise ValueError(f"degradation: unknown field {unknown}: a {kind} degradation takes kind and {field} only")
        level = value[field]
        if isinstance(level, (list, tuple)):
            if len(level) != 2:
                raise ValueError(f"degradation: a {field} range must be a [low, high] pair, got {list(level)!r}")
            return cls(kind, *level)
        return cls(kind, level, level)

    @classmethod
    def fixed(cls, kind: str, level: float) -> Degradation:
        """The degradation ``kind`` at one ``level`` (sigma or quality)."""
        return cls(kind, level, level)

    @property
    def field(self) -> str:
        """The level's name: ``sigma`` or ``quality``."""
        return FIELDS[self.kind]

    @property
    def is_blind(self) -> bool:
        """Whether the level is a range (low < high): a blind model's data."""
        return self.low < self.high

    @property
    def level(self) -> float:
        """The fixed level; a blind degradation has none (ValueError)."""
        if self.is_blind:
            raise ValueError(f"degradation: {self.field} is a range {[self.low, self.high]}, not one level")
        return self.low

    def to_dict(self) -> dict[str, Any]:
        """The dict form: a fixed level as a number (a whole sigma as an int), a range as [low, high]."""
        low, high = (int(x) if float(x).is_integer() else x for x in (self.low, self.high))
        return {"kind": self.kind, self.field: [low, high] if self.is_blind else low}

    def _levels(self, count: int, generator: torch.Generator | None) -> list[float]:
        if not self.is_blind:
            return [self.low] * count
        if self.kind == "jpeg":
            return torch.randint(self.low, self.high + 1, (count,), generator=generator).tolist()
        uniform = torch.rand(count, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * uniform).tolist()

    def degrade(self, clean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``clean`` (C, H, W) or (B, C, H, W) in [0, 1], C 1 or 3, degraded: float32 of the same shape.

        A range draws each image's level first, then the noise. ``generator`` is a CPU generator
        (None: torch's global random state); the result is on ``clean``'s device.
        """
        if clean.ndim not in (3, 4) or clean.shape[-3] not in (1, 3):
            shape = tuple(clean.shape)
            raise ValueError(f"Degradation.degrade takes (C, H, W) or (B, C, H, W) images, C 1 or 3, got {shape}")
        batch = clean.float()[None] if clean.ndim == 3 else clean.float()
        levels = self._levels(len(batch), generator)
        if self.kind == "gaussian":
            noise = torch.randn(batch.shape, generator=generator).to(batch.device)
            sigmas = torch.tensor(levels, dtype=torch.float32, device=batch.device).view(-1, 1, 1, 1)
            degraded = batch + noise * sigmas / 255
        else:
            pixels = (batch * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            # Grey images go through Pillow as (H, W): an "L" JPEG.
            decoded = [jpeg_roundtrip(image[..., 0] if image.shape[-1] == 1 else image, q)
                       for image, q in zip(pixels, levels)]
            degraded = torch.from_numpy(np.stack(decoded)).reshape(pixels.shape).permute(0, 3, 1, 2)
            degraded = (degraded.float() / 255).to(batch.device)
        return degraded[0] if clean.ndim == 3 else degraded

    __call__ = degrade
