"""Derived figures and the district file model."""

from __future__ import annotations

import json
import time

import pytest
from conftest import AS_OF, a_detailed, a_summary, club_row, district_row, summary_row
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from backfill_pipeline.dataroot import district_file_name
from backfill_pipeline.snapshots import (
    DistrictSnapshot,
    derive_detailed_figures,
    derive_summary_figures,
)
from backfill_pipeline.snapshots.derived import parse_decimal, parse_int, parse_pct


@pytest.mark.parametrize(
    ("text", "value"),
    [("-7.69%", -7.69), ("0%", 0.0), ("12.50%", 12.5), ("N/A", None), ("", None), (" 3 ", 3.0)],
)
def test_percentages(text, value):
    assert parse_pct(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("123", 123), ("0", 0), ("N/A", None), ("", None), (None, None), ("x", None)],
)
def test_integers(text, value):
    assert parse_int(text) == value


def test_summary_figures_read_columns_by_name():
    figures = derive_summary_figures(summary_row("42", club_growth="-7.69%"))
    assert figures.club_growth_pct == -7.69
    assert figures.payment_growth_pct == 2.5
    assert figures.payments.total_ytd == 1050
    assert figures.payments.base == 2000
    assert figures.active_clubs == 100
    assert figures.distinguished_clubs.presidents == 2
    assert figures.distinguished_clubs.smedley is None  # column only from 2025-2026
    assert figures.region == "05"


def test_summary_figures_tolerate_old_years_and_na():
    figures = derive_summary_figures({"DISTRICT": "42", "% Club Growth": "N/A"})
    assert figures.club_growth_pct is None
    assert figures.payments.total_ytd is None
    assert figures.active_clubs is None


def test_detailed_members_come_from_active_members_never_payments():
    clubs = [club_row(1, members="20", base="18"), club_row(2, members="N/A", base="7")]
    districts = [district_row(1, total="55"), district_row(2, total="60")]
    figures = derive_detailed_figures(clubs, districts, [], None)
    assert figures.detailed.members == 20
    assert figures.detailed.member_base == 25
    assert figures.detailed.payments.total_to_date == 115
    assert figures.summary is None


def test_clubs_by_status_and_tiers_from_letters():
    clubs = [
        club_row(1, status="Active", tier="D"),
        club_row(2, status="Active", tier="S"),
        club_row(3, status="Low", tier="P"),
        club_row(4, status="Suspended", tier=""),
        club_row(5, status="Ineligible", tier="X"),
        club_row(6, status="Closed", tier="Distinguished"),
    ]
    figures = derive_detailed_figures(clubs, [], [], summary_row("42")).detailed
    assert figures.clubs_by_status.model_dump() == {
        "active": 2,
        "low": 1,
        "suspended": 1,
        "ineligible": 1,
        "other": {"Closed": 1},
    }
    tiers = figures.distinguished_by_tier
    assert (tiers.distinguished, tiers.select, tiers.presidents, tiers.total) == (1, 1, 1, 3)
    assert tiers.none == 1
    # Unknown letters (the Smedley tier's letter is not known) are counted apart, not dropped.
    assert tiers.unknown == {"X": 1, "Distinguished": 1}


def test_detailed_figures_tolerate_missing_columns():
    clubs = [{"Club Number": "00000001", "Division": "B", "Area": "03"}]
    figures = derive_detailed_figures(clubs, [{"Club": "1"}], [], None).detailed
    assert figures.clubs == 1 and figures.divisions == 1 and figures.areas == 1
    assert figures.members is None and figures.member_base is None
    assert figures.payments.new is None


def test_detailed_with_summary_row_has_both():
    snapshot = a_detailed(with_summary=True)
    assert snapshot.figures.summary.club_growth_pct == 1.0
    assert snapshot.figures.detailed.members == 28
    assert snapshot.raw.summary["DISTRICT"] == "42"


def test_district_file_json_is_camel_case_with_schema_version():
    data = json.loads(a_summary().model_dump_json())
    assert data["schemaVersion"] == 1
    assert data["districtId"] == "42"
    assert data["asOfDate"] == AS_OF.isoformat()
    assert data["dataMonth"] == "2025-08"
    assert data["isClosingPeriod"] is True
    assert data["figures"]["summary"]["paymentGrowthPct"] == 2.5
    # Raw rows keep their exact header names.
    assert data["raw"]["summary"]["% Club Growth"] == "1.00%"
    snapshot = a_summary()
    assert DistrictSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_district_model_rejects_bad_ids_and_inconsistent_files():
    stored = json.loads(a_summary().model_dump_json())
    with pytest.raises(ValidationError):
        DistrictSnapshot.model_validate({**stored, "districtId": "District 42"})
    with pytest.raises(ValidationError):
        DistrictSnapshot(district_id="42", as_of_date=AS_OF, status="failed", detail="summary")
    with pytest.raises(ValidationError):
        DistrictSnapshot.model_validate({**stored, "extra": 1})
    for bad in ("../etc", "District 42", "4 2", ""):
        with pytest.raises(ValueError):
            district_file_name(bad)


ABSURD = ["1e30000000", "1e400%", "-1e999999999", "9" * 5000, "1e31", "Infinity", "NaN", "٣", "1_000"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ABSURD, ids=lambda v: v[:16])
def test_numbers_are_parsed_in_bounded_time_and_absurd_ones_are_missing(value):
    # Before: int(Decimal("1e30000000")) ran for hours, float(Decimal("1e400")) overflowed.
    started = time.monotonic()
    assert parse_int(value) is None
    assert parse_decimal(value) is None
    assert parse_pct(value) is None
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("text", "number"),
    [("1e3", 1000), ("12.0", 12), ("+3", 3), ("1,234", 1234), ("9" * 30, int("9" * 30)), ("1.5", None)],
)
def test_integers_in_every_sane_form(text, number):
    assert parse_int(text) == number


def test_summary_figures_with_an_absurd_cell_keep_the_others():
    figures = derive_summary_figures(summary_row("42", club_growth="1e400%", active="1e30000000"))
    assert figures.club_growth_pct is None and figures.active_clubs is None
    assert figures.payment_growth_pct == 2.5


def _parse_int_by_decimal(value: str) -> int | None:
    # parse_int before its plain-digits shortcut: every cell through bounded_decimal.
    from backfill_pipeline.dashboard.csvparse import bounded_decimal

    text = value.strip().replace(",", "")
    if text.upper() in {"", "N/A", "NA", "-", "--"}:
        return None
    number = bounded_decimal(text)
    return None if number is None or number != number.to_integral_value() else int(number)


@given(
    st.one_of(
        st.integers(-(10**20), 10**20).map(str),
        st.text(alphabet="0123456789+-., e٣", max_size=24),
        st.text(max_size=12),
    )
)
def test_the_plain_digits_shortcut_reads_as_the_decimal_path_does(value):
    assert parse_int(value) == _parse_int_by_decimal(value)
