"""ImageRestorer on small PhotosData patches: PSNR / SSIM against scikit-image, losses, the degradation
handed to the data, a fit that raises PSNR, tiling, the writer, the CLI (one process and two); what
`attnzoo show` draws for a restoration network."""
from __future__ import annotations

import csv
import hashlib
import json
import sys
import types

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import attnzoo
from attnzoo.backbones import restore_tiled
from attnzoo.cli import AttnzooCLI, main
from attnzoo.data import PhotosData
from attnzoo.data.degradation import Degradation
from attnzoo.data.photos import TEST_PHOTOS, protocol_pair
from attnzoo.tasks import ImageRestorer, RestorationWriter, show_restoration
from attnzoo.tasks.restoration import psnr, ssim
from attnzoo.zoo.catalog import ZooEntry, catalog

from ..cli_helpers import ddp_fit
from ..picture_helpers import capture_draw, layout, write_image

TINY = {"channels": 8, "groups": 1, "blocks": 1}
CLI_MODEL = ["--model", "ImageRestorer", "--model.network", "rir-se", "--model.network_kwargs", json.dumps(TINY),
             "--model.optimizer.lr", "0.001"]
CLI_DATA = ["--data", "PhotosData", "--data.patch_size", "24", "--data.train_size", "8", "--data.batch_size", "4"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.log_every_n_steps", "1"]


@pytest.fixture(autouse=True)
def _no_pytest_arguments(monkeypatch):
    # LightningCLI warns when it is given args while sys.argv holds pytest's own.
    monkeypatch.setattr(sys, "argv", ["attnzoo"])


def trainer(**kwargs) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    return pl.Trainer(accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


def skimage_scores(restored: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """The benchmark protocol's PSNR and SSIM of one grey image pair (H, W) in [0, 1]."""
    return (
        peak_signal_noise_ratio(clean, restored, data_range=1),
        structural_similarity(clean, restored, data_range=1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False),
    )


# --- metrics ---------------------------------------------------------------------------------------------


def test_psnr_and_ssim_equal_skimage_per_image_on_grey_images():
    pairs = [protocol_pair(name, "gaussian", 25) for name in TEST_PHOTOS[:2]]
    noisy = torch.tensor(np.stack([np.clip(d, 0, 1) for d, _ in pairs]))[:, None].float()
    clean = torch.tensor(np.stack([c for _, c in pairs]))[:, None].float()
    expected = [skimage_scores(n[0].double().numpy(), c[0].double().numpy()) for n, c in zip(noisy, clean)]
    torch.testing.assert_close(psnr(noisy, clean), torch.tensor([p for p, _ in expected], dtype=torch.float32), rtol=0, atol=1e-3)
    torch.testing.assert_close(ssim(noisy, clean), torch.tensor([s for _, s in expected], dtype=torch.float32), rtol=0, atol=1e-4)


def test_colour_images_are_scored_on_their_y_channel():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 40, 36, generator=generator)
    restored = (clean + 0.05 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    # skimage's BT.601 Y is on the 16-235 scale for float RGB in [0, 1].
    y = [rgb2ycbcr(x.permute(1, 2, 0).double().numpy())[..., 0] / 255 for x in (*restored, *clean)]
    expected = [skimage_scores(y[i], y[i + 2]) for i in range(2)]
    torch.testing.assert_close(psnr(restored, clean), torch.tensor([p for p, _ in expected], dtype=torch.float32), rtol=0, atol=1e-3)
    torch.testing.assert_close(ssim(restored, clean), torch.tensor([s for _, s in expected], dtype=torch.float32), rtol=0, atol=1e-4)


def test_metrics_run_in_float32_on_half_precision_images():
    clean = torch.rand(1, 1, 32, 32)
    noisy = (clean + 0.1).clamp(0, 1)
    torch.testing.assert_close(psnr(noisy.bfloat16(), clean.bfloat16()), psnr(noisy.bfloat16().float(), clean.bfloat16().float()))
    assert ssim(noisy.bfloat16(), clean).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_metrics_are_float32_under_autocast(dtype):
    # Lightning's mixed precision validates under autocast; SSIM's Gaussian filter must not run in half.
    noisy, clean = protocol_pair("camera", "gaussian", 10)
    noisy = torch.tensor(np.clip(noisy, 0, 1))[None, None, :96, :96].float()
    clean = torch.tensor(clean)[None, None, :96, :96].float()
    expected = skimage_scores(noisy[0, 0].double().numpy(), clean[0, 0].double().numpy())
    with torch.autocast("cpu", dtype=dtype):
        scores = psnr(noisy, clean), ssim(noisy, clean)
    torch.testing.assert_close(scores[0], torch.tensor([expected[0]], dtype=torch.float32), rtol=0, atol=1e-3)
    torch.testing.assert_close(scores[1], torch.tensor([expected[1]], dtype=torch.float32), rtol=0, atol=1e-4)


def test_ssim_filters_in_float64_where_float32_variances_cancel():
    # Low contrast on a bright level: E[x^2] - E[x]^2 loses digits in float32 (2e-5 of SSIM off here;
    # 0.05 off where a GPU filters in TF32), not in skimage's float64.
    generator = torch.Generator().manual_seed(0)
    clean = 0.9 + 0.001 * torch.randn(2, 1, 64, 64, generator=generator)
    restored = clean + 0.001 * torch.randn(clean.shape, generator=generator)
    expected = [skimage_scores(x[0].double().numpy(), c[0].double().numpy())[1] for x, c in zip(restored, clean)]
    scores = ssim(restored, clean)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-7)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="SSIM needs images larger than 11 x 11"):
        ssim(torch.rand(1, 1, 10, 30), torch.rand(1, 1, 10, 30))


# --- the module ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["l1", "l2", "charbonnier"])
def test_losses_follow_their_formulas(loss):
    model = ImageRestorer("rir", network_kwargs=TINY, loss=loss, charbonnier_eps=0.01)
    restored, clean = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    d = (restored - clean).double()
    expected = {"l1": d.abs().mean(), "l2": d.square().mean(), "charbonnier": (d.square() + 1e-4).sqrt().mean()}
    torch.testing.assert_close(model._loss(restored, clean).double(), expected[loss], rtol=1e-6, atol=1e-7)


def test_the_degradation_and_channels_go_to_the_data_and_into_the_config():
    model = ImageRestorer("dncnn", degradation={"kind": "jpeg", "quality": [10, 40]}, channels=3,
                          network_kwargs={"depth": 3, "channels": 8})
    data = PhotosData(patch_size=24, train_size=4, batch_size=2)
    trainer(max_steps=1, limit_val_batches=0).fit(model, datamodule=data)
    assert data.degradation == model.degradation and data.channels == 3
    degraded, clean = next(iter(data.train_dataloader()))
    assert degraded.shape == clean.shape == (2, 3, 24, 24)
    assert torch.equal(clean, (clean * 255).round() / 255)  # JPEG pairs: the clean target is the 8-bit image
    assert model.model.pretrained_cfg["degradation"] == {"kind": "jpeg", "quality": [10, 40]}
    assert model.model.pretrained_cfg["dataset"] == "photos"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"degradation": {"kind": "gaussian", "sigma": 15}}, "degradation .* differs from the model's"),
        ({"channels": 3}, "channels 3 differs from the model's 1"),
    ],
)
def test_data_built_for_something_else_is_refused(data, message):
    model = ImageRestorer("rir", network_kwargs=TINY)
    with pytest.raises(ValueError, match=message):
        trainer(max_steps=1).fit(model, datamodule=PhotosData(patch_size=24, train_size=4, batch_size=2, **data))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "l3"}, "loss must be one of l1, l2, charbonnier"),
        ({"tile": 8}, "tile must be an integer >= 16"),
        ({"compile": "yes"}, "compile must be true or false"),
        ({"self_ensemble": 1}, "self_ensemble must be true or false"),
        ({"charbonnier_eps": 0}, "charbonnier_eps must be positive"),
        ({"degradation": {"kind": "gaussian", "sigma": 300}}, "sigma"),
        ({"degradation": {"kind": "jpeg", "quality": 0}}, "quality"),
        ({"channels": 2}, "in_channels must be 1 .grey. or 3"),
        ({"network": "rir-cbma"}, "Did you mean 'cbam'"),
        ({"network_kwargs": {"depth": 3}}, "rir takes no argument depth"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageRestorer(**kwargs)


def val_psnr(model: ImageRestorer, data: PhotosData) -> float:
    """The mean PSNR over the val images, computed here with skimage."""
    model.eval()
    scores = []
    with torch.no_grad():
        for degraded, clean in data.val_dataloader():
            restored = model.model(degraded)[0, 0].double().numpy()
            scores.append(skimage_scores(restored, clean[0, 0].double().numpy())[0])
    model.train()
    return float(np.mean(scores))


def test_a_short_fit_raises_the_validation_psnr():
    pl.seed_everything(0)
    model = ImageRestorer("rir-se", network_kwargs={"channels": 16, "groups": 1, "blocks": 2},
                          optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))
    data = PhotosData(patch_size=32, train_size=160, batch_size=8)
    before = val_psnr(model, data)
    trainer(max_epochs=2, num_sanity_val_steps=0).fit(model, datamodule=data)
    after = val_psnr(model, data)
    # The residual network starts near the identity (the noisy input, about 20.2 dB at sigma 25) and
    # learns to remove part of the noise.
    assert after > before + 1.0, (before, after)
    assert model.trainer.callback_metrics["val/psnr"] == pytest.approx(after, abs=1e-4)


