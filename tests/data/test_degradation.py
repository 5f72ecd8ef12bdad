import io
import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from attnzoo.data import Degradation
from attnzoo.data.degradation import jpeg_roundtrip, quantize


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pillow_jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Pillow's own encode / decode of a uint8 image, the reference for the JPEG degradation."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@pytest.fixture(scope="module")
def photo():
    """A natural RGB image (3, 96, 128) on the 8-bit grid: JPEG artefacts there are real, unlike on noise."""
    pixels = skimage.data.astronaut()[100:196, 150:278]
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize(
    "value, low, high, blind",
    [
        ({"kind": "gaussian", "sigma": 25}, 25.0, 25.0, False),
        ({"kind": "gaussian", "sigma": 12.5}, 12.5, 12.5, False),
        ({"kind": "gaussian", "sigma": [0, 50]}, 0.0, 50.0, True),
        ({"kind": "jpeg", "quality": 10}, 10, 10, False),
        ({"kind": "jpeg", "quality": (10, 40)}, 10, 40, True),
        ({"kind": "jpeg", "quality": [100, 100]}, 100, 100, False),
    ],
)
def test_from_any_and_back(value, low, high, blind):
    degradation = Degradation.from_any(value)
    assert (degradation.low, degradation.high, degradation.is_blind) == (low, high, blind)
    as_dict = degradation.to_dict()
    # JSON types (it goes into config.json), and it reads back as the same degradation.
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert Degradation.from_any(as_dict) == degradation
    assert Degradation.from_any(degradation) is degradation
    field = "sigma" if value["kind"] == "gaussian" else "quality"
    assert as_dict[field] == ([low, high] if blind else low)
    if not blind:
        assert degradation.level == low


def test_equal_levels_are_the_same_degradation():
    assert Degradation.from_any({"kind": "gaussian", "sigma": 25}) == Degradation.from_any(
        {"kind": "gaussian", "sigma": 25.0}
    )
    assert Degradation.from_any({"kind": "gaussian", "sigma": [25, 25]}).to_dict() == {"kind": "gaussian", "sigma": 25}
    assert Degradation.fixed("jpeg", 10) == Degradation.from_any({"kind": "jpeg", "quality": 10})
    assert Degradation.fixed("gaussian", np.float64(15)).to_dict() == {"kind": "gaussian", "sigma": 15}


def test_a_blind_degradation_has_no_level():
    with pytest.raises(ValueError, match=r"sigma is a range \[0.0, 50.0\]"):
        Degradation.from_any({"kind": "gaussian", "sigma": [0, 50]}).level


@pytest.mark.parametrize(
    "value, message",
    [
        ({"kind": "jepg", "quality": 10}, r"kind must be one of 'gaussian', 'jpeg', got 'jepg'"),
        ({"sigma": 25}, r"kind is missing \(one of 'gaussian', 'jpeg'\)"),
        ({"kind": "gaussian"}, r"a gaussian degradation needs sigma \(a number in \[0, 255\]"),
        ({"kind": "jpeg", "sigma": 25}, r"a jpeg degradation needs quality \(an integer in \[1, 100\]"),
        ({"kind": "jpeg", "quality": 10, "subsampling": 0}, r"unknown field 'subsampling': .* kind and quality only"),
        ({"kind": "gaussian", "sigma": -1}, r"sigma must be a number in \[0, 255\] \(the 0-255 scale\), got -1"),
        ({"kind": "gaussian", "sigma": 256}, r"sigma must be a number in \[0, 255\].*got 256"),
        ({"kind": "gaussian", "sigma": float("nan")}, r"sigma must be a number in \[0, 255\]"),
        ({"kind": "gaussian", "sigma": "25"}, r"sigma must be a number in \[0, 255\] .* or a \[low, high\] pair"),
        ({"kind": "gaussian", "sigma": True}, r"sigma must be a number"),
        ({"kind": "gaussian", "sigma": [50, 0]}, r"sigma must be a \[low, high\] pair with 0 <= low <= high <= 255"),
        ({"kind": "gaussian", "sigma": [0, 300]}, r"sigma must be a \[low, high\] pair with 0 <= low <= high <= 255"),
        ({"kind": "gaussian", "sigma": [0, 25, 50]}, r"a sigma range must be a \[low, high\] pair, got \[0, 25, 50\]"),
        ({"kind": "jpeg", "quality": 0}, r"quality must be an integer in \[1, 100\], got 0"),
        ({"kind": "jpeg", "quality": 101}, r"quality must be an integer in \[1, 100\], got 101"),
        ({"kind": "jpeg", "quality": 10.5}, r"quality must be an integer in \[1, 100\] or a \[low, high\] pair"),
        ({"kind": "jpeg", "quality": [40, 10]}, r"quality must be a \[low, high\] pair with 1 <= low <= high <= 100"),
        ("gaussian", r"degradation must be a dict such as"),
    ],
)
def test_invalid_degradations(value, message):
    with pytest.raises(ValueError, match=message):
        Degradation.from_any(value)


