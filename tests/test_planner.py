"""The request model and the planner: validation, strategy, scope, partitions, runs and cost."""

import datetime as dt

import pytest
from conftest import ALL_DISTRICTS, AS_OF, BACKFILL, REFRESH, a_failure, a_summary, planner_world
from pydantic import ValidationError

from backfill_pipeline.dashboard.cache import CachedAnswer, RawCache
from backfill_pipeline.planning.planner import (
    PlanError,
    choose_strategy,
    date_ranges,
    district_ranges,
    make_heal_plan,
    make_plan,
)
from backfill_pipeline.planning.request import BackfillRequest, HealRequest, field_errors
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore

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
    # 1 summary run (3 contiguous dates) + 1 run per district: Dagster holds constant the
    # dimension with fewer values in the subset (2 districts < 3 dates) and ranges the dates.
    assert plan.cost.runs == 1 + 2
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
    # More districts than dates: one run per date, the neighbours in one range.
    wide = make_plan(req(targetDistricts=["42", "61", "01"]), world(), RawCache(tmp_path))
    assert wide.cost.runs == 1 + 2  # the summary; 42 and 61 together, 01 apart
    # More dates than districts: one run per district over its dates, in runs of the batch size.
    long = make_plan(
        req(endDate="2025-03-30", targetDistricts=["42", "61"]), world(batch_size=7), RawCache(tmp_path)
    )
    assert long.cost.runs == 3 + 2 * 3


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


# "Not published" seen twice, a day apart, after March 2025's closing window: final on evidence.
FINAL_EVIDENCE = ["2025-06-01T08:00:00+00:00", "2025-06-02T09:00:00+00:00"]


def test_cached_csvs_and_known_unavailable_dates_cost_nothing(tmp_path):
    cache = RawCache(tmp_path)
    body = b'"DISTRICT"\r\n"42"\r\nMonth of Mar, As of 03/10/2025\r\n'
    sha = cache.put(body, url="u", as_of=dt.date(2025, 3, 10))
    cache.remember(CachedAnswer("districtsummary", None, "2025-03-10", True, "u", sha, len(body)))
    cache.remember(CachedAnswer("districtsummary", None, "2025-03-11", False, seen=FINAL_EVIDENCE))
    plan = make_plan(req(endDate="2025-03-12", targetDistricts=["42"]), world(), cache)
    # 03-10: summary cached, 3 district reports; 03-11: known unavailable (final), free; 03-12: 1 + 3.
    assert plan.cost.requests == 3 + 1 + 3 and plan.cost.cached == 2


@pytest.mark.parametrize(
    ("seen", "recheck", "requests"),
    [
        (FINAL_EVIDENCE, False, 0),
        # Seen once: pending. Every run asks again: the summary and, if published, 3 reports.
        (FINAL_EVIDENCE[:1], False, 1 + 3),
        # Seen before the month closed: pending too.
        (["2025-03-12T08:00:00+00:00", "2025-03-14T08:00:00+00:00"], False, 1 + 3),
        # A recheck asks again even where it is final.
        (FINAL_EVIDENCE, True, 1 + 3),
    ],
)
def test_a_cached_unavailable_answer_is_free_only_when_final_and_not_rechecked(
    tmp_path, seen, recheck, requests
):
    cache = RawCache(tmp_path)
    cache.remember(CachedAnswer("districtsummary", None, "2025-03-11", False, seen=seen))
    plan = make_plan(
        req(startDate="2025-03-11", targetDistricts=["42"], recheckUnavailable=recheck), world(), cache
    )
    assert plan.cost.requests == requests
    assert plan.cost.cached == (1 if requests == 0 else 0)
    assert plan.recheck_unavailable is recheck


def test_recheck_plans_unavailable_keys_again_and_changes_the_hash(tmp_path):
    materialized = {
        "all_districts_summary": {"2025-03-10", "2025-03-11"},
        "district_snapshot": {"2025-03-10|42"},
    }
    unavailable = {"all_districts_summary": {"2025-03-11"}, "district_snapshot": {"2025-03-10|42"}}
    w = world(materialized=materialized, unavailable=unavailable)
    plain = make_plan(req(endDate="2025-03-11"), w, RawCache(tmp_path))
    assert plain.summary_partitions == [] and plain.skipped["materialized"] == 2
    rechecked = make_plan(req(endDate="2025-03-11", recheckUnavailable=True), w, RawCache(tmp_path))
    # Only the unavailable date is asked again; the materialized one stays skipped.
    assert rechecked.summary_partitions == ["2025-03-11"] and rechecked.skipped["materialized"] == 1
    assert rechecked.recheck_unavailable and "asked again" in rechecked.rationale
    per_district = make_plan(
        req(endDate="2025-03-11", targetDistricts=["42"], recheckUnavailable=True), w, RawCache(tmp_path)
    )
    assert per_district.district_partitions == ["2025-03-10|42", "2025-03-11|42"]
    # The hash covers the recheck, even when the partitions are the same.
    same = world()
    assert (
        make_plan(req(recheckUnavailable=True), same, RawCache(tmp_path)).plan_hash
        != make_plan(req(), same, RawCache(tmp_path)).plan_hash
    )


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


def test_every_run_draws_from_the_backfills_whole_share(tmp_path):
    # Not split between the runs: they draw from one share kept in the budget's store, so a run
    # starting up leaves its part to the one fetching (issue 11).
    assert make_plan(req(rate=2, concurrency=2), world(), RawCache(tmp_path)).rate_per_run == 2.0
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


