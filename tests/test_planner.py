"""The request model and the planner: validation, strategy, scope, partitions, runs and cost."""

import datetime as dt

import pytest
from conftest import ALL_DISTRICTS, planner_world
from pydantic import ValidationError

from backfill_pipeline.dashboard.cache import CachedAnswer, RawCache
from backfill_pipeline.planning.planner import (
    PlanError,
    choose_strategy,
    date_ranges,
    district_ranges,
    make_plan,
)
from backfill_pipeline.planning.request import BackfillRequest, field_errors

ALL = ALL_DISTRICTS
world = planner_world


def req(**fields) -> BackfillRequest:
    return BackfillRequest.model_validate({"startDate": "2025-03-10", **fields})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startDate": "2025-03-10", "endDate": "2025-03-01"}, "endDate"),
        ({"startDate": "2008-06-30"}, "startDate"),
        ({"startDate": "2025-3-1"}, "startDate"),
        ({"startDate": "2025-03-10", "targetDistricts": ["42", "../x"]}, "targetDistricts"),
        ({"startDate": "2025-03-10", "targetDistricts": ["2a"]}, "targetDistricts"),
        ({"startDate": "2025-03-10", "targetDistricts": [str(i) for i in range(10_000)]}, "targetDistricts"),
        ({"startDate": "2025-03-10", "nonsense": 1}, "nonsense"),
        ({"startDate": "2025-03-10", "collectionType": "everything"}, "collectionType"),
        ({"startDate": "2025-03-10", "concurrency": 0}, "concurrency"),
        ({"startDate": "2025-03-10", "rate": 0}, "rate"),
        ({"startDate": "2025-03-10", "rate": 100}, "rate"),
        ({"startDate": "2025-03-10", "planHash": "../../etc"}, "planHash"),
        ({}, "startDate"),
    ],
)
def test_bad_requests_name_their_field(body, field):
    with pytest.raises(ValidationError) as info:
        BackfillRequest.model_validate(body)
    assert field in [e["field"].split(".")[0] for e in field_errors(info.value)]


def test_request_defaults_and_normalisation():
    r = req(targetDistricts=["District 42", " 61 ", "42", "f"])
    assert r.target_districts == ["42", "61", "F"]
    assert (r.last_date, r.collection_type, r.skip_existing, r.dry_run) == (
        dt.date(2025, 3, 10),
        "auto",
        True,
        False,
    )


@pytest.mark.parametrize(
    ("fields", "strategy"),
    [
        ({}, "system-wide"),
        ({"targetDistricts": ["42"]}, "per-district"),
        ({"collectionType": "system-wide", "targetDistricts": ["42"]}, "system-wide"),
        ({"collectionType": "per-district"}, "per-district"),
    ],
)
def test_strategy(fields, strategy):
    chosen, rationale = choose_strategy(req(**fields))
    assert chosen == strategy and rationale


def test_system_wide_plan_counts_one_request_per_date(tmp_path):
    plan = make_plan(req(endDate="2025-03-14"), world(), RawCache(tmp_path))
    assert plan.strategy == "system-wide" and plan.district_partitions == []
    assert plan.summary_partitions == [f"2025-03-1{i}" for i in range(5)]
    assert plan.cost.requests == 5 and plan.cost.lower == 5 and plan.cost.upper == 10
    assert plan.cost.runs == 1 and plan.cost.seconds == 2.5
    assert date_ranges(plan.summary_partitions) == [("2025-03-10", "2025-03-14")]


def test_per_district_plan_and_its_ranges(tmp_path):
    plan = make_plan(
        req(endDate="2025-03-12", targetDistricts=["61", "42", "999"]), world(), RawCache(tmp_path)
    )
    assert plan.districts == ["42", "61"] and plan.scope == "targeted"
    assert plan.out_of_scope == [
        {
            "id": "999",
            "reason": "not-on-dashboard",
            "message": "district 999 is not on the dashboard that date",
        }
    ]
    assert len(plan.district_partitions) == 6 and len(plan.summary_partitions) == 3
    # 3 summaries + 3 reports x 6 partitions.
    assert plan.cost.requests == 3 + 18 and plan.cost.by_report["clubperformance"] == 6
    assert plan.cost.lower == 3 and plan.cost.upper == 24
    # 1 summary run (3 contiguous dates) + 1 run per date (42 and 61 are neighbours).
    assert plan.cost.runs == 1 + 3
    ranges = district_ranges(plan.district_partitions, [])
    assert ("2025-03-10|42", "2025-03-12|42") in ranges and len(ranges) == 2
    # 42 and 61 are neighbours among the districts partitions: one rectangle covers them.
    assert district_ranges(plan.district_partitions, ALL) == [("2025-03-10|42", "2025-03-12|61")]
    # Not neighbours: one range per district.
    assert len(district_ranges(plan.district_partitions, ["42", "01", "61"])) == 2


