"""TrackletsData's frames: synthetic video person re-identification tracklets, bundled, offline and seeded.

A tracklet is a short clip of one person walking past one camera, cut to a ``frame_size``
(height, width) box (64 x 32 by default: people are tall), as uint8 RGB frames (L, H, W, 3).
Nothing is stored: the split's index (:func:`synthesize_split`) is drawn without rendering,
and each tracklet is drawn on demand (:func:`render_tracklet`), the same pixels every time for
the same arguments (with the same numpy, Pillow, SciPy and scikit-image data).

Identities and splits. Person ids are global: train ``0 .. train_ids - 1``, val the next
``val_ids``, test the next ``test_ids`` (by default 64 / 16 / 32 identities: train 0..63,
val 64..79, test 80..111), so the splits share no identity. The ``cameras`` (4) are shared
by all splits, as in MARS or iLIDS-VID. Each identity is seen by ``min_cameras`` (2) to all
cameras (how many: uniform; which: uniform without repeats), and by each of its cameras in
``tracklets_per_camera`` (1 to 2, uniform) tracklets, numbered 0, 1, ...; every tracklet is
``length`` (8 to 24, uniform) frames long. :func:`synthesize_split` lists (pid, camid,
number) by pid, then camid, then number; :func:`split_index` lists the same with each
tracklet's length, (pid, camid, number, length), also without rendering; :func:`split_ids`
is the split's range of ids and :func:`tracklets` renders a split's tracklets one by one.

The person (fixed per identity; all colours RGB in [0, 1], ``h`` the figure's height in pixels).
A figure seen from the front, drawn with anti-aliased ellipses, tapered capsules and rounded
boxes: head (skin), hair cap (and long hair falling to the shoulders, 30 %), torso (a rounded
trapezoid, shoulders wider than the waist), two arms swinging, two legs, shoes, and

- the upper garment's colour: hue uniform, saturation 0-0.12 (greys, 20 %) or 0.45-1, value
  0.3-0.95; its texture: a fixed square crop (24-72 pixels of the photo's 128-pixel
  thumbnail, anywhere in it) of one of scikit-image's photos ``astronaut, coffee, chelsea,
  rocket, immunohistochemistry, brick`` (``CLOTHING_PHOTOS``), resized to 24 x 24 and laid
  over the torso and sleeves: its standardised luminance modulates the garment's colour by a
  contrast of 0.3-0.6 and its chroma (colour less its grey) is added at 0-0.5; horizontal
  stripes (30 %) of a second colour, 0.05-0.09 h apart; long sleeves (60 %, otherwise skin
  below the elbow);
- the lower garment: colour as above with value 0.12-0.75, as trousers (60 %), shorts (20 %,
  skin below the knee) or a skirt (20 %, over bare legs); shoes: dark (value 0.05-0.35);
- skin tone between a light and a dark tone (uniform); hair one of black, dark brown, brown,
  blond, grey, with +-15 % brightness;
- proportions: height 0.86-1.0 of the camera's figure height, build (widths) 0.85-1.2,
  head size 0.9-1.1;
- a hat (25 %, its own colour, with a brim); a bag: none (50 %), a handbag on one side
  with a strap from the other shoulder (25 %) or a backpack showing at both sides with its
  straps (25 %), of its own colour.

The camera (fixed per camera id, shared by the splits): the background is a wall above a
ground, the wall a crop of ``camera, page, coins, text, moon, clock`` (camera c takes
``WALL_PHOTOS[c % 6]``), the ground of ``gravel`` or ``grass`` (drawn), both in grey (the
mean of RGB, photos shrunk to a 160-pixel side) at contrast 0.35-0.65 around a brightness of
0.35-0.65, each tinted by its own pastel colour (saturation 0.1-0.5), the horizon at
0.55-0.8 of the height; the figure's height 0.8-0.94 of the frame's (times the identity's
height), feet at 0.95-0.99 of it, horizontal offset +-6 % of the width; lighting, applied
to the whole frame: gain 0.8-1.2, a colour cast (per channel 0.9-1.1) and a haze (+0-0.06).

The tracklet (drawn afresh per tracklet): its length; where the wall and ground crops lie
(static during the clip); walking: facing right or left (mirrors the texture and the bag's
side), a walk cycle of 7-11 frames from a random phase, drawn in 6 poses (feet swinging
+-0.07 h and hands +-0.04 h in opposite phase, a bob of 0.012 h); a drift of 0-0.25 pixels a
frame to one side plus +-0.3 pixels of jitter, rounded to whole pixels; scale jitter +-4 %;
lighting jitter +-8 %; on every frame uniform per-pixel noise of standard deviation 0.015.

Corrupted frames: ``floor(corrupted_fraction * L + u)`` frames of each tracklet (u uniform
in [0, 1), so ``corrupted_fraction`` (0.25) of the frames on average), chosen uniformly, each
with one of four corruptions (uniform):

- occlusion by another person (a random figure drawn like an identity, 1.0-1.2 times as tall,
  feet 0-3 pixels lower, in front), shifted sideways so that it covers 30-60 % of the person;
- occlusion by a block (grey, 50 %, or a random colour, shaded top to bottom) from the bottom,
  top, left or right, covering a drawn 30-60 % of the person;
- strong blur: defocus (Gaussian, sigma 1.8-3 pixels) or horizontal motion (sigma 3.5-5
  across, 0.5 down);
- misalignment (a bad detection box): the person shifted by 40-60 % of the width to a side
  (half out of the frame, 60 %) or by 35-55 % of its height up or down (head or legs cut off).

``render_tracklet(..., return_corrupted=True)`` also returns the bool mask of corrupted frames.

Seeding. Everything is drawn from ``numpy.random.default_rng`` seeded with a tuple that starts
with ``seed`` and a stream tag: identity attributes from ``(seed, 0, pid)``; camera attributes
from ``(seed, 1, camid)``; an identity's cameras and tracklet counts from ``(seed, 2, pid)``;
a tracklet (its length first, then everything else) from ``(seed, 3, pid, camid, number)``.
So any tracklet is rebuilt on demand, alone, whatever was rendered before it and in any
process (DataLoader workers included); a person's attributes are the same in all its
tracklets, a camera's in all of its. ``seed`` is the data's seed, not the training's.

Defaults (:class:`SynthConfig`): 64 x 32 frames; 64 / 16 / 32 train / val / test identities
(ids 0..63 / 64..79 / 80..111); 4 cameras, each identity in 2 to 4 of them, 1 to 2 tracklets
per camera (so about 290 / 70 / 140 tracklets); 8 to 24 frames a tracklet, a quarter corrupted.

Speed: shapes are computed on the few pixels their bounding boxes touch, and each pose of a
tracklet is drawn once and moved; photos are loaded once (``functools.cache``) at a 128-160
pixel side. A 16-frame 64 x 32 tracklet takes about 5-6 ms on one CPU core (0.3-0.4 ms a frame).
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from numbers import Real

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from attnzoo._checks import check_int

__all__ = [
    "CLOTHING_PHOTOS",
    "GROUND_PHOTOS",
    "SPLITS",
    "WALL_PHOTOS",
    "SynthConfig",
    "RenderedTracklet",
    "render_tracklet",
    "split_ids",
    "split_index",
    "synthesize_split",
    "tracklets",
]

SPLITS = ("train", "val", "test")
CLOTHING_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick")
WALL_PHOTOS = ("camera", "page", "coins", "text", "moon", "clock")
GROUND_PHOTOS = ("gravel", "grass")

RenderedTracklet = tuple[np.ndarray, int, int]
"""One tracklet: frames (L, H, W, 3) uint8, person id, camera id."""

# Seed stream tags.
_IDENTITY, _CAMERA, _PLAN, _TRACKLET = 0, 1, 2, 3

_TEXTURE_SIDE = 128  # clothing photos are shrunk to this side once
_BACKGROUND_SIDE = 160  # background photos too
_TEXELS = 24  # the clothing texture, in texels
_TEXTURE_BOX = (-0.2, 0.2, 0.12, 0.62)  # (u0, u1, v0, v1): where it lies on the figure, in figure heights
_NOISE = 0.015
_POSES = 6  # poses drawn per walk cycle
_SKIN = (np.array([0.96, 0.80, 0.69]), np.array([0.36, 0.23, 0.15]))
_HAIR = np.array([[0.06, 0.05, 0.05], [0.22, 0.13, 0.08], [0.45, 0.30, 0.17], [0.85, 0.72, 0.45], [0.62, 0.62, 0.62]])
_CORRUPTIONS = ("person", "block", "blur", "shift")


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`synthesize_split` and :func:`render_tracklet` draw; defaults train on CPU in minutes.

    Args:
        frame_size: (height, width) of the frames, at least 16 x 8.
        train_ids, val_ids, test_ids: identities per split (ids are global, see the module).
        cameras: camera count, at least 2.
        min_cameras: fewest cameras that see an identity (2 .. ``cameras``); the most is all.
        tracklets_per_camera: (min, max) tracklets of an identity per camera that sees it.
        length: (min, max) frames per tracklet.
        corrupted_fraction: the share of corrupted frames, in [0, 1].
    """

    frame_size: tuple[int, int] = (64, 32)
    train_ids: int = 64
    val_ids: int = 16
    test_ids: int = 32
    cameras: int = 4
    min_cameras: int = 2
    tracklets_per_camera: tuple[int, int] = (1, 2)
    length: tuple[int, int] = (8, 24)
    corrupted_fraction: float = 0.25

    def __post_init__(self) -> None:
        owner = "SynthConfig"
        size = _pair(owner, "frame_size", self.frame_size, 1)
        if size[0] < 16 or size[1] < 8:
            raise ValueError(f"{owner}: frame_size must be at least (16, 8) (height, width), got {self.frame_size!r}")
        object.__setattr__(self, "frame_size", size)
        for name in ("train_ids", "val_ids", "test_ids"):
            check_int(owner, name, getattr(self, name), 1)
        check_int(owner, "cameras", self.cameras, 2)
        check_int(owner, "min_cameras", self.min_cameras, 2)
        if self.min_cameras > self.cameras:
            raise ValueError(
                f"{owner}: min_cameras must be at most cameras ({self.cameras}), got {self.min_cameras!r}"
            )
        for name in ("tracklets_per_camera", "length"):
            object.__setattr__(self, name, _pair(owner, name, getattr(self, name), 1, ordered=True))
        fraction = self.corrupted_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 <= fraction <= 1:
            raise ValueError(f"{owner}: corrupted_fraction must be a fraction in [0, 1], got {fraction!r}")
        object.__setattr__(self, "corrupted_fraction", float(fraction))


