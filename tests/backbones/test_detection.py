"""Detectors on attention backbones: names, torchvision's networks and defaults, freezing, COCO weights."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import (
    FCOS,
    FasterRCNN,
    RetinaNet,
    fasterrcnn_resnet50_fpn,
    fcos_resnet50_fpn,
    retinanet_resnet50_fpn,
)
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

import attnzoo
from attnzoo.attention.base import AttentionModule
from attnzoo.backbones import AttentionResNet, BackboneSpec, DetectorSpec, create_detector
from attnzoo.backbones.detection import parse_detector_name

DETECTORS = {"fasterrcnn": FasterRCNN, "retinanet": RetinaNet, "fcos": FCOS}
LOSSES = {
    "fasterrcnn": {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"},
    "retinanet": {"classification", "bbox_regression"},
    "fcos": {"classification", "bbox_regression", "bbox_ctrness"},
}
# torchvision's constructors' defaults (FasterRCNN: box_score_thresh, box_nms_thresh, box_detections_per_img).
TORCHVISION_DEFAULTS = {
    "fasterrcnn": dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100),
    "retinanet": dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=300),
    "fcos": dict(score_thresh=0.2, nms_thresh=0.6, detections_per_img=100),
}
TINY = dict(min_size=64, max_size=96)


def tiny_batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two images of different sizes, the second without objects."""
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 80, generator=g), torch.rand(3, 72, 61, generator=g)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 70.0, 34.0]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    return images, targets


