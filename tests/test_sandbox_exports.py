"""The sandbox's export endpoint over real loopback HTTP: URL forms, years, closes, gaps."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import requests
from conftest import TODAY

from backfill_pipeline.dashboard.reports import Report, export_url, report_name
from backfill_pipeline.sandbox import publication

CLOSING = dt.date(2026, 11, 5)  # carries October 2026 (close of October runs to 11/17)
NORMAL = dt.date(2026, 11, 20)  # carries its own month
UNPUBLISHED = dt.date(2026, 10, 14)


def split(body: bytes) -> tuple[list[str], list[list[str]], str | None]:
    """Header, data rows and footer line of a sandbox CSV body."""
    text = body.decode("utf-8")
    lines = text.split("\r\n")
    assert lines[-1] == ""
    footer = lines[-2] if len(lines) >= 2 and not lines[-2].startswith('"') else None
    table = list(csv.reader(io.StringIO("\r\n".join(lines[: -2 if footer else -1]))))
    return (table[0] if table else []), table[1:], footer


def fetch(base: str, report: Report, data_month, as_of, district=None, py="default"):
    name = report_name(report, data_month, as_of, district)
    if py == "default":
        py = name.rsplit("~", 1)[1]
    return requests.get(export_url(base, name, py), timeout=10)


def test_full_csv_format(sandbox):
    r = fetch(sandbox.url, Report.CLUB, (2026, 10), CLOSING, "42", py=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert not r.content.startswith(b"\xef\xbb\xbf")
    assert b"\n" not in r.content.replace(b"\r\n", b"")
    header, rows, footer = split(r.content)
    assert footer == "Month of Oct, As of 11/05/2026"
    assert len(rows) >= 20
    first_line = r.content.split(b"\r\n")[0].decode()
    assert first_line.startswith('"District","Division"')
    assert all(row[0] == "42" for row in rows)
    assert all(len(row[3]) == 8 and row[3].isdigit() for row in rows)


def test_same_url_same_bytes(sandbox):
    url = export_url(sandbox.url, report_name(Report.SUMMARY, (2025, 3), dt.date(2025, 3, 20)), "2024-2025")
    bodies = {requests.get(url, timeout=10).content for _ in range(3)}
    assert len(bodies) == 1 and len(next(iter(bodies))) > 1000


def test_url_forms_padded_and_encoded(sandbox):
    base = f"{sandbox.url}/2024-2025/export.aspx?type=CSV&report="
    literal = requests.get(base + "clubperformance~61~3/31/2025~3/20/2025~2024-2025", timeout=10)
    padded = requests.get(base + "clubperformance~61~03/31/2025~03/20/2025~2024-2025", timeout=10)
    encoded = requests.get(
        base + "clubperformance%7E61%7E3%2F31%2F2025%7E3%2F20%2F2025%7E2024-2025", timeout=10
    )
    assert literal.status_code == padded.status_code == encoded.status_code == 200
    assert literal.content == padded.content == encoded.content
    assert split(literal.content)[2] == "Month of Mar, As of 03/20/2025"


def test_open_year_fails_under_py_but_bare_path_serves_it(sandbox):
    assert publication.open_program_year(TODAY) == "2026-2027"
    under_py = fetch(sandbox.url, Report.SUMMARY, (2026, 11), NORMAL)
    assert under_py.status_code == 500
    bare = fetch(sandbox.url, Report.SUMMARY, (2026, 11), NORMAL, py=None)
    assert bare.status_code == 200
    assert split(bare.content)[2].endswith("As of 11/20/2026")
    # The bare path ignores the PY token of the report name.
    wrong_token = requests.get(
        f"{sandbox.url}/export.aspx?type=CSV&report=districtsummary~11/30/2026~11/20/2026~1999-2000",
        timeout=10,
    )
    assert wrong_token.content == bare.content


def test_closed_year_works_under_py_and_misleads_on_bare_path(sandbox):
    good = fetch(sandbox.url, Report.DISTRICT, (2025, 3), dt.date(2025, 3, 20), "42")
    assert good.status_code == 200
    assert split(good.content)[2].endswith("As of 03/20/2025")
    bare = fetch(sandbox.url, Report.DISTRICT, (2025, 3), dt.date(2025, 3, 20), "42", py=None)
    assert bare.status_code == 200
    assert not split(bare.content)[2].endswith("As of 03/20/2025")  # live data: wrong date


def test_closing_period(sandbox):
    assert publication.data_month_for(CLOSING, today=TODAY) == (2026, 10)
    own = fetch(sandbox.url, Report.SUMMARY, (2026, 11), CLOSING, py=None)
    assert own.status_code == 200
    _, rows, footer = split(own.content)
    assert not rows or footer is None or not footer.endswith("11/05/2026")
    prev = fetch(sandbox.url, Report.SUMMARY, (2026, 10), CLOSING, py=None)
    _, rows, footer = split(prev.content)
    assert footer == "Month of Oct, As of 11/05/2026" and len(rows) > 100


def test_closing_values_rise_day_by_day(sandbox):
    totals = []
    for day in (2, 6, 10):
        r = fetch(sandbox.url, Report.SUMMARY, (2026, 10), dt.date(2026, 11, day), py=None)
        header, rows, footer = split(r.content)
        assert footer.endswith(f"11/{day:02d}/2026")
        col = header.index("Total YTD Payments")
        totals.append(sum(int(row[col]) for row in rows))
    assert totals[0] < totals[1] < totals[2]


def test_normal_date_wrong_month_is_not_available(sandbox):
    assert publication.data_month_for(NORMAL, today=TODAY) == (2026, 11)
    for month in ((2026, 10), (2026, 9)):
        r = fetch(sandbox.url, Report.CLUB, month, NORMAL, "42", py=None)
        assert r.status_code == 200
        _, rows, footer = split(r.content) if r.content else ([], [], None)
        assert not rows or not footer.endswith("11/20/2026")


def test_unpublished_dates_never_answer_with_their_own_date(sandbox):
    outcomes = set()
    for d in (UNPUBLISHED, dt.date(2026, 9, 22), dt.date(2026, 6, 19)):
        assert publication.data_month_for(d, today=TODAY) is None
        for month in {publication.scheduled_data_month(d), (d.year, d.month)}:
            for report, district in ((Report.SUMMARY, None), (Report.CLUB, "42"), (Report.DIVISION, "61")):
                r = fetch(sandbox.url, report, month, d, district, py=None if d.month > 6 else "default")
                assert r.status_code == 200
                header, rows, footer = split(r.content) if r.content else ([], [], None)
                assert footer is None or not footer.endswith(d.strftime("%m/%d/%Y"))
                outcomes.add(
                    "empty"
                    if not r.content
                    else "header"
                    if not rows and footer is None
                    else "header_footer"
                    if not rows
                    else "other"
                )
    assert {"header", "other"} <= outcomes


def test_not_available_variants_all_occur(sandbox):
    seen = set()
    for day in range(1, 29):
        for month_end in ("9/30/2026", "10/31/2026", "8/31/2026"):
            r = requests.get(
                f"{sandbox.url}/export.aspx?type=CSV&report=clubperformance~61~{month_end}"
                f"~10/{day}/2026~2026-2027",
                timeout=10,
            )
            if not r.content:
                seen.add("empty")
                continue
            _, rows, footer = split(r.content)
            if footer and footer.endswith(f"10/{day:02d}/2026"):
                seen.add("full")
            elif rows:
                seen.add("other_as_of")
            else:
                seen.add("header_footer" if footer else "header")
    assert seen == {"empty", "header", "header_footer", "other_as_of", "full"}


def test_future_dates_are_not_published(sandbox):
    assert publication.latest_published(TODAY) == dt.date(2026, 11, 28)
    r = fetch(sandbox.url, Report.SUMMARY, (2026, 11), TODAY, py=None)
    _, rows, footer = split(r.content) if r.content else ([], [], None)
    assert not rows or not footer.endswith("11/29/2026")


def test_empty_month_end_gives_latest(sandbox):
    r = requests.get(
        f"{sandbox.url}/export.aspx?type=CSV&report=districtsummary~~3/3/2019~2026-2027",
        timeout=10,
    )
    assert split(r.content)[2] == "Month of Nov, As of 11/28/2026"
    closed = requests.get(
        f"{sandbox.url}/2024-2025/export.aspx?type=CSV&report=districtsummary~~1/1/2025~2024-2025",
        timeout=10,
    )
    footer = split(closed.content)[2]
    assert footer.startswith("Month of Jun") and footer.endswith("2025")


@pytest.mark.parametrize(
    "query",
    [
        "type=CSV&report=clubperformance~42~13/31/2025~3/20/2025~2024-2025",
        "type=CSV&report=clubperformance~42~2/30/2025~3/20/2025~2024-2025",
        "type=CSV&report=clubperformance~42~3/31/2025~2024-2025",
        "type=CSV&report=clubreport~42~3/31/2025~3/20/2025~2024-2025",
        "type=CSV&report=clubperformance~4-2~3/31/2025~3/20/2025~2024-2025",
        "type=CSV&report=districtsummary~3/31/2025~3/20/2025~2024-2026",
        "type=XLS&report=districtsummary~3/31/2025~3/20/2025~2024-2025",
        "type=CSV",
    ],
)
def test_malformed_requests_are_400(sandbox, query):
    r = requests.get(f"{sandbox.url}/2024-2025/export.aspx?{query}", timeout=10)
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("text/plain") and len(r.content) < 200


def test_unknown_district_is_header_only(sandbox):
    r = fetch(sandbox.url, Report.CLUB, (2025, 3), dt.date(2025, 3, 20), "999")
    header, rows, footer = split(r.content)
    assert r.status_code == 200 and "Club Number" in header and not rows and footer is None
    # `2` is not `02`.
    r = fetch(sandbox.url, Report.CLUB, (2025, 3), dt.date(2025, 3, 20), "2")
    assert split(r.content)[1] == []
    r = fetch(sandbox.url, Report.CLUB, (2025, 3), dt.date(2025, 3, 20), "02")
    assert len(split(r.content)[1]) > 10


def test_unknown_paths_are_404(sandbox):
    assert requests.get(f"{sandbox.url}/nope", timeout=10).status_code == 404
    assert requests.get(f"{sandbox.url}/_sandbox/health", timeout=10).json()["status"] == "ok"


def test_bom_option():
    from backfill_pipeline.sandbox import SandboxServer

    with SandboxServer(today=TODAY, bom=True) as server:
        r = fetch(server.url, Report.SUMMARY, (2025, 3), dt.date(2025, 3, 20))
        assert r.content.startswith(b'\xef\xbb\xbf"REGION"')


def test_july_as_of_of_june_data_uses_the_old_year(sandbox):
    as_of = dt.date(2025, 7, 10)  # the close of June 2025 runs to 7/26
    old = fetch(sandbox.url, Report.CLUB, (2025, 6), as_of, "42")
    assert split(old.content)[2] == "Month of Jun, As of 07/10/2025"
    new = fetch(sandbox.url, Report.CLUB, (2025, 7), as_of, "42")
    _, rows, footer = split(new.content) if new.content else ([], [], None)
    assert not rows or not footer.endswith("07/10/2025")


def test_open_year_during_the_june_close():
    from backfill_pipeline.sandbox import SandboxServer

    # On 2026-07-05 the newest data is June's: 2025-2026 is still the open year.
    with SandboxServer(today=dt.date(2026, 7, 5)) as server:
        as_of = dt.date(2026, 7, 4)
        assert fetch(server.url, Report.SUMMARY, (2026, 6), as_of).status_code == 500
        bare = fetch(server.url, Report.SUMMARY, (2026, 6), as_of, py=None)
        assert split(bare.content)[2] == "Month of Jun, As of 07/04/2026"
        ahead = fetch(server.url, Report.SUMMARY, (2026, 7), as_of)
        assert ahead.status_code == 200  # a year not begun yet: nothing, but no error
        assert not ahead.content or split(ahead.content)[1] == []
        closed = fetch(server.url, Report.SUMMARY, (2025, 6), dt.date(2025, 7, 10))
        assert split(closed.content)[2] == "Month of Jun, As of 07/10/2025"