def _pair(owner: str, name: str, value: object, minimum: int, ordered: bool = False) -> tuple[int, int]:
    try:
        pair = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{owner}: {name} must be a pair of integers, got {value!r}")
    for item in pair:
        check_int(owner, name, item, minimum)
    if ordered and pair[0] > pair[1]:
        raise ValueError(f"{owner}: {name} must be (min, max) with min <= max, got {value!r}")
    return pair  # type: ignore[return-value]


def _config(owner: str, config: SynthConfig | None) -> SynthConfig:
    if config is None:
        return SynthConfig()
    if not isinstance(config, SynthConfig):
        raise ValueError(f"{owner}: config must be a SynthConfig or None, got {type(config).__name__}")
    return config


def _check_split(owner: str, split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"{owner}: split must be one of {SPLITS}, got {split!r}")
    return split  # type: ignore[return-value]


def split_ids(split: str, config: SynthConfig | None = None) -> range:
    """The person ids of ``split``: train first, then val, then test, consecutive and disjoint."""
    config = _config("split_ids", config)
    _check_split("split_ids", split)
    sizes = {"train": config.train_ids, "val": config.val_ids, "test": config.test_ids}
    start = sum(sizes[s] for s in SPLITS[: SPLITS.index(split)])
    return range(start, start + sizes[split])


