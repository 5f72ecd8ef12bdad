import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.attention import registry

# shared/DESIGN.md's table, and the kind of map each records (what attnzoo.viz draws it as).
EXPECTED = {
    "soft": ("generic", "pool", "items"),
    "hard": ("generic", "pool", "items"),
    "self": ("generic", "stage", "pairwise"),
    "se": ("channel", "block", "channel"),
    "gsop": ("channel", "block", "channel"),
    "srm": ("channel", "block", "channel"),
    "eca": ("channel", "block", "channel"),
    "highway": ("branch", "gate", "gate"),
    "sk": ("branch", "conv", "paths"),
    "condconv": ("branch", "conv", "routing"),
    "dyconv": ("branch", "conv", "routing"),
    "nl": ("spatial", "stage", "pairwise"),
    "dnl": ("spatial", "stage", "pairwise"),
    "cc": ("spatial", "stage", "pairwise"),
    "ema": ("spatial", "stage", "assignment"),
    "ann": ("spatial", "stage", "pairwise"),
    "gc": ("spatial", "block", "spatial"),
    "glore": ("spatial", "stage", "assignment"),
    "ham": ("spatial", "stage", "assignment"),
    "ge": ("spatial", "block", "channel"),
    "psa": ("spatial", "stage", "pairwise"),
    "cbam": ("channel+spatial", "block", "spatial"),
    "canet": ("channel+spatial", "block", "spatial"),
    "sta": ("spatial+temporal", "pool", "items"),
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test mechanisms into a copy, so they do not leak into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_mechanism_is_listed_with_its_family_placement_and_map_kind():
    names = attnzoo.list_attentions()
    assert set(names) == set(EXPECTED)
    assert names == sorted(names)
    for name, (family, placement, kind) in EXPECTED.items():
        info = attnzoo.attention_info(name)
        assert (info.name, info.family, info.placement, info.map_kind) == (name, family, placement, kind)
        assert info.title and 2000 < info.year < 2030 and info.paper_url.startswith("https://")


def test_list_by_family():
    assert attnzoo.list_attentions("channel") == sorted(n for n, (f, _, _) in EXPECTED.items() if f == "channel")
    assert set(attnzoo.list_attentions("branch")) == {"highway", "sk", "condconv", "dyconv"}
    with pytest.raises(ValueError, match="'channels'.*Did you mean 'channel'"):
        attnzoo.list_attentions("channels")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown attention 'cbma'.*Did you mean 'cbam'"):
        attnzoo.create_attention("cbma", 8)
    with pytest.raises(ValueError, match=r"Did you mean 'srm'"):
        attnzoo.attention_info("srn")


def test_user_registered_mechanism_is_created_by_name(scratch_registry):
    @attnzoo.register_attention(
        "doubler", family="channel", title="Doubling", year=2026, paper_url="https://example.org", placement="block"
    )
    class Doubler(nn.Module):
        def __init__(self, channels: int, factor: float = 2.0):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    assert "doubler" in attnzoo.list_attentions("channel")
    m = attnzoo.create_attention("doubler", 4, factor=3.0)
    x = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(m(x), 3 * x)
    assert Doubler.attention_name == "doubler"
    with pytest.raises(ValueError, match="'doubler'.*unexpected keyword argument 'facto'"):
        attnzoo.create_attention("doubler", 4, facto=3.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="se"), "already registered"),
        (dict(name="x-y"), "without '-'"),
        (dict(name="new", family="colour"), "family must be one of"),
        (dict(name="new", placement="anywhere"), "placement must be one of"),
        (dict(name="new", map_kind="heatmap"), r"attention 'new': map_kind must be one of \('spatial', 'pairwise'"),
    ],
)
def test_bad_registrations_raise(scratch_registry, kwargs, message):
    args = dict(family="channel", title="t", year=2020, paper_url="https://example.org", placement="block")
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(ValueError, match=message):
        attnzoo.register_attention(name, **args)(type("M", (nn.Module,), {}))


@pytest.mark.parametrize(
    "family, placement, kind",
    [
        ("generic", "pool", "items"),
        ("branch", "conv", "routing"),
        ("branch", "gate", "gate"),
        ("channel", "block", "channel"),
        ("spatial", "block", "spatial"),
        ("spatial", "stage", "spatial"),
        ("channel+spatial", "block", "spatial"),
    ],
)
def test_map_kind_left_out_follows_the_placement_else_the_family(scratch_registry, family, placement, kind):
    attnzoo.register_attention(
        "unkinded", family=family, title="t", year=2026, paper_url="https://example.org", placement=placement
    )(type("M", (nn.Module,), {}))
    assert attnzoo.attention_info("unkinded").map_kind == kind


def test_check_attention_map_names_the_layout_expected():
    from attnzoo.attention import MAP_KINDS, MAP_LAYOUTS, check_attention_map

    assert MAP_KINDS == tuple(MAP_LAYOUTS)
    check_attention_map("m", "pairwise", torch.zeros(2, 12, 3, 4))
    check_attention_map("m", "items", torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match=r"m: a pairwise attention map is \(B, HW, H, W\), got shape \(2, 12, 4, 4\)"):
        check_attention_map("m", "pairwise", torch.zeros(2, 12, 4, 4))
    with pytest.raises(ValueError, match=r"a channel attention map is \(B, C, 1, 1\), got shape \(2, 8, 3, 3\)"):
        check_attention_map("m", "channel", torch.zeros(2, 8, 3, 3))
    with pytest.raises(ValueError, match="map kind must be one of"):
        check_attention_map("m", "heatmap", torch.zeros(2, 8))
