"""Dates held back and published later, at run time, over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from click.testing import CliRunner
from conftest import TODAY, client_settings, published_dates

from backfill_pipeline.dashboard.client import DashboardClient
from backfill_pipeline.dashboard.reports import Report
from backfill_pipeline.sandbox import SandboxServer, command
from backfill_pipeline.sandbox.exports import EMPTY, HEADER, HEADER_FOOTER, OTHER_AS_OF
from backfill_pipeline.sandbox.render import footer_as_of

pytestmark = pytest.mark.timeout(60)

# A published date outside any closing window, with published neighbours.
HELD = published_dates(dt.date(2025, 3, 10), 3, closing=False)[1]
REPORTS = ("districtsummary", "clubperformance", "districtperformance", "divisionperformance")
UNPUBLISHED_OUTCOMES = {EMPTY, HEADER, HEADER_FOOTER, OTHER_AS_OF}


def export_path(report: str, as_of: dt.date, month: tuple[int, int] | None = None) -> str:
    year, month_number = month or (as_of.year, as_of.month)
    end = (dt.date(year + month_number // 12, month_number % 12 + 1, 1)) - dt.timedelta(days=1)
    py_start = year if month_number >= 7 else year - 1
    py = f"{py_start}-{py_start + 1}"
    district = "" if report == "districtsummary" else "~42"
    return (
        f"/{py}/export.aspx?type=CSV&report={report}{district}"
        f"~{end.month}/{end.day}/{end.year}~{as_of.month}/{as_of.day}/{as_of.year}~{py}"
    )


def get(server: SandboxServer, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=10)


def control(server: SandboxServer, method: str, **kwargs) -> requests.Response:
    return requests.request(method, server.url + "/_sandbox/publication", timeout=10, **kwargs)


def test_a_held_back_date_answers_as_an_unpublished_date_until_released(fresh_sandbox):
    published = {r: get(fresh_sandbox, export_path(r, HELD)).content for r in REPORTS}
    assert all(footer_as_of(body) == HELD for body in published.values())

    fresh_sandbox.hold_back([HELD])
    assert fresh_sandbox.held_back() == [HELD]
    for report in REPORTS:
        r = get(fresh_sandbox, export_path(report, HELD))
        assert r.status_code == 200 and footer_as_of(r.content) != HELD
        assert fresh_sandbox.requests(1)[0]["outcome"] in UNPUBLISHED_OUTCOMES

    fresh_sandbox.release([HELD])
    assert fresh_sandbox.held_back() == []
    assert {r: get(fresh_sandbox, export_path(r, HELD)).content for r in REPORTS} == published


def test_holding_back_changes_no_other_answer_but_those_that_showed_the_date(fresh_sandbox):
    window = [HELD + dt.timedelta(days=d) for d in range(-7, 8) if d]
    paths = [export_path(r, day) for r in REPORTS for day in window]
    # Unpublished neighbours may answer with an earlier date's CSV: ask their previous month too.
    paths += [export_path(r, day, (day.year, day.month - 1)) for r in REPORTS for day in window]
    before = {p: get(fresh_sandbox, p).content for p in paths}
    fresh_sandbox.hold_back([HELD])
    changed = 0
    for path in paths:
        now = get(fresh_sandbox, path).content
        if now != before[path]:
            # Only an answer that showed the held date (another date's stand-in) may change.
            assert footer_as_of(before[path]) == HELD and footer_as_of(now) != HELD, path
            changed += 1
    assert changed < len(paths) // 4


def test_holding_back_the_latest_date_moves_the_latest_answer(fresh_sandbox):
    latest = dt.date.fromisoformat(get(fresh_sandbox, "/_sandbox/health").json()["latestAsOf"])
    bare = (
        f"/export.aspx?type=CSV&report=districtsummary~~{latest.month}/{latest.day}/{latest.year}~2026-2027"
    )
    assert footer_as_of(get(fresh_sandbox, bare).content) == latest
    fresh_sandbox.hold_back([latest.isoformat()])
    health = get(fresh_sandbox, "/_sandbox/health").json()
    assert dt.date.fromisoformat(health["latestAsOf"]) < latest and health["heldBack"] == 1
    assert footer_as_of(get(fresh_sandbox, bare).content) < latest
    fresh_sandbox.release()
    assert footer_as_of(get(fresh_sandbox, bare).content) == latest


def test_the_product_client_sees_the_date_appear_when_released(fresh_sandbox, tmp_path):
    settings = client_settings(fresh_sandbox.url, rate=50, use_cache=False)
    fresh_sandbox.hold_back([HELD])
    with DashboardClient(settings, tmp_path, today=lambda: TODAY) as client:
        assert not client.fetch(Report.SUMMARY, HELD).available
        assert not client.fetch(Report.CLUB, HELD, "42").available
    control(fresh_sandbox, "DELETE")
    with DashboardClient(settings, tmp_path, today=lambda: TODAY) as client:  # a later run
        summary = client.fetch(Report.SUMMARY, HELD)
        assert summary.available and summary.rows
        assert client.fetch(Report.CLUB, HELD, "42", data_month=summary.data_month).available


def test_publication_control_over_http(fresh_sandbox):
    assert control(fresh_sandbox, "GET").json() == {"heldBack": []}
    r = control(fresh_sandbox, "PUT", json={"heldBack": ["2025-03-21", "2025-03-20", "2025-03-21"]})
    assert r.status_code == 200 and r.json() == {"heldBack": ["2025-03-20", "2025-03-21"]}
    assert fresh_sandbox.held_back() == [dt.date(2025, 3, 20), dt.date(2025, 3, 21)]
    r = control(fresh_sandbox, "PUT", json={"heldBack": ["2025-04-01"]})  # replaces
    assert r.json() == {"heldBack": ["2025-04-01"]}
    assert control(fresh_sandbox, "GET").json() == {"heldBack": ["2025-04-01"]}
    assert control(fresh_sandbox, "DELETE").json() == {"heldBack": []}
    assert fresh_sandbox.held_back() == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "not JSON"),
        (b'["2025-03-20"]', "heldBack"),
        (b'{"heldBack": ["2025-03-20"], "also": 1}', "heldBack"),
        (b'{"heldback": ["2025-03-20"]}', "heldBack"),
        (b'{"heldBack": "2025-03-20"}', "list"),
        (b'{"heldBack": [20250320]}', "#0"),
        (b'{"heldBack": ["2025-03-20", "2025-3-21"]}', "#1 must be YYYY-MM-DD"),
        (b'{"heldBack": ["20250320"]}', "YYYY-MM-DD"),
        (b'{"heldBack": ["2025-02-30"]}', "no calendar date"),
        (b'{"heldBack": ["2001-01-01"]}', "before 2008-07-01"),
        (b'{"heldBack": [null]}', "#0"),
    ],
)
def test_bad_publication_input_is_a_400_naming_the_fault(fresh_sandbox, body, named):
    fresh_sandbox.hold_back(["2025-03-20"])
    r = control(fresh_sandbox, "PUT", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and named in r.json()["error"], r.json()
    assert fresh_sandbox.held_back() == [dt.date(2025, 3, 20)]  # nothing changed


def test_other_methods_and_oversized_bodies_are_refused(fresh_sandbox):
    assert control(fresh_sandbox, "POST", json={"heldBack": []}).status_code == 405
    huge = json.dumps({"heldBack": ["2025-03-20"] * 200_000}).encode()
    r = control(fresh_sandbox, "PUT", data=huge)
    assert r.status_code == 400 and "over the" in r.json()["error"]


def test_the_python_api_validates_as_strictly():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        SandboxServer(today=TODAY, held_back=["March 20"])
    server = SandboxServer(today=TODAY, held_back=[dt.date(2025, 3, 20), "2025-03-21"])
    assert server.held_back() == [dt.date(2025, 3, 20), dt.date(2025, 3, 21)]
    with pytest.raises(ValueError, match="a list"):
        server.hold_back("2025-03-22")
    with pytest.raises(ValueError, match="#0"):
        server.hold_back([dt.datetime(2025, 3, 22, 12, 0)])
    server.release(["2025-03-20"])
    assert server.held_back() == [dt.date(2025, 3, 21)]


def test_the_cli_holds_dates_back():
    params = command.sandbox.make_context(
        "sandbox", ["--hold-back", "2025-03-21", "--hold-back", "2025-03-20"]
    )
    assert params.params["hold_back"] == [dt.date(2025, 3, 20), dt.date(2025, 3, 21)]
    result = CliRunner().invoke(command.sandbox, ["--hold-back", "2025-13-01"])
    assert result.exit_code == 2 and "--hold-back" in result.stderr
