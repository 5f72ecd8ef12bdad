import pytest

import attnzoo
from attnzoo.backbones.spec import BackboneSpec, parse_model_name


def test_parse_names():
    assert parse_model_name("resnet50") == (BackboneSpec("resnet50"), None)
    assert parse_model_name("resnet50-se") == (BackboneSpec("resnet50", "se"), None)
    assert parse_model_name("resnet20-cbam.digits") == (BackboneSpec("resnet20", "cbam"), "digits")
    assert parse_model_name("resnext50_32x4d-sk")[0].name == "resnext50_32x4d-sk"


@pytest.mark.parametrize(
    "name, message",
    [
        ("resnet51-se", r"unknown architecture 'resnet51'. Did you mean .*'resnet50'"),
        ("resnet50-cbma", r"unknown attention 'cbma'.*Did you mean 'cbam'"),
        ("resnet50-soft", r"'soft' has placement 'pool'.*belongs to a task"),
        ("resnet50-", "empty attention"),
        ("resnet50-se.", "empty tag"),
        ("", "non-empty string"),
    ],
)
def test_bad_names_raise(name, message):
    with pytest.raises(ValueError, match=message):
        parse_model_name(name)


def test_spec_from_dict_and_validation():
    spec = BackboneSpec.from_any({"arch": "resnet20", "attention": "nl", "stages": [1, 2]})
    assert spec == BackboneSpec("resnet20", "nl", (1, 2))
    with pytest.raises(ValueError, match="needs 'arch'"):
        BackboneSpec.from_any({"attention": "se"})
    with pytest.raises(ValueError, match="needs 'arch'.*got keys"):
        BackboneSpec.from_any({"arch": "resnet20", "atention": "se"})
    with pytest.raises(ValueError, match="only to a backbone with a stage, block or conv attention, not to 'resnet20-highway'"):
        BackboneSpec("resnet20", "highway", stages=(1,))
    assert BackboneSpec("resnet20", "condconv", stages=[2, 3]).stages == (2, 3)
    with pytest.raises(ValueError, match="without an attention, for 'resnet20'"):
        BackboneSpec("resnet20", attention_kwargs={"rd_ratio": 0.5})
    with pytest.raises(ValueError, match="stage numbers, got \\(\\)"):
        BackboneSpec("resnet20", "nl", stages=())
    with pytest.raises(ValueError, match="has placement 'pool'.*belongs to a task; a backbone takes: ann"):
        BackboneSpec("resnet20", "soft")
    with pytest.raises(ValueError, match="expected a model name"):
        BackboneSpec.from_any(42)


def test_list_models_filters_with_wildcards():
    names = attnzoo.list_models()
    assert "resnet50-sk" in names and "resnet20" in names and "resnet18-highway" in names
    assert not any(n.endswith(("-soft", "-hard", "-sta")) for n in names)
    assert attnzoo.list_models("resnet50-s?") == ["resnet50-se", "resnet50-sk"]
    # A wildcard matches the re-ID networks on those backbones too: "resnet50-se+sta".
    assert [n for n in attnzoo.list_models("resnet50-s*") if "+" not in n] == [
        "resnet50-se", "resnet50-self", "resnet50-sk", "resnet50-srm"
    ]
    assert "resnet50-se+sta" in attnzoo.list_models("resnet50-s*")
    detectors = {f"{d}-{a}-cbam" for d in attnzoo.backbones.DETECTORS for a in attnzoo.backbones.detection.DETECTOR_ARCHITECTURES}
    backbones = {f"{a}-cbam" for a in attnzoo.backbones.ARCHITECTURES}
    assert set(attnzoo.list_models("*-cbam")) == backbones | detectors | {"rir-cbam"}
    assert attnzoo.list_models("nothing*") == []
