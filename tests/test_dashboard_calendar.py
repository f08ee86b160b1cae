"""Program years, month ends, URL dates, report names and URLs (docs/dashboard.md §1-§2)."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill_pipeline.dashboard.calendar import (
    check_as_of,
    month_end,
    parse_as_of,
    previous_month,
    program_year,
    url_date,
)
from backfill_pipeline.dashboard.reports import Report, export_url, report_name
from backfill_pipeline.sandbox import calendar as sandbox_calendar

BASE = "https://dashboards.example"


@pytest.mark.parametrize(
    ("year", "month", "py"),
    [
        (2025, 7, "2025-2026"),
        (2025, 6, "2024-2025"),
        (2026, 1, "2025-2026"),
        (2025, 12, "2025-2026"),
        (2008, 7, "2008-2009"),
        (2009, 6, "2008-2009"),
    ],
)
def test_program_year_of_data_month(year, month, py):
    assert program_year(year, month) == py


@given(st.integers(2008, 2100), st.integers(1, 12))
def test_program_year_contains_its_month(year, month):
    py = program_year(year, month)
    start = int(py[:4])
    assert py == f"{start}-{start + 1}"
    first, last = dt.date(start, 7, 1), dt.date(start + 1, 6, 30)
    assert first <= dt.date(year, month, 1) <= last


@given(st.integers(2008, 2100), st.integers(1, 12))
def test_the_sandbox_calendar_agrees_with_the_clients(year, month):
    # Two independent implementations of one protocol: the sandbox shares no code with the client.
    assert sandbox_calendar.program_year(year, month) == program_year(year, month)
    assert sandbox_calendar.program_year_start(program_year(year, month)) == int(
        program_year(year, month)[:4]
    )
    assert sandbox_calendar.month_end(year, month) == month_end(year, month)
    assert sandbox_calendar.previous_month(year, month) == previous_month(year, month)


@given(st.integers(1900, 2200), st.integers(1, 12))
def test_month_end_is_the_last_day(year, month):
    end = month_end(year, month)
    assert (end.year, end.month) == (year, month)
    assert (end + dt.timedelta(days=1)).day == 1


@pytest.mark.parametrize(
    ("ym", "end"),
    [((2024, 2), dt.date(2024, 2, 29)), ((2025, 2), dt.date(2025, 2, 28)), ((2025, 6), dt.date(2025, 6, 30))],
)
def test_month_end_table(ym, end):
    assert month_end(*ym) == end


def test_previous_month_wraps_the_year():
    assert previous_month(2026, 1) == (2025, 12)
    assert previous_month(2026, 7) == (2026, 6)


@given(st.dates(dt.date(2008, 7, 1), dt.date(2100, 12, 31)))
def test_url_date_is_unpadded_and_round_trips(d):
    text = url_date(d)
    m, day, y = text.split("/")
    assert not m.startswith("0") and not day.startswith("0")
    assert dt.date(int(y), int(m), int(day)) == d


def test_known_good_urls():
    name = report_name(Report.CLUB, (2025, 8), dt.date(2025, 9, 8), "61")
    assert export_url(BASE, name, "2025-2026") == (
        f"{BASE}/2025-2026/export.aspx?type=CSV&report=clubperformance~61~8/31/2025~9/8/2025~2025-2026"
    )
    name = report_name(Report.SUMMARY, (2025, 5), dt.date(2025, 6, 30))
    assert export_url(BASE + "/", name, "2024-2025") == (
        f"{BASE}/2024-2025/export.aspx?type=CSV&report=districtsummary~5/31/2025~6/30/2025~2024-2025"
    )


def test_bare_path_has_no_program_year():
    name = report_name(Report.SUMMARY, (2026, 10), dt.date(2026, 11, 3))
    assert export_url(BASE, name, None) == f"{BASE}/export.aspx?type=CSV&report={name}"


def test_june_data_in_july_uses_the_old_program_year():
    # As-of 2025-07-10 inside June's close: data month June -> PY 2024-2025, not 2025-2026.
    name = report_name(Report.SUMMARY, (2025, 6), dt.date(2025, 7, 10))
    assert name == "districtsummary~6/30/2025~7/10/2025~2024-2025"


@given(
    st.sampled_from(list(Report)),
    st.dates(dt.date(2008, 7, 1), dt.date(2030, 12, 31)),
    st.sampled_from(["01", "42", "109", "F"]),
)
def test_report_name_tokens(report, as_of, district):
    data_month = (as_of.year, as_of.month)
    name = report_name(report, data_month, as_of, district if report.per_district else None)
    tokens = name.split("~")
    assert tokens[0] == report.value
    assert tokens[-1] == program_year(*data_month)
    assert tokens[-2] == url_date(as_of)
    assert tokens[-3] == url_date(month_end(*data_month))
    assert "%" not in export_url(BASE, name, tokens[-1])
    if report.per_district:
        assert tokens[1] == district


def test_report_name_requires_district_for_district_reports():
    with pytest.raises(ValueError):
        report_name(Report.CLUB, (2025, 8), dt.date(2025, 9, 8))
    with pytest.raises(ValueError):
        report_name(Report.SUMMARY, (2025, 8), dt.date(2025, 9, 8), "61")


@pytest.mark.parametrize(
    "text", ["2025-13-01", "2025-02-30", "25-09-08", "2025/09/08", "", "yesterday", "2025-9-8", "../2025"]
)
def test_malformed_dates_rejected(text):
    with pytest.raises(ValueError):
        parse_as_of(text, today=dt.date(2026, 11, 29))


def test_date_bounds():
    today = dt.date(2026, 11, 29)
    assert parse_as_of("2008-07-01", today) == dt.date(2008, 7, 1)
    assert parse_as_of("2026-11-29", today) == today
    with pytest.raises(ValueError, match="before 2008-07-01"):
        parse_as_of("2008-06-30", today)
    with pytest.raises(ValueError, match="future"):
        check_as_of(dt.date(2026, 11, 30), today)
