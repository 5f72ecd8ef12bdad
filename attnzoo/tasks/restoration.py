"""Image restoration: Gaussian denoising and JPEG deartifacting with attnzoo's restoration networks.

The network is :func:`attnzoo.backbones.restoration.create_restorer`'s (``dncnn``,
``canet``, ``rir[-<attention>]``): it predicts the residual, and in eval mode its
output is clamped to [0, 1]. The task adds the training recipe and the field's
metrics, following KAIR / BasicSR:

- the degradation (``{"kind": "gaussian", "sigma": 25}``, a sigma range for a
  blind model, ``{"kind": "jpeg", "quality": 10}``) belongs to the task: it is
  saved in the model's config.json, and a data module built without one
  (``degradation=None``, the default) degrades its images the task's way; one
  built with another is an error, as is another channel count;
- loss: L1 (EDSR, RCAN), L2 (DnCNN) or Charbonnier (sqrt(d^2 + eps^2), LapSRN);
- optimiser: Adam, lr 1e-4 (KAIR's DnCNN recipe); schedule: by default cosine
  decay to 0 over the run (every step), as the detection task;
- metrics, per image, then averaged over images (PAPERS.md, "Restoration"):
  PSNR with data range 1; SSIM with the 11 x 11 Gaussian window, sigma 1.5,
  K1 0.01, K2 0.03, over the valid region (the pixels whose window lies inside
  the image), which is what ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, use_sample_covariance=False)`` and the MATLAB code
  report; grey images as they are, colour ones on their Y channel (BT.601, as
  the restoration papers score them). PSNR in float32 under mixed precision,
  SSIM's Gaussian filter in float64 on every device, on the network's clamped
  output. ``attnzoo fit`` keeps the best
  ``val/psnr``; ``attnzoo test`` logs ``test/psnr``, ``test/ssim`` and each
  image's (``test/psnr/<name>``) where the data names its test images, and the
  same for the degraded input clipped to [0, 1] (``test/input_psnr``,
  ``test/input_psnr/<name>`` ...), the baseline any restorer must beat.

:func:`show_restoration` is what ``attnzoo show`` draws for a restoration network: degraded, restored
and clean images with its attention maps.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from PIL import Image
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from attnzoo import viz
from attnzoo._checks import check_int
from attnzoo.backbones import create_model
from attnzoo.backbones.restoration import RestorationSpec, create_restorer, restore_tiled, self_ensemble
from attnzoo.data.degradation import Degradation

from ._common import TaskModule, cosine_over_run
from ._pictures import check_count, model_name, read_image, task_model

__all__ = ["ImageRestorer", "RestorationAdam", "RestorationWriter", "psnr", "show_restoration", "ssim"]

LOSSES = ("l1", "l2", "charbonnier")
_SSIM_SIGMA = 1.5
# torchmetrics builds its Gaussian window as int(3.5 * sigma + 0.5) * 2 + 1 = 11 taps: a radius of 5.
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)
# ITU-R BT.601 luma for [0, 1] RGB with the studio range (16-235), as MATLAB's rgb2ycbcr and the
# restoration papers' evaluation code compute it.
_LUMA = (65.481 / 255, 128.553 / 255, 24.966 / 255)


def _scored(images: Tensor) -> Tensor:
    """What is scored: float32; grey images as they are, colour ones as their Y channel."""
    images = images.float()
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return 16 / 255 + (images * weights).sum(dim=1, keepdim=True)


def psnr(restored: Tensor, clean: Tensor) -> Tensor:
    """Each image's PSNR in dB (data range 1, Y channel for colour): (B, C, H, W) pairs -> (B,)."""
    with torch.autocast(restored.device.type, enabled=False):
        return peak_signal_noise_ratio(
            _scored(restored), _scored(clean), data_range=1.0, reduction="none", dim=(1, 2, 3)
        )


