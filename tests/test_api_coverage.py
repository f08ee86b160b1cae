"""The store's gaps through the REST API, and healing them (Dagster faked: fast lane).

GET /api/coverage answers what `backfill-pipeline gaps --json` prints; hostile queries answer 400
naming the parameter. POST /api/heal launches one backfill of exactly the healable cells. A
"not published" that is not final yet is never skipped by skipExisting; recheckUnavailable asks
even final ones again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from api_stack import CONTRACT, DISTRICTS, FakeApi
from conftest import AS_OF, BACKFILL, REFRESH, TODAY, a_detailed, a_failure, a_summary, an_unavailable

from backfill_pipeline.api import openapi
from backfill_pipeline.api.app import NOTHING_TO_HEAL
from backfill_pipeline.api.models import CoverageQuery, coverage_dict
from backfill_pipeline.names import (
    DISTRICT_ASSET,
    HEAL_TAG,
    PLAN_HASH_TAG,
    RECHECK_TAG,
    SOURCE_TAG,
    STRATEGY_TAG,
    SUMMARY_ASSET,
)
from backfill_pipeline.planning.gaps import STATES, find_gaps, heal_partitions
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore, unavailable_district

pytest_plugins = ["api_stack"]

COVERAGE = "/api/coverage"
HEAL = "/api/heal"
LIST = "/api/backfills"
DAY = [AS_OF + dt.timedelta(days=i) for i in range(4)]
ISO = [d.isoformat() for d in DAY]
RANGE = {"startDate": ISO[0], "endDate": ISO[3]}


def store_with_gaps(api: FakeApi) -> PerDistrictFileSnapshotStore:
    """DAY 0: 42 detailed, 61 summary, 109 failed transiently in detail; DAY 1 not published yet
    (pending); DAY 2 final; DAY 3 never collected. Districts 42, 61, 109 are configured."""
    store = PerDistrictFileSnapshotStore(api.root)
    store.write_districts(DAY[0], [a_summary("61")], context=REFRESH, summary_answered=True)
    store.write_district(a_detailed("42"), context=BACKFILL)
    store.write_district(a_failure("109"), context=BACKFILL)
    store.mark_date_unavailable(DAY[1], context=REFRESH)
    store.mark_date_unavailable(DAY[2], context=REFRESH, final=True)
    return store


def coverage(api: FakeApi, query: str = "", status: int = 200) -> dict:
    return CONTRACT.check(api.client.get(f"{COVERAGE}{query}"), "GET", COVERAGE, status)


# -- GET /api/coverage ---------------------------------------------------------------------------------


def test_coverage_answers_totals_and_the_cells_that_are_not_complete(api):
    store = store_with_gaps(api)
    body = coverage(api, f"?start={ISO[0]}&end={ISO[3]}")
    assert (body["start"], body["end"], body["districts"]) == (ISO[0], ISO[3], ["42", "61", "109"])
    assert body["totals"] == {
        "detailed": 1,
        "summary": 1,
        "unavailable-final": 3,
        "unavailable-pending": 3,
        "failed-transient": 1,
        "failed-permanent": 0,
        "missing": 3,
    }
    assert list(body["totals"]) == list(STATES)
    # 109 failed, the pending date and the missing one: 7 cells a heal collects again.
    assert body["healable"] == 7
    listed = {(c["asOf"], c["district"]): c for c in body["cells"]}
    assert set(listed) == {(ISO[0], "109")} | {(ISO[d], x) for d in (1, 3) for x in DISTRICTS}
    failed = listed[(ISO[0], "109")]
    assert failed["state"] == "failed-transient" and failed["attempts"] == 1
    assert failed["lastError"]["class"] == "TimeoutError" and failed["lastError"]["retryable"] is True
    assert "lastError" not in listed[(ISO[3], "42")]
    # Exactly what `backfill-pipeline gaps --json` prints.
    assert body == coverage_dict(find_gaps(store, DAY[0], DAY[3]), CoverageQuery())


def test_coverage_lists_the_states_and_districts_asked_for(api):
    store_with_gaps(api)
    body = coverage(api, f"?start={ISO[0]}&end={ISO[3]}&state=detailed,summary&state=unavailable-final")
    assert sorted((c["asOf"], c["district"], c["state"]) for c in body["cells"]) == sorted(
        [(ISO[0], "42", "detailed"), (ISO[0], "61", "summary")]
        + [(ISO[2], d, "unavailable-final") for d in DISTRICTS]
    )
    assert next(c for c in body["cells"] if c["district"] == "42")["detail"] == "detailed"
    one = coverage(api, f"?start={ISO[0]}&end={ISO[0]}&districts=District%20109")
    assert one["districts"] == ["109"] and sum(one["totals"].values()) == 1
    assert [c["state"] for c in one["cells"]] == ["failed-transient"]
    # Several districts, comma-separated or repeated, the empty values ignored.
    two = coverage(api, f"?start={ISO[0]}&end={ISO[0]}&districts=61,&districts=42&state=")
    assert two["districts"] == ["42", "61"] and two["totals"]["detailed"] == 1


def test_coverage_defaults_to_the_30_days_up_to_yesterday(api):
    body = coverage(api)
    yesterday = TODAY - dt.timedelta(days=1)
    assert body["end"] == yesterday.isoformat()
    assert body["start"] == (yesterday - dt.timedelta(days=30)).isoformat()
    assert body["totals"]["missing"] == 31 * len(DISTRICTS) == len(body["cells"])
    only_end = coverage(api, "?end=2025-03-31")
    assert (only_end["start"], only_end["end"]) == ("2025-03-01", "2025-03-31")


HOSTILE = {
    "superscript two": ("start=²", "start"),
    "arabic digits": ("start=٢٠٢٥-٠١-٠١", "start"),
    "no such day": ("start=2025-02-30", "start"),
    "a timestamp": ("end=2025-03-10T00:00:00", "end"),
    "a NUL": ("start=2025-03-10%00", "start"),
    "path-like district": ("districts=../x", "districts"),
    "encoded path district": ("districts=42%2F..%2F..%2Fetc", "districts"),
    "letters district": ("districts=42,abc", "districts"),
    "too many districts": ("districts=" + ",".join(str(i) for i in range(300)), "districts"),
    "unknown state": ("state=broken", "state"),
    "unknown state among good ones": ("state=missing,everything", "state"),
    "reversed range": ("start=2025-03-10&end=2025-03-01", "end"),
    "start after yesterday": (f"start={TODAY.isoformat()}", "start"),
    "future end": ("end=2030-01-01", "end"),
    "before 2008-07-01": ("start=2008-06-30&end=2008-07-05", "start"),
    "over ten years": ("start=2009-01-01&end=2025-01-01", "end"),
    "given twice": ("start=2025-01-01&start=2025-01-02", "start"),
    "unknown parameter": ("start=2025-01-01&limit=5", "limit"),
    "huge value": ("start=" + "9" * 20_000, "start"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_coverage_queries_answer_400_naming_the_parameter(api, name):
    query, parameter = HOSTILE[name]
    error = coverage(api, f"?{query}", 400)["error"]
    assert error["code"] == "invalid-request"
    assert [f["field"].split(".")[0] for f in error["fields"]] == [parameter], error
    assert (
        error["message"].startswith(f"invalid coverage query: {parameter}") or parameter in error["message"]
    )
    assert len(error["message"]) < 2000


# -- POST /api/heal ------------------------------------------------------------------------------------


def test_heal_dry_run_shows_the_plan_and_its_cost_and_launches_nothing(api):
    store_with_gaps(api)
    body = CONTRACT.check(api.client.post(HEAL, json={**RANGE, "dryRun": True}), "POST", HEAL, 200)
    plan = body["plan"]
    assert plan["strategy"] == "heal" and plan["scope"] == "system-wide"
    assert plan["districts"] == ["42", "61", "109"]
    assert plan["partitions"] == {"all_districts_summary": 2, "district_snapshot": 1, "total": 3}
    assert plan["skipped"] == {"detailed": 1, "summary": 1, "unavailable-final": 3}
    # The pending and the missing dates' summaries; 109's date summary (uncached) and 3 reports.
    assert plan["cost"]["requests"] == 2 + 1 + 3
    assert "backfillId" not in body and api.dagster.launches == []


def test_heal_launches_one_backfill_of_exactly_the_healable_cells(api):
    store = store_with_gaps(api)
    dry = CONTRACT.check(api.client.post(HEAL, json={**RANGE, "dryRun": True}), "POST", HEAL, 200)
    r = api.client.post(
        HEAL, json={**RANGE, "planHash": dry["plan"]["planHash"]}, headers={"X-Requested-By": "op"}
    )
    body = CONTRACT.check(r, "POST", HEAL, 202)
    assert r.headers["Location"] == f"/api/backfills/{body['backfillId']}"
    assert body["plan"] == dry["plan"]

    (launch,) = api.dagster.launches
    launched = {
        p["assetKey"]["path"][0]: api.dagster.keys(p["partitions"]["ranges"])
        for p in launch["partitionsByAssets"]
    }
    parts = heal_partitions(find_gaps(store, DAY[0], DAY[3]).healable())
    assert launched == {SUMMARY_ASSET: parts.summary, DISTRICT_ASSET: parts.districts}
    assert parts.summary == [ISO[1], ISO[3]] and parts.districts == [f"{ISO[0]}|109"]
    tags = launch["tags"]
    assert tags[HEAL_TAG] == "true" and tags[STRATEGY_TAG] == "heal" and tags[SOURCE_TAG] == "backfill"
    assert tags[PLAN_HASH_TAG] == dry["plan"]["planHash"] and RECHECK_TAG not in tags

    # It is a backfill like any other: its status, with the heal's plan.
    status = CONTRACT.check(
        api.client.get(f"{LIST}/{body['backfillId']}"), "GET", f"{LIST}/{{backfillId}}", 200
    )
    assert status["strategy"] == "heal" and status["requester"] == "op" and status["plan"] == body["plan"]
    assert status["counts"]["targeted"] == 3


def test_heal_without_missing_cells_and_for_some_districts(api):
    store_with_gaps(api)
    body = CONTRACT.check(
        api.client.post(HEAL, json={**RANGE, "includeMissing": False, "targetDistricts": ["61"]}),
        "POST",
        HEAL,
        202,
    )
    assert body["plan"]["scope"] == "single-district" and body["plan"]["districts"] == ["61"]
    (launch,) = api.dagster.launches
    assert launch["partitionsByAssets"] == [
        {"assetKey": {"path": [SUMMARY_ASSET]}, "partitions": {"ranges": [{"start": ISO[1], "end": ISO[1]}]}}
    ]


def test_heal_adds_the_districts_partitions_it_needs(api):
    store = store_with_gaps(api)
    DistrictConfig(api.root).set([*DISTRICTS, "F"])
    store.write_district(a_failure("F", DAY[0]), context=BACKFILL)
    CONTRACT.check(api.client.post(HEAL, json={**RANGE, "targetDistricts": ["F", "109"]}), "POST", HEAL, 202)
    assert api.dagster.districts[-1] == "F"
    (launch,) = api.dagster.launches
    district = next(p for p in launch["partitionsByAssets"] if p["assetKey"]["path"] == [DISTRICT_ASSET])
    assert sorted(api.dagster.keys(district["partitions"]["ranges"])) == [f"{ISO[0]}|109", f"{ISO[0]}|F"]


def test_nothing_to_heal_answers_200_and_launches_nothing(api):
    store_with_gaps(api)
    request = {"startDate": ISO[0], "endDate": ISO[0], "targetDistricts": ["42", "61"]}
    body = CONTRACT.check(api.client.post(HEAL, json=request), "POST", HEAL, 200)
    assert body["backfillId"] is None and body["message"] == NOTHING_TO_HEAL
    assert body["plan"]["partitions"]["total"] == 0 and body["plan"]["cost"]["requests"] == 0
    assert api.dagster.launches == []


def test_a_changed_heal_plan_answers_409_and_launches_nothing(api):
    store = store_with_gaps(api)
    dry = CONTRACT.check(api.client.post(HEAL, json={**RANGE, "dryRun": True}), "POST", HEAL, 200)
    store.write_district(a_detailed("109"), context=BACKFILL)  # healed meanwhile
    r = api.client.post(HEAL, json={**RANGE, "planHash": dry["plan"]["planHash"]})
    error = CONTRACT.check(r, "POST", HEAL, 409)["error"]
    assert error["code"] == "plan-changed" and error["plan"]["partitions"]["district_snapshot"] == 0
    assert api.dagster.launches == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startDate": ISO[0]}, "endDate"),
        ({"startDate": ISO[3], "endDate": ISO[0]}, "endDate"),
        ({"startDate": "2025-01-01", "endDate": "2026-02-01"}, "endDate"),
        ({**RANGE, "targetDistricts": ["../x"]}, "targetDistricts"),
        ({**RANGE, "includeMissing": "yes please"}, "includeMissing"),
        ({**RANGE, "skipExisting": False}, "skipExisting"),
        ({**RANGE, "planHash": "nope"}, "planHash"),
        # Beyond the schema: today, before the deployment's first partition, out of scope.
        ({"startDate": ISO[0], "endDate": TODAY.isoformat()}, "endDate"),
        ({"startDate": "2024-12-30", "endDate": "2025-01-02"}, "startDate"),
        ({**RANGE, "targetDistricts": ["999"]}, "targetDistricts"),
    ],
)
def test_bad_heal_requests_answer_400_naming_the_field(api, body, field):
    error = CONTRACT.check(api.client.post(HEAL, json=body), "POST", HEAL, 400)["error"]
    assert error["code"] == "invalid-request" and field in [f["field"] for f in error["fields"]], error
    assert api.dagster.launches == []


# -- pending "not published" and skipExisting; recheckUnavailable --------------------------------------


def test_a_pending_date_is_not_skipped_by_skip_existing_while_a_final_one_is(api):
    store = PerDistrictFileSnapshotStore(api.root)
    store.mark_date_unavailable(DAY[0], context=REFRESH)  # pending
    store.mark_date_unavailable(DAY[1], context=REFRESH, final=True)
    api.dagster.materialized[SUMMARY_ASSET] |= {ISO[0], ISO[1]}
    api.dagster.materialized[DISTRICT_ASSET] |= {f"{ISO[0]}|42", f"{ISO[1]}|42"}
    request = {"startDate": ISO[0], "endDate": ISO[1], "dryRun": True}
    plan = CONTRACT.check(api.client.post(LIST, json=request), "POST", LIST, 200)["plan"]
    assert plan["partitions"]["all_districts_summary"] == 1 and plan["skipped"]["materialized"] == 1
    assert plan["recheckUnavailable"] is False
    per_district = {**request, "targetDistricts": ["42"]}
    plan = CONTRACT.check(api.client.post(LIST, json=per_district), "POST", LIST, 200)["plan"]
    # The pending date's summary and its district again; the final date skipped.
    assert plan["partitions"] == {"all_districts_summary": 1, "district_snapshot": 1, "total": 2}
    assert plan["skipped"]["materialized"] == 2

    launched = CONTRACT.check(
        api.client.post(LIST, json={**per_district, "dryRun": False}), "POST", LIST, 202
    )
    assert api.dagster.keys(api.dagster.launches[0]["partitionsByAssets"][1]["partitions"]["ranges"]) == [
        f"{ISO[0]}|42"
    ]
    assert (
        RECHECK_TAG not in api.dagster.launches[0]["tags"] and launched["plan"]["recheckUnavailable"] is False
    )


def test_pending_and_final_district_cells(api):
    store = PerDistrictFileSnapshotStore(api.root)
    store.write_district(an_unavailable("42", DAY[0]), context=BACKFILL)  # pending
    final = unavailable_district(district_id="61", as_of=DAY[0], detail="detailed", final=True)
    store.write_district(final, context=BACKFILL)
    api.dagster.materialized[DISTRICT_ASSET] |= {f"{ISO[0]}|42", f"{ISO[0]}|61"}
    request = {"startDate": ISO[0], "targetDistricts": ["42", "61"], "dryRun": True}
    plan = CONTRACT.check(api.client.post(LIST, json=request), "POST", LIST, 200)["plan"]
    assert plan["partitions"]["district_snapshot"] == 1 and plan["skipped"]["materialized"] == 1
    rechecked = {**request, "recheckUnavailable": True}
    plan = CONTRACT.check(api.client.post(LIST, json=rechecked), "POST", LIST, 200)["plan"]
    assert plan["partitions"]["district_snapshot"] == 2 and plan["skipped"]["materialized"] == 0


def test_recheck_unavailable_plans_final_dates_again_and_tags_the_launch(api):
    store = PerDistrictFileSnapshotStore(api.root)
    store.mark_date_unavailable(DAY[1], context=REFRESH, final=True)
    api.dagster.materialized[SUMMARY_ASSET] |= {ISO[0], ISO[1]}
    store.write_districts(DAY[0], [a_summary("42")], context=REFRESH, summary_answered=True)
    request = {"startDate": ISO[0], "endDate": ISO[1]}
    plain = CONTRACT.check(api.client.post(LIST, json={**request, "dryRun": True}), "POST", LIST, 200)["plan"]
    assert plain["partitions"]["total"] == 0
    dry = CONTRACT.check(
        api.client.post(LIST, json={**request, "recheckUnavailable": True, "dryRun": True}), "POST", LIST, 200
    )["plan"]
    # Only the unavailable date; the collected one stays skipped. It costs its request.
    assert dry["partitions"]["all_districts_summary"] == 1 and dry["skipped"]["materialized"] == 1
    assert dry["recheckUnavailable"] is True and dry["cost"]["requests"] == 1
    assert dry["planHash"] != plain["planHash"]
    body = {**request, "recheckUnavailable": True, "planHash": dry["planHash"]}
    CONTRACT.check(api.client.post(LIST, json=body), "POST", LIST, 202)
    (launch,) = api.dagster.launches
    assert launch["tags"][RECHECK_TAG] == "true" and HEAL_TAG not in launch["tags"]
    assert launch["partitionsByAssets"][0]["partitions"]["ranges"] == [{"start": ISO[1], "end": ISO[1]}]


# -- the document ------------------------------------------------------------------------------------


def test_the_document_describes_the_new_fields_from_the_models():
    document = openapi.document()
    schemas = document["components"]["schemas"]
    assert list(schemas["StateTotals"]["properties"]) == list(STATES)
    assert schemas["StateTotals"]["additionalProperties"] is False
    heal = schemas["HealRequest"]
    assert set(heal["required"]) == {"startDate", "endDate"}
    assert all(prop["description"] for prop in heal["properties"].values())
    assert heal["properties"]["includeMissing"]["default"] is True
    recheck = schemas["BackfillRequest"]["properties"]["recheckUnavailable"]
    assert recheck["type"] == "boolean" and recheck["default"] is False and "final" in recheck["description"]
    assert "recheckUnavailable" in schemas["PlanBody"]["required"]
    parameters = {p["name"]: p for p in document["paths"][COVERAGE]["get"]["parameters"]}
    assert set(parameters) == set(CoverageQuery.model_fields)
    assert parameters["state"]["schema"]["items"]["enum"] == list(STATES)
    assert parameters["districts"]["schema"]["items"]["pattern"] == openapi.DISTRICT_ID_PATTERN