def randomise_batch_norms(model: nn.Module, seed: int) -> None:
    """Random BN statistics and affine parameters, so that a BN left out or mis-mapped shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def detect(model: nn.Module, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    model.eval()
    with torch.no_grad():
        return model(images)


# Names -----------------------------------------------------------------------------------------------


def test_names_round_trip():
    spec = DetectorSpec("fcos", "resnet50-gc")
    assert spec.backbone == BackboneSpec("resnet50", "gc")
    assert spec.name == "fcos-resnet50-gc"
    assert DetectorSpec.from_any("fcos-resnet50-gc") == spec
    assert DetectorSpec.from_any({"detector": "fcos", "backbone": {"arch": "resnet50", "attention": "gc"}}) == spec
    assert DetectorSpec.from_any(spec) is spec
    assert parse_detector_name("retinanet-resnext50_32x4d.coco") == (
        DetectorSpec("retinanet", BackboneSpec("resnext50_32x4d")),
        "coco",
    )


def test_list_models_lists_detectors_on_imagenet_resnets():
    fcos = attnzoo.list_models("fcos-*")
    assert "fcos-resnet50" in fcos and "fcos-resnet50-gc" in fcos and "fcos-resnext50_32x4d-sk" in fcos
    assert all(n.startswith("fcos-") for n in fcos)
    assert not [n for n in fcos if n.startswith(("fcos-resnet20", "fcos-resnet32", "fcos-resnet56"))]
    assert not [n for n in fcos if n.endswith(("-sta", "-soft", "-hard"))]
    everything = attnzoo.list_models()
    assert {"resnet20-cbam", "fasterrcnn-resnet18-se", "retinanet-resnet101-nl"} <= set(everything)
    # Every listed detector name builds a spec.
    assert all(DetectorSpec.from_any(n).name == n for n in attnzoo.list_models("*rcnn-*"))


def test_num_classes_default_depends_on_the_task():
    assert attnzoo.create_model("resnet18").num_classes == 1000
    fcos = attnzoo.create_model("fcos-resnet18", **TINY)
    assert isinstance(fcos, FCOS)
    assert fcos.pretrained_cfg["num_classes"] == 91
    assert fcos.head.classification_head.num_classes == 91
    rcnn = attnzoo.create_model("fasterrcnn-resnet18", num_classes=5)
    assert rcnn.roi_heads.box_predictor.cls_score.out_features == 5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: attnzoo.create_model("fcso-resnet50"), "'fcos'"),
        (lambda: attnzoo.create_model("fasterrnn-resnet50"), "'fasterrcnn'"),
        (lambda: attnzoo.create_model("resnet"), "unknown architecture 'resnet'"),  # not "detector 'retinanet'"
        (lambda: DetectorSpec("yolo", "resnet50"), "unknown detector 'yolo'"),
        (lambda: attnzoo.create_model({"detector": "fcos", "backbone": "resnet50", "x": 1}), "'detector' and"),
        (lambda: attnzoo.create_model("fcos-resnet51"), "unknown architecture 'resnet51'"),
        (lambda: attnzoo.create_model("fcos-resnet50-sx"), "unknown attention 'sx'"),
        (lambda: attnzoo.create_model("fcos-resnet50-sta"), "belongs to a task"),
        (lambda: attnzoo.create_model("fcos-resnet20-cbam"), "CIFAR ResNet"),
        (lambda: attnzoo.create_model("fcos-"), "no backbone"),
        (lambda: attnzoo.create_model("fcos-resnet18", num_classes=1), "num_classes"),
        (lambda: attnzoo.create_model("fcos-resnet18", num_classes=True), "num_classes"),
        (lambda: attnzoo.create_model("fcos-resnet18", features_only=True), "features_only"),
        (lambda: attnzoo.create_model("fcos-resnet18", out_indices=(1, 2)), "out_indices"),
        (lambda: attnzoo.create_model("fcos-resnet18", pretrained=True), "pretrained_backbone"),
        (
            lambda: create_detector("fcos-resnet18", pretrained_backbone=True, checkpoint_path="x.pth"),
            "not both",
        ),
        (lambda: create_detector("fcos-resnet18", checkpoint_path="missing.pth"), "does not exist"),
        # torchvision would pass these on to its transform, which drops them silently.
        (lambda: create_detector("fcos-resnet18", min_sise=64), "no argument 'min_sise'. Did you mean 'min_size'"),
        (lambda: create_detector("fasterrcnn-resnet18", score_thresh=0.1), "Did you mean 'rpn_score_thresh', 'box_score"),
        (lambda: create_detector("fcos-resnet18", fpn_channels=48), "fpn_channels must be .* divisible by 32"),
        (lambda: create_detector("retinanet-resnet18", fpn_channels=0), "fpn_channels must be a positive integer"),
        (lambda: create_detector("fcos-resnet18", test_min_size=0), "test_min_size must be a positive integer"),
        (lambda: create_detector("fcos-resnet18", test_max_size="big"), "test_max_size must be a positive integer"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# Every placement, every detector ---------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["se", "sk", "highway", "nl"])  # block, conv, gate, stage
@pytest.mark.parametrize("detector", list(DETECTORS))
def test_forward_and_backward_with_each_placement(detector, attention):
    torch.manual_seed(0)
    model = attnzoo.create_model(f"{detector}-resnet18-{attention}", num_classes=3, **TINY)
    # timm zero-initialises each block's last BN, which would leave a block mechanism without gradient.
    randomise_batch_norms(model, seed=0)
    assert isinstance(model, DETECTORS[detector])
    attention_params = {
        n: p
        for n, m in model.named_modules()
        if isinstance(m, AttentionModule)
        for n, p in m.named_parameters(prefix=n)
    }
    assert attention_params, "the backbone carries no attention module"

    images, targets = tiny_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES[detector]
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # The attention is on the path from the images to the losses.
    grads = [p.grad for p in attention_params.values() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)

    out = detect(model, images)
    assert len(out) == 2
    for image, found in zip(images, out):
        assert set(found) == {"boxes", "labels", "scores"}
        boxes = found["boxes"]
        assert boxes.shape[1] == 4 and len(boxes) == len(found["labels"]) == len(found["scores"])
        h, w = image.shape[1:]
        assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all()
        assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all()
        assert ((found["labels"] >= 1) & (found["labels"] < 3)).all()


# Defaults ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_defaults_are_torchvisions_and_overridable(detector):
    cfg = attnzoo.create_model(f"{detector}-resnet18").pretrained_cfg
    assert cfg["task"] == "detection" and cfg["detector"] == detector and cfg["architecture"] == f"{detector}-resnet18"
    assert (cfg["min_size"], cfg["max_size"]) == (800, 1333)
    assert cfg["image_mean"] == (0.485, 0.456, 0.406) and cfg["image_std"] == (0.229, 0.224, 0.225)
    assert {k: cfg[k] for k in TORCHVISION_DEFAULTS[detector]} == TORCHVISION_DEFAULTS[detector]
    assert cfg["labels"] is None and cfg["detector_kwargs"] == {}

    prefix = "box_" if detector == "fasterrcnn" else ""
    kwargs = {"min_size": 320, "max_size": 512, f"{prefix}score_thresh": 0.3, f"{prefix}detections_per_img": 7}
    model = attnzoo.create_model(f"{detector}-resnet18", **kwargs)
    cfg = model.pretrained_cfg
    assert (cfg["min_size"], cfg["max_size"], cfg["score_thresh"], cfg["detections_per_img"]) == (320, 512, 0.3, 7)
    assert cfg["detector_kwargs"] == kwargs
    assert model.transform.min_size == (320,)


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_test_sizes_resize_evaluation_images_only(detector):
    """Evaluation runs as a network built at the test sizes does; training keeps the training sizes."""
    torch.manual_seed(0)
    # Random heads score low (RetinaNet's prior is 0.01): keep every detection.
    keep = {("box_" if detector == "fasterrcnn" else "") + "score_thresh": 0.0}
    model = attnzoo.create_model(
        f"{detector}-resnet18n", num_classes=3, **TINY, test_min_size=96, test_max_size=128, **keep
    )
    randomise_batch_norms(model, seed=1)
    reference = attnzoo.create_model(f"{detector}-resnet18n", num_classes=3, min_size=96, max_size=128, **keep)
    reference.load_state_dict(model.state_dict())
    images, targets = tiny_batch()
    found, expected = detect(model, images), detect(reference, images)
    assert [len(f["boxes"]) for f in found] == [len(e["boxes"]) for e in expected]
    assert any(len(e["boxes"]) for e in expected), "no detections to compare"
    for f, e in zip(found, expected):
        torch.testing.assert_close(f["boxes"], e["boxes"])
        torch.testing.assert_close(f["scores"], e["scores"])
    # Training sizes whichever way the mode is set (Lightning sets `training` itself): a 64 x 80 image stays.
    for module in model.modules():
        module.training = True
    batch, _ = model.transform(images[:1], [dict(targets[0])])
    assert batch.image_sizes == [(64, 80)]
    cfg = model.pretrained_cfg
    assert (cfg["min_size"], cfg["max_size"], cfg["test_min_size"], cfg["test_max_size"]) == (64, 96, 96, 128)
    assert cfg["detector_kwargs"] == {**TINY, **keep, "test_min_size": 96, "test_max_size": 128}


def test_one_test_size_keeps_the_other_training_size():
    model = attnzoo.create_model("fcos-resnet18n", num_classes=3, min_size=64, max_size=200, test_min_size=96).eval()
    assert (model.transform.min_size, model.transform.max_size) == ((96,), 200)
    assert attnzoo.create_model("fcos-resnet18n", num_classes=3).transform.__class__.__name__ == "GeneralizedRCNNTransform"


def test_the_config_and_card_state_the_sizes_evaluation_runs_at(tmp_path):
    # With several training min_sizes torchvision evaluates at the last: config.json and the card say so.
    model = attnzoo.create_model("fcos-resnet18n", num_classes=3, min_size=(64, 80), max_size=200, test_max_size=240)
    assert (model.eval().transform.min_size, model.transform.max_size) == ((80,), 240)
    attnzoo.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["min_size"], config["test_min_size"], config["test_max_size"]) == ([64, 80], 80, 240)
    card = (tmp_path / "README.md").read_text()
    assert "min_size (64, 80) / max_size 200 for training and min_size 80 / max_size 240 for evaluation" in card


def fpn_widths(model: nn.Module) -> tuple[list[int], int]:
    fpn = model.backbone.fpn
    return [block[0].in_channels for block in fpn.inner_blocks], fpn.layer_blocks[0][0].out_channels


@pytest.mark.parametrize("detector, channels", [("fasterrcnn", 32), ("retinanet", 32), ("fcos", 64)])
def test_fpn_channels_narrow_the_fpn_and_the_heads(detector, channels):
    wide = attnzoo.create_model(f"{detector}-resnet18n", num_classes=3, **TINY)
    model = attnzoo.create_model(f"{detector}-resnet18n", num_classes=3, fpn_channels=channels, **TINY)
    # resnet18n's stages are 16, 32, 64, 128 wide; Faster R-CNN takes C2-C5, the others C3-C5.
    inputs = [16, 32, 64, 128] if detector == "fasterrcnn" else [32, 64, 128]
    assert fpn_widths(wide) == (inputs, 256) and fpn_widths(model) == (inputs, channels)
    assert model.backbone.out_channels == channels and model.pretrained_cfg["fpn_channels"] == channels
    if detector != "fasterrcnn":
        assert model.backbone.fpn.extra_blocks.p6.in_channels == channels
        head = model.head.classification_head
    else:
        head = model.rpn.head
    assert next(m for m in head.modules() if isinstance(m, nn.Conv2d)).in_channels == channels
    images, targets = tiny_batch()
    losses = model.train()(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())


def test_fpn_matches_torchvisions_extractor():
    """At 256 channels the FPN, its levels and the frozen layers are what torchvision's builder makes."""
    for detector, kwargs in (
        ("fasterrcnn", {}),
        ("fcos", dict(returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))),
    ):
        ours = create_detector(f"{detector}-resnet50", checkpoint_path=None, pretrained_backbone=False)
        theirs = _resnet_fpn_extractor(resnet50(), 2, **kwargs)
        mine = attnzoo.backbones.detection._fpn_backbone(
            detector, AttentionResNet(BackboneSpec("resnet50"), num_classes=0), 2, 256
        )
        fpn_shapes = {k: v.shape for k, v in mine.fpn.state_dict().items()}
        assert fpn_shapes == {k: v.shape for k, v in theirs.fpn.state_dict().items()}
        assert fpn_shapes == {k: v.shape for k, v in ours.backbone.fpn.state_dict().items()}
        assert mine.body.return_layers == theirs.body.return_layers
        frozen = {n for n, p in mine.body.named_parameters() if not p.requires_grad}
        assert frozen == {n for n, p in theirs.body.named_parameters() if not p.requires_grad and "fc." not in n}