def _plan(pid: int, config: SynthConfig, seed: int) -> list[tuple[int, int]]:
    """(camid, tracklet count) for each camera that sees ``pid``, by camid."""
    rng = np.random.default_rng((seed, _PLAN, pid))
    count = int(rng.integers(config.min_cameras, config.cameras + 1))
    cams = np.sort(rng.choice(config.cameras, size=count, replace=False))
    low, high = config.tracklets_per_camera
    numbers = rng.integers(low, high + 1, size=count)
    return [(int(c), int(n)) for c, n in zip(cams, numbers)]


def synthesize_split(split: str, config: SynthConfig | None = None, seed: int = 0) -> list[tuple[int, int, int]]:
    """The index of ``split``'s tracklets, (pid, camid, number) by pid, camid, number; nothing is rendered."""
    config = _config("synthesize_split", config)
    check_int("synthesize_split", "seed", seed, 0)
    return [
        (pid, camid, number)
        for pid in split_ids(split, config)
        for camid, count in _plan(pid, config, seed)
        for number in range(count)
    ]


def _length(pid: int, camid: int, number: int, config: SynthConfig, seed: int) -> tuple[int, np.random.Generator]:
    rng = np.random.default_rng((seed, _TRACKLET, pid, camid, number))
    return int(rng.integers(config.length[0], config.length[1] + 1)), rng


def split_index(split: str, config: SynthConfig | None = None, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """:func:`synthesize_split`'s index with each tracklet's frame count: (pid, camid, number, length).

    Still cheap (no rendering): for samplers that need the lengths up front.
    """
    config = _config("split_index", config)
    _check_split("split_index", split)
    check_int("split_index", "seed", seed, 0)
    return [
        (pid, camid, number, _length(pid, camid, number, config, seed)[0])
        for pid, camid, number in synthesize_split(split, config, seed)
    ]


# --------------------------------------------------------------------------------------------- drawing


@cache
def _photo(name: str, side: int) -> np.ndarray:
    """A scikit-image photo as float32 RGB in [0, 1], shrunk to at most ``side`` pixels."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    picture = Image.fromarray(np.ascontiguousarray(image[:, :, :3]))
    picture.thumbnail((side, side), Image.BILINEAR)
    return np.asarray(picture, dtype=np.float32) / 255


@cache
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, (H, 1) rows and (1, W) columns."""
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    return ys, xs


def _colour(rng: np.random.Generator, value: tuple[float, float] = (0.3, 0.95)) -> np.ndarray:
    hue = rng.random()
    grey = rng.random() < 0.2
    saturation = rng.uniform(0, 0.12) if grey else rng.uniform(0.45, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, rng.uniform(*value)), dtype=np.float32)


