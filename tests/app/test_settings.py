"""Settings and their round trip through the address bar."""

import pytest

from psmd_app.settings import (
    Settings,
    parse_unit,
    settings_from_query,
    settings_to_query,
    snap_unmatched,
)

CATALOG = {"digits": ("conv1", "conv2"), "brain": ("V1", "V2/V3")}


@pytest.mark.parametrize(
    "settings",
    [
        Settings("digits", "conv2"),
        Settings("brain", "V2/V3", "sqeuclidean", "exact", None, 0.0, "y", 12),
        Settings("digits", "conv1", reg=0.0125, unmatched=0.99),
    ],
    ids=["defaults", "everything", "reg"],
)
def test_query_round_trip(settings):
    back, problems = settings_from_query(settings_to_query(settings), CATALOG, "digits")
    assert back == settings and problems == []


def test_empty_query_gives_defaults():
    s, problems = settings_from_query("", CATALOG, "brain")
    assert s == Settings("brain", "V1") and problems == []
    assert s.mass == pytest.approx(0.7)


@pytest.mark.parametrize(
    "query,field,value",
    [
        ("dataset=nope", "dataset", "digits"),
        ("view=conv9", "view", "conv1"),
        ("cost=cosine", "cost", "correlation"),
        ("method=lp", "method", "sinkhorn"),
        ("reg=-1", "reg", None),
        ("reg=abc", "reg", None),
        ("eps=1", "unmatched", 0.3),
        ("eps=nan", "unmatched", 0.3),
        ("unit=z4", "unit", None),
    ],
)
def test_bad_values_fall_back_and_are_reported(query, field, value):
    s, problems = settings_from_query("?" + query, CATALOG, "digits")
    assert getattr(s, field) == value
    assert len(problems) == 1


def test_snap_and_units():
    assert snap_unmatched(0.333) == 0.33
    assert snap_unmatched(2.0) == 0.99 and snap_unmatched(-1) == 0.0
    assert parse_unit("x12") == ("x", 12) and parse_unit("Y:3") == ("y", 3)
    assert parse_unit("q1") == (None, None) and parse_unit(None) == (None, None)


def test_store_dict_round_trip():
    s = Settings("digits", "conv1", unmatched=0.42).with_unit("x", 3)
    assert Settings.from_dict({**s.to_dict(), "key": "ignored"}) == s
