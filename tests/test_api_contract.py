"""Contract tests of the REST API against real Dagster processes (sandbox + `dagster dev`).

Real launches, status, cancel and retry, and the `api` command serving against real Dagster;
every JSON answer is checked against the OpenAPI document. Validation and error mapping need no
Dagster and are tested in the fast lane (test_api_validation.py, test_api_dagster_errors.py,
test_api_document.py). Budget: one stack; three tiny backfills launched by the module-scoped
`launched` fixture and one retry by `retried`, so each test runs alone or in any order.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import pytest
import requests
from api_stack import AUTH, CONTRACT, DISTRICTS
from conftest import TODAY, published_dates

from backfill_pipeline.api.idempotency import IDEMPOTENCY_TAG, IdempotencyRecord, key_digest
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.devstack import Service, free_port

pytest_plugins = ["api_stack"]
# The e2e files on the API's shared stack run on one xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("api-stack")]

LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"

OK_DATE = published_dates(dt.date(2025, 4, 14), 1, closing=False)[0].isoformat()
FAIL_DATE = published_dates(dt.date(2025, 4, 21), 1, closing=False)[0].isoformat()
SLOW_DATES = [d.isoformat() for d in published_dates(dt.date(2025, 5, 12), 2, closing=False)]
OK_REQUEST = {"startDate": OK_DATE, "targetDistricts": ["District 42"], "collectionType": "per-district"}
FAIL_REQUEST = {"startDate": FAIL_DATE, "targetDistricts": ["61"]}
SLOW_REQUEST = {"startDate": SLOW_DATES[0], "endDate": SLOW_DATES[1], "targetDistricts": ["109"]}


OK_KEY = {"Idempotency-Key": "contract-ok"}
RETRY_KEY = {"Idempotency-Key": "contract-retry"}


def url(stack, path: str) -> str:
    """The API URL of `path`."""
    return stack.url + path


@pytest.fixture(scope="module")
def launched(api_stack):
    """Launch three backfills: one succeeds, one fails, one is cancelled at once. The module ends
    only once every backfill it launched has ended, so the next module's counts are its own."""
    s = api_stack
    s.faults(
        [
            {"kind": "wrong_report", "district": "61", "asOf": FAIL_DATE},
            {"kind": "latency", "latencyMs": 1500, "district": "109"},
        ]
    )
    dry = s.post({**OK_REQUEST, "dryRun": True})
    ok = s.post(
        {**OK_REQUEST, "planHash": dry.json()["plan"]["planHash"]},
        headers={"X-Requested-By": "Contract Tester <ct@example.org>;\t DROP TABLE", **OK_KEY},
    )
    fail = s.post(FAIL_REQUEST, headers={"X-Requested-By": "contract"})
    slow = s.post(SLOW_REQUEST)
    ids = {name: r.headers.get("X-Backfill-ID") for name, r in {"ok": ok, "fail": fail, "slow": slow}.items()}
    # Cancel at once: it cannot end before the daemon's next tick, and the latency fault slows it.
    cancel = requests.delete(url(s, f"/api/backfills/{ids['slow']}"), headers=AUTH, timeout=60)
    yield {"dry": dry, "ok": ok, "fail": fail, "slow": slow, "cancel": cancel, "ids": ids}
    s.faults([])
    for backfill_id in ids.values():
        if backfill_id:
            s.wait_terminal(backfill_id)


@pytest.fixture(scope="module")
def retried(api_stack, launched):
    """Once the failing backfill has ended, retry it (faults cleared), and at once retry the retry."""
    s, fail_id = api_stack, launched["ids"]["fail"]
    failed = s.wait_terminal(fail_id)
    s.faults([])
    r = requests.post(
        url(s, f"/api/backfills/{fail_id}/retry"),
        timeout=60,
        headers={**AUTH, "X-Requested-By": "retrier", **RETRY_KEY},
    )
    new_id = r.headers.get("X-Backfill-ID")
    again = requests.post(url(s, f"/api/backfills/{new_id}/retry"), headers=AUTH, timeout=60)
    yield {"failed": failed, "retry": r, "again": again, "id": new_id}
    if new_id:
        s.wait_terminal(new_id)