@dataclass(frozen=True)
class _Person:
    upper: np.ndarray
    texture: tuple[str, int, int, int]  # photo, top, left, side
    contrast: float
    chroma: float
    stripes: np.ndarray | None
    stripe_period: float
    long_sleeves: bool
    lower: np.ndarray
    lower_style: int  # 0 trousers, 1 shorts, 2 skirt
    shoes: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    height: float
    build: float
    head: float
    hat: np.ndarray | None
    bag: int  # 0 none, 1 handbag, 2 backpack
    bag_colour: np.ndarray
    bag_side: int


def _person(rng: np.random.Generator) -> _Person:
    upper = _colour(rng)
    photo = CLOTHING_PHOTOS[int(rng.integers(len(CLOTHING_PHOTOS)))]
    shape = _photo(photo, _TEXTURE_SIDE).shape
    side = int(rng.integers(24, min(72, *shape[:2]) + 1))
    top, left = int(rng.integers(shape[0] - side + 1)), int(rng.integers(shape[1] - side + 1))
    contrast, chroma = float(rng.uniform(0.3, 0.6)), float(rng.uniform(0, 0.5))
    stripe_colour = _colour(rng)
    stripes = stripe_colour if rng.random() < 0.3 else None
    stripe_period = float(rng.uniform(0.05, 0.09))
    long_sleeves = bool(rng.random() < 0.6)
    lower = _colour(rng, (0.12, 0.75))
    lower_style = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
    shoes = _colour(rng, (0.05, 0.35))
    skin = (_SKIN[0] + rng.random() * (_SKIN[1] - _SKIN[0])).astype(np.float32)
    hair = np.clip(_HAIR[int(rng.integers(len(_HAIR)))] * rng.uniform(0.85, 1.15), 0, 1).astype(np.float32)
    long_hair = bool(rng.random() < 0.3)
    height, build, head = float(rng.uniform(0.86, 1.0)), float(rng.uniform(0.85, 1.2)), float(rng.uniform(0.9, 1.1))
    hat_colour = _colour(rng)
    hat = hat_colour if rng.random() < 0.25 else None
    bag = int(rng.choice(3, p=[0.5, 0.25, 0.25]))
    bag_colour = _colour(rng, (0.1, 0.8))
    bag_side = 1 if rng.random() < 0.5 else -1
    return _Person(
        upper, (photo, top, left, side), contrast, chroma, stripes, stripe_period, long_sleeves, lower, lower_style,
        shoes, skin, hair, long_hair, height, build, head, hat, bag, bag_colour, bag_side,
    )


@cache
def _identity(pid: int, seed: int) -> tuple[_Person, np.ndarray]:
    """Person ``pid``'s attributes and upper-garment texture (a few kB; kept for the process's life)."""
    person = _person(np.random.default_rng((seed, _IDENTITY, pid)))
    return person, _texture(person)


def _texture(person: _Person) -> np.ndarray:
    """The upper garment's (T, T, 3) colour texture, float32."""
    photo, top, left, side = person.texture
    crop = _photo(photo, _TEXTURE_SIDE)[top : top + side, left : left + side]
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize((_TEXELS, _TEXELS), Image.BILINEAR)
    crop = np.asarray(small, dtype=np.float32) / 255
    lum = crop.mean(axis=2, keepdims=True)
    z = (lum - lum.mean()) / (lum.std() + 0.02)
    colour = person.upper * (1 + person.contrast * np.clip(z, -2, 2)) + person.chroma * (crop - lum)
    if person.stripes is not None:
        rows = (np.arange(_TEXELS) + 0.5) / _TEXELS * (_TEXTURE_BOX[3] - _TEXTURE_BOX[2])
        band = (rows / person.stripe_period) % 1 < 0.5
        stripes = person.stripes * (1 + 0.5 * person.contrast * np.clip(z, -2, 2))
        colour = np.where(band[:, None, None], stripes, colour)
    return np.clip(colour, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class _Camera:
    wall: str
    ground: str
    wall_tint: np.ndarray
    ground_tint: np.ndarray
    contrast: float
    brightness: float
    horizon: float
    scale: float
    foot: float
    offset: float
    gain: float
    cast: np.ndarray
    haze: float


@cache
def _camera(camid: int, seed: int) -> _Camera:
    rng = np.random.default_rng((seed, _CAMERA, camid))
    ground = GROUND_PHOTOS[int(rng.integers(len(GROUND_PHOTOS)))]
    wall_tint = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.5), 1.0), dtype=np.float32)
    ground_tint = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.5), 1.0), dtype=np.float32)
    return _Camera(
        wall=WALL_PHOTOS[camid % len(WALL_PHOTOS)],
        ground=ground,
        wall_tint=wall_tint,
        ground_tint=ground_tint,
        contrast=float(rng.uniform(0.35, 0.65)),
        brightness=float(rng.uniform(0.35, 0.65)),
        horizon=float(rng.uniform(0.55, 0.8)),
        scale=float(rng.uniform(0.8, 0.94)),
        foot=float(rng.uniform(0.95, 0.99)),
        offset=float(rng.uniform(-0.06, 0.06)),
        gain=float(rng.uniform(0.8, 1.2)),
        cast=rng.uniform(0.9, 1.1, 3).astype(np.float32),
        haze=float(rng.uniform(0, 0.06)),
    )