def test_runs_follow_the_order_of_the_districts_partitions(tmp_path):
    apart = make_plan(req(targetDistricts=["01", "U"]), world(), RawCache(tmp_path))
    assert apart.cost.runs == 1 + 2  # 01 and U are not contiguous: two ranges, two runs
    small_batches = make_plan(req(endDate="2025-03-30"), world(batch_size=7), RawCache(tmp_path))
    assert small_batches.cost.runs == 3  # 21 dates in runs of 7


def test_skip_existing_and_retry_failures(tmp_path):
    w = world(
        materialized={"district_snapshot": {"2025-03-10|42"}, "all_districts_summary": {"2025-03-10"}},
        failed={"district_snapshot": {"2025-03-11|42"}},
    )
    plan = make_plan(req(endDate="2025-03-11", targetDistricts=["42"]), w, RawCache(tmp_path))
    assert plan.district_partitions == ["2025-03-11|42"] and plan.summary_partitions == ["2025-03-11"]
    assert plan.skipped["materialized"] == 2
    no_retry = make_plan(
        req(endDate="2025-03-11", targetDistricts=["42"], retryFailures=False), w, RawCache(tmp_path)
    )
    assert no_retry.partition_count == 0 and no_retry.skipped["failed"] == 1
    again = make_plan(
        req(endDate="2025-03-11", targetDistricts=["42"], skipExisting=False), w, RawCache(tmp_path)
    )
    assert again.force and len(again.district_partitions) == 2


def test_cached_csvs_and_known_unavailable_dates_cost_nothing(tmp_path):
    cache = RawCache(tmp_path)
    body = b'"DISTRICT"\r\n"42"\r\nMonth of Mar, As of 03/10/2025\r\n'
    sha = cache.put(body, url="u", as_of=dt.date(2025, 3, 10))
    cache.remember(CachedAnswer("districtsummary", None, "2025-03-10", True, "u", sha, len(body)))
    cache.remember(CachedAnswer("districtsummary", None, "2025-03-11", False))
    plan = make_plan(req(endDate="2025-03-12", targetDistricts=["42"]), world(), cache)
    # 03-10: summary cached, 3 district reports; 03-11: known unavailable, free; 03-12: 1 + 3.
    assert plan.cost.requests == 3 + 1 + 3 and plan.cost.cached == 2


def test_plan_hash_changes_with_the_state(tmp_path):
    a = make_plan(req(endDate="2025-03-11"), world(), RawCache(tmp_path))
    b = make_plan(
        req(endDate="2025-03-11"),
        world(materialized={"all_districts_summary": {"2025-03-10"}}),
        RawCache(tmp_path),
    )
    assert a.plan_hash == make_plan(req(endDate="2025-03-11"), world(), RawCache(tmp_path)).plan_hash
    assert a.plan_hash != b.plan_hash


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"startDate": "2026-11-29"}, "startDate"),
        ({"startDate": "2026-11-20", "endDate": "2026-12-01"}, "endDate"),
        ({"startDate": "2024-12-31"}, "startDate"),
        ({"startDate": "2025-03-10", "targetDistricts": ["999"]}, "targetDistricts"),
    ],
)
def test_plan_errors_name_their_field(tmp_path, fields, field):
    with pytest.raises(PlanError) as info:
        make_plan(BackfillRequest.model_validate(fields), world(), RawCache(tmp_path))
    assert info.value.field == field


def test_not_configured_targets_are_reported_not_dropped(tmp_path):
    plan = make_plan(req(targetDistricts=["42", "61"]), world(configured=["42"]), RawCache(tmp_path))
    assert plan.districts == ["42"]
    assert plan.out_of_scope[0]["id"] == "61" and plan.out_of_scope[0]["reason"] == "not-configured"


def test_concurrency_splits_the_rate_between_runs(tmp_path):
    assert make_plan(req(rate=2, concurrency=2), world(), RawCache(tmp_path)).rate_per_run == 1.0
    assert make_plan(req(rate=2, concurrency=1), world(), RawCache(tmp_path)).rate_per_run == 2.0


def test_district_ranges_fall_back_per_district_when_dates_differ():
    keys = ["2025-03-10|42", "2025-03-10|61", "2025-03-11|42"]
    assert district_ranges(keys, ALL) == [
        ("2025-03-10|42", "2025-03-11|42"),
        ("2025-03-10|61", "2025-03-10|61"),
    ]


def test_a_request_spans_at_most_a_year():
    with pytest.raises(ValidationError, match="at most 366 days"):
        req(endDate="2026-03-11")
    assert len(req(endDate="2026-03-10").dates()) == 366


def test_date_ranges():
    assert date_ranges(["2025-03-12", "2025-03-10", "2025-03-11", "2025-03-20"]) == [
        ("2025-03-10", "2025-03-12"),
        ("2025-03-20", "2025-03-20"),
    ]