# -- the heal plan ---------------------------------------------------------------------------------


def a_store_with_gaps(tmp_path):
    """AS_OF: 42 and 61 in summary, 09 failed transiently (detailed); the next day not published
    yet (pending), the day after final; the fourth day never collected."""
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH, summary_answered=True)
    store.write_district(a_failure("09"), context=BACKFILL)
    store.mark_date_unavailable(AS_OF + dt.timedelta(days=1), context=REFRESH)
    store.mark_date_unavailable(AS_OF + dt.timedelta(days=2), context=REFRESH, final=True)
    return store


def heal_req(**fields) -> HealRequest:
    end = (AS_OF + dt.timedelta(days=3)).isoformat()
    return HealRequest.model_validate({"startDate": AS_OF.isoformat(), "endDate": end, **fields})


def test_a_heal_plans_exactly_the_healable_cells_and_their_cost(tmp_path):
    store = a_store_with_gaps(tmp_path)
    day = [(AS_OF + dt.timedelta(days=i)).isoformat() for i in range(4)]
    w = world(configured=["09", "42", "61"])
    plan = make_heal_plan(heal_req(), w, store, RawCache(tmp_path))
    assert plan.strategy == "heal" and plan.scope == "system-wide" and plan.districts == ["09", "42", "61"]
    # 09 failed in detail: collected in detail; the pending and the missing dates: their summary.
    assert plan.district_partitions == [f"{day[0]}|09"]
    assert plan.summary_partitions == [day[1], day[3]]
    assert plan.skipped == {"summary": 2, "unavailable-final": 3}
    # Two summaries, and for 09 its date's summary (not cached) and its three reports.
    assert plan.cost.requests == 2 + 1 + 3
    assert plan.cost.runs == 2 + 1  # two separate dates, one district run
    assert not plan.force and not plan.recheck_unavailable
    assert plan.rationale.startswith("7 of 12 cell(s) may give more than they hold")

    without_missing = make_heal_plan(heal_req(includeMissing=False), w, store, RawCache(tmp_path))
    assert without_missing.summary_partitions == [day[1]]
    assert without_missing.skipped["missing"] == 3
    assert without_missing.plan_hash != plan.plan_hash

    only_61 = make_heal_plan(heal_req(targetDistricts=["61"]), w, store, RawCache(tmp_path))
    assert only_61.scope == "single-district" and only_61.district_partitions == []
    assert only_61.summary_partitions == [day[1], day[3]]


def test_a_heal_with_nothing_to_heal_plans_no_partition(tmp_path):
    store = a_store_with_gaps(tmp_path)
    request = heal_req(startDate=AS_OF.isoformat(), endDate=AS_OF.isoformat(), targetDistricts=["42", "61"])
    plan = make_heal_plan(request, world(), store, RawCache(tmp_path))
    assert plan.partition_count == 0 and plan.cost.requests == 0 and plan.cost.runs == 0
    assert plan.skipped == {"summary": 2}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"startDate": "2026-11-20", "endDate": "2026-11-29"}, "endDate"),
        ({"startDate": "2024-12-30", "endDate": "2025-01-02"}, "startDate"),
        ({"targetDistricts": ["999"]}, "targetDistricts"),
    ],
)
def test_heal_plan_errors_name_their_field(tmp_path, fields, field):
    with pytest.raises(PlanError) as info:
        make_heal_plan(heal_req(**fields), world(), a_store_with_gaps(tmp_path), RawCache(tmp_path))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startDate": "2025-03-10"}, "endDate"),
        ({"startDate": "2025-03-10", "endDate": "2025-03-01"}, "endDate"),
        ({"startDate": "2025-01-01", "endDate": "2026-01-02"}, "endDate"),
        ({"startDate": "2025-3-1", "endDate": "2025-03-02"}, "startDate"),
        (
            {"startDate": "2025-03-01", "endDate": "2025-03-02", "targetDistricts": ["../x"]},
            "targetDistricts",
        ),
        ({"startDate": "2025-03-01", "endDate": "2025-03-02", "includeMissing": "maybe"}, "includeMissing"),
        ({"startDate": "2025-03-01", "endDate": "2025-03-02", "skipExisting": False}, "skipExisting"),
    ],
)
def test_bad_heal_requests_name_their_field(body, field):
    with pytest.raises(ValidationError) as info:
        HealRequest.model_validate(body)
    assert field in [e["field"].split(".")[0] for e in field_errors(info.value)]


def test_a_backfills_rate_is_a_share_of_the_budget_never_above_it(tmp_path):
    whole = make_plan(req(concurrency=1), world(budget=3.0), RawCache(tmp_path))
    assert whole.rate_per_run == 3.0  # no rate asked: the whole budget
    assert make_plan(req(rate=1.5, concurrency=1), world(budget=3.0), RawCache(tmp_path)).rate_per_run == 1.5
    with pytest.raises(PlanError) as info:
        make_plan(req(rate=4), world(budget=3.0), RawCache(tmp_path))
    assert info.value.field == "rate" and "budget of 3" in str(info.value)


@pytest.mark.parametrize("rate", ["inf", "nan", 0, -1])
def test_rates_that_are_not_finite_positive_numbers_are_refused(rate):
    with pytest.raises(ValidationError):
        BackfillRequest.model_validate(
            {"startDate": "2025-04-14", "rate": float(rate) if rate in ("inf", "nan") else rate}
        )