@cache
def _grey(name: str, height: int, width: int) -> np.ndarray:
    """A background photo in grey, (h, w, 1), enlarged if need be to hold a (height, width) crop."""
    photo = _photo(name, _BACKGROUND_SIDE)
    if photo.shape[0] < height or photo.shape[1] < width:
        scale = max(height / photo.shape[0], width / photo.shape[1])
        size = (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale))
        photo = np.asarray(Image.fromarray((photo * 255).astype(np.uint8)).resize(size, Image.BILINEAR)) / 255
    return photo.mean(axis=2, keepdims=True).astype(np.float32)


def _crop(photo: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    top, left = int(rng.integers(photo.shape[0] - height + 1)), int(rng.integers(photo.shape[1] - width + 1))
    return photo[top : top + height, left : left + width]


def _background(camera: _Camera, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    wall = _crop(_grey(camera.wall, height, width), height, width, rng)
    ground = _crop(_grey(camera.ground, height, width), height, width, rng)
    rows = np.arange(height)[:, None, None] >= camera.horizon * height
    grey = np.where(rows, ground, wall)
    grey = camera.brightness + camera.contrast * (grey - grey.mean())
    tint = np.where(rows, camera.ground_tint, camera.wall_tint)
    return np.clip(grey * tint, 0, 1).astype(np.float32)


# Anti-aliased shapes, each computed only on the window of pixels its bounding box touches.

def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1], in place (np.clip costs more for tiny arrays)."""
    np.maximum(x, 0, out=x)
    return np.minimum(x, 1, out=x)


_Shape = tuple[slice, slice, np.ndarray]  # rows, columns, alpha in [0, 1] on that window


class _Canvas:
    """Draws shapes on a (height, width) frame; pixel (r, c) has its centre at (r + 0.5, c + 0.5)."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.ys, self.xs = _grid(height, width)

    def _window(self, top: float, bottom: float, left: float, right: float):
        r0, r1 = max(int(math.floor(top)) - 1, 0), min(int(math.ceil(bottom)) + 1, self.height)
        c0, c1 = max(int(math.floor(left)) - 1, 0), min(int(math.ceil(right)) + 1, self.width)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1), self.ys[r0:r1], self.xs[:, c0:c1]

    def ellipse(self, cy, cx, ry, rx, cut=None) -> _Shape | None:
        """An ellipse; with ``cut``, only its part above the row ``cut``."""
        win = self._window(cy - ry, cy + ry if cut is None else min(cy + ry, cut), cx - rx, cx + rx)
        if win is None:
            return None
        rows, cols, ys, xs = win
        m = min(ry, rx)
        d = np.sqrt(np.square((ys - cy) * (m / ry)) + np.square((xs - cx) * (m / rx)))
        alpha = _unit(m + 0.5 - d)
        if cut is not None:
            alpha *= _unit(cut - ys)
        return rows, cols, alpha

    def capsule(self, y0, x0, y1, x1, r0, r1) -> _Shape | None:
        """A segment from (y0, x0) to (y1, x1), thick r0 at its start to r1 at its end, round-ended."""
        r = max(r0, r1)
        win = self._window(min(y0, y1) - r, max(y0, y1) + r, min(x0, x1) - r, max(x0, x1) + r)
        if win is None:
            return None
        rows, cols, ys, xs = win
        dy, dx = y1 - y0, x1 - x0
        norm = 1 / (dy * dy + dx * dx + 1e-6)
        py, px = ys - y0, xs - x0
        t = _unit(py * (dy * norm) + px * (dx * norm))
        dist = np.sqrt(np.square(py - t * dy) + np.square(px - t * dx))
        return rows, cols, _unit((r0 + 0.5) + t * (r1 - r0) - dist)

    def box(self, top, bottom, cx, half_top, half_bottom, radius=0.0) -> _Shape | None:
        """A rounded trapezoid: half-width ``half_top`` at ``top`` to ``half_bottom`` at ``bottom``."""
        half_max = max(half_top, half_bottom)
        win = self._window(top, bottom, cx - half_max, cx + half_max)
        if win is None:
            return None
        rows, cols, ys, xs = win
        t = _unit((ys - top) / max(bottom - top, 1e-6))  # (rows, 1): everything by row is cheap
        half = (half_top - radius) + t * (half_bottom - half_top)
        qx = np.abs(xs - cx) - half
        qy = np.abs(ys - (top + bottom) / 2) - ((bottom - top) / 2 - radius)
        outside = np.sqrt(np.square(np.maximum(qx, 0)) + np.square(np.maximum(qy, 0)))
        inside = np.minimum(np.maximum(qx, qy), 0)
        return rows, cols, _unit((0.5 + radius) - outside - inside)


