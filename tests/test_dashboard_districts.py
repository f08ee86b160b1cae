"""District ids: normalisation, validation and ordering (docs/dashboard.md §5)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill_pipeline.district_ids import (
    InvalidDistrictId,
    district_ids_from_summary,
    normalise_district_id,
    sort_district_ids,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", "42"),
        (" 42 ", "42"),
        ("District 42", "42"),
        ("district 09", "09"),
        ("02", "02"),
        ("F", "F"),
        ("u", "U"),
        ("109", "109"),
        ("DISTRICT  F", "F"),
    ],
)
def test_normalise(raw, expected):
    assert normalise_district_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["2a", "../x", "", "  ", "District 4 2", "FU", "42/", "4 2", "-1", "1.5", "District", "12345", "é"]
)
def test_invalid_ids_rejected(raw):
    with pytest.raises(InvalidDistrictId):
        normalise_district_id(raw)


@given(st.text())
def test_nothing_path_like_survives(raw):
    try:
        value = normalise_district_id(raw)
    except InvalidDistrictId:
        return
    assert value.isalnum() and value.isascii() and "/" not in value and "." not in value


def test_leading_zeros_are_kept_and_distinct():
    assert normalise_district_id("02") != normalise_district_id("2")


def test_summary_ids_ordered_numerically_letters_last():
    column = ["42", " 09 ", "109", "U", "F", "02", "42", "As of 04/05/2026", "", "N/A"]
    assert district_ids_from_summary(column) == ["02", "09", "42", "109", "F", "U"]


def test_summary_ids_are_normalised():
    assert district_ids_from_summary(["f", "u", "42", "12345", "4 2"]) == ["42", "F", "U"]


def test_sort_is_numeric_not_lexical():
    assert sort_district_ids(["9", "10", "100", "A"]) == ["9", "10", "100", "A"]


def test_a_padded_id_normalises_without_filling_the_cache():
    from backfill_pipeline.district_ids import _normalise

    _normalise.cache_clear()  # a full cache stays full either way: start from an empty one
    assert normalise_district_id(" " * 100_000 + "District 42" + " " * 100_000) == "42"
    assert _normalise.cache_info().currsize == 0
    assert normalise_district_id(" 42 ") == "42"  # a plausible one is kept
    assert _normalise.cache_info().currsize == 1
