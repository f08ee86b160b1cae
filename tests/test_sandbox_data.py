"""The sandbox's data: columns per program year, sums, recognition, districts, clubs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import statistics

import pytest
import requests
from conftest import TODAY

from backfill_pipeline.dashboard.reports import Report, export_url, report_name
from backfill_pipeline.district_ids import district_ids_from_summary, sort_district_ids
from backfill_pipeline.sandbox import data, population, publication, render


def table(base: str, report: Report, data_month, as_of, district=None):
    """Header and data rows (footer dropped) of a published date."""
    name = report_name(report, data_month, as_of, district)
    py = name.rsplit("~", 1)[1]
    r = requests.get(export_url(base, name, None if py == "2026-2027" else py), timeout=10)
    assert r.status_code == 200
    lines = r.content.decode("utf-8").split("\r\n")
    assert lines[-2].startswith("Month of ")
    rows = list(csv.reader(io.StringIO("\r\n".join(lines[:-2]))))
    return rows[0], rows[1:]


SUMMARY_2012 = [
    "REGION",
    "DISTRICT",
    "DSP",
    "Training",
    "New Payments",
    "April Payments",
    "October Payments",
    "Late Payments",
    "Charter Payments",
    "Total YTD Payments",
    "Payment Base",
    "% Payment Growth",
    "Paid Club Base",
    "Paid Clubs",
    "% Club Growth",
    "Active Clubs",
    "Distinguished Clubs",
    "Select Distinguished Clubs",
    "Presidents Distinguished Clubs",
    "Total Distinguished Clubs",
    "% Distinguished Clubs",
]
CLUB_2024 = [
    "District",
    "Division",
    "Area",
    "Club Number",
    "Club Name",
    "Club Status",
    "Mem. Base",
    "Active Members",
    "Goals Met",
    "Level 1s",
    "Level 2s",
    "Add. Level 2s",
    "Level 3s",
    "Level 4s, Level 5s, or DTM award",
    "Add. Level 4s, Level 5s, or DTM award",
    "New Members",
    "Add. New Members",
    "Off. Trained Round 1",
    "Off. Trained Round 2",
    "Mem. dues on time Oct",
    "Mem. dues on time Apr",
    "Off. List On Time",
    "Club Distinguished Status",
]


def test_summary_columns_per_year(sandbox):
    header, _ = table(sandbox.url, Report.SUMMARY, (2013, 3), dt.date(2013, 3, 20))
    assert header == SUMMARY_2012
    header, _ = table(sandbox.url, Report.SUMMARY, (2009, 3), dt.date(2009, 3, 20))
    assert "DSP" not in header and "REGION" in header
    header, _ = table(sandbox.url, Report.SUMMARY, (2021, 3), dt.date(2021, 3, 20))
    assert {"Market Analysis", "Communication Plan", "Region Advisor Visit"} <= set(header)
    assert "Smedley Distinguished Clubs" not in header
    header, _ = table(sandbox.url, Report.SUMMARY, (2025, 9), dt.date(2025, 9, 20))
    i = header.index("Smedley Distinguished Clubs")
    assert header[i - 1] == "Presidents Distinguished Clubs"


def test_club_columns_per_year(sandbox):
    header, _ = table(sandbox.url, Report.CLUB, (2025, 3), dt.date(2025, 3, 20), "42")
    assert header == CLUB_2024
    header, _ = table(sandbox.url, Report.CLUB, (2025, 9), dt.date(2025, 9, 20), "42")
    assert header[header.index("Club Status") + 1] == "CSP"
    assert header[header.index("Active Members") + 1] == "Net Growth"
    assert "Level 4s, Path Completions, or DTM Awards" in header
    assert "Add. Level 4s, Path Completions, or DTM award" in header
    header, _ = table(sandbox.url, Report.CLUB, (2021, 3), dt.date(2021, 3, 20), "42")
    assert {"Level 2s or EOM", "Level 4s", "Level 5s", "Mem. dues on time Oct & Apr"} <= set(header)
    assert "Mem. dues on time Oct" not in header and "CSP" not in header
    header, _ = table(sandbox.url, Report.CLUB, (2013, 3), dt.date(2013, 3, 20), "42")
    for col in ("CCs", "Add. CCs", "ACs", "Add. ACs", "CL/AL/DTMs", "Add. CL/AL/DTMs"):
        assert col in header
    assert "Level 1s" not in header


def test_district_and_division_columns(sandbox):
    header, rows = table(sandbox.url, Report.DISTRICT, (2026, 10), dt.date(2026, 11, 5), "61")
    assert header == data.DISTRICT_COLUMNS
    assert all(not r[3].startswith("0") and r[3].isdigit() for r in rows)
    notes = {r[header.index("Charter Date/Suspend Date")] for r in rows} - {""}
    assert notes and all(re.fullmatch(r"(Charter|Susp) \d\d/\d\d/\d\d", n) for n in notes)
    for r in rows:
        total_ren = int(r[header.index("Total Ren.")])
        assert total_ren == sum(int(r[header.index(c)]) for c in ("Late Ren.", "Oct. Ren.", "Apr. Ren."))
    header, _ = table(sandbox.url, Report.DIVISION, (2026, 10), dt.date(2026, 11, 5), "61")
    assert {
        "Division Club Base",
        "Area Club Base",
        "Total Paid Division Clubs",
        "Nov Visit award",
        "May Visit award",
    } <= set(header)
    header, _ = table(sandbox.url, Report.DIVISION, (2015, 10), dt.date(2015, 10, 25), "61")
    assert "May visit award" in header


def test_payments_add_up_and_formats(sandbox):
    header, rows = table(sandbox.url, Report.SUMMARY, (2025, 2), dt.date(2025, 2, 20))
    parts = ["New Payments", "April Payments", "October Payments", "Late Payments", "Charter Payments"]
    for row in rows:
        values = [int(row[header.index(c)]) for c in parts]
        assert sum(values) == int(row[header.index("Total YTD Payments")])
        pct = row[header.index("% Payment Growth")]
        assert pct == "N/A" or re.fullmatch(r"-?\d+(\.\d\d)?%", pct)
        assert row[header.index("DISTRICT")].strip() == row[header.index("DISTRICT")]


@pytest.mark.parametrize("as_of", [dt.date(2025, 3, 20), dt.date(2025, 4, 3)])
def test_distinguished_zero_before_april_data(sandbox, as_of):
    data_month = publication.data_month_for(as_of, today=TODAY)
    assert data_month[1] == 3
    header, rows = table(sandbox.url, Report.SUMMARY, data_month, as_of)
    cols = [c for c in header if "Distinguished Clubs" in c and not c.startswith("%")]
    assert all(row[header.index(c)] == "0" for row in rows for c in cols)
    _, clubs = table(sandbox.url, Report.CLUB, data_month, as_of, "42")
    assert all(row[-1] == "" for row in clubs)


def test_distinguished_counts_from_april(sandbox):
    header, rows = table(sandbox.url, Report.SUMMARY, (2025, 5), dt.date(2025, 5, 20))
    total = sum(int(row[header.index("Total Distinguished Clubs")]) for row in rows)
    assert total > 100
    for row in rows:
        parts = sum(
            int(row[header.index(c)])
            for c in ("Distinguished Clubs", "Select Distinguished Clubs", "Presidents Distinguished Clubs")
        )
        assert parts == int(row[header.index("Total Distinguished Clubs")])
    codes = set()
    for district in ("01", "42", "61", "109", "F"):
        header, clubs = table(sandbox.url, Report.CLUB, (2025, 5), dt.date(2025, 5, 20), district)
        codes |= {row[header.index("Club Distinguished Status")] for row in clubs}
        assert {row[header.index("Club Status")] for row in clubs} <= {
            "Active",
            "Low",
            "Suspended",
            "Ineligible",
        }
    assert {"", "D", "S", "P"} <= codes


def test_district_ids_of_summary(sandbox):
    header, rows = table(sandbox.url, Report.SUMMARY, (2026, 10), dt.date(2026, 11, 5))
    ids = district_ids_from_summary(row[header.index("DISTRICT")] for row in rows)
    assert ids == population.districts_for("2026-2027")
    assert 120 <= len(ids) <= 135 and ids[-2:] == ["F", "U"]
    assert "01" in ids and "09" in ids and "1" not in ids
    numbers = [int(i) for i in ids if i.isdigit()]
    assert len(numbers) < max(numbers)  # gaps
    counts = {
        py: len(population.districts_for(py)) for py in ("2008-2009", "2012-2013", "2020-2021", "2025-2026")
    }
    assert all(120 <= n <= 135 for n in counts.values())
    sets = [set(population.districts_for(f"{y}-{y + 1}")) for y in range(2008, 2027)]
    assert len({frozenset(s) for s in sets}) > 1  # districts come and go


def test_clubs_of_a_district():
    clubs = population.clubs_of("42")
    assert len({c.number for c in clubs}) == len(clubs)
    assert all(re.fullmatch(r"\d{8}", c.number) for c in clubs)
    assert all(re.fullmatch(r"[A-Z]", c.division) and re.fullmatch(r"\d\d", c.area) for c in clubs)
    sizes = [len(population.clubs_in_program_year(d, 2025)) for d in population.districts_for("2025-2026")]
    assert 30 <= min(sizes) and max(sizes) <= 250
    names = {c.name for d in ("01", "42", "61", "109") for c in population.clubs_of(d)}
    assert any(not n.isascii() for n in names)


def test_values_grow_through_the_year():
    def club_total(as_of):
        rows = data.rows(data.CLUB, "42", publication.scheduled_data_month(as_of), as_of)
        return sum(int(r[15]) for r in rows)  # New Members

    assert (
        club_total(dt.date(2024, 8, 20))
        < club_total(dt.date(2024, 12, 20))
        < club_total(dt.date(2025, 5, 20))
    )


def test_rare_features_occur():
    duplicates = full_names = na = 0
    for day in range(0, 365, 3):
        as_of = dt.date(2024, 7, 15) + dt.timedelta(days=day)
        month = publication.scheduled_data_month(as_of)
        rows = data.rows(data.CLUB, "61", month, as_of)
        duplicates += len(rows) != len({r[3] for r in rows})
        full_names += render.footer(month, as_of).split(",")[0] not in {
            f"Month of {m}" for m in render.MONTH_ABBR
        }
    for day in range(0, 60):
        as_of = dt.date(2025, 1, 1) + dt.timedelta(days=day)
        rows = data.rows(data.SUMMARY, None, publication.scheduled_data_month(as_of), as_of)
        na += sum("N/A" in r for r in rows)
    assert duplicates and full_names and na


def test_publication_model():
    windows = [
        publication.closing_window_days(y, m) for y in range(2008, 2027) for m in range(1, 13) if m != 6
    ]
    assert min(windows) >= 1 and max(windows) <= 25 and 7 <= statistics.median(windows) <= 11
    june = [publication.closing_window_days(y, 6) for y in range(2009, 2027)]
    assert min(june) >= 12 and max(june) <= 28
    days = [dt.date(2008, 7, 1) + dt.timedelta(days=i) for i in range(18 * 365)]
    share = sum(publication.is_unpublished(d) for d in days) / len(days)
    assert 0.015 <= share <= 0.035
    for d in days[::7]:
        month = publication.scheduled_data_month(d)
        assert month in ((d.year, d.month), publication.previous_month(d.year, d.month))
        assert (month != (d.year, d.month)) == publication.is_closing_period(d)
    assert publication.data_month_for(dt.date(2008, 6, 30)) is None
    assert publication.data_month_for(dt.date(2026, 11, 28), today=TODAY) == (2026, 11)
    assert publication.data_month_for(dt.date(2026, 11, 29), today=TODAY) is None
    assert sort_district_ids(population.districts_for("2025-2026")) == population.districts_for("2025-2026")


def test_other_seed_gives_other_data():
    as_of = dt.date(2025, 3, 20)
    a = data.rows(data.CLUB, "42", (2025, 3), as_of, seed=42)
    b = data.rows(data.CLUB, "42", (2025, 3), as_of, seed=7)
    assert a != b