_Layer = tuple[_Shape | None, np.ndarray]  # a shape and its colour, (3,) or a (H, W, 3) field


def _figure(
    person: _Person, texture: np.ndarray, canvas: _Canvas, cx: float, foot: float, h: float, phase: float,
    facing: int,
) -> list[_Layer]:
    """The layers of a person, back to front: feet at row ``foot``, centred on column ``cx``, ``h`` tall."""
    b, top = person.build, foot - h - 0.012 * h * abs(math.cos(phase))  # a bob at each step

    def y(fraction: float) -> float:  # a height on the figure
        return top + fraction * h

    swing, arm_swing = 0.07 * h * math.sin(phase), -0.04 * h * math.sin(phase)
    side = person.bag_side * facing
    # The upper garment's colour field: the texture mapped on the figure (mirrored when facing left).
    u0, u1, v0, v1 = _TEXTURE_BOX
    ti = np.clip(((canvas.ys[:, 0] - top) / h - v0) / (v1 - v0) * _TEXELS, 0, _TEXELS - 1).astype(np.intp)
    tj = np.clip((facing * (canvas.xs[0] - cx) / h - u0) / (u1 - u0) * _TEXELS, 0, _TEXELS - 1).astype(np.intp)
    upper = texture[np.ix_(ti, tj)]
    shoulder, waist = 0.13 * h * b, 0.105 * h * b
    head_cy, head_ry, head_rx = y(0.085), 0.08 * h * person.head, 0.062 * h * person.head
    layers: list[_Layer] = []
    if person.long_hair:
        layers.append((canvas.box(head_cy, y(0.25), cx, head_rx * 1.1, head_rx * 1.25, 0.02 * h), person.hair))
    if person.bag == 2:  # backpack: sticks out at both sides
        layers.append((canvas.box(y(0.18), y(0.46), cx, shoulder + 0.03 * h, waist + 0.035 * h, 0.03 * h),
                       person.bag_colour))
    hip_y, knee, foot_y = y(0.5), 0.45, y(0.965)
    for sign in (-1, 1):
        hip_x = cx + sign * 0.055 * h * b
        foot_x = hip_x - 0.005 * sign * h + sign * swing
        leg = canvas.capsule(hip_y, hip_x, foot_y, foot_x, 0.05 * h * b, 0.04 * h * b)
        layers.append((leg, person.lower if person.lower_style == 0 else person.skin))
        if person.lower_style == 1:  # shorts
            knee_y, knee_x = hip_y + knee * (foot_y - hip_y), hip_x + knee * (foot_x - hip_x)
            layers.append((canvas.capsule(hip_y, hip_x, knee_y, knee_x, 0.055 * h * b, 0.05 * h * b), person.lower))
        layers.append((canvas.ellipse(foot_y, foot_x + 0.01 * h * facing, 0.028 * h, 0.055 * h), person.shoes))
    if person.lower_style == 2:  # skirt
        layers.append((canvas.box(y(0.47), y(0.7), cx, waist, 0.16 * h * b, 0.01 * h), person.lower))
    else:
        layers.append((canvas.box(y(0.47), y(0.58), cx, waist, waist * 1.02, 0.02 * h), person.lower))
    layers.append((canvas.box(y(0.155), y(0.53), cx, shoulder, waist, 0.035 * h), upper))
    if person.bag == 2:  # the backpack's straps
        for sign in (-1, 1):
            x = cx + sign * 0.075 * h * b
            layers.append((canvas.capsule(y(0.165), x, y(0.4), x + sign * 0.01 * h, 0.016 * h, 0.016 * h),
                           person.bag_colour * 0.7))
    for sign in (-1, 1):
        sx, sy = cx + sign * (shoulder - 0.03 * h), y(0.19)
        hx, hy = cx + sign * (shoulder + 0.01 * h) + sign * arm_swing, y(0.5)
        arm = canvas.capsule(sy, sx, hy, hx, 0.038 * h * b, 0.03 * h * b)
        if person.long_sleeves:
            layers.append((arm, upper))
            layers.append((canvas.ellipse(hy + 0.01 * h, hx, 0.025 * h, 0.022 * h), person.skin))
        else:
            layers.append((arm, person.skin))
            ex, ey = sx + 0.45 * (hx - sx), sy + 0.45 * (hy - sy)
            layers.append((canvas.capsule(sy, sx, ey, ex, 0.042 * h * b, 0.036 * h * b), upper))
    if person.bag == 1:  # handbag on one side, strap from the other shoulder
        bx = cx + side * (shoulder + 0.05 * h)
        layers.append((canvas.capsule(y(0.17), cx - side * shoulder * 0.6, y(0.45), bx, 0.012 * h, 0.012 * h),
                       person.bag_colour * 0.6))
        layers.append((canvas.box(y(0.44), y(0.58), bx, 0.05 * h, 0.055 * h, 0.015 * h), person.bag_colour))
    layers.append((canvas.ellipse(y(0.145), cx, 0.03 * h, 0.03 * h), person.skin))  # neck
    layers.append((canvas.ellipse(head_cy, cx, head_ry, head_rx), person.skin))
    layers.append((canvas.ellipse(head_cy - 0.012 * h, cx, head_ry * 1.05, head_rx * 1.08, cut=head_cy - 0.015 * h),
                   person.hair))
    if person.hat is not None:
        layers.append((canvas.box(y(-0.01), y(0.065), cx, head_rx * 0.95, head_rx * 1.05, 0.015 * h), person.hat))
        layers.append((canvas.box(y(0.05), y(0.075), cx + 0.02 * h * facing, 0.1 * h, 0.1 * h, 0.01 * h),
                       person.hat * 0.8))
    return layers


