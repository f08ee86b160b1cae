"""Contract tests of the REST API against real Dagster processes (sandbox + `dagster dev`).

Every endpoint and status code, bad inputs answered 4xx with nothing launched, and every JSON
answer checked against the OpenAPI document. Budget: one stack; three tiny backfills are
launched by the first test and checked by the last ones (tests run in file order and share
them through the module-scoped `launched` fixture).
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import sys
import threading
import time

import jsonschema
import pytest
import requests
from api_stack import DISTRICTS, TODAY, api_for, published_dates

from backfill_pipeline.api.app import MAX_BODY, create_app
from backfill_pipeline.devstack import Service, free_port

pytest_plugins = ["api_stack"]
pytestmark = pytest.mark.e2e

LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"

(OK_DATE,) = published_dates(dt.date(2025, 4, 14), 1)
(FAIL_DATE,) = published_dates(dt.date(2025, 4, 21), 1)
SLOW_DATES = published_dates(dt.date(2025, 5, 12), 2)
OK_REQUEST = {"startDate": OK_DATE, "targetDistricts": ["District 42"], "collectionType": "per-district"}
FAIL_REQUEST = {"startDate": FAIL_DATE, "targetDistricts": ["61"]}
SLOW_REQUEST = {"startDate": SLOW_DATES[0], "endDate": SLOW_DATES[1], "targetDistricts": ["109"]}
BAD_INPUT = "bad-input"


def url(stack, path: str) -> str:
    """The API URL of `path`."""
    return stack.url + path


@pytest.fixture(scope="module")
def launched(api_stack):
    """Launch the three backfills the late tests check: one succeeds, one fails, one is cancelled."""
    s = api_stack
    before = {b["id"] for b in s.graphql.backfills(limit=200)}
    s.faults(
        [
            {"kind": "html", "district": "61", "asOf": FAIL_DATE},
            {"kind": "latency", "latencyMs": 1500, "district": "109"},
        ]
    )
    dry = s.post({**OK_REQUEST, "dryRun": True})
    ok = s.post(
        {**OK_REQUEST, "planHash": dry.json()["plan"]["planHash"]},
        headers={"X-Requested-By": "Contract Tester <ct@example.org>;\t DROP TABLE"},
    )
    fail = s.post(FAIL_REQUEST, headers={"X-Requested-By": "contract"})
    slow = s.post(SLOW_REQUEST)
    ids = {name: r.headers.get("X-Backfill-ID") for name, r in {"ok": ok, "fail": fail, "slow": slow}.items()}
    # Cancel at once: it cannot end before the daemon's next tick, and the latency fault slows it.
    cancel = requests.delete(url(s, f"/api/backfills/{ids['slow']}"), timeout=60)
    yield {"dry": dry, "ok": ok, "fail": fail, "slow": slow, "cancel": cancel, "ids": ids, "before": before}
    s.faults([])


# -- launching ------------------------------------------------------------------------------------


def test_post_answers_202_with_location_and_backfill_id(api_stack, launched):
    c = api_stack.contract
    dry = c.check(launched["dry"], "POST", LIST, 200)
    assert dry["plan"]["districts"] == ["42"] and dry["plan"]["partitions"]["total"] == 2
    for name, request in (("ok", OK_REQUEST), ("fail", FAIL_REQUEST), ("slow", SLOW_REQUEST)):
        jsonschema.validate(request, c.request_schema())
        r = launched[name]
        body = c.check(r, "POST", LIST, 202)
        backfill_id = body["backfillId"]
        assert r.headers["X-Backfill-ID"] == backfill_id
        assert r.headers["Location"] == body["links"]["self"] == f"/api/backfills/{backfill_id}"
        assert body["plan"]["strategy"] == "per-district"
    assert c.check(launched["ok"], "POST", LIST)["plan"]["planHash"] == dry["plan"]["planHash"]

    status = api_stack.status(launched["ids"]["ok"])
    assert status["id"] == launched["ids"]["ok"]
    assert status["requestId"] == launched["ok"].json()["requestId"]
    assert status["requester"] == "Contract Tester ct@example.org DROP TABLE"
    assert status["strategy"] == "per-district"
    assert status["plan"]["districts"] == ["42"]
    assert api_stack.status(launched["ids"]["slow"])["requester"] == "api"


def test_delete_answers_200_with_the_status_of_a_running_backfill(api_stack, launched):
    body = api_stack.contract.check(launched["cancel"], "DELETE", ONE, 200)
    assert body["id"] == launched["ids"]["slow"]
    assert body["state"] in ("canceling", "canceled")


def test_dry_run_answers_200_with_the_plan_and_launches_nothing(api_stack, launched):
    request = {"startDate": "2025-06-20", "endDate": "2025-06-22", "dryRun": True}
    jsonschema.validate(request, api_stack.contract.request_schema())
    r = api_stack.post(request, headers={"X-Requested-By": BAD_INPUT})
    body = api_stack.contract.check(r, "POST", LIST, 200)
    plan = body["plan"]
    assert "backfillId" not in body and "Location" not in r.headers
    assert plan["strategy"] == "system-wide" and plan["dates"]["count"] == 3
    assert plan["partitions"] == {"all_districts_summary": 3, "district_snapshot": 0, "total": 3}
    assert plan["cost"]["requests"] == 3
    assert plan["cost"]["lowerBound"] <= plan["cost"]["requests"] <= plan["cost"]["upperBound"]


# -- documents and health ---------------------------------------------------------------------------


def test_openapi_document_describes_exactly_the_app_routes(api_stack):
    r = requests.get(url(api_stack, "/api/openapi.json"), timeout=10)
    document = api_stack.contract.check(r, "GET", "/api/openapi.json", 200)
    assert document == api_stack.contract.document
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {
        (route.path, method) for route in create_app().routes for method in route.methods if method != "HEAD"
    }
    assert documented == served
    jsonschema.Draft202012Validator.check_schema(
        {**document["components"]["schemas"]["BackfillStatus"], "components": document["components"]}
    )
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                jsonschema.Draft202012Validator.check_schema(schema)
                assert status == "default" or 200 <= int(status) < 600, (path, method, status)


def test_health_answers_200_with_dagster_version(api_stack):
    r = requests.get(url(api_stack, "/api/health"), timeout=10)
    body = api_stack.contract.check(r, "GET", "/api/health", 200)
    assert body["dagster"]["version"] == api_stack.graphql.ping()


# -- bad inputs: 4xx, nothing launched ---------------------------------------------------------------


def _ten_thousand() -> list[str]:
    return [str(i) for i in range(10_000)]


BAD_BODIES = {
    "reversed range": ({"startDate": "2025-03-12", "endDate": "2025-03-10"}, "endDate"),
    "today": ({"startDate": TODAY.isoformat()}, "startDate"),
    "future end": ({"startDate": "2025-03-10", "endDate": "2027-01-01"}, "endDate"),
    "future start": ({"startDate": "2030-01-01", "endDate": "2030-01-02"}, "endDate"),
    "before 2008-07-01": ({"startDate": "2008-06-30", "endDate": "2008-07-02"}, "startDate"),
    "before the deployment's first partition": ({"startDate": "2024-12-31"}, "startDate"),
    "not a date": ({"startDate": "2025/03/10"}, "startDate"),
    "a timestamp": ({"startDate": "2025-03-10T00:00:00"}, "startDate"),
    "a number for a date": ({"startDate": 20250310}, "startDate"),
    "missing startDate": ({"endDate": "2025-03-10"}, "startDate"),
    "malformed district": ({"startDate": "2025-03-10", "targetDistricts": ["4 2"]}, "targetDistricts"),
    "letters district": ({"startDate": "2025-03-10", "targetDistricts": ["abc"]}, "targetDistricts"),
    "negative district": ({"startDate": "2025-03-10", "targetDistricts": ["-1"]}, "targetDistricts"),
    "path-like district": ({"startDate": "2025-03-10", "targetDistricts": ["../42"]}, "targetDistricts"),
    "path-like district 2": (
        {"startDate": "2025-03-10", "targetDistricts": ["42/../../etc/passwd"]},
        "targetDistricts",
    ),
    "encoded path district": ({"startDate": "2025-03-10", "targetDistricts": ["..%2F42"]}, "targetDistricts"),
    "district not a string": ({"startDate": "2025-03-10", "targetDistricts": [42]}, "targetDistricts"),
    "districts not a list": ({"startDate": "2025-03-10", "targetDistricts": "42"}, "targetDistricts"),
    "district not configured": ({"startDate": "2025-03-10", "targetDistricts": ["999"]}, "targetDistricts"),
    "ten thousand districts": (
        {"startDate": "2025-03-10", "targetDistricts": _ten_thousand()},
        "targetDistricts",
    ),
    "unknown field": ({"startDate": "2025-03-10", "districts": ["42"]}, "districts"),
    "snake_case field": ({"start_date": "2025-03-10", "bogus": True}, "bogus"),
    "bad collection type": ({"startDate": "2025-03-10", "collectionType": "everything"}, "collectionType"),
    "zero rate": ({"startDate": "2025-03-10", "rate": 0}, "rate"),
    "too much concurrency": ({"startDate": "2025-03-10", "concurrency": 50}, "concurrency"),
    "malformed plan hash": ({"startDate": "2025-03-10", "planHash": "not-a-hash"}, "planHash"),
    "range too long": ({"startDate": "2009-01-01", "endDate": "2025-01-01"}, "endDate"),
}

NOT_JSON = {
    "form data": b"startDate=2025-03-10&targetDistricts=42",
    "empty body": b"",
    "truncated JSON": b'{"startDate": "2025-03-10"',
    "a JSON list": b'[{"startDate": "2025-03-10"}]',
    "a JSON string": b'"2025-03-10"',
    "NaN": b'{"startDate": "2025-03-10", "rate": NaN}',
    "not UTF-8": b'{"startDate": "\xff\xfe"}',
    "nested too deeply": b"[" * 200_000,
}


# Rules a JSON schema cannot state (dates relative to today and to each other, the configuration).
BEYOND_SCHEMA = {
    "reversed range",
    "today",
    "future end",
    "future start",
    "before 2008-07-01",
    "before the deployment's first partition",
    "district not configured",
    "range too long",
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_invalid_request_answers_400_with_field_errors(api_stack, launched, name):
    body, field = BAD_BODIES[name]
    r = api_stack.post(body, headers={"X-Requested-By": BAD_INPUT})
    error = api_stack.contract.check(r, "POST", LIST, 400)["error"]
    assert error["code"] == "invalid-request"
    assert any(f["field"] == field or f["field"].startswith(field + ".") for f in error["fields"]), error
    if name not in BEYOND_SCHEMA:
        # The document's request schema rejects it too.
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(
                body,
                api_stack.contract.request_schema(),
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )


@pytest.mark.parametrize("name", list(NOT_JSON))
def test_body_not_a_json_object_answers_400(api_stack, launched, name):
    r = api_stack.post(
        None, data=NOT_JSON[name], headers={"X-Requested-By": BAD_INPUT, "Content-Type": "application/json"}
    )
    assert api_stack.contract.check(r, "POST", LIST, 400)["error"]["code"] == "invalid-json"


def test_body_over_256_kb_answers_413(api_stack, launched):
    padding = "x" * (MAX_BODY + 1024)
    body = json.dumps({"startDate": "2025-03-10", "note": padding}).encode()
    r = api_stack.post(
        None, data=body, headers={"X-Requested-By": BAD_INPUT, "Content-Type": "application/json"}
    )
    assert api_stack.contract.check(r, "POST", LIST, 413)["error"]["code"] == "too-large"
    # Chunked, with no Content-Length to go by.
    r = api_stack.post(
        None,
        data=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers={"X-Requested-By": BAD_INPUT, "Content-Type": "application/json"},
    )
    assert api_stack.contract.check(r, "POST", LIST, 413)["error"]["code"] == "too-large"


def test_changed_plan_hash_answers_409_with_the_current_plan(api_stack, launched):
    request = {"startDate": "2025-06-23", "targetDistricts": ["42"], "planHash": "0123456789abcdef"}
    r = api_stack.post(request, headers={"X-Requested-By": BAD_INPUT})
    error = api_stack.contract.check(r, "POST", LIST, 409)["error"]
    assert error["code"] == "plan-changed"
    assert error["plan"]["planHash"] != request["planHash"]
    assert error["plan"]["districts"] == ["42"]


def test_bad_inputs_launched_nothing(api_stack, launched):
    r = requests.get(url(api_stack, "/api/backfills?limit=200"), timeout=30)
    backfills = api_stack.contract.check(r, "GET", LIST, 200)["backfills"]
    expected = launched["before"] | set(launched["ids"].values())
    assert {b["id"] for b in backfills} == expected
    assert not [b for b in backfills if b["requester"] == BAD_INPUT]
    assert {b["id"] for b in api_stack.graphql.backfills(limit=200)} == expected


# -- listing, unknown ids, routes -------------------------------------------------------------------


def test_list_answers_200_newest_first(api_stack, launched):
    r = requests.get(url(api_stack, "/api/backfills?limit=2"), timeout=30)
    backfills = api_stack.contract.check(r, "GET", LIST, 200)["backfills"]
    assert [b["id"] for b in backfills] == [launched["ids"]["slow"], launched["ids"]["fail"]]
    assert backfills[1]["requester"] == "contract" and backfills[1]["strategy"] == "per-district"
    for bad in ("0", "201", "ten", "-1"):
        r = requests.get(url(api_stack, f"/api/backfills?limit={bad}"), timeout=30)
        error = api_stack.contract.check(r, "GET", LIST, 400)["error"]
        assert error["code"] == "invalid-request" and error["fields"][0]["field"] == "limit"


@pytest.mark.parametrize("backfill_id", ["nosuchbackfill", "not-an-id", "a" * 65, "%2E%2E", "x%00y"])
def test_unknown_backfill_answers_404(api_stack, backfill_id):
    c = api_stack.contract
    for method, template, suffix in (("GET", ONE, ""), ("DELETE", ONE, ""), ("POST", RETRY, "/retry")):
        r = requests.request(method, url(api_stack, f"/api/backfills/{backfill_id}{suffix}"), timeout=30)
        assert c.check(r, method, template, 404)["error"]["code"] == "not-found"


def test_unknown_route_and_method_answer_error_bodies(api_stack):
    r = requests.get(url(api_stack, "/api/backfills/a/b/c"), timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"
    r = requests.get(url(api_stack, "/api/../etc/passwd"), timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"
    r = requests.put(url(api_stack, "/api/backfills"), json={}, timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method-not-allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    jsonschema.validate(r.json(), api_stack.contract.schema("POST", LIST, 400))


# -- Dagster down or broken ----------------------------------------------------------------------------


def test_dagster_unreachable_answers_503(api_stack, tmp_path):
    closed = free_port()
    down = api_for(f"http://127.0.0.1:{closed}", api_stack.root).start()
    try:
        calls = [
            ("GET", "/api/health", "/api/health", None),
            ("GET", LIST, LIST, None),
            ("POST", LIST, LIST, {"startDate": OK_DATE}),
            ("GET", ONE, "/api/backfills/abc123", None),
            ("DELETE", ONE, "/api/backfills/abc123", None),
            ("POST", RETRY, "/api/backfills/abc123/retry", None),
        ]
        for method, template, path, body in calls:
            r = requests.request(method, down.url + path, json=body, timeout=30)
            error = api_stack.contract.check(r, method, template, 503)["error"]
            assert error["code"] == "dagster-unreachable", (method, path, error)
            assert int(r.headers["Retry-After"]) > 0
    finally:
        down.stop()


class _BrokenGraphQL(http.server.BaseHTTPRequestHandler):
    """Answers every GraphQL document with a GraphQL error, as Dagster does on a broken query."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"errors": [{"message": "Cannot query field 'x' on type 'Query'."}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_dagster_error_answers_502(api_stack):
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenGraphQL)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    broken = api_for(f"http://127.0.0.1:{fake.server_address[1]}", api_stack.root).start()
    try:
        for method, template, path, body in [
            ("GET", LIST, LIST, None),
            ("POST", LIST, LIST, {"startDate": OK_DATE}),
            ("GET", ONE, "/api/backfills/abc123", None),
            ("DELETE", ONE, "/api/backfills/abc123", None),
            ("POST", RETRY, "/api/backfills/abc123/retry", None),
            ("GET", "/api/health", "/api/health", None),
        ]:
            r = requests.request(method, broken.url + path, json=body, timeout=30)
            assert api_stack.contract.check(r, method, template, 502)["error"]["code"] == "dagster-error"
    finally:
        broken.stop()
        fake.shutdown()
        fake.server_close()