def test_gaussian_noise_level_not_clipped():
    # Half black, half white: clipping would cut the noise on both halves.
    clean = torch.zeros(1, 1, 512, 512)
    clean[..., 256:] = 1
    degraded = Degradation.fixed("gaussian", 25).degrade(clean, _generator(0))
    assert degraded.shape == clean.shape and degraded.dtype == torch.float32
    noise = (degraded - clean).double()
    # 262144 samples: the standard error of the std is 0.14 %, of the mean 0.2 % of sigma.
    assert noise.std().item() == pytest.approx(25 / 255, rel=0.01)
    assert abs(noise.mean().item()) < 0.01 * 25 / 255
    assert (degraded < 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert (degraded > 1).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_gaussian_is_clean_plus_seeded_standard_normal():
    clean = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    degraded = Degradation.fixed("gaussian", 15).degrade(clean, _generator(3))
    expected = clean.float() + torch.randn(2, 3, 16, 16, generator=_generator(3)) * 15 / 255
    torch.testing.assert_close(degraded, expected, atol=1e-6, rtol=0)


def test_blind_gaussian_draws_a_level_per_image():
    degradation = Degradation.from_any({"kind": "gaussian", "sigma": [0, 50]})
    clean = torch.full((16, 1, 128, 128), 0.5)
    noise = degradation.degrade(clean, _generator(0)) - clean
    sigmas = noise.flatten(1).std(dim=1) * 255
    assert ((sigmas > -0.5) & (sigmas < 50.5)).all()
    # Uniform in [0, 50]: 16 draws spread over most of the range, each image its own.
    assert sigmas.max() - sigmas.min() > 25
    assert len(set(sigmas.round(decimals=2).tolist())) == 16


@pytest.mark.parametrize("value", [{"kind": "gaussian", "sigma": [5, 50]}, {"kind": "jpeg", "quality": [5, 60]}])
def test_same_seed_same_output(value, photo):
    degradation = Degradation.from_any(value)
    clean = torch.stack([photo, photo.flip(-1), photo.flip(-2)])
    first = degradation(clean, _generator(7))
    assert torch.equal(first, degradation(clean, _generator(7)))
    assert not torch.equal(first, degradation(clean, _generator(8)))


@pytest.mark.parametrize("quality", [1, 10, 75, 100])
def test_jpeg_is_pillows_encode_decode(photo, quality):
    pixels = (photo * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    grey = np.array(Image.fromarray(pixels).convert("L"))
    degradation = Degradation.fixed("jpeg", quality)
    # Colour: an RGB JPEG; grey (one channel): an "L" JPEG, not an RGB one of a grey image.
    rgb_out = degradation.degrade(photo)
    grey_out = degradation.degrade(torch.from_numpy(grey)[None].float() / 255)
    assert rgb_out.shape == photo.shape and grey_out.shape == (1, *grey.shape)
    assert rgb_out.dtype == grey_out.dtype == torch.float32
    np.testing.assert_array_equal((rgb_out * 255).round().permute(1, 2, 0).numpy(), _pillow_jpeg(pixels, quality))
    np.testing.assert_array_equal((grey_out[0] * 255).round().numpy(), _pillow_jpeg(grey, quality))
    assert np.array_equal(jpeg_roundtrip(grey, quality), _pillow_jpeg(grey, quality))
    if quality < 100:
        assert not torch.equal(rgb_out, photo)


def test_jpeg_rounds_float_images_to_uint8_first(photo):
    # An image off the 8-bit grid is rounded first: the same JPEG as its rounded self.
    jitter = (torch.rand(photo.shape, generator=_generator(0)) - 0.5) * 0.9 / 255
    degradation = Degradation.fixed("jpeg", 30)
    assert torch.equal(degradation.degrade((photo + jitter).clamp(0, 1)), degradation.degrade(photo))


def test_blind_jpeg_draws_an_integer_quality_per_image(photo):
    degradation = Degradation.from_any({"kind": "jpeg", "quality": [10, 12]})
    clean = torch.stack([photo] * 12)
    out = degradation.degrade(clean, _generator(0))
    pixels = (photo * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    references = {q: _pillow_jpeg(pixels, q) for q in (10, 11, 12)}
    drawn = []
    for image in out:
        found = [q for q, ref in references.items() if np.array_equal((image * 255).round().permute(1, 2, 0), ref)]
        assert len(found) == 1
        drawn.append(found[0])
    assert set(drawn) == {10, 11, 12}


def test_unbatched_and_batched_images_agree(photo):
    degradation = Degradation.fixed("gaussian", 10)
    single = degradation.degrade(photo, _generator(1))
    batched = degradation.degrade(photo[None], _generator(1))
    assert single.shape == photo.shape and torch.equal(single, batched[0])


@pytest.mark.parametrize("shape", [(16, 16), (2, 16, 16), (1, 2, 4, 16, 16)])
def test_degrade_rejects_other_shapes(shape):
    with pytest.raises(ValueError, match=r"takes \(C, H, W\) or \(B, C, H, W\) images, C 1 or 3"):
        Degradation.fixed("gaussian", 25).degrade(torch.zeros(shape))


def test_quantize_rounds_to_the_8_bit_grid():
    x = torch.tensor([-0.1, 0.0, 0.3, 0.5 / 255, 1.6 / 255, 0.999, 1.2], dtype=torch.float64)
    q = quantize(x)
    assert q.dtype == torch.float32
    torch.testing.assert_close(q * 255, torch.tensor([0.0, 0, 76, 0, 2, 255, 255]), atol=1e-4, rtol=0)
