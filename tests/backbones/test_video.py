"""Video re-ID networks: names, every temporal aggregation against its definition, last stride, BNNeck,
save and load, bad input."""
from __future__ import annotations

import json

import pytest
import torch

import attnzoo
from attnzoo.attention import create_attention
from attnzoo.backbones import TEMPORAL, ReIDSpec, VideoReIDNetwork, create_reid_network
from attnzoo.backbones.spec import BackboneSpec
from attnzoo.backbones.video import embed_tracklets, is_reid_name, parse_reid_name

SIZE = (32, 16)  # frames (H, W): tall, as people are


def tracklets(b: int = 2, t: int = 3, h: int = 49, w: int = 21) -> torch.Tensor:
    return torch.rand(b, t, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_names_parse_list_and_explain_mistakes():
    spec, tag = parse_reid_name("resnet18-cbam+sta.tracklets")
    assert spec == ReIDSpec(BackboneSpec("resnet18", "cbam"), "sta") and tag == "tracklets"
    assert spec.name == "resnet18-cbam+sta"
    assert is_reid_name("resnet50+avg") and not is_reid_name("resnet50-se") and not is_reid_name("rir-se.gray-s25")
    names = attnzoo.list_models("*+*")
    assert {"resnet50+sta", "resnet18-cbam+soft", "resnet20+avg"} <= set(names)
    assert len(names) == len(attnzoo.list_models("*+avg")) * len(TEMPORAL)
    with pytest.raises(ValueError, match=r"unknown temporal aggregation 'stta'\. Did you mean 'sta'"):
        parse_reid_name("resnet50+stta")
    with pytest.raises(ValueError, match="needs a backbone before"):
        parse_reid_name("+sta")
    with pytest.raises(ValueError, match="placement 'pool'"):
        attnzoo.create_model("resnet18n-sta+avg")
    with pytest.raises(ValueError, match="features_only and out_indices apply to backbones"):
        attnzoo.create_model("resnet18n+avg", features_only=True)
    with pytest.raises(ValueError, match="temporal_kwargs apply to sta, soft, hard"):
        create_reid_network("resnet18n+avg", temporal_kwargs={"k": 2})


@pytest.mark.parametrize("temporal", TEMPORAL)
@pytest.mark.parametrize("frames", [1, 3])
def test_every_aggregation_embeds_odd_sizes_and_trains(temporal, frames):
    model = attnzoo.create_model(f"resnet18n-se+{temporal}", num_classes=4, input_size=SIZE)
    x = tracklets(t=frames)
    out = model(x)
    channels = model.backbone.num_features
    dim = 2 * channels if temporal == "sta" else channels
    assert model.embedding_dim == dim
    assert out["features"].shape == (2, dim) and out["logits"].shape == (2, 4)
    assert (out["regularization"] is not None) == (temporal == "sta")
    loss = out["logits"].logsumexp(1).sum() + out["features"].square().mean() + (out["regularization"] or 0)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "neck" not in n)
    assert model.neck.bias.grad is None  # BNNeck's shift stays at zero
    model.eval()
    with torch.no_grad():
        embedding = model(x)
    assert embedding.shape == (2, dim) and torch.isfinite(embedding).all()


def _frame_maps(model: VideoReIDNetwork, x: torch.Tensor) -> torch.Tensor:
    maps = model.backbone.forward_features(x.flatten(0, 1))
    return maps.view(*x.shape[:2], *maps.shape[1:])


@pytest.mark.parametrize("temporal", TEMPORAL)
def test_eval_embedding_is_the_bnneck_of_the_aggregation(temporal):
    torch.manual_seed(0)
    model = attnzoo.create_model(f"resnet18n+{temporal}", num_classes=3).eval()
    x = tracklets(t=4)
    with torch.no_grad():
        maps = _frame_maps(model, x)
        frames = maps.mean((-2, -1))
        if temporal == "avg":
            clip = frames.mean(1)
        elif temporal == "max":
            clip = frames.max(1).values
        elif temporal == "sta":
            clip = model.pool(maps)
        else:
            clip = model.pool(frames)
        neck = model.neck
        expected = (clip - neck.running_mean) / torch.sqrt(neck.running_var + neck.eps) * neck.weight + neck.bias
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_sta_is_the_registered_mechanism_on_the_frame_maps():
    model = attnzoo.create_model("resnet18n+sta", temporal_kwargs={"num_parts": 2}).eval()
    reference = create_attention("sta", model.backbone.num_features, num_parts=2)
    x = tracklets(t=3)
    with torch.no_grad():
        features, _ = model.clip_features(x)
        torch.testing.assert_close(features, reference(_frame_maps(model, x)))


