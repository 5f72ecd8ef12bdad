"""check_int: the one integer check behind every layer's arguments, and its three wordings."""
import pytest

import attnzoo
from attnzoo._checks import check_int
from attnzoo.tasks import ImageClassifier


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (0, 1, "owner: size must be a positive integer, got 0"),
        (-1, 0, "owner: size must be a non-negative integer, got -1"),
        (1, 2, "owner: size must be an integer >= 2, got 1"),
        (True, 0, "owner: size must be a non-negative integer, got True"),
        (2.0, 1, "owner: size must be a positive integer, got 2.0"),
    ],
)
def test_bad_integers_are_named_with_what_was_expected(value, minimum, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_int("owner", "size", value, minimum)


def test_good_integers_come_back():
    assert check_int("owner", "size", 0, 0) == 0 and check_int("owner", "size", 3) == 3


def test_callers_name_themselves():
    with pytest.raises(ValueError, match="^create_model: num_classes must be a non-negative integer, got -1$"):
        attnzoo.create_model("resnet20", num_classes=-1)
    with pytest.raises(ValueError, match="^ImageClassifier: num_classes must be an integer >= 2, got 1$"):
        ImageClassifier("resnet20", num_classes=1)
