import pytest

from dit_demo.engine.model.labels import (
    choices,
    display_name,
    imagenet_id2label,
    parse_choice,
    resolve_labels,
    spread_ids,
)
from dit_demo.errors import InvalidRequestError


def test_imagenet_labels_are_complete_and_in_index_order():
    id2label = imagenet_id2label()
    assert len(id2label) == 1000
    assert id2label[0].startswith("tench")
    assert display_name(id2label, 207) == "golden retriever"
    assert display_name(id2label, 999).startswith("toilet tissue")


@pytest.mark.parametrize(
    "requested, expected",
    [(["golden retriever"], [207]), (["Golden Retriever "], [207]), ([207, "3"], [207, 3]), (["tench", 0], [0, 0])],
    ids=["name", "case-and-space", "ids", "synonym-and-id"],
)
def test_resolve_labels(requested, expected):
    assert resolve_labels(requested, imagenet_id2label()) == expected


def test_unknown_name_suggests_closest():
    with pytest.raises(InvalidRequestError, match="Did you mean: golden retriever"):
        resolve_labels(["golden retreiver"], imagenet_id2label())


@pytest.mark.parametrize("bad", [[1000], [-1], [""], [True], []], ids=["too-high", "negative", "empty", "bool", "none"])
def test_bad_labels_raise(bad):
    with pytest.raises(InvalidRequestError):
        resolve_labels(bad, imagenet_id2label())


def test_picker_round_trip():
    picks = choices(imagenet_id2label())
    assert picks[207] == "207: golden retriever"
    assert parse_choice(picks[207]) == 207
    assert parse_choice("golden retriever") == "golden retriever"


def test_spread_ids_cover_the_label_space():
    assert spread_ids(10, 4) == [0, 3, 6, 9]
    assert spread_ids(1000, 1) == [0]