def test_compiled_training_steps_train_the_same_weights():
    from torch._dynamo.utils import counters

    def two_steps(compile: bool) -> dict[str, torch.Tensor]:
        pl.seed_everything(0)
        model = ImageRestorer("rir-se", network_kwargs=TINY, compile=compile, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
        trainer(max_steps=2, limit_val_batches=0).fit(model, datamodule=PhotosData(patch_size=24, train_size=8, batch_size=4))
        return model.state_dict()

    eager = two_steps(False)
    graphs = counters["stats"]["unique_graphs"]
    compiled = two_steps(True)
    assert counters["stats"]["unique_graphs"] > graphs  # the steps did go through torch.compile
    assert compiled.keys() == eager.keys()  # no "_orig_mod." in the checkpoint's names
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-5, msg=key)


def test_pretrained_starts_from_a_zoo_entry_with_its_sizes_and_degradation(tmp_path, monkeypatch):
    trained = attnzoo.create_model("rir-se", in_channels=3, **TINY)
    trained.pretrained_cfg["degradation"] = {"kind": "jpeg", "quality": 20}
    folder = attnzoo.save_pretrained(trained, tmp_path / "rir-se.trial")
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    entry = ZooEntry(name="rir-se.trial", task="restoration", source={"folder": str(folder), "filename": "model.safetensors"},
                     sha256=digest, metrics={}, license="apache-2.0")
    monkeypatch.setitem(catalog(), entry.name, entry)
    model = ImageRestorer("rir-se.trial", pretrained=True)
    assert model.channels == 3 and model.degradation.to_dict() == {"kind": "jpeg", "quality": 20}
    noisy = torch.rand(1, 3, 20, 20)
    trained.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(noisy), trained(noisy), rtol=0, atol=0)
    again = ImageRestorer("rir-se.trial", pretrained=True, degradation={"kind": "gaussian", "sigma": 10})
    assert again.model.pretrained_cfg["degradation"] == {"kind": "gaussian", "sigma": 10}  # fine-tuned to another
    with pytest.raises(ValueError, match="takes 3-channel images, got channels=1"):
        ImageRestorer("rir-se.trial", pretrained=True, channels=1)
    with pytest.raises(ValueError, match="network_kwargs cannot be changed"):
        ImageRestorer("rir-se.trial", pretrained=True, network_kwargs={"channels": 16})


