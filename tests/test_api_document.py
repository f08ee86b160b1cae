"""The OpenAPI document: generated from the models, describing exactly the routes served, and every
answer it documents produced by some scenario and valid against it (Dagster faked: fast lane)."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import jsonschema
import pytest
from api_stack import CONTRACT, EXPOSED, TOKEN, FakeApi

from backfill_pipeline.api import openapi
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.graphql import DagsterGraphQLError, DagsterUnreachable
from backfill_pipeline.api.models import (
    BACKFILL_ID_PATTERN,
    CANCELLABLE_STATES,
    DAGSTER_STATES,
    FINAL_STATES,
    MAX_BODY,
    BackfillState,
)

pytest_plugins = ["api_stack"]

HEALTH = "/api/health"
DOCUMENT = "/api/openapi.json"
LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"
COVERAGE = "/api/coverage"
HEAL = "/api/heal"
MATRIX = "/api/coverage/matrix"
SESSION = "/api/session"
REQUEST = {"startDate": "2025-04-14", "targetDistricts": ["42"]}
# Nothing is collected in the `api` fixture's store: every cell is missing, so a heal launches.
HEAL_REQUEST = {"startDate": "2025-04-14", "endDate": "2025-04-15"}
FAILED_KEY = "2025-04-14|42"


def _ended(api: FakeApi, *failed: str) -> str:
    backfill_id = api.launch(REQUEST)
    api.dagster.finish(backfill_id, failed)
    return backfill_id


def _retried_twice(api: FakeApi):
    """One key for retries of two different backfills."""
    key = {"Idempotency-Key": "document-retry-key"}
    first, second = _ended(api, FAILED_KEY), _ended(api, FAILED_KEY)
    assert api.client.post(f"/api/backfills/{first}/retry", headers=key).status_code == 202
    return api.client.post(f"/api/backfills/{second}/retry", headers=key)


def _listed(api: FakeApi):
    api.launch(REQUEST)
    return api.client.get(LIST)


JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}
NO_TOKEN: dict[str, str] = {}
WRONG_TOKEN = {"Authorization": "Bearer not-the-token-of-this-api"}


def _as(headers: dict, method: str, path: str, body: dict | None = None):
    """The call with `headers` instead of the test token (none: no Authorization at all)."""

    def scenario(api: FakeApi):
        client = api.client_with(api.client.app.state.security, headers=headers)
        return client.request(method, path, json=body)

    return scenario


def _browser(api: FakeApi):
    """A client with no token, as a browser before sign-in."""
    return api.client_with(api.client.app.state.security, headers={})


def _exposed(method: str, path: str):
    """A read of an API that listens on every address, without the token."""

    def scenario(api: FakeApi):
        return api.client_with(EXPOSED, headers=NO_TOKEN).request(method, path)

    return scenario


def _reused(path: str, first: dict | None, second: dict | None):
    """The same Idempotency-Key for two different requests."""

    def scenario(api: FakeApi):
        key = {"Idempotency-Key": "document-reused-key"}
        assert api.client.post(path, json=first, headers=key).status_code == 202
        return api.client.post(path, json=second, headers=key)

    return scenario


def _failing(error: Exception, method: str, path: str, body: dict | None = None):
    def scenario(api: FakeApi):
        api.dagster.error = error
        return api.client.request(method, path, json=body)

    return scenario


# (method, path template, status) -> how to make the API answer it.
SCENARIOS: dict[tuple[str, str, str], Callable[[FakeApi], object]] = {
    ("GET", HEALTH, "200"): lambda api: api.client.get(HEALTH),
    ("GET", DOCUMENT, "200"): lambda api: api.client.get(DOCUMENT),
    ("GET", LIST, "200"): _listed,
    ("GET", LIST, "400"): lambda api: api.client.get(f"{LIST}?limit=1000"),
    ("POST", LIST, "200"): lambda api: api.client.post(LIST, json={**REQUEST, "dryRun": True}),
    ("POST", LIST, "202"): lambda api: api.client.post(LIST, json=REQUEST),
    ("POST", LIST, "400"): lambda api: api.client.post(LIST, json={"startDate": "yesterday"}),
    ("POST", LIST, "409"): lambda api: api.client.post(LIST, json={**REQUEST, "planHash": "0" * 16}),
    ("POST", LIST, "413"): lambda api: api.client.post(LIST, content=b" " * (MAX_BODY + 1), headers=JSON),
    ("POST", LIST, "401"): _as(NO_TOKEN, "POST", LIST, REQUEST),
    ("POST", LIST, "415"): lambda api: api.client.post(LIST, content=b"startDate=2025-04-14", headers=TEXT),
    ("POST", LIST, "422"): _reused(LIST, REQUEST, {**REQUEST, "endDate": "2025-04-15"}),
    ("GET", LIST, "401"): _exposed("GET", LIST),
    ("GET", ONE, "200"): lambda api: api.client.get(f"/api/backfills/{api.launch(REQUEST)}"),
    ("GET", ONE, "404"): lambda api: api.client.get("/api/backfills/nosuchbackfill"),
    ("GET", ONE, "401"): _exposed("GET", "/api/backfills/abc123"),
    ("DELETE", ONE, "401"): _as(WRONG_TOKEN, "DELETE", "/api/backfills/abc123"),
    ("DELETE", ONE, "415"): lambda api: api.client.request(
        "DELETE", "/api/backfills/abc123", content=b"please", headers=TEXT
    ),
    ("DELETE", ONE, "200"): lambda api: api.client.delete(f"/api/backfills/{api.launch(REQUEST)}"),
    ("DELETE", ONE, "404"): lambda api: api.client.delete("/api/backfills/nosuchbackfill"),
    ("DELETE", ONE, "409"): lambda api: api.client.delete(f"/api/backfills/{_ended(api)}"),
    ("POST", RETRY, "202"): lambda api: api.client.post(f"/api/backfills/{_ended(api, FAILED_KEY)}/retry"),
    ("POST", RETRY, "404"): lambda api: api.client.post("/api/backfills/nosuchbackfill/retry"),
    ("POST", RETRY, "409"): lambda api: api.client.post(f"/api/backfills/{_ended(api)}/retry"),
    ("POST", RETRY, "400"): lambda api: api.client.post(
        "/api/backfills/abc123/retry", headers={"Idempotency-Key": "x" * 201}
    ),
    ("POST", RETRY, "401"): _as(NO_TOKEN, "POST", "/api/backfills/abc123/retry"),
    ("POST", RETRY, "415"): lambda api: api.client.post(
        "/api/backfills/abc123/retry", content=b"<retry/>", headers={"Content-Type": "application/xml"}
    ),
    ("POST", RETRY, "422"): lambda api: _retried_twice(api),
    ("GET", COVERAGE, "200"): lambda api: api.client.get(f"{COVERAGE}?start=2025-04-14&end=2025-04-15"),
    ("GET", COVERAGE, "400"): lambda api: api.client.get(f"{COVERAGE}?start=yesterday"),
    ("POST", HEAL, "200"): lambda api: api.client.post(HEAL, json={**HEAL_REQUEST, "dryRun": True}),
    ("POST", HEAL, "202"): lambda api: api.client.post(HEAL, json=HEAL_REQUEST),
    ("POST", HEAL, "400"): lambda api: api.client.post(HEAL, json={"startDate": "2025-04-14"}),
    ("POST", HEAL, "409"): lambda api: api.client.post(HEAL, json={**HEAL_REQUEST, "planHash": "0" * 16}),
    ("POST", HEAL, "413"): lambda api: api.client.post(HEAL, content=b" " * (MAX_BODY + 1), headers=JSON),
    ("POST", HEAL, "401"): _as(WRONG_TOKEN, "POST", HEAL, HEAL_REQUEST),
    ("POST", HEAL, "415"): lambda api: api.client.post(
        HEAL,
        content=b'{"startDate": "2025-04-14"}',
        headers={"Content-Type": "application/json; charset=latin-1"},
    ),
    ("POST", HEAL, "422"): _reused(HEAL, HEAL_REQUEST, {**HEAL_REQUEST, "includeMissing": False}),
    ("GET", COVERAGE, "401"): _exposed("GET", f"{COVERAGE}?start=2025-04-14&end=2025-04-15"),
    ("GET", MATRIX, "200"): lambda api: api.client.get(f"{MATRIX}?start=2025-04-14&end=2025-04-15"),
    ("GET", MATRIX, "400"): lambda api: api.client.get(f"{MATRIX}?start=yesterday"),
    ("GET", MATRIX, "401"): _exposed("GET", f"{MATRIX}?start=2025-04-14"),
    ("GET", SESSION, "200"): _as(NO_TOKEN, "GET", SESSION),
    ("POST", SESSION, "200"): _as(NO_TOKEN, "POST", SESSION, {"token": TOKEN}),
    ("POST", SESSION, "400"): _as(NO_TOKEN, "POST", SESSION, {"token": ""}),
    ("POST", SESSION, "401"): _as(NO_TOKEN, "POST", SESSION, {"token": "not-the-token"}),
    ("POST", SESSION, "403"): _as({"Origin": "http://evil.example"}, "POST", SESSION, {"token": TOKEN}),
    ("POST", SESSION, "413"): lambda api: _browser(api).post(
        SESSION, content=b" " * (MAX_BODY + 1), headers=JSON
    ),
    ("POST", SESSION, "415"): lambda api: _browser(api).post(SESSION, content=b"token=x", headers=TEXT),
    ("DELETE", SESSION, "200"): _as(NO_TOKEN, "DELETE", SESSION),
}
for _method, _template, _path, _body in [
    ("GET", HEALTH, HEALTH, None),
    ("GET", LIST, LIST, None),
    ("POST", LIST, LIST, REQUEST),
    ("GET", ONE, "/api/backfills/abc123", None),
    ("DELETE", ONE, "/api/backfills/abc123", None),
    ("POST", RETRY, "/api/backfills/abc123/retry", None),
    ("POST", HEAL, HEAL, HEAL_REQUEST),
]:
    SCENARIOS[(_method, _template, "502")] = _failing(DagsterGraphQLError("broken"), _method, _path, _body)
    SCENARIOS[(_method, _template, "503")] = _failing(DagsterUnreachable("down"), _method, _path, _body)


def test_every_documented_answer_has_a_scenario():
    assert set(SCENARIOS) == CONTRACT.documented()


@pytest.mark.parametrize("answer", sorted(SCENARIOS), ids="{0[0]} {0[1]} {0[2]}".format)
def test_documented_answer_is_produced_and_valid(api, answer):
    method, template, status = answer
    CONTRACT.check(SCENARIOS[answer](api), method, template, int(status))


def test_openapi_document_describes_exactly_the_app_routes(api):
    document = CONTRACT.check(api.client.get(DOCUMENT), "GET", DOCUMENT, 200)
    assert document == openapi.document() == CONTRACT.document
    assert document["openapi"].startswith("3.1")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    # The console's page and files are not the API's: only /api/ routes are documented.
    served = {
        (route.path, method)
        for route in create_app().routes
        for method in route.methods
        if method != "HEAD" and route.path.startswith("/api/")
    }
    assert documented == served


def test_every_schema_of_the_document_is_valid():
    document = openapi.document()
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                jsonschema.Draft202012Validator.check_schema(
                    response["content"]["application/json"]["schema"]
                )
                assert status == "default" or 200 <= int(status) < 600, (path, method, status)


def test_schemas_come_from_the_models():
    schemas = openapi.document()["components"]["schemas"]
    assert schemas["BackfillStatus"]["properties"]["state"]["enum"] == list(get_args(BackfillState))
    assert schemas["BackfillStatus"]["properties"]["id"]["pattern"] == BACKFILL_ID_PATTERN
    assert schemas["BackfillStatus"]["additionalProperties"] is False
    assert set(schemas["BackfillStatus"]["required"]) == set(schemas["BackfillStatus"]["properties"])
    request = schemas["BackfillRequest"]
    assert all(prop["description"] for prop in request["properties"].values())
    (districts,) = [o for o in request["properties"]["targetDistricts"]["anyOf"] if o.get("type") == "array"]
    assert districts["items"]["pattern"] == openapi.DISTRICT_ID_PATTERN


def test_document_is_a_fresh_copy_each_time():
    first = openapi.document()
    first["paths"].clear()
    first["components"]["schemas"]["ErrorBody"]["required"].append("x")
    assert openapi.document() == CONTRACT.document and CONTRACT.document["paths"]


def test_states_are_defined_once_and_consistently():
    states = set(get_args(BackfillState))
    assert set(DAGSTER_STATES.values()) == states
    assert FINAL_STATES < states and CANCELLABLE_STATES < states
    assert not FINAL_STATES & CANCELLABLE_STATES