def ssim(restored: Tensor, clean: Tensor) -> Tensor:
    """Each image's SSIM (11 x 11 Gaussian window, sigma 1.5, valid region; Y channel for colour) -> (B,).

    torchmetrics pads the image by reflection and averages the SSIM map over every pixel; skimage and
    the MATLAB reference average it over the valid region only. The map torchmetrics returns is cropped
    to that region here (its values there do not depend on the padding)."""
    r = _SSIM_RADIUS
    if min(clean.shape[-2:]) <= 2 * r:
        raise ValueError(f"SSIM needs images larger than {2 * r + 1} x {2 * r + 1}, got {tuple(clean.shape[-2:])}")
    # The variance terms, E[x^2] - E[x]^2 after the Gaussian filter (a convolution), cancel: the filter
    # runs in float64, as skimage's does. In float32 on a GPU, cuDNN runs it in TF32 by default (a
    # 10-bit mantissa; an H100 read 0.857 for 0.908); under Lightning's mixed precision autocast would
    # run it in bf16 / fp16 (0.85 read 0.25). MPS has no float64: there it runs on the CPU.
    device = torch.device("cpu") if restored.device.type == "mps" else restored.device
    with torch.autocast(device.type, enabled=False):
        _, full = structural_similarity_index_measure(
            _scored(restored).to(device, torch.float64), _scored(clean).to(device, torch.float64),
            gaussian_kernel=True, sigma=_SSIM_SIGMA, data_range=1.0, reduction="none", return_full_image=True,
        )  # fmt: skip
    return full[..., r:-r, r:-r].flatten(1).mean(dim=1).to(restored.device, torch.float32)


_DEFAULT_DEGRADATION = {"kind": "gaussian", "sigma": 25}


