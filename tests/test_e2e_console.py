"""The console end to end (issue 12, point 6): Debian's Chromium against `backfill-pipeline api`,
the sandbox dashboard and `dagster dev`, all real processes. The operator signs in, previews and
launches a backfill from the form, watches it finish with one district's detail failing (the
sandbox answers 61's club report with the wrong report), reads that error on the backfill page
and on the heatmap, and cancels a second, slow backfill from its page. Every page is screenshot.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests
from api_process import running_api
from browser import chromium_page, move_cursor, shots
from conftest import TODAY, published_dates
from playwright.sync_api import Page, expect

from backfill_pipeline.devstack import start_configured_stack, stop_all

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("console")]

DISTRICTS = ["42", "61", "109"]
TOKEN = "e2e-console-token-0123456789"
ENV = {"BACKFILL_START_DATE": "2025-01-01", "BACKFILL_RATE": "20", "BACKFILL_BATCH_SIZE": "10"}
# The backfill page polls every 5 s; a backfill waits up to a daemon tick (30 s) per step.
ENDED_MS = 240_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The sandbox, `dagster dev` and the API process over one data root."""
    base = tmp_path_factory.mktemp("e2e-console")
    sandbox, dagster = start_configured_stack(base, today=TODAY.isoformat(), districts=DISTRICTS, env=ENV)
    try:
        with running_api(
            base / "data", token=TOKEN, dagster_url=dagster.url, today=TODAY.isoformat(), env=ENV
        ) as url:
            yield {"url": url, "sandbox": sandbox.url}
    finally:
        stop_all([dagster, sandbox])


def faults(stack, rules: list[dict]) -> None:
    requests.put(f"{stack['sandbox']}/_sandbox/faults", json=rules, timeout=5).raise_for_status()


def sign_in(page: Page, url: str) -> None:
    page.goto(url + "/")
    page.fill("#token", TOKEN)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#session-state")).to_have_text("Signed in")


def launch(page: Page, start: dt.date, end: dt.date, districts: list[str], *, concurrency: int = 3) -> str:
    """Fill the form, preview, launch; the new backfill's id (the page has moved to it)."""
    page.click("#nav-launch")
    page.fill("#l-start", start.isoformat())
    page.fill("#l-end", end.isoformat())
    page.select_option("#l-districts", districts)
    page.select_option("#l-type", "per-district")
    page.fill("#l-concurrency", str(concurrency))
    page.click("#l-preview")
    plan = page.locator("#launch-plan")
    expect(plan).to_contain_text("per-district:")
    expect(fact(page, "Districts", "#launch-plan dl")).to_have_text(", ".join(districts))
    expect(page.locator("#l-launch")).to_be_enabled()
    page.click("#l-launch")
    page.wait_for_url(re.compile(r"#backfill/.+"))
    return page.url.rsplit("#backfill/", 1)[1]


def fact(page: Page, name: str, facts: str = "#backfill-facts"):
    """The value beside `name` in a list of facts (the backfill's, or the plan's)."""
    return page.locator(f"{facts} dt:text-is('{name}') + dd")


def in_progress(stack, start: dt.date, end: dt.date, timeout: float = 60) -> set[str]:
    """The cells the coverage matrix shows in progress (code R), once there are any."""
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(f"{stack['url']}/api/coverage/matrix?start={start}&end={end}", timeout=30)
        m = r.json()
        assert m["inProgressKnown"] is True
        cells = {
            f"{date}|{district}"
            for date, row in zip(m["dates"], m["rows"], strict=True)
            for district, code in zip(m["districts"], row, strict=True)
            if code == m["codes"]["in-progress"]
        }
        if cells or time.monotonic() > deadline:
            return cells
        time.sleep(0.5)


