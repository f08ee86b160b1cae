"""The tables' stable schema: every era's headers map to it by name, in any order, and a header no
era knows is kept in the catch-all and reported, never dropped."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill_pipeline.sandbox import data as eras
from backfill_pipeline.snapshots import SourceReport, detailed_district, summary_district
from backfill_pipeline.tables import (
    ALIASES,
    CLUB_STATISTICS,
    DISTRICT_STATISTICS,
    TABLES,
    UNMAPPED,
    BuildReport,
    club_frame,
    district_frame,
    map_row,
    stable_column,
    unknown_headers,
)
from backfill_pipeline.tables.build import club_number
from backfill_pipeline.tables.headers import CLUB, DISTRICT, DIVISION, SUMMARY

AS_OF = dt.date(2025, 9, 8)
YEARS = range(2008, 2027)  # every program year the sandbox writes, 2008-2009 to 2026-2027
TABLE_OF = {SUMMARY: DISTRICT_STATISTICS, CLUB: CLUB_STATISTICS, DISTRICT: CLUB_STATISTICS}
TABLE_OF[DIVISION] = CLUB_STATISTICS


def test_every_alias_fills_a_column_of_its_table():
    for alias in ALIASES:
        assert alias.column in TABLE_OF[alias.report].names, alias


def test_every_column_is_snake_case_typed_and_described():
    for table in TABLES.values():
        names = table.names
        assert len(names) == len(set(names)), table.name
        for column in table.columns:
            assert column.name.isidentifier() and column.name == column.name.lower(), column
            assert column.description.strip() and "\n" not in column.description, column
            assert column.arrow_type is not None and column.pandas_dtype is not None
        assert names[:5] == ["as_of", "district", "data_month", "is_closing_period", "detail_level"]
        assert UNMAPPED in names


def test_renamed_headers_of_different_eras_meet_in_one_column():
    assert stable_column(CLUB, "Level 4s, Level 5s, or DTM award") == "level_4s_path_or_dtm"
    assert stable_column(CLUB, "Level 4s, Path Completions, or DTM Awards") == "level_4s_path_or_dtm"
    assert stable_column(CLUB, "Level 2s or EOM") == stable_column(CLUB, "Level 2s") == "level_2s"
    assert stable_column(DIVISION, "May visit award") == stable_column(DIVISION, "May Visit award")
    assert stable_column(CLUB, "Mem. dues on time Oct & Apr") == "dues_on_time_october_april"
    assert stable_column(CLUB, "Mem. dues on time Oct") == "dues_on_time_october"
    assert stable_column(SUMMARY, "Smedley Distinguished Clubs") == "smedley_distinguished_clubs"
    assert stable_column(CLUB, "CL/AL/DTMs") == "cl_al_dtms"
    # Spacing and case variants are the same header; another report's header is not.
    assert stable_column(DIVISION, "  MAY   VISIT award ") == "may_visit_award"
    assert stable_column(SUMMARY, "Club Number") is None


def test_a_second_header_for_a_filled_column_goes_to_the_catch_all():
    mapped = map_row(CLUB, {"Level 2s": "3", "Level 2s or EOM": "4"})
    assert mapped.values == {"level_2s": "3"}
    assert mapped.unmapped == {"Level 2s or EOM": "4"}


def _era_headers(report: str, year: int) -> list[str]:
    return eras.columns(report, year)


cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@st.composite
def era_rows(draw, report: str):
    """A row of `report` with one program year's headers, unknown extra headers, in any order."""
    year = draw(st.sampled_from(YEARS))
    known = _era_headers(report, year)
    unknown = draw(
        st.sets(
            st.text(min_size=1, max_size=30).filter(lambda h: stable_column(report, h) is None),
            max_size=4,
        )
    )
    headers = draw(st.permutations(known + sorted(unknown)))
    row = {h: draw(cells) for h in headers}
    return year, known, sorted(unknown), row