class _SlowDagster(http.server.BaseHTTPRequestHandler):
    """Answers `{ version }` after a second, like a Dagster webserver under load."""

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(1.0)
        body = json.dumps({"data": {"version": "slow"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_calls_to_dagster_do_not_block_the_event_loop(api_stack):
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowDagster)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    slow = api_for(f"http://127.0.0.1:{fake.server_address[1]}", api_stack.root).start()
    try:
        answers: list[int] = []

        def health():
            answers.append(requests.get(slow.url + "/api/health", timeout=30).status_code)

        threads = [threading.Thread(target=health) for _ in range(6)]
        started = time.monotonic()
        for t in threads:
            t.start()
        # While six health checks wait on Dagster, the loop still answers at once.
        r = requests.get(slow.url + "/api/openapi.json", timeout=30)
        quick = time.monotonic() - started
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        slow.stop()
        fake.shutdown()
        fake.server_close()
    assert r.status_code == 200 and quick < 0.9, quick
    assert answers == [200] * 6
    assert elapsed < 3.0, f"six 1 s calls took {elapsed:.1f}s: they ran one after another"


def test_api_command_serves_the_api(api_stack, tmp_path):
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "backfill_pipeline.api.command",
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
        r = requests.get(f"http://127.0.0.1:{port}/api/backfills?limit=1", timeout=30)
        assert api_stack.contract.check(r, "GET", LIST, 200)["backfills"]


# -- late checks of what `launched` started ---------------------------------------------------------


def test_failed_backfill_then_retry_answers_202(api_stack, launched):
    c = api_stack.contract
    fail_id = launched["ids"]["fail"]
    status = api_stack.wait_terminal(fail_id)
    assert status["state"] == "completed-with-failures", status
    assert status["counts"]["failed"] == 1 and status["counts"]["materialized"] == 1
    assert status["districts"]["61"]["failed"] == 1 and "NotACsv" in status["districts"]["61"]["lastError"]
    assert {e["district"] for e in status["districtErrors"]} == {"61"}

    api_stack.faults([])
    r = requests.post(
        url(api_stack, f"/api/backfills/{fail_id}/retry"), timeout=60, headers={"X-Requested-By": "retrier"}
    )
    body = c.check(r, "POST", RETRY, 202)
    new_id = body["backfillId"]
    assert new_id != fail_id and body["retryOf"] == fail_id
    assert r.headers["Location"] == f"/api/backfills/{new_id}" == body["links"]["self"]
    assert r.headers["X-Backfill-ID"] == new_id
    launched["ids"]["retry"] = new_id

    # The retry is itself running: retrying it now is refused.
    r = requests.post(url(api_stack, f"/api/backfills/{new_id}/retry"), timeout=60)
    assert c.check(r, "POST", RETRY, 409)["error"]["code"] == "still-running"


def test_succeeded_backfill_cannot_be_cancelled_or_retried(api_stack, launched):
    c = api_stack.contract
    ok_id = launched["ids"]["ok"]
    status = api_stack.wait_terminal(ok_id)
    assert status["state"] == "succeeded", status
    assert status["counts"]["targeted"] == status["counts"]["materialized"] == 2
    assert status["assets"]["district_snapshot"]["materialized"] == 1
    assert status["districts"]["42"]["done"] == 1 and status["endedAt"]
    assert status["runs"]["total"] >= 2

    r = requests.delete(url(api_stack, f"/api/backfills/{ok_id}"), timeout=60)
    assert c.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"
    r = requests.post(url(api_stack, f"/api/backfills/{ok_id}/retry"), timeout=60)
    assert c.check(r, "POST", RETRY, 409)["error"]["code"] == "nothing-to-retry"

    # Asked again, everything is already materialized: 200, nothing launched.
    r = api_stack.post(OK_REQUEST)
    body = c.check(r, "POST", LIST, 200)
    assert body["backfillId"] is None and body["message"]
    assert body["plan"]["partitions"]["total"] == 0 and body["plan"]["skipped"]["materialized"] == 2
    assert "Location" not in r.headers


def test_cancelled_backfill_ends_canceled(api_stack, launched):
    slow_id = launched["ids"]["slow"]
    status = api_stack.wait_terminal(slow_id)
    assert status["state"] == "canceled", status
    assert status["counts"]["materialized"] == 0
    r = requests.delete(url(api_stack, f"/api/backfills/{slow_id}"), timeout=60)
    assert api_stack.contract.check(r, "DELETE", ONE, 409)["error"]["code"] == "not-cancellable"


def test_retried_backfill_succeeds(api_stack, launched):
    status = api_stack.wait_terminal(launched["ids"]["retry"])
    assert status["state"] == "succeeded", status
    assert status["counts"]["targeted"] == status["counts"]["materialized"] == 1
    assert status["assets"]["district_snapshot"]["materialized"] == 1
    assert api_stack.graphql.partition_statuses(["district_snapshot"]).failed == set()
    assert set(status["districts"]) <= set(DISTRICTS)


def test_retried_backfill_reports_who_asked_for_the_retry(api_stack, launched):
    status = api_stack.status(launched["ids"]["retry"])
    listed = {
        b["id"]: b
        for b in api_stack.contract.check(
            requests.get(url(api_stack, "/api/backfills"), timeout=30), "GET", LIST, 200
        )["backfills"]
    }
    # Dagster copies the parent's tags to a re-executed backfill (and ignores extraTags there):
    # the requester of a retry comes from the service's own record of it.
    assert status["requester"] == "retrier", (
        f"status() of a retry reports the requester {status['requester']!r}"
    )
    assert listed[launched["ids"]["retry"]]["requester"] == "retrier", "list() reports the retry's requester"


def test_every_documented_status_was_answered(api_stack):
    # Last in the file: the tests above, together, must have seen every documented answer.
    missing = api_stack.contract.documented() - api_stack.contract.seen
    assert not missing, sorted(missing)