def test_launch_follow_see_the_failing_district_and_cancel(stack, tmp_path):
    dates = published_dates(dt.date(2025, 3, 10), 3)
    failing = dates[1]
    faults(stack, [{"kind": "wrong_report", "district": "61", "asOf": failing.isoformat()}])
    out = shots(tmp_path)
    with chromium_page(height=1100) as page:
        sign_in(page, stack["url"])
        # The form shows the exact plan first: 3 dates x 2 districts, each with its summary.
        page.click("#nav-launch")
        page.fill("#l-start", dates[0].isoformat())
        page.fill("#l-end", dates[-1].isoformat())
        page.select_option("#l-districts", ["42", "61"])
        page.select_option("#l-type", "per-district")
        page.click("#l-preview")
        partitions = fact(page, "Partitions", "#launch-plan dl")
        expect(partitions).to_have_text("9 (3 summary, 6 district)")
        expect(fact(page, "Requests", "#launch-plan dl")).to_contain_text("between")
        page.screenshot(path=str(out / "console-launch.png"), full_page=True)
        first = launch(page, dates[0], dates[-1], ["42", "61"])

        # Followed live, without reloading, until it ends with 61's one failure.
        expect(fact(page, "State")).to_have_text("completed-with-failures", timeout=ENDED_MS)
        expect(fact(page, "Requested by")).to_have_text("console")
        row = page.locator("#backfill-districts tr[data-district='61'] td")
        expect(row.nth(0)).to_have_text("2")  # done
        expect(row.nth(1)).to_have_text("1")  # failed
        expect(row.nth(3)).to_contain_text("NotACsv")
        expect(page.locator("#backfill-districts tr[data-district='42'] td").nth(1)).to_have_text("0")
        error = page.locator("#backfill-errors li").first
        expect(error).to_contain_text("District 61")
        expect(error).to_contain_text("(permanent)")
        expect(page.locator("#backfill-progress")).to_have_attribute("aria-label", re.compile("1 failed"))
        expect(page.locator("#backfill-retry")).to_be_visible()
        expect(page.locator("#backfill-performance")).to_contain_text("Requests made / planned")
        page.screenshot(path=str(out / "console-backfill.png"), full_page=True)

        # The heatmap tells the same cell: 61's summary kept, its detail failed, with the cause.
        dist = "42,61"
        page.goto(f"{stack['url']}/#coverage?start={dates[0]}&end={dates[-1]}&districts={dist}")
        expect(page.locator("#legend li[data-state=detailed]")).to_have_text("Detailed: 5")
        readout = page.locator("#cell-readout")
        move_cursor(page, 1, (failing - dates[0]).days)
        expect(readout).to_have_attribute("data-state", "summary")
        expect(readout).to_contain_text(f"{failing.isoformat()}, district 61: Summary only")
        expect(readout).to_contain_text("Last error")
        expect(readout).to_contain_text("NotACsv")
        move_cursor(page, 0, 0)
        expect(readout).to_have_attribute("data-state", "detailed")
        page.screenshot(path=str(out / "console-coverage-after.png"), full_page=True)

        # District 109 was left out: the summaries gave it summary-level data only. Its row,
        # selected on the heatmap, is planned (its exact cost first), then collected from there.
        page.goto(f"{stack['url']}/#coverage?start={dates[0]}&end={dates[-1]}&districts=42,61,109")
        expect(page.locator("#by-district-rows tr")).to_have_count(3)  # the new range is painted
        move_cursor(page, 2, 0)
        expect(readout).to_have_attribute("data-state", "summary")
        page.keyboard.press("Shift+End")
        expect(page.locator("#selection-text")).to_have_text(
            f"Selected 3 cells: {dates[0]} to {dates[-1]}, districts 109"
        )
        expect(page.locator("#collect-launch")).to_be_hidden()
        page.click("#collect-preview")
        expect(page.locator("#collect-result")).to_contain_text("3 district_snapshot")
        expect(page.locator("#collect-result")).to_contain_text("9 requests")
        page.screenshot(path=str(out / "console-collect-these.png"), full_page=True)
        page.click("#collect-launch")
        page.wait_for_url(re.compile(r"#backfill/.+"))
        expect(fact(page, "State")).to_have_text("succeeded", timeout=ENDED_MS)
        row = page.locator("#backfill-districts tr[data-district='109'] td")
        expect(row.nth(0)).to_have_text("3")

        # A slow backfill, one run at a time, cancelled from its page.
        faults(stack, [{"kind": "latency", "latencyMs": 800}])
        try:
            slow = published_dates(dt.date(2025, 5, 1), 12)
            second = launch(page, slow[0], slow[-1], DISTRICTS, concurrency=1)
            cancel = page.locator("#backfill-cancel")
            expect(cancel).to_be_visible(timeout=60_000)
            # While its run collects, the heatmap's matrix shows those cells in progress.
            running = in_progress(stack, slow[0], slow[-1])
            assert running and running <= {f"{d}|{x}" for d in slow for x in DISTRICTS}, running
            # The deployment's requests/s now, against its budget (20/s here, slowed by latency).
            now = fact(page, "Requests/s now (every run, last 10 s)", "#backfill-performance")
            expect(now).to_have_text(re.compile(r"^\d+(\.\d+)? of the budget's 20(\.0)?$"))
            page.on("dialog", lambda dialog: dialog.accept())
            cancel.click()
            expect(page.locator("#backfill-action-result")).to_have_text("Cancel requested.")
            expect(fact(page, "State")).to_have_text(re.compile("^cancel"), timeout=30_000)
            expect(fact(page, "State")).to_have_text("canceled", timeout=ENDED_MS)
            expect(cancel).to_be_hidden()
        finally:
            faults(stack, [])

        # The list shows both, with their state and a progress bar that says itself in words.
        page.click("#nav-backfills")
        done = page.locator(f"#backfill-rows tr[data-backfill-id='{first}']")
        expect(done).to_have_attribute("data-state", "completed-with-failures")
        expect(done.locator("progress")).to_have_attribute(
            "aria-label", re.compile(r"^8 of 9 partitions done, 1 failed")
        )
        expect(page.locator(f"#backfill-rows tr[data-backfill-id='{second}']")).to_have_attribute(
            "data-state", "canceled"
        )
        page.screenshot(path=str(out / "console-backfills.png"), full_page=True)