def test_resnet18n_is_resnet18_at_a_quarter_of_the_stage_widths():
    narrow, full = attnzoo.create_model("resnet18n"), attnzoo.create_model("resnet18")
    assert [f["num_chs"] for f in narrow.feature_info] == [64, 16, 32, 64, 128]
    assert [f["reduction"] for f in narrow.feature_info] == [f["reduction"] for f in full.feature_info]
    # The same blocks; layer1 also projects the stem's 64 channels down to its 16.
    names = {n for n, _ in full.named_modules()}
    assert {n for n, _ in narrow.named_modules()} - names == {"layer1.0.downsample", "layer1.0.downsample.0", "layer1.0.downsample.1"}


# Pretrained backbone: frozen BN and trainable layers ----------------------------------------------------


@pytest.fixture
def zoo_backbone(tmp_path, monkeypatch):
    """resnet18-se 'zoo weights' in a local file: the zoo's lookup and download replaced by it."""
    import attnzoo.zoo.catalog
    import attnzoo.zoo.hub

    spec = BackboneSpec("resnet18", "se")
    reference = AttentionResNet(spec, num_classes=1000)
    randomise_batch_norms(reference, seed=1)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    config = {"spec": dataclasses.asdict(spec), "num_classes": 1000}
    monkeypatch.setattr(attnzoo.zoo.catalog, "resolve", lambda name: name)
    monkeypatch.setattr(attnzoo.zoo.hub, "fetch_pretrained", lambda entry, *a, **k: (config, path))
    return reference.eval()


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_pretrained_backbone_freezes_bn_and_first_layers(zoo_backbone, detector):
    model = create_detector(f"{detector}-resnet18-se", num_classes=3, pretrained_backbone=True, **TINY)
    body = model.backbone.body
    assert not [n for n, m in body.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert {n for n, m in body.named_modules() if isinstance(m, FrozenBatchNorm2d)} >= {"bn1", "layer4.1.bn2"}
    assert model.pretrained_cfg["frozen_bn"] and model.pretrained_cfg["trainable_backbone_layers"] == 3

    # torchvision's default of 3: layer2 to layer4 train; conv1 and layer1 (their SE modules too) do not.
    for name, p in body.named_parameters():
        assert p.requires_grad == name.startswith(("layer2", "layer3", "layer4")), name
    assert not body["layer1"][0].se.fc1.weight.requires_grad and body["layer3"][0].se.fc1.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone.body."))

    # The loaded weights compute what the classification network computes.
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        c5 = zoo_backbone.forward_features(x)
        features = body.eval()(x)
        torch.testing.assert_close(list(features.values())[-1], c5, rtol=1e-5, atol=1e-5)


@pytest.fixture
def zoo_plain_backbone(tmp_path, monkeypatch):
    """A zoo with 'ImageNet weights' for plain resnet18 only."""
    import attnzoo.zoo.catalog
    import attnzoo.zoo.hub

    reference = AttentionResNet(BackboneSpec("resnet18"), num_classes=1000)
    randomise_batch_norms(reference, seed=2)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    config = {"spec": dataclasses.asdict(BackboneSpec("resnet18")), "num_classes": 1000}

    def resolve(name):
        if name != "resnet18":
            raise ValueError(f"{name!r} is not in the zoo")
        return name

    monkeypatch.setattr(attnzoo.zoo.catalog, "resolve", resolve)
    monkeypatch.setattr(attnzoo.zoo.hub, "fetch_pretrained", lambda entry, *a, **k: (config, path))
    return reference.eval()


def test_pretrained_backbone_of_a_new_attention_starts_from_the_plain_weights(zoo_plain_backbone):
    with pytest.warns(UserWarning, match="no ImageNet weights for resnet18-gc: its backbone starts from resnet18's"):
        model = create_detector("fcos-resnet18-gc", num_classes=3, pretrained_backbone=True, **TINY)
    body = model.backbone.body
    plain = zoo_plain_backbone.state_dict()
    state = body.state_dict()
    for key, value in state.items():
        if key in plain:
            torch.testing.assert_close(value, plain[key], rtol=0, atol=0)
        else:  # the GC modules (in timm's block attention slot, "se") at their initialisation
            assert ".se." in key, key
            if ".fc2." in key:  # GCNet zero-initialises its transform's last conv
                assert not value.any(), key
    assert any(".se." in key for key in state)
    # GC's transform ends in a zero-initialised conv: the backbone computes what the plain network does.
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(list(body.eval()(x).values())[-1], zoo_plain_backbone.forward_features(x))
    # A mechanism that replaces the plain layers has no place for their weights.
    with pytest.raises(ValueError, match="does not fit 'resnet18-sk'.*\n  not in the model: .*conv1.weight"):
        create_detector("fcos-resnet18-sk", num_classes=3, pretrained_backbone=True, **TINY)


@pytest.mark.parametrize("layers, trained", [(0, ()), (5, ("conv1", "layer1", "layer2", "layer3", "layer4"))])
def test_trainable_backbone_layers(zoo_backbone, layers, trained):
    model = create_detector("fcos-resnet18-se", pretrained_backbone=True, trainable_backbone_layers=layers)
    for name, p in model.backbone.body.named_parameters():
        assert p.requires_grad == name.startswith(trained), name


def test_random_backbone_keeps_live_bn_and_trains_every_layer():
    with pytest.warns(UserWarning, match="no effect"):
        model = create_detector("retinanet-resnet18-se", trainable_backbone_layers=1)
    assert not [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert all(p.requires_grad for p in model.parameters())
    assert not model.pretrained_cfg["frozen_bn"] and model.pretrained_cfg["trainable_backbone_layers"] == 5


# torchvision's COCO weights ----------------------------------------------------------------------------


def torchvision_published(detector: str, **kwargs) -> nn.Module:
    """torchvision's network as its builder makes it when it loads COCO weights: FrozenBatchNorm2d in the
    backbone, 3 trainable layers, BN epsilon 0 for the COCO_V1 weights of Faster R-CNN and RetinaNet."""
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    if detector == "fasterrcnn":
        model = FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=91, **kwargs)
        overwrite_eps(model, 0.0)
    else:
        backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        model = DETECTORS[detector](backbone, 91, **kwargs)
        if detector == "retinanet":
            overwrite_eps(model, 0.0)
    randomise_batch_norms(model, seed=2)
    return model


BUILDERS = {"fasterrcnn": fasterrcnn_resnet50_fpn, "retinanet": retinanet_resnet50_fpn, "fcos": fcos_resnet50_fpn}
LOW_THRESH = {
    "fasterrcnn": dict(box_score_thresh=0.0),
    "retinanet": dict(score_thresh=0.0),
    "fcos": dict(score_thresh=0.0),
}


def assert_same_detections(ours, theirs, images, exact=True):
    mine, ref = detect(ours, images), detect(theirs, images)
    assert any(len(r["boxes"]) for r in ref), "no detections to compare"
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a["boxes"], b["boxes"], **tol)
        torch.testing.assert_close(a["scores"], b["scores"], **tol)
        assert torch.equal(a["labels"], b["labels"])


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_torchvision_coco_state_dict_gives_torchvisions_detections(tmp_path, detector):
    torch.manual_seed(0)
    kwargs = dict(min_size=96, max_size=128, **LOW_THRESH[detector])
    theirs = torchvision_published(detector, **kwargs)
    path = tmp_path / f"{detector}_resnet50_fpn_coco.pth"
    state = theirs.state_dict()
    assert not [k for k in state if k.endswith("num_batches_tracked")]
    torch.save(state, path)

    ours = attnzoo.create_model(f"{detector}-resnet50", num_classes=91, checkpoint_path=path, **kwargs)
    eps = {m.eps for m in ours.modules() if isinstance(m, FrozenBatchNorm2d)}
    assert eps == ({0.0} if detector != "fcos" else {1e-5})
    images = [torch.rand(3, 100, 120, generator=torch.Generator().manual_seed(3))]
    assert_same_detections(ours, theirs, images)

    # attnzoo's own checkpoint of the same network (safetensors) round-trips.
    mine = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ours.state_dict().items()}, mine)
    again = attnzoo.create_model(f"{detector}-resnet50", checkpoint_path=mine, **kwargs)
    if detector != "fcos":
        overwrite_eps(again, 0.0)  # safetensors carry no epsilon; pretrained_cfg records it
        assert ours.pretrained_cfg["frozen_bn_eps"] == 0.0
    assert_same_detections(again, theirs, images)


