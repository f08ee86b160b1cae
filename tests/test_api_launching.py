"""What the API sends Dagster and shows of a plan: launch ranges, the plan's JSON, the backfill records."""

from __future__ import annotations

import pytest
from conftest import ALL_DISTRICTS, planner_world

from backfill_pipeline.api.graphql import BackfillNotFound
from backfill_pipeline.api.launching import partitions_by_assets
from backfill_pipeline.api.models import PlanBody
from backfill_pipeline.api.records import BackfillRecord, BackfillRecords
from backfill_pipeline.dashboard.cache import RawCache
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.planning.planner import make_plan
from backfill_pipeline.planning.request import BackfillRequest

ALL = ALL_DISTRICTS
WORLD = planner_world()


def plan_of(tmp_path, **fields):
    request = BackfillRequest.model_validate({"startDate": "2025-03-10", **fields})
    return make_plan(request, WORLD, RawCache(tmp_path))


def test_system_wide_launch_folds_consecutive_dates_into_one_range(tmp_path):
    plan = plan_of(tmp_path, endDate="2025-03-14")
    assert partitions_by_assets(plan, ALL) == [
        {
            "assetKey": {"path": ["all_districts_summary"]},
            "partitions": {"ranges": [{"start": "2025-03-10", "end": "2025-03-14"}]},
        }
    ]


def test_per_district_launch_uses_rectangles_when_the_districts_are_neighbours(tmp_path):
    plan = plan_of(tmp_path, endDate="2025-03-12", targetDistricts=["61", "42", "999"])
    summary, district = partitions_by_assets(plan, ALL)
    assert summary["partitions"]["ranges"] == [{"start": "2025-03-10", "end": "2025-03-12"}]
    # 42 and 61 are neighbours among the districts partitions: one rectangle covers them.
    assert district == {
        "assetKey": {"path": ["district_snapshot"]},
        "partitions": {"ranges": [{"start": "2025-03-10|42", "end": "2025-03-12|61"}]},
    }
    # Not neighbours, or the order unknown: one range per district.
    apart = partitions_by_assets(plan, ["42", "01", "61"])[1]["partitions"]["ranges"]
    assert apart == [
        {"start": "2025-03-10|42", "end": "2025-03-12|42"},
        {"start": "2025-03-10|61", "end": "2025-03-12|61"},
    ]
    assert partitions_by_assets(plan, [])[1]["partitions"]["ranges"] == apart


def test_plan_body_is_the_plan_as_the_api_shows_it(tmp_path):
    plan = plan_of(tmp_path, endDate="2025-03-11", targetDistricts=["42", "999"])
    body = PlanBody.from_plan(plan).model_dump(mode="json", by_alias=True)
    assert body == {
        "strategy": "per-district",
        "rationale": plan.rationale,
        "scope": "single-district",
        "dates": {"start": "2025-03-10", "end": "2025-03-11", "count": 2},
        "districts": ["42"],
        "outOfScope": [
            {
                "id": "999",
                "reason": "not-on-dashboard",
                "message": "district 999 is not on the dashboard that date",
            }
        ],
        "partitions": {"all_districts_summary": 2, "district_snapshot": 2, "total": 4},
        "skipped": {"materialized": 0, "failed": 0, "summaryNotNeeded": 0},
        "cost": {
            "requests": 8,
            "lowerBound": 2,
            "upperBound": 10,
            "cachedCsvs": 0,
            "byReport": {
                "districtsummary": 2,
                "districtperformance": 2,
                "divisionperformance": 2,
                "clubperformance": 2,
            },
            "runs": 2,  # the summary's 2 dates, then 42 over them
            "seconds": 4.0,
            "notes": plan.cost.notes,
        },
        "force": False,
        "recheckUnavailable": False,
        "ratePerRun": 2.0,
        "planHash": plan.plan_hash,
    }
    assert PlanBody.model_validate(body) == PlanBody.from_plan(plan)


def test_records_round_trip_and_unknown_or_unreadable_ones_read_empty(tmp_path):
    records = BackfillRecords(DataRoot(tmp_path))
    plan = PlanBody.from_plan(plan_of(tmp_path))
    request = BackfillRequest.model_validate({"startDate": "2025-03-10"})
    record = BackfillRecord(request_id="r1", requester="me", request=request, plan=plan, parent="abc")
    records.save("abc123", record)
    assert records.read("abc123") == record
    assert records.read("nosuch") == BackfillRecord()
    DataRoot(tmp_path).backfill_record("broken").write_text("{not json")
    assert records.read("broken") == BackfillRecord()
    with pytest.raises(BackfillNotFound):
        records.read("../etc")