def test_network_kwargs_checkpoint_path_starts_from_a_published_folder(tmp_path):
    trained = attnzoo.create_model("rir-se", **TINY)
    folder = attnzoo.save_pretrained(trained, tmp_path / "stage1")
    model = ImageRestorer("rir-se", network_kwargs={**TINY, "checkpoint_path": str(folder / "model.safetensors")})
    noisy = torch.rand(1, 1, 20, 20)
    trained.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(noisy), trained(noisy), rtol=0, atol=0)
    # The path is where training started, not how to rebuild the network: config.json leaves it out.
    assert model.model.pretrained_cfg["network_kwargs"] == TINY
    with pytest.raises(ValueError, match="does not fit 'rir-cbam'"):
        ImageRestorer("rir-cbam", network_kwargs={**TINY, "checkpoint_path": str(folder / "model.safetensors")})


def test_large_images_are_restored_tile_by_tile_as_a_whole():
    model = ImageRestorer("rir", network_kwargs=TINY, tile=48).eval()
    image = torch.rand(1, 1, 100, 77)
    with torch.no_grad():
        whole = model.model(image)
    torch.testing.assert_close(model.restore(image), whole, rtol=0, atol=1e-5)


def numpy_self_ensemble(network: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The eight flips and rotations of a grey image (H, W), each restored and turned back, averaged."""
    outs = []
    for flip in (False, True):
        flipped = image[:, ::-1] if flip else image
        for turns in range(4):
            turned = np.ascontiguousarray(np.rot90(flipped, turns))
            with torch.no_grad():
                out = network(torch.from_numpy(turned).float()[None, None])[0, 0].double().numpy()
            out = np.rot90(out, -turns)
            outs.append(out[:, ::-1] if flip else out)
    return np.mean(outs, axis=0)


def test_self_ensemble_restores_the_eight_flips_and_rotations_tile_by_tile():
    model = ImageRestorer("rir", network_kwargs=TINY, tile=48, self_ensemble=True).eval()
    image = torch.rand(1, 1, 100, 77)
    expected = numpy_self_ensemble(model.model, image[0, 0].double().numpy())
    np.testing.assert_allclose(model.restore(image)[0, 0].double().numpy(), expected, rtol=0, atol=1e-5)
    # Evaluation options, not saved: a checkpoint loads (and `attnzoo publish` scores it) in one pass.
    assert not {"tile", "self_ensemble"} & set(model.hparams)


def test_restoration_writer_writes_8_bit_pngs_next_to_the_folder(tmp_path):
    restored = torch.rand(2, 1, 5, 7)
    writer = RestorationWriter()
    names = [str(tmp_path / "noisy" / "a.jpg"), str(tmp_path / "noisy" / "b.png")]
    writer.write_on_batch_end(None, None, {"restored": restored, "names": names}, None, None, 0)
    for image, name in zip(restored, ("a", "b")):
        written = np.asarray(Image.open(tmp_path / "noisy-restored" / f"{name}.png"))
        assert written.dtype == np.uint8 and written.shape == (5, 7)
        np.testing.assert_array_equal(written, (image[0] * 255).round().numpy().astype(np.uint8))
    RestorationWriter(output_dir=str(tmp_path / "out")).write_on_batch_end(
        None, None, {"restored": torch.rand(1, 3, 4, 4), "names": ["camera"]}, None, None, 0
    )
    assert np.asarray(Image.open(tmp_path / "out" / "camera.png")).shape == (4, 4, 3)
    assert not list(tmp_path.rglob(".*.png"))  # no temporary file left


# --- the command line ------------------------------------------------------------------------------------


def test_cli_fit_test_predict_and_publish(tmp_path, monkeypatch):
    cli = AttnzooCLI(args=["fit", *CLI_MODEL, *CLI_DATA, *QUIET, "--trainer.max_epochs", "1",
                           "--trainer.default_root_dir", str(tmp_path)])
    run = tmp_path / "lightning_logs" / "version_0"
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/psnr" and best.mode == "max"
    with open(run / "metrics.csv") as f:
        header = set(next(csv.reader(f)))
    assert {"train/loss", "val/psnr", "val/ssim"} <= header
    last = run / "checkpoints" / "last.ckpt"
    tested = AttnzooCLI(args=["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                              "--trainer.logger", "false"])
    logged = tested.trainer.callback_metrics
    per_image = [float(logged[f"test/psnr/{name}"]) for name in TEST_PHOTOS]
    assert float(logged["test/psnr"]) == pytest.approx(np.mean(per_image), abs=1e-4)
    # Against the checkpoint's network on the benchmark's pairs, scored by skimage.
    network = ImageRestorer.load_from_checkpoint(last, map_location="cpu").model.eval()
    for name in TEST_PHOTOS:
        degraded, clean = protocol_pair(name, "gaussian", 25)
        with torch.no_grad():
            out = network(torch.from_numpy(degraded).float()[None, None])[0, 0].double().numpy()
        expected_psnr, expected_ssim = skimage_scores(out, clean)
        assert float(logged[f"test/psnr/{name}"]) == pytest.approx(expected_psnr, abs=2e-3)
        assert float(logged[f"test/ssim/{name}"]) == pytest.approx(expected_ssim, abs=2e-4)
        # The degraded input, clipped, is scored beside it: the baseline a restorer must beat.
        input_psnr, input_ssim = skimage_scores(np.clip(degraded, 0, 1), clean)
        assert float(logged[f"test/input_psnr/{name}"]) == pytest.approx(input_psnr, abs=2e-3)
        assert float(logged[f"test/input_ssim/{name}"]) == pytest.approx(input_ssim, abs=2e-4)

    # The same checkpoint tested with the self-ensemble: each image's figure is that of its eight restorations' mean.
    ensembled = AttnzooCLI(args=["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                                 "--trainer.logger", "false", "--model.self_ensemble", "true"])
    logged_x8 = ensembled.trainer.callback_metrics
    assert abs(float(logged_x8["test/psnr"]) - float(logged["test/psnr"])) > 0.01  # the flag took
    for name in TEST_PHOTOS:
        degraded, clean = protocol_pair(name, "gaussian", 25)
        expected_psnr, _ = skimage_scores(numpy_self_ensemble(network, degraded), clean)
        assert float(logged_x8[f"test/psnr/{name}"]) == pytest.approx(expected_psnr, abs=2e-3)

    # And with a tile smaller than the photos: restored tile by tile.
    tiles = []
    with monkeypatch.context() as patched:
        patched.setattr("attnzoo.tasks.restoration.restore_tiled",
                        lambda model, images, tile: tiles.append(tile) or restore_tiled(model, images, tile=tile))
        AttnzooCLI(args=["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                         "--trainer.logger", "false", "--model.tile", "200"])
    assert tiles == [200] * len(TEST_PHOTOS)

    output = tmp_path / "restored"
    AttnzooCLI(args=["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(last),
                     "--trainer.logger", "false", "--trainer.callbacks", "RestorationWriter",
                     "--trainer.callbacks.output_dir", str(output)])
    assert sorted(p.stem for p in output.glob("*.png")) == sorted(TEST_PHOTOS)

    # A stand-in for the bm3d package that returns the noisy image: publish's BM3D column must then repeat the
    # degraded input's, which shows that it denoises and scores each test image the test step's way.
    monkeypatch.setitem(sys.modules, "bm3d", types.SimpleNamespace(bm3d=lambda noisy, sigma_psd: noisy))
    assert main(["publish", "--ckpt_path", str(last), "--output", str(tmp_path / "model"), "--name", "rir-se.trial"]) == 0
    card = (tmp_path / "model" / "README.md").read_text()
    for name in TEST_PHOTOS:
        given = f"{float(logged[f'test/input_psnr/{name}']):.2f} / {float(logged[f'test/input_ssim/{name}']):.3f}"
        restored = f"{float(logged[f'test/psnr/{name}']):.2f} / {float(logged[f'test/ssim/{name}']):.3f}"
        assert f"| {name} | {given} | {given} | {restored} |" in card
    assert "| image | degraded input | BM3D | this model |" in card
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["task"] == "restoration" and config["degradation"] == {"kind": "gaussian", "sigma": 25}
    assert config["network_kwargs"] == TINY and config["in_chans"] == 1
    assert "test/psnr" in (tmp_path / "model" / "README.md").read_text()
    loaded = attnzoo.load(tmp_path / "model")
    noisy = torch.rand(1, 1, 33, 29)
    with torch.no_grad():
        torch.testing.assert_close(loaded(noisy), network(noisy), rtol=0, atol=0)


def test_bm3d_is_a_baseline_for_grey_gaussian_noise_only():
    jpeg = ImageRestorer("rir", degradation={"kind": "jpeg", "quality": 10}, network_kwargs=TINY)
    colour = ImageRestorer("rir", channels=3, network_kwargs=TINY)
    for task in (jpeg, colour):
        assert task.baseline_metrics(PhotosData()) == {}


def test_ddp_fit_on_two_processes(tmp_path):
    rank0 = ddp_fit(tmp_path, *CLI_MODEL, *CLI_DATA, *QUIET, "--seed_everything", "0")
    torch.manual_seed(0)
    initial = ImageRestorer("rir-se", network_kwargs=TINY).state_dict()
    assert not torch.equal(rank0["model.head.weight"], initial["model.head.weight"])
    with open(tmp_path / "lightning_logs" / "version_0" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert [r["val/psnr"] for r in logged if r["val/psnr"]] != []


def small_restorer(name: str = "rir-cbam", degradation: dict | None = None, **kwargs) -> torch.nn.Module:
    sizes = {"channels": 8, "groups": 1, "blocks": 1} if name.startswith("rir") else {"channels": 8, "depth": 3}
    model = attnzoo.create_model(name, **sizes, **kwargs)
    model.pretrained_cfg["degradation"] = degradation or {"kind": "gaussian", "sigma": 25}
    return model


def caption_psnr(caption: str) -> float:
    return float(caption.split("\n")[1].removesuffix(" dB"))


def test_show_restoration_draws_degraded_restored_clean_and_maps(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    model = small_restorer()
    path = show_restoration(model, tmp_path / "out" / "restored.png", count=2)
    # Degraded, restored, clean, then the one residual block's CBAM map.
    assert Image.open(path).size == layout(4, 2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["restored.png"]  # no temporary file left
    assert list(drawn["maps"]) == ["body.0.blocks.0.attention"]
    assert drawn["title"] == "rir-cbam: gaussian sigma 25"
    for row, photo in enumerate(["camera", "moon"]):
        degraded, clean = (torch.from_numpy(x).float()[None] for x in protocol_pair(photo, "gaussian", 25))
        (restored, restored_caption), (shown_clean, clean_caption) = drawn["panels"][row]
        torch.testing.assert_close(drawn["images"][row], degraded)
        with torch.no_grad():
            torch.testing.assert_close(restored, model.eval()(degraded[None])[0])
        torch.testing.assert_close(shown_clean, clean)
        assert clean_caption == "clean" and drawn["row_titles"][row].startswith(f"{photo}, degraded\n")
        for caption, image in ((drawn["row_titles"][row], degraded), (restored_caption, restored)):
            expected = -10 * torch.log10(((image - clean) ** 2).mean()).item()
            assert caption_psnr(caption) == pytest.approx(expected, abs=0.01)
    assert caption_psnr(drawn["row_titles"][0]) == pytest.approx(20.17, abs=0.05)  # sigma 25's usual input PSNR

    # A blind model: at the protocol's level by default, else at the one given.
    blind = small_restorer(degradation={"kind": "gaussian", "sigma": [0, 50]})
    show_restoration(blind, tmp_path / "blind.png", count=1)
    assert drawn["title"] == "rir-cbam: gaussian sigma 25 (trained on [0, 50])"
    show_restoration(blind, tmp_path / "blind.png", count=1, level=40)
    torch.testing.assert_close(
        drawn["images"][0], torch.from_numpy(protocol_pair("camera", "gaussian", 40)[0]).float()[None]
    )


def test_show_restoration_degrades_image_files(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    # Wider than 512: its central 512 columns are restored and shown.
    file = write_image(tmp_path / "wide.png", 40, 600)
    path = show_restoration(small_restorer(), tmp_path / "file.png", images=[file])
    assert Image.open(path).size == layout(4, 1)
    clean = torch.from_numpy(np.asarray(Image.open(file).convert("L"), dtype=np.float32) / 255)[None, :, 44:556]
    degraded = Degradation.fixed("gaussian", 25).degrade(clean, torch.Generator().manual_seed(0))
    torch.testing.assert_close(drawn["images"][0], degraded)
    torch.testing.assert_close(drawn["panels"][0][1][0], clean)
    assert drawn["row_titles"][0].startswith("wide.png, degraded\n")


def test_show_restoration_of_a_network_without_attention(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    # A colour JPEG model: the grey test photos repeated to RGB, an image file read as RGB.
    model = small_restorer("dncnn", {"kind": "jpeg", "quality": 10}, in_channels=3)
    path = show_restoration(model, tmp_path / "plain.png", count=1)
    assert Image.open(path).size == layout(3, 1) and drawn["maps"] == {}
    assert drawn["title"] == "dncnn: jpeg quality 10; no attention maps, images only"
    degraded = torch.from_numpy(protocol_pair("camera", "jpeg", 10)[0]).float()[None].expand(3, -1, -1)
    torch.testing.assert_close(drawn["images"][0], degraded)
    show_restoration(model, tmp_path / "plain.png", images=[write_image(tmp_path / "photo.jpg", 24, 32)])
    assert drawn["images"][0].shape == (3, 24, 32)


def test_show_restoration_bad_input(tmp_path):
    model = small_restorer()
    with pytest.raises(ValueError, match="count must be an integer in 1..4, got 5"):
        show_restoration(model, tmp_path / "x.png", count=5)
    with pytest.raises(ValueError, match="images must be a list of 1 to 32 image files"):
        show_restoration(model, tmp_path / "x.png", images=str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="cannot read image .*missing.png"):
        show_restoration(model, tmp_path / "x.png", images=[tmp_path / "missing.png"])
    with pytest.raises(ValueError, match="'resnet20-cbam' is a classification model; show_restoration draws"):
        show_restoration(attnzoo.create_model("resnet20-cbam", num_classes=10), tmp_path / "x.png")
    untrained = attnzoo.create_model("rir-cbam", channels=8, groups=1, blocks=1)
    with pytest.raises(ValueError, match="'rir-cbam' records no degradation .*nothing to show"):
        show_restoration(untrained, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'rir-cbam' undoes gaussian sigma 25, not 50: leave level out"):
        show_restoration(model, tmp_path / "x.png", level=50)
    blind = small_restorer(degradation={"kind": "gaussian", "sigma": [30, 50]})
    with pytest.raises(ValueError, match=r"undoes gaussian sigma range \[30, 50\], not 25: give level, a sigma in"):
        show_restoration(blind, tmp_path / "x.png")
    jpeg = small_restorer(degradation={"kind": "jpeg", "quality": [10, 40]})
    with pytest.raises(ValueError, match="level 10.5 does not fit: degradation: quality must be an integer"):
        show_restoration(jpeg, tmp_path / "x.png", level=10.5)
    assert not (tmp_path / "x.png").exists()


def test_show_command_draws_a_restoration_network(tmp_path, capsys):
    blind = small_restorer(degradation={"kind": "jpeg", "quality": [10, 40]})
    folder = attnzoo.save_pretrained(blind, tmp_path / "net")
    output = tmp_path / "restored.png"
    assert main(["show", str(folder), "--output", str(output), "--count", "1", "--level", "20"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    assert Image.open(output).size == layout(4, 1)
    image = write_image(tmp_path / "photo.png", 24, 32)
    assert main(["show", str(folder), "--output", str(output), "--image", str(image), str(image)]) == 0
    assert Image.open(output).size == layout(4, 2)

    assert main(["show", str(folder), "--output", str(output), "--level", "50"]) == 2
    assert "undoes jpeg quality range [10, 40], not 50" in capsys.readouterr().err
    assert main(["show", str(folder), "--output", str(output), "--score_thresh", "0.1"]) == 2
    assert f"--score_thresh is for detectors; {str(folder)!r} is a restoration model" in capsys.readouterr().err
    assert main(["show", "resnet20-cbam.digits", "--output", str(output), "--level", "25"]) == 2
    err = capsys.readouterr().err
    assert "--level is for restoration models; 'resnet20-cbam.digits' is a classification model" in err