@pytest.mark.parametrize("report", [SUMMARY, CLUB, DISTRICT, DIVISION])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_era_headers_map_to_stable_columns_in_any_order(report, data):
    year, known, unknown, row = data.draw(era_rows(report))
    mapped = map_row(report, row)
    table = TABLE_OF[report]
    for header in known:
        column = stable_column(report, header)
        assert column is not None, f"{year} {report}: {header!r} has no stable column"
        assert column in table.names
        assert mapped.values[column] == row[header]
    assert mapped.unmapped == {h: row[h] for h in unknown}
    assert len(mapped.values) + len(mapped.unmapped) == len(row)
    # Position plays no part: the same cells in another order map the same way.
    assert map_row(report, dict(reversed(list(row.items())))) == mapped


def _summary_snapshot(district: str, row: dict[str, str]):
    return summary_district(
        district_id=district,
        as_of=AS_OF,
        data_month=(2025, 8),
        is_closing_period=True,
        summary_row=row,
        source=SourceReport(report="districtsummary"),
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_unknown_summary_headers_are_kept_and_reported_by_the_table(data):
    _, known, unknown, row = data.draw(era_rows(SUMMARY))
    report = BuildReport()
    frame = district_frame([_summary_snapshot("42", row)], report=report)
    assert list(frame.columns) == DISTRICT_STATISTICS.names and len(frame) == 1
    assert unknown_headers(frame) == ({SUMMARY: unknown} if unknown else {})
    assert report.unknown_headers == ({SUMMARY: set(unknown)} if unknown else {})
    cell = frame.at[0, UNMAPPED]
    if unknown:
        assert json.loads(cell) == {SUMMARY: {h: row[h] for h in unknown}}
    else:
        assert pd.isna(cell)
    # A string column keeps the raw text as written.
    assert frame.at[0, "region"] == row["REGION"]


@settings(max_examples=30, deadline=None)
@given(data=st.data(), number=st.integers(0, 99_999_999), zeros=st.integers(0, 3))
def test_unknown_club_headers_of_each_report_are_kept_apart(data, number, zeros):
    rows = {}
    unknowns = {}
    for report in (CLUB, DISTRICT, DIVISION):
        _, _, unknown, row = data.draw(era_rows(report))
        key = "Club Number" if report == CLUB else "Club"
        row[key] = "0" * zeros + str(number)  # unpadded in some reports, padded in others
        rows[report], unknowns[report] = row, unknown
    snap = detailed_district(
        district_id="61",
        as_of=AS_OF,
        data_month=(2025, 8),
        is_closing_period=False,
        club_rows=[rows[CLUB]],
        district_rows=[rows[DISTRICT]],
        division_rows=[rows[DIVISION]],
        sources=[],
    )
    report = BuildReport()
    frame = club_frame([snap], report=report)
    assert len(frame) == 1, "the three reports' rows of one club are one row"
    assert frame.at[0, "club_number"] == f"{number:08d}"
    expected = {r: h for r, h in unknowns.items() if h}
    assert unknown_headers(frame) == expected
    assert {r: sorted(h) for r, h in report.unknown_headers.items()} == expected
    if expected:
        kept = json.loads(frame.at[0, UNMAPPED])
        assert kept == {r: {h: rows[r][h] for h in headers} for r, headers in expected.items()}


@given(number=st.integers(0, 99_999_999), zeros=st.integers(0, 8), pad=st.sampled_from(["", " "]))
def test_club_numbers_are_padded_to_eight_digits(number, zeros, pad):
    assert club_number(f"{pad}{'0' * zeros}{number}{pad}") == f"{number:08d}"


@pytest.mark.parametrize("raw", ["", "  ", "12a", "１２", "123456789", "9" * 10_000, "-5", "1e3"])
def test_what_is_no_club_number_is_refused(raw):
    assert club_number(raw) is None


def test_the_tables_package_imports_without_dagster():
    code = (
        "import sys, backfill_pipeline.tables\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"Dagster imported by backfill_pipeline.tables: {p.stdout} {p.stderr[-2000:]}"


def test_the_reference_in_docs_is_generated_from_the_code():
    from pathlib import Path

    from backfill_pipeline.tables.reference import markdown

    written = (Path(__file__).parents[1] / "docs" / "tables.md").read_text()
    assert written == markdown(), "run: python -m backfill_pipeline.tables.reference > docs/tables.md"
    for table in (DISTRICT_STATISTICS, CLUB_STATISTICS):
        assert all(f"| `{c.name}` |" in written for c in table.columns)