def test_torchvision_builder_state_dict_with_live_bn_loads(tmp_path):
    torch.manual_seed(0)
    kwargs = dict(min_size=96, max_size=128, score_thresh=0.0)
    theirs = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **kwargs)
    randomise_batch_norms(theirs, seed=4)
    path = tmp_path / "fcos.pth"
    torch.save(theirs.state_dict(), path)
    ours = attnzoo.create_model("fcos-resnet50", checkpoint_path=path, **kwargs)
    # Live BN against our FrozenBatchNorm2d: the same function, computed in another order.
    images = [torch.rand(3, 90, 110, generator=torch.Generator().manual_seed(5))]
    assert_same_detections(ours, theirs, images, exact=False)


def test_checkpoint_of_another_detector_is_refused(tmp_path):
    path = tmp_path / "retinanet.pth"
    torch.save(BUILDERS["retinanet"](weights=None, weights_backbone=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit 'fcos-resnet50'(.|\n)*missing from the checkpoint"):
        attnzoo.create_model("fcos-resnet50", checkpoint_path=path)


def test_live_bn_state_dict_keeps_bn_epsilon(tmp_path):
    # Only torchvision's frozen-BN COCO files (no num_batches_tracked) were trained with epsilon 0.
    path = tmp_path / "fasterrcnn.pth"
    torch.save(BUILDERS["fasterrcnn"](weights=None, weights_backbone=None, num_classes=91).state_dict(), path)
    ours = attnzoo.create_model("fasterrcnn-resnet50", checkpoint_path=path)
    assert {m.eps for m in ours.modules() if isinstance(m, FrozenBatchNorm2d)} == {1e-5}
    assert "frozen_bn_eps" not in ours.pretrained_cfg
