"""Launch, watch, list, cancel and retry through the REST API: the real app, service and planner
over a fake Dagster (fast lane); test_api_contract.py does the same against real Dagster."""

from __future__ import annotations

import datetime as dt

from api_stack import CONTRACT, DISTRICTS
from conftest import BACKFILL, REFRESH, a_failure, a_summary

from backfill_pipeline.dashboard.budget import SqliteBudgetStore
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.names import (
    DISTRICT_ASSET,
    PLAN_HASH_TAG,
    REQUEST_ID_TAG,
    REQUESTER_TAG,
    STRATEGY_TAG,
    SUMMARY_ASSET,
)
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"
PER_DISTRICT = {
    "startDate": "2025-04-14",
    "targetDistricts": ["District 42"],
    "collectionType": "per-district",
}
FAILING = {"startDate": "2025-04-21", "endDate": "2025-04-22", "targetDistricts": ["61", "109"]}


def test_launch_answers_202_with_location_and_the_confirmed_plan(api):
    dry = CONTRACT.check(api.client.post(LIST, json={**PER_DISTRICT, "dryRun": True}), "POST", LIST, 200)
    plan_hash = dry["plan"]["planHash"]
    r = api.client.post(
        LIST,
        json={**PER_DISTRICT, "planHash": plan_hash},
        headers={"X-Requested-By": "Contract Tester <ct@example.org>;\t DROP TABLE"},
    )
    body = CONTRACT.check(r, "POST", LIST, 202)
    backfill_id = body["backfillId"]
    assert r.headers["X-Backfill-ID"] == backfill_id
    assert r.headers["Location"] == body["links"]["self"] == f"/api/backfills/{backfill_id}"
    assert body["plan"] == dry["plan"] and body["plan"]["districts"] == ["42"]

    (launch,) = api.dagster.launches
    assert launch["tags"][REQUESTER_TAG] == "Contract Tester ct@example.org DROP TABLE"
    assert launch["tags"][REQUEST_ID_TAG] == body["requestId"]
    assert launch["tags"][STRATEGY_TAG] == "per-district" and launch["tags"][PLAN_HASH_TAG] == plan_hash
    assert launch["partitionsByAssets"] == [
        {
            "assetKey": {"path": [SUMMARY_ASSET]},
            "partitions": {"ranges": [{"start": "2025-04-14", "end": "2025-04-14"}]},
        },
        {
            "assetKey": {"path": [DISTRICT_ASSET]},
            "partitions": {"ranges": [{"start": "2025-04-14|42", "end": "2025-04-14|42"}]},
        },
    ]

    status = CONTRACT.check(api.client.get(f"/api/backfills/{backfill_id}"), "GET", ONE, 200)
    assert status["state"] == "running" and status["dagsterStatus"] == "REQUESTED"
    assert status["requestId"] == body["requestId"] and status["strategy"] == "per-district"
    assert status["requester"] == "Contract Tester ct@example.org DROP TABLE"
    assert status["plan"] == body["plan"] and status["retryOf"] is None
    assert status["counts"]["targeted"] == 2 and status["counts"]["materialized"] == 0


def test_dry_run_answers_200_with_the_plan_and_launches_nothing(api):
    request = {"startDate": "2025-06-20", "endDate": "2025-06-22", "dryRun": True}
    r = api.client.post(LIST, json=request)
    body = CONTRACT.check(r, "POST", LIST, 200)
    plan = body["plan"]
    assert "backfillId" not in body and "Location" not in r.headers
    assert plan["strategy"] == "system-wide" and plan["dates"] == {
        "start": "2025-06-20",
        "end": "2025-06-22",
        "count": 3,
    }
    assert plan["partitions"] == {"all_districts_summary": 3, "district_snapshot": 0, "total": 3}
    assert plan["cost"]["requests"] == 3
    assert plan["cost"]["lowerBound"] <= plan["cost"]["requests"] <= plan["cost"]["upperBound"]
    assert api.dagster.launches == []


def test_a_configured_district_without_a_partition_gets_one_before_the_launch(api):
    DistrictConfig(api.root).add(["91"])
    api.launch({"startDate": "2025-04-14", "targetDistricts": ["91"]})
    assert api.dagster.districts == [*DISTRICTS, "91"]
    ranges = api.dagster.launches[0]["partitionsByAssets"][1]["partitions"]["ranges"]
    assert ranges == [{"start": "2025-04-14|91", "end": "2025-04-14|91"}]


def test_succeeded_backfill_cannot_be_cancelled_or_retried_and_is_not_launched_again(api):
    backfill_id = api.launch(PER_DISTRICT)
    api.dagster.finish(backfill_id)
    status = CONTRACT.check(api.client.get(f"/api/backfills/{backfill_id}"), "GET", ONE, 200)
    assert status["state"] == "succeeded" and status["endedAt"]
    assert status["counts"]["targeted"] == status["counts"]["materialized"] == 2
    assert status["assets"][DISTRICT_ASSET] == {
        "targeted": 1,
        "materialized": 1,
        "failed": 0,
        "inProgress": 0,
    }

    r = api.client.delete(f"/api/backfills/{backfill_id}")
    assert CONTRACT.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"
    r = api.client.post(f"/api/backfills/{backfill_id}/retry")
    assert CONTRACT.check(r, "POST", RETRY, 409)["error"]["code"] == "nothing-to-retry"

    # Asked again, everything is already materialized: 200, nothing launched.
    r = api.client.post(LIST, json=PER_DISTRICT)
    body = CONTRACT.check(r, "POST", LIST, 200)
    assert body["backfillId"] is None and body["message"].startswith("nothing to run")
    assert body["plan"]["partitions"]["total"] == 0 and body["plan"]["skipped"]["materialized"] == 2
    assert "Location" not in r.headers and len(api.dagster.launches) == 1


