"""PSNR, SSIM and seconds per image of denoisers and deartifacters on the four held-out photos.

    python benchmarks/restoration.py                          # Gaussian noise, sigma 25
    python benchmarks/restoration.py --kind jpeg --level 10   # JPEG, quality 10
    python benchmarks/restoration.py --models rir-cbam.gray-s25 path/to/model-folder

The protocol (issue 12), so that the figures compare with others': scikit-image's
camera, moon, coins and brick as grey float images in [0, 1], their 256 x 256
centre crops; Gaussian noise ``numpy.random.default_rng(0).standard_normal((256,
256)) * sigma / 255`` drawn afresh for each image and not clipped; JPEG: the crop
rounded to uint8, saved by Pillow as grey JPEG at the quality, scored against the
uint8 crop. Outputs are clipped to [0, 1]; PSNR is skimage's
``peak_signal_noise_ratio(data_range=1)``, SSIM its ``structural_similarity(
data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
The pairs come from ``attnzoo.data.photos.protocol_pair``, which PhotosData's
test split uses too.

Rows: the degraded input; for noise, BM3D (the ``bm3d`` package, told the true
sigma: ``pip install attnzoo[bench]``) and non-local means (scikit-image, h =
0.8 sigma, 7 x 7 patches, distance 11, told the true sigma); then each model
(zoo names, Hub ids or folders; by default every zoo entry trained for this
degradation); with ``--tile N`` each model again restoring tile by tile
(``restore_tiled``, overlap its receptive radius): the same figures for a
convolution-only network, an approximation for one with global pooling or
non-local attention, whose difference the table shows; with ``--self-ensemble``
each model again averaged over the image's eight flips and rotations
(``self_ensemble``, EDSR's "+"). Seconds are wall time per image on this machine, the model in
eval mode under ``torch.no_grad`` (one warm-up call first), CPU unless CUDA is
there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means

import attnzoo
from attnzoo.backbones.restoration import restore_tiled, self_ensemble
from attnzoo.data.photos import TEST_PHOTOS, protocol_pair
from attnzoo.zoo.catalog import catalog
from measure import machine

Method = Callable[[np.ndarray], np.ndarray]


def score(restored: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    restored = np.clip(restored, 0, 1)
    psnr = peak_signal_noise_ratio(clean, restored, data_range=1)
    ssim = structural_similarity(
        clean, restored, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return float(psnr), float(ssim)


def bm3d_method(sigma: float) -> Method:
    try:
        import bm3d
    except ImportError:
        raise SystemExit("BM3D needs the bm3d package: pip install attnzoo[bench] (or bm3d), or pass --no-bm3d") from None
    return lambda noisy: bm3d.bm3d(noisy, sigma_psd=sigma / 255)


def nlm_method(sigma: float) -> Method:
    s = sigma / 255
    return lambda noisy: denoise_nl_means(noisy, h=0.8 * s, sigma=s, patch_size=7, patch_distance=11)


def model_method(source: str, device: torch.device, tile: int | None = None, ensemble: bool = False) -> Method:
    model = attnzoo.load(source).to(device)

    def once(x: torch.Tensor) -> torch.Tensor:
        return model(x) if tile is None else restore_tiled(model, x, tile=tile)

    def restore(degraded: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(degraded).float()[None, None].to(device)
        with torch.no_grad():
            out = self_ensemble(once, x) if ensemble else once(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out[0, 0].cpu().double().numpy()

    return restore


def trained_for(kind: str, level: float) -> list[str]:
    """The zoo's restoration entries trained for this degradation (a fixed level, or a range that holds it)."""
    names = []
    for name, entry in catalog().items():
        if entry.task != "restoration" or entry.folder is None:
            continue
        degradation = json.loads((entry.folder / "config.json").read_text())["degradation"]
        field = "sigma" if kind == "gaussian" else "quality"
        value = degradation.get(field)
        if degradation["kind"] != kind or value is None:
            continue
        low, high = (value, value) if isinstance(value, (int, float)) else value
        if low <= level <= high:
            names.append(name)
    return sorted(names)


def run(methods: dict[str, Method], kind: str, level: float) -> list[tuple[str, list[tuple[float, float, float]]]]:
    pairs = {name: protocol_pair(name, kind, level) for name in TEST_PHOTOS}
    rows = []
    for label, method in methods.items():
        cells = []
        method(pairs[TEST_PHOTOS[0]][0])  # warm-up: first-call costs (allocations, kernels) are not timed
        for name in TEST_PHOTOS:
            degraded, clean = pairs[name]
            start = time.perf_counter()
            restored = method(degraded)
            seconds = time.perf_counter() - start
            cells.append((*score(restored, clean), seconds))
        rows.append((label, cells))
    return rows


def table(rows: list[tuple[str, list[tuple[float, float, float]]]]) -> str:
    header = "| method | " + " | ".join(f"{n} PSNR / SSIM" for n in TEST_PHOTOS) + " | mean PSNR / SSIM | s / image |"
    lines = [header, "|---|" + "---:|" * (len(TEST_PHOTOS) + 2)]
    for label, cells in rows:
        per_image = " | ".join(f"{p:.2f} / {s:.3f}" for p, s, _ in cells)
        mean_p = statistics.mean(p for p, _, _ in cells)
        mean_s = statistics.mean(s for _, s, _ in cells)
        seconds = statistics.mean(t for _, _, t in cells)
        lines.append(f"| {label} | {per_image} | {mean_p:.2f} / {mean_s:.3f} | {seconds:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("gaussian", "jpeg"), default="gaussian")
    parser.add_argument("--level", type=float, help="sigma (0-255) or JPEG quality; default 25 / 10")
    parser.add_argument("--models", nargs="*", help="zoo names, Hub ids or folders (default: the zoo's entries for it)")
    parser.add_argument("--no-bm3d", action="store_true", help="leave BM3D out (it takes seconds an image)")
    parser.add_argument("--tile", type=int, help="also restore each image tile by tile (restore_tiled) at this tile size")
    parser.add_argument(
        "--self-ensemble", action="store_true", help="also average each model over the eight flips and rotations"
    )
    args = parser.parse_args()
    level = args.level if args.level is not None else (25.0 if args.kind == "gaussian" else 10.0)
    if args.kind == "jpeg":
        level = int(level)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    methods: dict[str, Method] = {"degraded input": lambda degraded: degraded}
    if args.kind == "gaussian":
        if not args.no_bm3d:
            methods["BM3D"] = bm3d_method(level)
        methods["non-local means"] = nlm_method(level)
    for source in args.models if args.models is not None else trained_for(args.kind, level):
        methods[source] = model_method(source, device)
        if args.tile is not None:
            methods[f"{source}, tiles of {args.tile}"] = model_method(source, device, args.tile)
        if args.self_ensemble:
            methods[f"{source}, self-ensemble x8"] = model_method(source, device, ensemble=True)
    what = f"sigma {level:g}" if args.kind == "gaussian" else f"JPEG quality {level}"
    print(f"# {what}, 256 x 256 grey centre crops; {machine(device)}\n")
    print(table(run(methods, args.kind, level)))


if __name__ == "__main__":
    main()