def _sprite(layers: list[_Layer], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``layers`` painted back to front over nothing: (colour (H, W, 3) premultiplied, transmittance (H, W)).

    Painting them over an image gives ``colour + transmittance * image``; their coverage is
    ``1 - transmittance``.
    """
    colour = np.zeros((height, width, 3), dtype=np.float32)
    keep = np.ones((height, width), dtype=np.float32)
    for shape, paint in layers:
        if shape is None:
            continue
        rows, cols, alpha = shape
        window = colour[rows, cols]
        window += alpha[..., None] * ((paint[rows, cols] if paint.ndim == 3 else paint) - window)
        keep[rows, cols] *= 1 - alpha
    return colour, keep


def _shift(array: np.ndarray, dy: int, dx: int, fill: float = 0.0) -> np.ndarray:
    """``array`` moved down ``dy`` and right ``dx`` pixels, ``fill`` coming in."""
    if dy == 0 and dx == 0:
        return array
    out = np.full_like(array, fill)
    height, width = array.shape[:2]
    if abs(dy) >= height or abs(dx) >= width:
        return out
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = (
        array[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    )
    return out


def _occluder_shift(body: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> int:
    """A sideways shift of coverage ``other`` that makes it cover 30-60 % of ``body`` (the closest to 45 % if none)."""
    width = body.shape[1]
    padded = np.pad(other, ((0, 0), (width - 1, width - 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)  # (H, 2W - 1, W): shift W - 1 - s
    cover = np.einsum("hx,hsx->s", body, windows)[::-1] / (float(body.sum()) + 1e-6)
    shifts = np.arange(-width + 1, width)
    good = shifts[(cover >= 0.3) & (cover <= 0.6)]
    if len(good):
        return int(good[rng.integers(len(good))])
    return int(shifts[np.argmin(np.abs(cover - 0.45))])


def _block(image: np.ndarray, body: np.ndarray, rng: np.random.Generator) -> None:
    """Cover a drawn 30-60 % of the body's mass with a shaded block from one side, in place."""
    height, width = body.shape
    share = rng.uniform(0.3, 0.6)
    side = int(rng.integers(4))  # bottom, top, left, right
    colour = np.full(3, rng.uniform(0.25, 0.75), np.float32) if rng.random() < 0.5 else _colour(rng)
    mass = body.sum(axis=1 if side < 2 else 0)
    order = mass[::-1] if side in (0, 3) else mass
    edge = int(np.searchsorted(np.cumsum(order), share * mass.sum()))  # rows/columns covered, from the side
    edge = min(edge + 1, len(mass))
    mask = np.zeros((height, width), dtype=bool)
    if side == 0:
        mask[height - edge :] = True
    elif side == 1:
        mask[:edge] = True
    elif side == 2:
        mask[:, :edge] = True
    else:
        mask[:, width - edge :] = True
    shade = np.linspace(1.1, 0.8, height, dtype=np.float32)[:, None, None]
    image[:] = np.where(mask[..., None], np.clip(colour * shade, 0, 1), image)


def render_tracklet(
    split: str,
    pid: int,
    camid: int,
    number: int,
    config: SynthConfig | None = None,
    seed: int = 0,
    *,
    return_corrupted: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render tracklet ``number`` of person ``pid`` seen by camera ``camid``: (L, H, W, 3) uint8 frames.

    The same arguments give the same pixels. The tracklet must be in ``synthesize_split(split,
    config, seed)``. With ``return_corrupted`` also the (L,) bool mask of the corrupted frames.
    """
    owner = "render_tracklet"
    config = _config(owner, config)
    _check_split(owner, split)
    check_int(owner, "seed", seed, 0)
    ids = split_ids(split, config)
    if isinstance(pid, bool) or not isinstance(pid, (int, np.integer)) or int(pid) not in ids:
        raise ValueError(f"{owner}: pid must be one of the {split} ids {ids.start}..{ids.stop - 1}, got {pid!r}")
    pid = int(pid)
    plan = dict(_plan(pid, config, seed))
    if isinstance(camid, bool) or not isinstance(camid, (int, np.integer)) or int(camid) not in plan:
        raise ValueError(f"{owner}: camid must be one of the cameras that see person {pid}, {sorted(plan)}, "
                         f"got {camid!r}")
    camid = int(camid)
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 0 <= number < plan[camid]:
        raise ValueError(f"{owner}: number must be in 0..{plan[camid] - 1} for person {pid} in camera {camid}, "
                         f"got {number!r}")
    number = int(number)

    length, rng = _length(pid, camid, number, config, seed)
    height, width = config.frame_size
    canvas = _Canvas(height, width)
    (person, texture), camera = _identity(pid, seed), _camera(camid, seed)
    background = _background(camera, height, width, rng)
    facing = 1 if rng.random() < 0.5 else -1
    phase0, period = rng.random(), rng.uniform(7, 11)  # phase in cycles
    drift = rng.uniform(0, 0.25) * (1 if rng.random() < 0.5 else -1)
    jitter = rng.uniform(-0.3, 0.3, length)
    h = camera.scale * person.height * rng.uniform(0.96, 1.04) * height
    light = (camera.gain * rng.uniform(0.92, 1.08)) * camera.cast
    count = min(length, int(math.floor(config.corrupted_fraction * length + rng.random())))
    corrupted = np.zeros(length, dtype=bool)
    corrupted[rng.choice(length, size=count, replace=False)] = True
    kinds = rng.integers(len(_CORRUPTIONS), size=length)
    noise = rng.random((length, height, width, 3), dtype=np.float32)  # uniform, of deviation _NOISE:
    noise -= 0.5
    noise *= 255 * math.sqrt(12) * _NOISE  # frames are made in 0..255 from the lighting on
    light *= 255
    haze = 255 * camera.haze + 0.5  # + 0.5: rounded when truncated to uint8
    foot = camera.foot * height
    cx0 = width / 2 + camera.offset * width - drift * (length - 1) / 2
    # The walk cycle is drawn in _POSES poses, each once (at cx0) and moved by whole pixels.
    poses: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    images = np.empty((length, height, width, 3), dtype=np.float32)
    for t in range(length):
        kind = _CORRUPTIONS[kinds[t]] if corrupted[t] else None
        pose = int((phase0 + t / period) % 1 * _POSES)
        if pose not in poses:
            layers = _figure(person, texture, canvas, cx0, foot, h, 2 * math.pi * (pose + 0.5) / _POSES, facing)
            poses[pose] = _sprite(layers, height, width)
        dx, dy = round(drift * t + jitter[t]), 0
        if kind == "shift":
            if rng.random() < 0.6:
                dx += round(rng.uniform(0.4, 0.6) * width) * (1 if rng.random() < 0.5 else -1)
            else:
                dy = round(rng.uniform(0.35, 0.55) * h) * (1 if rng.random() < 0.5 else -1)
        colour, keep = poses[pose]
        keep = _shift(keep, dy, dx, 1.0)
        image = images[t]
        np.multiply(keep[..., None], background, out=image)
        image += _shift(colour, dy, dx)
        if kind == "person":
            other = _person(rng)
            other_h, other_foot = h * rng.uniform(1.0, 1.2), foot + rng.uniform(0, 3)
            other_phase, other_facing = rng.uniform(0, 2 * math.pi), 1 if rng.random() < 0.5 else -1
            layers = _figure(other, _texture(other), canvas, cx0, other_foot, other_h, other_phase, other_facing)
            other_colour, other_keep = _sprite(layers, height, width)
            shift = _occluder_shift(1 - keep, 1 - other_keep, rng)
            image *= _shift(other_keep, 0, shift, 1.0)[..., None]
            image += _shift(other_colour, 0, shift)
        elif kind == "block":
            _block(image, 1 - keep, rng)
        elif kind == "blur":  # before the lighting: both are linear per channel, so they commute
            if rng.random() < 0.5:
                sigma = rng.uniform(1.8, 3.0)
                image[:] = gaussian_filter(image, (sigma, sigma, 0), mode="nearest")
            else:
                image[:] = gaussian_filter(image, (0.5, rng.uniform(3.5, 5.0), 0), mode="nearest")
    images *= light
    noise += haze
    images += noise
    frames = np.clip(images, 0, 255, out=images).astype(np.uint8)
    if return_corrupted:
        return frames, corrupted
    return frames


def tracklets(split: str, config: SynthConfig | None = None, seed: int = 0) -> Iterator[RenderedTracklet]:
    """Every tracklet of ``split`` in index order, rendered one at a time: (frames, pid, camid)."""
    config = _config("tracklets", config)
    for pid, camid, number in synthesize_split(split, config, seed):
        yield render_tracklet(split, pid, camid, number, config, seed), pid, camid