class RestorationAdam(torch.optim.Adam):
    """Adam with KAIR's restoration recipe as defaults: lr 1e-4, no weight decay.

    A class rather than a partial so that LightningCLI shows and overrides its
    arguments: ``--model.optimizer.lr 2e-4``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-4, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)


class ImageRestorer(TaskModule):
    """A restoration network trained to undo one degradation (see the module docstring).

    Args:
        network: ``dncnn``, ``canet``, ``rir`` or ``rir-<attention>`` (``rir-cbam``), or a dict of
            RestorationSpec's fields; with ``pretrained``, a zoo name (``rir-se.gray-s25``).
        pretrained: start from the zoo's weights for ``network`` (to fine-tune, or to predict with
            ``attnzoo predict`` without a checkpoint); its sizes and channels are the entry's.
        degradation: what the network undoes: ``{"kind": "gaussian", "sigma": 25}`` (sigma on the
            0-255 scale; ``[0, 50]`` for a blind model), ``{"kind": "jpeg", "quality": 10}`` (or
            ``[10, 40]``); handed to the data module when it was built without one. None: the
            pretrained entry's, else Gaussian sigma 25.
        channels: 1 (grey) or 3 (colour); None: the pretrained entry's, else 1.
        network_kwargs: the network's arguments (``channels``, ``groups``, ``blocks``, ``unshuffle``,
            ``depth`` ...), and ``checkpoint_path``: weights of the same network to start from (a
            published folder's ``model.safetensors``); not with ``pretrained``.
        loss: ``l1``, ``l2`` or ``charbonnier``.
        charbonnier_eps: epsilon of the Charbonnier loss.
        optimizer: builds the optimiser (LightningCLI: ``--model.optimizer AdamW``); default Adam lr 1e-4.
        scheduler: builds a schedule stepped once an epoch; None: cosine decay to 0 over the run, stepped
            every step.
        tile: images larger than ``tile`` x ``tile`` are restored tile by tile in validation, test and
            prediction (:func:`attnzoo.backbones.restoration.restore_tiled`), so large photos fit in memory
            (``attnzoo predict --ckpt_path ... --model.tile 512``); like ``self_ensemble``, not saved with
            the checkpoint's hyperparameters.
        compile: run the training steps' forward and backward through :func:`torch.compile` (on 2 CPU
            cores with bf16-mixed a step of the zoo's recipe takes 0.8x the time, after a first step that
            compiles). Validation, test and prediction run the network as it is, since their images
            differ in size. The weights and checkpoints are the same either way.
        self_ensemble: validation, test and prediction average the network's outputs over the image's
            eight flips and rotations (:func:`attnzoo.backbones.restoration.self_ensemble`, EDSR's "+"
            figures): eight times the work for a little more PSNR. Training is unchanged, so a trained
            model can be tested both ways (``attnzoo test --ckpt_path ... --model.self_ensemble true``).
    """

    checkpoint_monitor = ("val/psnr", "max")
    _compiled_forward: Callable[[Tensor], Tensor] | None = None

    def __init__(
        self,
        network: str | Mapping[str, Any] = "rir",
        pretrained: bool = False,
        degradation: Mapping[str, Any] | None = None,
        channels: int | None = None,
        network_kwargs: Mapping[str, Any] | None = None,
        loss: str = "l1",
        charbonnier_eps: float = 1e-3,
        optimizer: OptimizerCallable = RestorationAdam,
        scheduler: LRSchedulerCallable | None = None,
        tile: int = 1024,
        compile: bool = False,
        self_ensemble: bool = False,
    ) -> None:
        super().__init__()
        owner = "ImageRestorer"
        if loss not in LOSSES:
            raise ValueError(f"{owner}: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not charbonnier_eps > 0:
            raise ValueError(f"{owner}: charbonnier_eps must be positive, got {charbonnier_eps!r}")
        check_int(owner, "tile", tile, 16)
        for flag, value in (("compile", compile), ("self_ensemble", self_ensemble)):
            if not isinstance(value, bool):
                raise ValueError(f"{owner}: {flag} must be true or false, got {value!r}")
        if network_kwargs is not None and not isinstance(network_kwargs, Mapping):
            raise ValueError(f"{owner}: network_kwargs must be a dict, got {type(network_kwargs).__name__}")
        # tile and self_ensemble say how to evaluate, not what was trained: left out of the checkpoint's
        # hyperparameters, so that a checkpoint loads (and `attnzoo publish` scores it) in one pass, untiled up to
        # the default size, whatever its run validated with.
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "tile", "self_ensemble"])
        self.tile, self.self_ensemble = tile, self_ensemble
        if pretrained:
            if network_kwargs:
                raise ValueError(f"{owner}: network_kwargs cannot be changed with pretrained=True (the zoo entry's stand)")
            self.model = create_model(network, pretrained=True)
            if channels is not None and channels != self.model.in_channels:
                raise ValueError(
                    f"{owner}: {network} takes {self.model.in_channels}-channel images, got channels={channels}"
                )
            degradation = degradation if degradation is not None else self.model.pretrained_cfg.get("degradation")
        else:
            spec = RestorationSpec.from_any(network)
            self.model = create_restorer(spec, in_channels=1 if channels is None else channels, **dict(network_kwargs or {}))
        self.degradation = Degradation.from_any(degradation if degradation is not None else _DEFAULT_DEGRADATION)
        self.model.pretrained_cfg["degradation"] = self.degradation.to_dict()
        self.channels = self.model.in_channels
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.val_psnr, self.val_ssim = MeanMetric(), MeanMetric()
        self.test_psnr, self.test_ssim = MeanMetric(), MeanMetric()
        self.input_psnr, self.input_ssim = MeanMetric(), MeanMetric()

    def forward(self, degraded: Tensor) -> Tensor:
        return self.model(degraded)

    def setup(self, stage: str) -> None:
        data = self._adopt_data("classes")
        if data is None:
            return
        for name, mine in (("degradation", self.degradation), ("channels", self.channels)):
            theirs = getattr(data, name, None)
            if theirs is None:
                setattr(data, name, mine)
            elif theirs != mine:
                shown = mine.to_dict() if isinstance(mine, Degradation) else mine
                given = theirs.to_dict() if isinstance(theirs, Degradation) else theirs
                raise ValueError(
                    f"the data module's {name} {given!r} differs from the model's {shown!r}: give it to the "
                    "model only (the data module takes the model's when built without one)"
                )

    def _loss(self, restored: Tensor, clean: Tensor) -> Tensor:
        if self.hparams.loss == "l1":
            return F.l1_loss(restored, clean)
        if self.hparams.loss == "l2":
            return F.mse_loss(restored, clean)
        # Charbonnier (Lai et al., LapSRN, 2017): a differentiable L1.
        return torch.sqrt((restored - clean).square() + self.hparams.charbonnier_eps**2).mean()

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # The bound forward, not the module, is compiled: the weights stay registered under their own
        # names (a compiled module would add "_orig_mod." to every key) and evaluation stays eager.
        self._compiled_forward = torch.compile(self.model.forward) if self.hparams.compile else None

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        degraded, clean = batch[0], batch[1]
        loss = self._loss((self._compiled_forward or self.model)(degraded), clean)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(degraded))
        return loss

    def restore(self, degraded: Tensor) -> Tensor:
        """The network's output in eval mode, tile by tile for images larger than ``tile``, averaged
        over the eight flips and rotations with ``self_ensemble``."""
        if self.self_ensemble:
            return self_ensemble(self._restore_once, degraded)
        return self._restore_once(degraded)

    def _restore_once(self, degraded: Tensor) -> Tensor:
        if max(degraded.shape[-2:]) > self.tile:
            return restore_tiled(self.model, degraded, tile=self.tile)
        return self.model(degraded)

    def _score(
        self, batch: Sequence[Any], images: Tensor, prefix: str, psnr_mean: MeanMetric, ssim_mean: MeanMetric
    ) -> None:
        """Log ``prefix``/psnr and /ssim of ``images`` against the batch's clean ones, mean and (in test,
        where the data names its images) per image."""
        clean = batch[1]
        psnrs, ssims = psnr(images, clean), ssim(images, clean)
        psnr_mean.update(psnrs)
        ssim_mean.update(ssims)
        self.log(f"{prefix}psnr", psnr_mean, prog_bar=prefix == "val/")
        self.log(f"{prefix}ssim", ssim_mean)
        if prefix.startswith("test/") and len(batch) > 2:
            for name, p, s in zip(batch[2], psnrs, ssims):
                self.log(f"{prefix}psnr/{name}", p, batch_size=1)
                self.log(f"{prefix}ssim/{name}", s, batch_size=1)

    def validation_step(self, batch: Sequence[Any], batch_idx: int) -> None:
        self._score(batch, self.restore(batch[0]), "val/", self.val_psnr, self.val_ssim)

    def test_step(self, batch: Sequence[Any], batch_idx: int) -> None:
        self._score(batch, self.restore(batch[0]), "test/", self.test_psnr, self.test_ssim)
        self._score(batch, batch[0].clamp(0, 1), "test/input_", self.input_psnr, self.input_ssim)

    def baseline_metrics(self, data: pl.LightningDataModule) -> dict[str, float]:
        """BM3D (Dabov et al. 2007; the ``bm3d`` package, told the true sigma) on ``data``'s test images,
        scored as :meth:`test_step` scores the network: ``bm3d/psnr``, ``bm3d/ssim`` and per image
        (``bm3d/psnr/<name>``), the classic denoiser a Gaussian denoiser is read against. ``data`` must
        be set up for testing. Empty for JPEG or colour, and without the ``bm3d`` package
        (``pip install attnzoo[bench]``).
        """
        if self.degradation.kind != "gaussian" or self.channels != 1:
            return {}
        evaluated = data.eval_degradation() if hasattr(data, "eval_degradation") else self.degradation
        if evaluated.is_blind:
            return {}
        try:
            import bm3d
        except ImportError:
            return {}
        scores: dict[str, list[float]] = {}
        for batch in data.test_dataloader():
            denoised = [bm3d.bm3d(image[0].double().numpy(), sigma_psd=evaluated.level / 255) for image in batch[0]]
            images = torch.from_numpy(np.stack(denoised)).float()[:, None].clamp(0, 1)
            psnrs, ssims = psnr(images, batch[1]), ssim(images, batch[1])
            names = batch[2] if len(batch) > 2 else [None] * len(images)
            for name, p, s in zip(names, psnrs.tolist(), ssims.tolist()):
                scores.setdefault("bm3d/psnr", []).append(p)
                scores.setdefault("bm3d/ssim", []).append(s)
                if name is not None:
                    scores[f"bm3d/psnr/{name}"], scores[f"bm3d/ssim/{name}"] = [p], [s]
        return {key: float(np.mean(values)) for key, values in scores.items()}

    def predict_step(self, batch: Sequence[Any], batch_idx: int) -> dict[str, Any]:
        """The restored images (B, C, H, W) in [0, 1] and their names (``batch[-1]``: file paths or names)."""
        degraded, names = batch[0], batch[-1]
        return {"restored": self.restore(degraded).float().cpu(), "names": list(names)}

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is not None:
            return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
        return {"optimizer": optimizer, "lr_scheduler": cosine_over_run(self, optimizer)}

class RestorationWriter(BasePredictionWriter):
    """Write each restored image as an 8-bit PNG (grey or RGB), as each batch is predicted.

    A predicted image named by a file path (``ImageFolderRestorationData(predict_dir=...)``) is
    written next to its folder: ``photos/noisy/a.jpg`` -> ``photos/noisy-restored/a.png``, unless
    ``output_dir`` names a folder for all; one named by a bare name (PhotosData's test images)
    goes to ``output_dir`` (default ``restored``). Each file is written to a temporary name and
    renamed once complete.

        attnzoo predict --config RECIPE.yaml --ckpt_path CKPT \\
            --data ImageFolderRestorationData --data.predict_dir noisy/ \\
            --trainer.callbacks RestorationWriter
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = None if output_dir is None else Path(output_dir)

    def destination(self, name: str) -> Path:
        path = Path(name)
        if self.output_dir is not None:
            return self.output_dir / f"{path.stem}.png"
        if path.parent == Path("."):
            return Path("restored") / f"{path.stem}.png"
        return path.parent.with_name(f"{path.parent.name}-restored") / f"{path.stem}.png"

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for image, name in zip(prediction["restored"], prediction["names"]):
            pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            path = self.destination(str(name))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
            os.close(fd)
            try:
                Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


# An image larger than this on a side is shown (and restored) by its central part only.
_LARGEST_SHOWN = 512


def show_restoration(
    model: nn.Module | str | Path,
    path: str | Path,
    images: Sequence[str | Path] | None = None,
    count: int = 4,
    level: float | None = None,
) -> Path:
    """Draw a restoration network's work and its attention maps, one row per image.

    Each row is the degraded image, the network's restoration of it and the clean image, captioned with
    the PSNR of the degraded and the restored image against the clean one (dB, data range 1, over all
    channels: a colour network's figures are not the Y-channel ones ``attnzoo test`` reports), then the
    network's attention maps as :func:`attnzoo.viz.draw` draws them (over the degraded image; the photos
    compared as the groups). The maps are recorded while the network runs on each degraded image alone
    (in eval mode). A network without attention gets the images alone, and the title says so.

    The degradation is the one the network was trained to undo (``pretrained_cfg["degradation"]``, which
    ImageRestorer records), at its level; a blind network's (a range) at ``level``, by default the
    benchmark's (``PROTOCOL_LEVELS``: sigma 25, JPEG quality 10).

    Args:
        model: a restoration network from attnzoo (``create_model``, ``load``) or anything ``attnzoo.load``
            takes, with a degradation in its ``pretrained_cfg``.
        path: the PNG to write.
        images: clean image files (PNG, JPEG ... anything PIL reads), read as grey or RGB as the network
            takes them, and each degraded by a generator seeded with 0. An image larger than 512 pixels
            on a side is centre-cropped to 512 first: that part alone is restored and shown. By default
            the first ``count`` of the benchmark's test photos (``TEST_PHOTOS``), degraded exactly as the
            benchmark degrades them (:func:`attnzoo.data.photos.protocol_pair`); they are grey, repeated
            to three channels for a colour network.
        count: how many test photos to draw without ``images`` (1..4).
        level: a blind network's sigma or JPEG quality, in its range; a network trained at one level
            takes that one only.
    """
    from attnzoo.data.photos import PROTOCOL_LEVELS, TEST_PHOTOS, protocol_pair

    check_count(count, len(TEST_PHOTOS))
    if images is not None and (isinstance(images, (str, Path)) or not 1 <= len(images) <= 32):
        raise ValueError(f"images must be a list of 1 to 32 image files, got {images!r}")
    model = task_model(model, "restoration")
    cfg = model.pretrained_cfg
    name = model_name(cfg)
    if cfg.get("degradation") is None:
        raise ValueError(
            f"{name!r} records no degradation (it was not trained by ImageRestorer), so there is nothing to show"
        )
    trained = Degradation.from_any(cfg["degradation"])
    if level is None:
        level = PROTOCOL_LEVELS[trained.kind] if trained.is_blind else trained.level
    try:
        shown = Degradation.fixed(trained.kind, level)
    except ValueError as err:
        raise ValueError(f"level {level!r} does not fit: {err}") from None
    if not trained.low <= shown.level <= trained.high:
        span = f"range [{trained.low:g}, {trained.high:g}]" if trained.is_blind else f"{trained.low:g}"
        hint = f"give level, a {trained.field} in that range" if trained.is_blind else "leave level out"
        raise ValueError(f"{name!r} undoes {trained.kind} {trained.field} {span}, not {shown.level:g}: {hint}")
    channels = cfg["in_chans"]
    if images is None:
        sources = list(TEST_PHOTOS[:count])
        grey = [protocol_pair(photo, shown.kind, shown.level) for photo in sources]
        # A colour network gets the grey photos repeated to RGB, as PhotosData serves them.
        pairs = [tuple(torch.from_numpy(x).float()[None].repeat(channels, 1, 1) for x in pair) for pair in grey]
    else:
        sources = [Path(file).name for file in images]
        cleans = [_centre_crop(read_image(file, "L" if channels == 1 else "RGB"), _LARGEST_SHOWN) for file in images]
        pairs = [(shown.degrade(clean, torch.Generator().manual_seed(0)), clean) for clean in cleans]
    titles, panels, maps = [], [], []
    for (degraded, clean), source in zip(pairs, sources):
        (restored,), image_maps = viz.attention_maps(model, degraded[None])
        before, after = (float(peak_signal_noise_ratio(x, clean, data_range=1.0)) for x in (degraded, restored))
        titles.append(f"{source}, degraded\n{before:.2f} dB")
        panels.append([(restored, f"restored\n{after:.2f} dB"), (clean, "clean")])
        maps.append(image_maps)
    title = f"{name}: {shown.kind} {shown.field} {shown.level:g}"
    if trained.is_blind:
        title += f" (trained on [{trained.low:g}, {trained.high:g}])"
    if not maps[0]:
        title += "; no attention maps, images only"
    per_photo = {module: [image_maps[module][0] for image_maps in maps] for module in maps[0]}
    return viz.draw(
        [degraded for degraded, _ in pairs], per_photo, path, model, row_titles=titles, panels=panels,
        groups=sources, group_by="photo", title=title,
    )


def _centre_crop(image: Tensor, side: int) -> Tensor:
    """The central ``side`` x ``side`` part of an image (C, H, W); a dimension no longer than ``side`` stays whole."""
    top, left = ((length - side) // 2 if length > side else 0 for length in image.shape[-2:])
    return image[..., top : top + side, left : left + side]
