"""The console's heatmap at a year of 128 districts (issue 12): first paint under 1 s in Chromium,
with the API process reading a store of that size and asking a real Dagster at the default
partition space (128 districts, a week materialized) what is in progress. Its own Dagster: the
year's backfill of test_e2e_ui_scale.py keeps that daemon busy for minutes."""

import datetime as dt
import importlib.util
import statistics
import time
from pathlib import Path

import pytest
import requests
from api_process import running_api
from browser import chromium_page, shots
from scale_dagster import DISTRICTS, seeded_dagster

from backfill_pipeline.scope import DistrictConfig

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("console")]
# The store of a year of every district's summaries is written by the coverage benchmark's builder.
_spec = importlib.util.spec_from_file_location(
    "bench_coverage", Path(__file__).resolve().parent.parent / "scripts" / "bench_coverage.py"
)
bench_coverage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_coverage)

# When the page asked for the matrix and when the answer had arrived, in seconds from navigation.
MATRIX_FETCH = """performance.getEntriesByType('resource').filter((e) => e.name.includes('/coverage/matrix'))
  .map((e) => [Math.round(e.startTime) / 1000, Math.round(e.responseEnd) / 1000])"""


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """The seeded Dagster of tests/scale_dagster.py (its own: see the module's docstring)."""
    with seeded_dagster(tmp_path_factory.mktemp("console-scale")) as running:
        yield running


def test_the_console_paints_a_year_of_128_districts_within_a_second(scale, tmp_path):
    """Issue 12: the heatmap's first paint at 128 districts x 366 days, in Chromium, with the API
    process reading a store of that size and asking this Dagster what is in progress."""
    service, yesterday = scale
    first = yesterday - dt.timedelta(days=365)
    root = tmp_path / "data"
    bench_coverage.build(root, DISTRICTS, first, 366)
    DistrictConfig(root).set(DISTRICTS)
    today = (yesterday + dt.timedelta(days=1)).isoformat()
    with running_api(root, token="scale-token-0123456789", dagster_url=service.url, today=today) as url:
        query = f"start={first.isoformat()}&end={yesterday.isoformat()}"
        # The API has answered once before, as a running server has.
        began = time.perf_counter()
        requests.get(f"{url}/api/coverage/matrix?{query}", timeout=60).raise_for_status()
        server_first = time.perf_counter() - began
        paints, completes, fetches = [], [], []
        for attempt in range(3):
            with chromium_page() as page:
                page.goto(f"{url}/#coverage?{query}")
                page.wait_for_selector("body[data-heatmap-painted]", state="attached", timeout=30_000)
                paints.append(float(page.evaluate("document.body.dataset.heatmapPainted")) / 1000)
                # Then Dagster's "in progress" is laid over it (no bound: Dagster's own speed).
                page.wait_for_selector("body[data-heatmap-complete]", state="attached", timeout=60_000)
                completes.append(float(page.evaluate("document.body.dataset.heatmapComplete")) / 1000)
                fetches.append(page.evaluate(MATRIX_FETCH))
                legend = [
                    page.locator(f"#legend li[data-state={state}]").inner_text()
                    for state in ("summary", "in-progress")
                ]
                if attempt == 0:
                    page.screenshot(path=str(shots(tmp_path) / "console-coverage-year.png"), full_page=True)
    print(f"matrix, the server's first answer: {server_first:.2f} s")
    print(f"first paint, s: {[round(p, 2) for p in paints]}; the matrix's fetches (start, end): {fetches}")
    print(f"with Dagster's in progress laid over, s: {[round(c, 2) for c in completes]}")
    # Every cell is summary-level data; the year's backfill of the other test (when it ran first)
    # lays "in progress" over some.
    summary, running = (int(text.rsplit(": ", 1)[1]) for text in legend)
    assert summary + running == len(DISTRICTS) * 366, legend
    assert statistics.median(paints) < 1.0, paints
