"""The dry run's cost against the requests the sandbox then counts for that backfill (real Dagster).

Exact where nothing is uncertain (published dates outside any closing window), within
[lowerBound, upperBound] where it is (a closing-window date costs a second summary request).
Both backfills run side by side on disjoint dates; the sandbox counts requests per
(report, date, district), so each backfill's requests are told apart by their dates.
"""

from __future__ import annotations

import datetime as dt

import pytest
from api_stack import CONTRACT
from conftest import TODAY, published_dates

from backfill_pipeline.sandbox import publication

pytest_plugins = ["api_stack"]
# The e2e files on the API's shared stack run on one xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("api-stack")]

LIST = "/api/backfills"
PER_DISTRICT_DATES = [d.isoformat() for d in published_dates(dt.date(2025, 9, 15), 3, closing=False)]
PER_DISTRICT = {
    "startDate": PER_DISTRICT_DATES[0],
    "endDate": PER_DISTRICT_DATES[-1],
    "targetDistricts": ["42", "61"],
    "collectionType": "per-district",
    "rate": 8,
}
SYSTEM_WIDE_DATES = [(dt.date(2025, 10, 19) + dt.timedelta(days=i)).isoformat() for i in range(4)]
SYSTEM_WIDE = {
    "startDate": SYSTEM_WIDE_DATES[0],
    "endDate": SYSTEM_WIDE_DATES[-1],
    "collectionType": "system-wide",
    "rate": 8,
}


def counted(stats: dict, dates: list[str]) -> int:
    """Export requests the sandbox answered for these as-of dates (keys are report|asOf|district)."""
    return sum(n for key, n in stats["byKey"].items() if key.split("|")[1] in dates)


@pytest.fixture(scope="module")
def costs(api_stack):
    """Dry-run both requests, zero the sandbox's counters, launch both, wait for both to end."""
    s, c = api_stack, CONTRACT
    s.faults([])
    plans = {
        name: c.check(s.post({**body, "dryRun": True}), "POST", LIST, 200)["plan"]
        for name, body in (("perDistrict", PER_DISTRICT), ("systemWide", SYSTEM_WIDE))
    }
    s.sandbox_stats(reset=True)
    ids = {
        name: c.check(s.post(body), "POST", LIST, 202)["backfillId"]
        for name, body in (("perDistrict", PER_DISTRICT), ("systemWide", SYSTEM_WIDE))
    }
    statuses = {name: s.wait_terminal(backfill_id) for name, backfill_id in ids.items()}
    return {"plans": plans, "ids": ids, "statuses": statuses, "stats": s.sandbox_stats()}


def test_dates_are_what_the_tests_assume():
    assert all(
        publication.is_published(dt.date.fromisoformat(d), today=TODAY)
        for d in PER_DISTRICT_DATES + SYSTEM_WIDE_DATES
    )
    assert not any(publication.is_closing_period(dt.date.fromisoformat(d)) for d in PER_DISTRICT_DATES)
    closing = [d for d in SYSTEM_WIDE_DATES if publication.is_closing_period(dt.date.fromisoformat(d))]
    assert 0 < len(closing) < len(SYSTEM_WIDE_DATES)


def test_per_district_dry_run_cost_equals_the_requests_made(costs):
    plan, status = costs["plans"]["perDistrict"], costs["statuses"]["perDistrict"]
    assert status["state"] == "succeeded", status
    assert plan["partitions"] == {"all_districts_summary": 3, "district_snapshot": 6, "total": 9}
    # One summary per date and three district reports per district per date.
    assert plan["cost"]["requests"] == 3 + 3 * 2 * 3
    made = counted(costs["stats"], PER_DISTRICT_DATES)
    assert made == plan["cost"]["requests"], (made, plan["cost"])
    assert plan["cost"]["lowerBound"] <= made <= plan["cost"]["upperBound"]
    # The runs as Dagster made them: the summary's dates in one, then one per district (2
    # districts, 3 dates: Dagster ranges the dates), all in one level.
    assert status["runs"]["total"] == plan["cost"]["runs"] == 1 + 2, (status["runs"], plan["cost"])


def test_system_wide_requests_lie_within_the_dry_run_bounds(costs):
    plan, status = costs["plans"]["systemWide"], costs["statuses"]["systemWide"]
    assert status["state"] == "succeeded", status
    assert plan["cost"]["requests"] == len(SYSTEM_WIDE_DATES)
    made = counted(costs["stats"], SYSTEM_WIDE_DATES)
    assert plan["cost"]["lowerBound"] <= made <= plan["cost"]["upperBound"], (made, plan["cost"])
    closing = sum(publication.is_closing_period(dt.date.fromisoformat(d)) for d in SYSTEM_WIDE_DATES)
    # The sandbox's own model: a closing-window date is asked for its own month first, then the
    # previous one.
    assert made == plan["cost"]["requests"] + closing


def test_sandbox_counted_only_these_backfills(costs):
    stats = costs["stats"]
    assert stats["exportRequests"] == counted(stats, PER_DISTRICT_DATES + SYSTEM_WIDE_DATES), stats["byKey"]


def test_status_reports_the_requests_really_made(costs):
    for name, dates in (("perDistrict", PER_DISTRICT_DATES), ("systemWide", SYSTEM_WIDE_DATES)):
        performance = costs["statuses"][name]["performance"]
        assert performance["requestsMade"] == counted(costs["stats"], dates), (name, performance)


def test_dry_run_after_the_backfill_costs_nothing(api_stack, costs):
    r = api_stack.post({**PER_DISTRICT, "dryRun": True})
    plan = CONTRACT.check(r, "POST", LIST, 200)["plan"]
    assert plan["cost"]["requests"] == plan["cost"]["upperBound"] == 0
    assert plan["partitions"]["total"] == 0
    assert plan["skipped"]["materialized"] == 3 + 6
    assert plan["cost"]["runs"] == 0


def test_per_district_over_collected_summaries_costs_only_district_reports(api_stack, costs):
    # The system-wide backfill materialized these dates' summaries and cached their CSVs: only the
    # district reports are left, and the data month is known, so the cost is certain.
    s, c = api_stack, CONTRACT
    dates = SYSTEM_WIDE_DATES[1:3]
    request = {"startDate": dates[0], "endDate": dates[-1], "targetDistricts": ["109"], "rate": 8}
    plan = c.check(s.post({**request, "dryRun": True}), "POST", LIST, 200)["plan"]
    assert plan["partitions"] == {"all_districts_summary": 0, "district_snapshot": 2, "total": 2}
    assert plan["cost"]["requests"] == plan["cost"]["lowerBound"] == plan["cost"]["upperBound"] == 2 * 3
    before = counted(s.sandbox_stats(), dates)
    status = s.wait_terminal(c.check(s.post(request), "POST", LIST, 202)["backfillId"])
    assert status["state"] == "succeeded", status
    made = counted(s.sandbox_stats(), dates) - before
    assert made == plan["cost"]["requests"], (made, plan["cost"])
    assert status["performance"]["requestsMade"] == made
