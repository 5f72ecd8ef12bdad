import pytest
import torch
from torch import nn

import attnzoo
from attnzoo.attention import registry

# shared/DESIGN.md's table.
EXPECTED = {
    "soft": ("generic", "pool"),
    "hard": ("generic", "pool"),
    "self": ("generic", "stage"),
    "se": ("channel", "block"),
    "gsop": ("channel", "block"),
    "srm": ("channel", "block"),
    "eca": ("channel", "block"),
    "highway": ("branch", "gate"),
    "sk": ("branch", "conv"),
    "condconv": ("branch", "conv"),
    "dyconv": ("branch", "conv"),
    "nl": ("spatial", "stage"),
    "dnl": ("spatial", "stage"),
    "cc": ("spatial", "stage"),
    "ema": ("spatial", "stage"),
    "ann": ("spatial", "stage"),
    "gc": ("spatial", "block"),
    "glore": ("spatial", "stage"),
    "ham": ("spatial", "stage"),
    "ge": ("spatial", "block"),
    "psa": ("spatial", "stage"),
    "cbam": ("channel+spatial", "block"),
    "canet": ("channel+spatial", "block"),
    "sta": ("spatial+temporal", "pool"),
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test mechanisms into a copy, so they do not leak into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_every_mechanism_is_listed_with_its_family_and_placement():
    names = attnzoo.list_attentions()
    assert set(names) == set(EXPECTED)
    assert names == sorted(names)
    for name, (family, placement) in EXPECTED.items():
        info = attnzoo.attention_info(name)
        assert (info.name, info.family, info.placement) == (name, family, placement)
        assert info.title and 2000 < info.year < 2030 and info.paper_url.startswith("https://")


def test_list_by_family():
    assert attnzoo.list_attentions("channel") == sorted(n for n, (f, _) in EXPECTED.items() if f == "channel")
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
    ],
)
def test_bad_registrations_raise(scratch_registry, kwargs, message):
    args = dict(family="channel", title="t", year=2020, paper_url="https://example.org", placement="block")
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(ValueError, match=message):
        attnzoo.register_attention(name, **args)(type("M", (nn.Module,), {}))