def test_delete_cancels_a_running_backfill_once(api):
    backfill_id = api.launch(PER_DISTRICT)
    body = CONTRACT.check(api.client.delete(f"/api/backfills/{backfill_id}"), "DELETE", ONE, 200)
    assert body["id"] == backfill_id and body["state"] == "canceled"
    r = api.client.delete(f"/api/backfills/{backfill_id}")
    assert CONTRACT.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"


def test_retry_reexecutes_what_failed_and_reports_who_asked(api):
    failing = api.launch(FAILING, requester="launcher")
    r = api.client.post(f"/api/backfills/{failing}/retry")
    assert CONTRACT.check(r, "POST", RETRY, 409)["error"]["code"] == "still-running"
    api.dagster.finish(failing, failed=["2025-04-21|61"])
    status = CONTRACT.check(api.client.get(f"/api/backfills/{failing}"), "GET", ONE, 200)
    assert status["state"] == "completed-with-failures"
    assert status["counts"]["failed"] == 1 and status["counts"]["materialized"] == 5

    r = api.client.post(f"/api/backfills/{failing}/retry", headers={"X-Requested-By": "retrier"})
    body = CONTRACT.check(r, "POST", RETRY, 202)
    retry = body["backfillId"]
    assert retry != failing and body["retryOf"] == failing
    assert r.headers["Location"] == body["links"]["self"] == f"/api/backfills/{retry}"
    assert body["links"]["retryOf"] == f"/api/backfills/{failing}" and r.headers["X-Backfill-ID"] == retry

    # Dagster copies the parent's tags to a re-executed backfill: the service's record knows who asked.
    status = CONTRACT.check(api.client.get(f"/api/backfills/{retry}"), "GET", ONE, 200)
    assert status["requester"] == "retrier" and status["retryOf"] == failing
    assert status["counts"]["targeted"] == 1 and status["plan"]["districts"] == ["61", "109"]
    listed = CONTRACT.check(api.client.get(LIST), "GET", LIST, 200)["backfills"]
    assert [(b["id"], b["requester"]) for b in listed] == [(retry, "retrier"), (failing, "launcher")]


def test_list_answers_200_newest_first(api):
    first = api.launch(PER_DISTRICT, requester="first")
    second = api.launch(FAILING, requester="second")
    third = api.launch({"startDate": "2025-05-01", "endDate": "2025-05-03"})
    listed = CONTRACT.check(api.client.get(f"{LIST}?limit=2"), "GET", LIST, 200)["backfills"]
    assert [b["id"] for b in listed] == [third, second]
    assert listed[0]["strategy"] == "system-wide" and listed[0]["partitions"] == 3
    assert listed[1]["requester"] == "second" and listed[1]["state"] == "running"
    everything = CONTRACT.check(api.client.get(LIST), "GET", LIST, 200)["backfills"]
    assert [b["id"] for b in everything] == [third, second, first]


def test_health_answers_200_with_dagster_version(api):
    body = CONTRACT.check(api.client.get("/api/health"), "GET", "/api/health", 200)
    assert body == {"status": "ok", "dagster": {"version": api.dagster.ping()}}


def test_a_failed_detail_kept_beside_summary_data_counts_as_the_districts_failure(api):
    # The summary run wrote 61's summary data; the detail failed: the store keeps the summary
    # (a failure never replaces a success) and records the error beside it.
    backfill_id = api.launch({"startDate": "2025-04-21", "targetDistricts": ["61"]})
    store = PerDistrictFileSnapshotStore(api.root)
    day = dt.date(2025, 4, 21)
    store.write_districts(day, [a_summary("61", day)], context=REFRESH, summary_answered=True)
    context = BACKFILL.model_copy(update={"backfill_id": backfill_id})
    store.write_district(a_failure("61", day), context=context)
    assert store.district_status(day, "61").status == "success"
    api.dagster.finish(backfill_id, failed=["2025-04-21|61"])
    status = CONTRACT.check(api.client.get(f"/api/backfills/{backfill_id}"), "GET", ONE, 200)
    assert status["districts"]["61"]["failed"] == 1 and status["districts"]["61"]["done"] == 0
    assert status["districts"]["61"]["lastError"] == "2025-04-21: TimeoutError: read timed out"
    assert [(e["district"], e["errorClass"]) for e in status["districtErrors"]] == [("61", "TimeoutError")]


def test_the_status_tells_the_deployments_requests_per_second_now_against_the_budget(api):
    backfill_id = api.launch({"startDate": "2025-04-14", "targetDistricts": ["42"]})
    one = f"/api/backfills/{backfill_id}"
    performance = CONTRACT.check(api.client.get(one), "GET", ONE, 200)["performance"]
    assert performance["budgetRateNow"] == 0.0  # nothing has asked the dashboard yet
    budget = performance["budgetRate"]
    # Runs (any process) drew 15 grants from the deployment's budget within the last 10 s.
    store = SqliteBudgetStore(DataRoot(api.root).budget_file, budget)
    now = store.now_ms()
    for i in range(15):
        assert store.try_grant(now - 8_000 + i * (store.spacing_ms + 1)) == 0  # 2 s from the edge
    store.close()
    performance = CONTRACT.check(api.client.get(one), "GET", ONE, 200)["performance"]
    assert performance["budgetRateNow"] == 1.5
    # A budget file that cannot be read: "not known", never an error page.
    DataRoot(api.root).budget_file.write_bytes(b"not a database" * 100)
    performance = CONTRACT.check(api.client.get(one), "GET", ONE, 200)["performance"]
    assert performance["budgetRateNow"] is None and performance["budgetRate"] == budget