def test_last_stride_one_doubles_the_final_map():
    strided = attnzoo.create_model("resnet18n+avg", last_stride=2)
    unstrided = attnzoo.create_model("resnet18n+avg")
    x = torch.rand(1, 3, 64, 32)
    assert strided.backbone.forward_features(x).shape[-2:] == (2, 1)
    assert unstrided.backbone.forward_features(x).shape[-2:] == (4, 2)
    # The same weights either way: only strides change.
    assert strided.state_dict().keys() == unstrided.state_dict().keys()


def test_dense_embedding_is_the_mean_of_its_clips():
    model = attnzoo.create_model("resnet18n+soft").eval()
    x = tracklets(b=2, t=6)
    with torch.no_grad():
        dense = embed_tracklets(model, x, seq_len=3)
        expected = (model(x[:, :3]) + model(x[:, 3:])) / 2
    torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="do not split into clips of seq_len=4"):
        embed_tracklets(model, x, seq_len=4)


def test_save_and_load_rebuild_the_network(tmp_path):
    model = attnzoo.create_model("resnet18n-cbam+sta", num_classes=5, input_size=SIZE, seq_len=4).eval()
    attnzoo.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["task"] == "reid" and config["input_size"] == [3, *SIZE] and config["seq_len"] == 4
    assert config["embedding_dim"] == 2 * model.backbone.num_features and config["num_classes"] == 5
    card = (tmp_path / "README.md").read_text()
    assert "CBAM" in card and "STA: Spatial-Temporal Attention" in card
    loaded = attnzoo.load(tmp_path)
    x = tracklets()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_new_classifier_keeps_the_rest():
    model = attnzoo.create_model("resnet18n+avg", num_classes=5)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier")}
    model.reset_classifier(7)
    assert model.classifier.out_features == 7 and model.pretrained_cfg["num_classes"] == 7
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    model.reset_classifier(0)
    assert model.classifier is None


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 3, 32, 16), r"expected tracklets \(B, T, 3, H, W\)"), ((2, 3, 1, 32, 16), r"expected tracklets")],
)
def test_bad_input_is_a_clear_error(shape, message):
    model = attnzoo.create_model("resnet18n+avg")
    with pytest.raises(ValueError, match=message):
        model(torch.rand(shape))
    with pytest.raises(ValueError, match="last_stride must be 1 or 2"):
        attnzoo.create_model("resnet18n+avg", last_stride=3)
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        attnzoo.create_model("resnet18n+avg", seq_len=0)


def test_a_zoo_entry_loads_by_name_and_is_rebuilt_as_trained():
    model = attnzoo.create_model("resnet18n+sta.tracklets", pretrained=True)
    assert model.pretrained_cfg["dataset"] == "tracklets" and model.pretrained_cfg["input_size"] == (3, 64, 32)
    loaded = attnzoo.load("resnet18n+sta")  # the entry's default tag
    x = tracklets(h=64, w=32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="a pretrained re-ID network is rebuilt as its weights were trained; drop last_stride"):
        attnzoo.create_model("resnet18n+sta.tracklets", pretrained=True, last_stride=2)
    assert attnzoo.create_model("resnet18n+sta.tracklets", pretrained=True, num_classes=9).classifier.out_features == 9


@pytest.mark.parametrize("attention", ["dyconv", "condconv", "sk"])
def test_last_stride_one_reaches_convolutions_that_keep_their_own_stride(attention):
    x = torch.rand(1, 3, 64, 32)
    for stride, size in ((2, (2, 1)), (1, (4, 2))):
        model = attnzoo.create_model(f"resnet18n-{attention}+avg", last_stride=stride).eval()
        with torch.no_grad():
            assert model.backbone.forward_features(x).shape[-2:] == size, stride
    model = attnzoo.create_model(f"resnet18n-{attention}+avg").eval()
    with torch.no_grad():
        assert model(tracklets(h=64, w=32)).shape == (2, model.embedding_dim)


def test_the_embedding_is_float32_under_mixed_precision():
    model = attnzoo.create_model("resnet18n+soft").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(tracklets(h=64, w=32)).dtype == torch.float32


def test_grey_networks_save_and_load(tmp_path):
    model = attnzoo.create_model("resnet18n+avg", in_chans=1).eval()
    assert model.in_channels == 1
    attnzoo.save_pretrained(model, tmp_path)
    loaded = attnzoo.load(tmp_path)
    x = torch.rand(2, 3, 1, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