def test_post_answers_202_with_location_and_backfill_id(api_stack, launched):
    dry = CONTRACT.check(launched["dry"], "POST", LIST, 200)
    assert dry["plan"]["districts"] == ["42"] and dry["plan"]["partitions"]["total"] == 2
    for name in ("ok", "fail", "slow"):
        r = launched[name]
        body = CONTRACT.check(r, "POST", LIST, 202)
        backfill_id = body["backfillId"]
        assert r.headers["X-Backfill-ID"] == backfill_id
        assert r.headers["Location"] == body["links"]["self"] == f"/api/backfills/{backfill_id}"
        assert body["plan"]["strategy"] == "per-district"
    assert launched["ok"].json()["plan"]["planHash"] == dry["plan"]["planHash"]

    status = api_stack.status(launched["ids"]["ok"])
    assert status["id"] == launched["ids"]["ok"]
    assert status["requestId"] == launched["ok"].json()["requestId"]
    assert status["requester"] == "Contract Tester ct@example.org DROP TABLE"
    assert status["strategy"] == "per-district"
    assert status["plan"]["districts"] == ["42"]
    assert api_stack.status(launched["ids"]["slow"])["requester"] == "api"


def test_delete_answers_200_with_the_status_of_a_running_backfill(launched):
    body = CONTRACT.check(launched["cancel"], "DELETE", ONE, 200)
    assert body["id"] == launched["ids"]["slow"]
    assert body["state"] in ("canceling", "canceled")


def test_health_answers_200_with_dagster_version(api_stack):
    r = requests.get(url(api_stack, "/api/health"), timeout=10)
    body = CONTRACT.check(r, "GET", "/api/health", 200)
    assert body["dagster"]["version"] == api_stack.graphql.ping()


def test_list_answers_200_newest_first(api_stack, launched):
    ids = launched["ids"]
    r = requests.get(url(api_stack, "/api/backfills?limit=200"), timeout=30)
    listed = CONTRACT.check(r, "GET", LIST, 200)["backfills"]
    ours = [b for b in listed if b["id"] in ids.values()]
    assert [b["id"] for b in ours] == [ids["slow"], ids["fail"], ids["ok"]]
    assert ours[1]["requester"] == "contract" and ours[1]["strategy"] == "per-district"
    r = requests.get(url(api_stack, "/api/backfills?limit=2"), timeout=30)
    assert CONTRACT.check(r, "GET", LIST, 200)["backfills"] == listed[:2]


def test_failed_backfill_then_retry_answers_202(launched, retried):
    fail_id, status = launched["ids"]["fail"], retried["failed"]
    assert status["state"] == "completed-with-failures", status
    assert status["counts"]["failed"] == 1 and status["counts"]["materialized"] == 1
    assert status["districts"]["61"]["failed"] == 1 and "NotACsv" in status["districts"]["61"]["lastError"]
    assert {e["district"] for e in status["districtErrors"]} == {"61"}

    r = retried["retry"]
    body = CONTRACT.check(r, "POST", RETRY, 202)
    new_id = body["backfillId"]
    assert new_id != fail_id and body["retryOf"] == fail_id
    assert r.headers["Location"] == f"/api/backfills/{new_id}" == body["links"]["self"]
    assert r.headers["X-Backfill-ID"] == new_id
    # The retry was itself running: retrying it then was refused.
    assert CONTRACT.check(retried["again"], "POST", RETRY, 409)["error"]["code"] == "still-running"


def test_succeeded_backfill_cannot_be_cancelled_or_retried(api_stack, launched):
    ok_id = launched["ids"]["ok"]
    status = api_stack.wait_terminal(ok_id)
    assert status["state"] == "succeeded", status
    assert status["counts"]["targeted"] == status["counts"]["materialized"] == 2
    assert status["assets"]["district_snapshot"]["materialized"] == 1
    assert status["districts"]["42"]["done"] == 1 and status["endedAt"]
    assert status["runs"]["total"] >= 2

    r = requests.delete(url(api_stack, f"/api/backfills/{ok_id}"), headers=AUTH, timeout=60)
    assert CONTRACT.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"
    r = requests.post(url(api_stack, f"/api/backfills/{ok_id}/retry"), headers=AUTH, timeout=60)
    assert CONTRACT.check(r, "POST", RETRY, 409)["error"]["code"] == "nothing-to-retry"

    # Asked again, everything is already materialized: 200, nothing launched.
    r = api_stack.post(OK_REQUEST)
    body = CONTRACT.check(r, "POST", LIST, 200)
    assert body["backfillId"] is None and body["message"]
    assert body["plan"]["partitions"]["total"] == 0 and body["plan"]["skipped"]["materialized"] == 2
    assert "Location" not in r.headers


