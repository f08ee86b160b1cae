"""Bad inputs answer 4xx with a documented error body and launch nothing (Dagster faked: fast lane)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import requests
from api_stack import AUTH, CONTRACT, LOOPBACK, ApiServer, FakeDagster, fake_service, validate
from conftest import TODAY

from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.models import MAX_BODY

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"
BAD_INPUT = {"X-Requested-By": "bad-input", "Content-Type": "application/json"}


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

TOO_LARGE = json.dumps({"startDate": "2025-03-10", "note": "x" * (MAX_BODY + 1024)}).encode()


def _chunks(body: bytes) -> list[bytes]:
    return [body[i : i + 65536] for i in range(0, len(body), 65536)]


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_invalid_request_answers_400_with_field_errors(api, name):
    body, field = BAD_BODIES[name]
    r = api.client.post(LIST, json=body, headers=BAD_INPUT)
    error = CONTRACT.check(r, "POST", LIST, 400)["error"]
    assert error["code"] == "invalid-request"
    assert any(f["field"] == field or f["field"].startswith(field + ".") for f in error["fields"]), error
    assert api.dagster.launches == []
    if name not in BEYOND_SCHEMA:
        # The document's request schema rejects it too.
        with pytest.raises(jsonschema.ValidationError):
            validate(body, CONTRACT.request_schema())


@pytest.mark.parametrize("name", list(NOT_JSON))
def test_body_not_a_json_object_answers_400(api, name):
    r = api.client.post(LIST, content=NOT_JSON[name], headers=BAD_INPUT)
    assert CONTRACT.check(r, "POST", LIST, 400)["error"]["code"] == "invalid-json"
    assert api.dagster.launches == []


def test_body_over_256_kb_answers_413(api):
    r = api.client.post(LIST, content=TOO_LARGE, headers=BAD_INPUT)
    assert CONTRACT.check(r, "POST", LIST, 413)["error"]["code"] == "too-large"
    # Chunked, with no Content-Length to go by.
    r = api.client.post(LIST, content=iter(_chunks(TOO_LARGE)), headers=BAD_INPUT)
    assert "content-length" not in r.request.headers
    assert CONTRACT.check(r, "POST", LIST, 413)["error"]["code"] == "too-large"
    assert api.dagster.launches == []


def test_body_over_256_kb_answers_413_over_a_real_connection(tmp_path):
    # Over a socket the unread rest of the body must not reset the connection before the answer.
    dagster = FakeDagster()
    with ApiServer(create_app(lambda: fake_service(tmp_path, dagster), security=LOOPBACK)) as server:
        for data in (TOO_LARGE, iter(_chunks(TOO_LARGE))):
            r = requests.post(f"{server.url}{LIST}", data=data, headers={**AUTH, **BAD_INPUT}, timeout=30)
            assert CONTRACT.check(r, "POST", LIST, 413)["error"]["code"] == "too-large"
    assert dagster.launches == []


def test_changed_plan_hash_answers_409_with_the_current_plan(api):
    request = {"startDate": "2025-06-23", "targetDistricts": ["42"], "planHash": "0123456789abcdef"}
    r = api.client.post(LIST, json=request, headers=BAD_INPUT)
    error = CONTRACT.check(r, "POST", LIST, 409)["error"]
    assert error["code"] == "plan-changed"
    assert error["plan"]["planHash"] != request["planHash"]
    assert error["plan"]["districts"] == ["42"]
    assert api.dagster.launches == []


@pytest.mark.parametrize("limit", ["0", "201", "ten", "-1", "", "²", "٣", "1e2", " 5"])
def test_bad_list_limit_answers_400(api, limit):
    r = api.client.get(f"{LIST}?limit={limit}")
    error = CONTRACT.check(r, "GET", LIST, 400)["error"]
    assert error["code"] == "invalid-request" and error["fields"][0]["field"] == "limit"


@pytest.mark.parametrize("backfill_id", ["nosuchbackfill", "not-an-id", "a" * 65, "%2E%2E", "x%00y"])
def test_unknown_backfill_answers_404(api, backfill_id):
    for method, template, suffix in (("GET", ONE, ""), ("DELETE", ONE, ""), ("POST", RETRY, "/retry")):
        r = api.client.request(method, f"/api/backfills/{backfill_id}{suffix}")
        assert CONTRACT.check(r, method, template, 404)["error"]["code"] == "not-found"
    assert api.dagster.launches == []


def test_unknown_route_and_method_answer_error_bodies(api):
    error_schema = CONTRACT.schema("POST", LIST, 400)
    for path in ("/api/backfills/a/b/c", "/api/../etc/passwd", "/api", "/console", "/index.html"):
        r = api.client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not-found", path
        validate(r.json(), error_schema)
    r = api.client.put(LIST, json={})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method-not-allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    validate(r.json(), error_schema)
    assert api.dagster.launches == []