def test_cancelled_backfill_ends_canceled(api_stack, launched):
    slow_id = launched["ids"]["slow"]
    status = api_stack.wait_terminal(slow_id)
    assert status["state"] == "canceled", status
    assert status["counts"]["materialized"] == 0
    r = requests.delete(url(api_stack, f"/api/backfills/{slow_id}"), headers=AUTH, timeout=60)
    assert CONTRACT.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"


def test_retried_backfill_succeeds(api_stack, retried):
    status = api_stack.wait_terminal(retried["id"])
    assert status["state"] == "succeeded", status
    assert status["counts"]["targeted"] == status["counts"]["materialized"] == 1
    assert status["assets"]["district_snapshot"]["materialized"] == 1
    assert api_stack.graphql.partition_statuses(["district_snapshot"]).failed == set()
    assert set(status["districts"]) <= set(DISTRICTS)


def test_retried_backfill_reports_who_asked_for_the_retry(api_stack, retried):
    status = api_stack.status(retried["id"])
    r = requests.get(url(api_stack, "/api/backfills"), timeout=30)
    listed = {b["id"]: b for b in CONTRACT.check(r, "GET", LIST, 200)["backfills"]}
    # Dagster copies the parent's tags to a re-executed backfill (and ignores extraTags there):
    # the requester of a retry comes from the service's own record of it.
    assert status["requester"] == "retrier", (
        f"status() of a retry reports the requester {status['requester']!r}"
    )
    assert listed[retried["id"]]["requester"] == "retrier", "list() reports the retry's requester"


def test_api_command_serves_the_api(api_stack, tmp_path):
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "backfill_pipeline.cli",
        "api",
        "--port",
        str(port),
        "--dagster-url",
        api_stack.dagster.url,
        "--root",
        str(api_stack.root),
        "--today",
        TODAY.isoformat(),
        "--log-level",
        "warning",
    ]
    with Service(
        "api",
        argv,
        env=dict(os.environ),
        url=f"http://127.0.0.1:{port}",
        health="/api/health",
        log_path=tmp_path / "api.log",
    ):
        r = requests.get(f"http://127.0.0.1:{port}/api/backfills?limit=5", timeout=30)
        served = CONTRACT.check(r, "GET", LIST, 200)["backfills"]
    in_process = requests.get(url(api_stack, "/api/backfills?limit=5"), timeout=30).json()["backfills"]
    assert [b["id"] for b in served] == [b["id"] for b in in_process]


def _interrupted(root, key: str) -> None:
    """Put a completed key's record back to `launching`, as a process killed between Dagster's
    answer and the record's completion leaves it."""
    path = DataRoot(root).idempotency_record(key_digest(key))
    record = IdempotencyRecord.model_validate_json(path.read_bytes())
    path.write_text(record.model_copy(update={"state": "launching", "backfill_id": None}).model_dump_json())


def test_an_interrupted_launch_is_found_in_real_dagster_by_its_key(api_stack, launched):
    ok_id = launched["ids"]["ok"]
    before = {b["id"] for b in api_stack.graphql.backfills(limit=200)}
    _interrupted(api_stack.root, OK_KEY["Idempotency-Key"])
    body = {**OK_REQUEST, "planHash": launched["dry"].json()["plan"]["planHash"]}
    r = api_stack.post(body, headers=OK_KEY)
    answer = CONTRACT.check(r, "POST", LIST, 202)
    assert answer["backfillId"] == ok_id and r.headers["Idempotent-Replayed"] == "true"
    assert {b["id"] for b in api_stack.graphql.backfills(limit=200)} == before
    tagged = [b for b in api_stack.graphql.backfills_since(0) if b["id"] == ok_id]
    assert {"key": IDEMPOTENCY_TAG, "value": key_digest(OK_KEY["Idempotency-Key"])[:32]} in tagged[0]["tags"]


def test_an_interrupted_retry_is_found_in_real_dagster_by_its_parent(api_stack, retried):
    fail_id = retried["failed"]["id"]
    before = {b["id"] for b in api_stack.graphql.backfills(limit=200)}
    _interrupted(api_stack.root, RETRY_KEY["Idempotency-Key"])
    r = requests.post(
        url(api_stack, f"/api/backfills/{fail_id}/retry"), headers={**AUTH, **RETRY_KEY}, timeout=60
    )
    assert CONTRACT.check(r, "POST", RETRY, 202)["backfillId"] == retried["id"]
    assert {b["id"] for b in api_stack.graphql.backfills(limit=200)} == before
