"""Issue 10, point 7: requests generated from the API's own OpenAPI document (schemathesis, in
process through the ASGI app, Dagster faked: fast lane).

Every operation of `/api/openapi.json` gets schemathesis' coverage cases (missing and mistyped
fields, boundaries, undeclared methods) and its fuzzed ones, valid and invalid, each sent with the
token and then again with hostile headers: no or a wrong token (on a loopback API and on one
listening off loopback), a Host not on the allow-list, a body type other than JSON, a malformed
Idempotency-Key. The properties, for every answer:

- no 5xx (the fake Dagster always answers, so not even the documented 502/503);
- the documented status, headers and schema (schemathesis' conformance checks), and an invalid
  request (negative case) is refused;
- every 4xx carries the error body `{"error": {"code", "message", ...}}` of the document;
- nothing changes unless the answer says it did: a 4xx launched, retried, cancelled and added
  nothing in Dagster and wrote nothing under the data root; a 202 launched exactly one backfill
  (none when replayed), a 200 to DELETE cancelled exactly one, reads change nothing.

Dictionaries steer part of the generation towards requests the deployment can accept (dates it
has partitions for, its districts, backfills that exist), so launches, cancels and retries do
happen and "nothing launched by an invalid request" is not vacuous. A second, plain hypothesis
test keeps to the edge of the valid region of the two launch routes, where only the planner can
tell (unknown districts, dates after yesterday, a rate above the budget, a stale planHash, a key
used for another request), and checks the same properties there. Generation is derandomized (the
same requests every run); each test prints how many requests it sent (`pytest -rP`).
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import schemathesis
from api_stack import AUTH, CONTRACT, DISTRICTS, EXPOSED, LOOPBACK, TOKEN, FakeDagster, fake_service
from conftest import TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Response
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection

from backfill_pipeline.api import openapi
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.security import Security
from backfill_pipeline.planning.request import BackfillRequest
from backfill_pipeline.scope import DistrictConfig

# Seconds of real servers, processes or generated requests, but no Dagster process: the full
# suite runs it, the fast lane (-m "not e2e and not slow") leaves it out.
pytestmark = pytest.mark.slow

pytest_plugins = ["api_stack"]

BASE_URL = "http://127.0.0.1"
YESTERDAY = TODAY - dt.timedelta(days=1)
# Per operation; schemathesis splits them between valid and invalid cases and adds its coverage
# cases (about 330 over the whole document) on top.
MAX_EXAMPLES = 40

# Values the generator mixes in, so that part of the requests can succeed.
# Valid ones first (hypothesis starts from the first), then dates the API refuses.
VALID_DATES = [
    d.isoformat()
    for d in (
        dt.date(2025, 3, 1),
        dt.date(2025, 3, 2),
        dt.date(2025, 1, 1),  # the deployment's first partition
        dt.date(2025, 3, 31),
        dt.date(2025, 7, 1),
        dt.date(2025, 12, 31),
        dt.date(2026, 6, 30),
        YESTERDAY - dt.timedelta(days=2),
        YESTERDAY,
    )
]
DATES = [
    *VALID_DATES,
    TODAY.isoformat(),  # not collectable yet
    "2008-06-30",  # before the first exported date
    "\u0662\u0660\u0662\u0665-03-01",  # Arabic-Indic digits
    "\uff12025-03-01",  # a full-width digit
    "2025-02-30",
    "2025-03-01T00:00:00",
    "2025-3-1",
    "20250301",
]
# Known (42, 61, 109 configured and partitions; 9 configured, not a partition yet) and spellings
# of them, and ids nobody knows, which must never become partitions.
DISTRICT_VALUES = [
    "42",
    "61",
    "109",
    "9",
    "District 42",
    " 61 ",
    "0042",
    "9999",
    "7",
    "\u0664\u0662",
    "\uff14\uff12",
    "42\x00",
]
IDEMPOTENCY_KEYS = ["key-1", "key-2", "key-3"]
# Numbers as typed by hand or pasted: digits int() reads but are not ASCII, signs, spaces, bounds.
HOSTILE_NUMBERS = ["\u00b2", "\u0663", "\uff11", "-1", "0", "201", " 5", "5 ", "1e2", "0x10", "+5", "5.0"]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "deterministic": True, "unique-inputs": True},
        "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
        "checks": {
            # A schema-valid request may still be refused for what the document cannot say: a
            # date after yesterday, an unknown district, a key used for another request (400, 409,
            # 422, all documented); the other checks stay on.
            "positive_data_acceptance": {"enabled": False},
        },
        "dictionaries": {
            "dates": {"values": DATES},
            "districts": {"values": DISTRICT_VALUES},
            "backfills": {"values": ["fake0001", "fake0002", "fake0003", "fake9999"]},
            "keys": {"values": IDEMPOTENCY_KEYS},
            "numbers": {"values": HOSTILE_NUMBERS},
        },
        "parameters": {
            "body.startDate": {"dictionary": "dates", "probability": 0.9},
            "body.endDate": {"dictionary": "dates", "probability": 0.9},
            "body.targetDistricts[*]": {"dictionary": "districts", "probability": 0.9},
            "query.start": {"dictionary": "dates", "probability": 0.6},
            "query.end": {"dictionary": "dates", "probability": 0.6},
            "query.districts[*]": {"dictionary": "districts", "probability": 0.6},
            "path.backfillId": {"dictionary": "backfills", "probability": 0.8},
            "header.Idempotency-Key": {"dictionary": "keys", "probability": 0.5},
            "query.limit": {"dictionary": "numbers", "probability": 0.5},
        },
    }
)

# The document as the app serves it (no Dagster needed for that).
SCHEMA = schemathesis.openapi.from_asgi(
    "/api/openapi.json",
    create_app(lambda: None, security=LOOPBACK),
    headers={"Host": "127.0.0.1"},
    config=CONFIG,
)
# The document's error body, as a validator built once (it is used for thousands of answers).
ERROR_BODY = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/ErrorBody", "components": openapi.document()["components"]},
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)

# Hostile headers, taken in turn (deterministic, every value used many times).
NO_TOKEN: list[dict[str, str | None]] = [
    {"Authorization": None},  # none at all
    {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"},
    {"Authorization": TOKEN},
]
BAD_HOSTS = [
    "attacker.example",
    "attacker.example:8080",
    "127.0.0.2",
    "localhost.attacker.example",
    "0.0.0.0",
    "",
    "exa mple.org",
    "[::1",
    "::1",
    "127.0.0.1:80x",
    "evil.example/x",
    "user@127.0.0.1",
    "ex\u00e4mple.org",
]
BAD_CONTENT_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json; charset=latin-1",
    "application/json; boundary=x",
    "application/ld+json",
    "",
]
BAD_KEYS = ["", "key ", "k" * 201, "tab\tkey", "caf\u00e9", "del\x7f"]
# Operations that launch, and so read an Idempotency-Key.
KEYED = {"POST /api/backfills", "POST /api/heal", "POST /api/backfills/{backfillId}/retry"}
SAFE = {"GET", "HEAD", "OPTIONS"}
OPEN_PATHS = {"/api/health", "/api/openapi.json"}
# Every request this module sent, for the printed total.
TOTAL: collections.Counter = collections.Counter()


class Counted:
    """An ASGI app that counts the HTTP requests reaching it."""

    def __init__(self, app, counter: collections.Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.counter["requests"] += 1
        await self.app(scope, receive, send)


class RecordingDagster(FakeDagster):
    """The fake Dagster, recording every call that changes something."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple] = []

    def launch_backfill(self, partitions_by_assets, *, tags=None, title=None, description=None) -> str:
        backfill_id = super().launch_backfill(
            partitions_by_assets, tags=tags, title=title, description=description
        )
        self.changes.append(("launch", backfill_id))
        return backfill_id

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        new_id = super().reexecute_backfill(backfill_id, strategy)
        self.changes.append(("retry", backfill_id, new_id))
        return new_id

    def cancel_backfill(self, backfill_id: str) -> None:
        super().cancel_backfill(backfill_id)
        self.changes.append(("cancel", backfill_id))

    def add_dynamic_partitions(self, partitions_def: str, keys: list[str]) -> None:
        super().add_dynamic_partitions(partitions_def, keys)
        self.changes.append(("partitions", tuple(keys)))


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the data root with its size and modification time; lock files aside (a
    keyed request takes its key's lock before it is refused for the key's earlier use)."""
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".lock"):
                info = os.stat(os.path.join(directory, name))
                out[os.path.join(directory, name)] = (info.st_size, info.st_mtime_ns)
    return out


@dataclass
class Deployment:
    """One API (and the same one listening off loopback) over a recording fake Dagster and a
    data root; what it answered, and the hostile values taken in turn."""

    root: Path
    dagster: RecordingDagster
    app: Counted
    exposed: Counted
    counter: collections.Counter
    statuses: collections.Counter = field(default_factory=collections.Counter)
    turns: dict[str, Iterator] = field(default_factory=dict)
    clients: dict[int, asgi.ASGIClient] = field(default_factory=dict)

    def client(self, app: Counted) -> asgi.ASGIClient:
        """A requests session into `app` (no environment lookups: proxies, netrc)."""
        if id(app) not in self.clients:
            self.clients[id(app)] = asgi.ASGIClient(app, base_url=BASE_URL)
            self.clients[id(app)].trust_env = False
        return self.clients[id(app)]

    def next(self, name: str, values: list):
        """The next of `values` in turn (every value is used, the same way every run)."""
        return next(self.turns.setdefault(name, itertools.cycle(values)))


@pytest.fixture
def deployment(tmp_path, request) -> Iterator[Deployment]:
    """The API over Dagster's `districts` partitions 42, 61 and 109, and three backfills: fake0001
    running, fake0002 ended with a failed partition, fake0003 succeeded. No district is configured
    and no summary collected (so no other id is known: the issue's case), unless the parameter
    is "configured": then those three and 9 (not a partition yet) are."""
    root = tmp_path / "data"
    if getattr(request, "param", "unconfigured") == "configured":
        DistrictConfig(root).set([*DISTRICTS, "9"])
    dagster = RecordingDagster()
    service = fake_service(root, dagster)
    for day in ("2025-03-01", "2025-03-02", "2025-03-03"):
        service.launch(BackfillRequest.model_validate({"startDate": day, "targetDistricts": ["42"]}))
    dagster.finish("fake0002", ["2025-03-02|42"])
    dagster.finish("fake0003")
    dagster.changes.clear()
    counter: collections.Counter = collections.Counter()

    def app(security: Security) -> Counted:
        return Counted(create_app(lambda: fake_service(root, dagster), security=security), counter)

    deployment = Deployment(root, dagster, app(LOOPBACK), app(EXPOSED), counter)
    yield deployment
    asgi.shutdown_lifespans()
    TOTAL.update(counter)
    answers = dict(sorted(deployment.statuses.items()))
    print(f"{counter['requests']} requests ({TOTAL['requests']} in this process so far), answers: {answers}")


def empty_list_item(case) -> bool:
    """Whether a list of the query has an empty item (`districts=42,`, `state=,`): the coverage
    query ignores it (test_api_coverage pins that), which the document, whose items are a
    district pattern and the states' enum, does not say."""
    for name in ("districts", "state"):
        value = (case.query or {}).get(name)
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
        if any(isinstance(item, str) and not item.strip() for item in items):
            return True
    return False


def header(response, name: str) -> str | None:
    """A header of a schemathesis Response (lower-case names, lists of values)."""
    values = response.headers.get(name.lower())
    return values[0] if values else None


def check_error(response) -> dict:
    """The answer is an error body of the document's shape; its `error`."""
    assert (header(response, "Content-Type") or "").startswith("application/json"), response.headers
    body = response.json()
    ERROR_BODY.validate(body)
    assert body["error"]["code"] and body["error"]["message"]
    return body["error"]


def check_changes(deployment: Deployment, sent: str, response, changes: list[tuple], before: dict) -> None:
    """What changed is what the answer says was done: a refused request and a read changed
    nothing in Dagster nor under the data root."""
    status = response.status_code
    kinds = collections.Counter(change[0] for change in changes)
    replayed = header(response, "Idempotent-Replayed") == "true"
    what = (sent, status, changes, response.text[:300])
    if status >= 400 or sent.split()[0] in SAFE:
        assert changes == [], what
        assert files(deployment.root) == before, what
    elif sent in ("POST /api/backfills", "POST /api/heal"):
        # 202: one backfill (the districts it needs added first); 200: a dry run or nothing to run.
        launched = 0 if status == 200 or replayed else 1
        assert kinds["launch"] == launched and set(kinds) <= {"launch", "partitions"}, what
    elif sent == "POST /api/backfills/{backfillId}/retry":
        assert kinds == collections.Counter(retry=0 if replayed else 1), what
    elif sent == "DELETE /api/backfills/{backfillId}":
        assert kinds == collections.Counter(cancel=1), what
    else:
        assert changes == [], what


def send(deployment: Deployment, case, app: Counted, headers: dict[str, str | None]):
    """Send `case` to `app` with exactly these `headers` changed (None removes one); the answer,
    its changes checked."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    kwargs.pop("auth", None)
    kwargs["headers"] = {k: v for k, v in {**kwargs["headers"], **headers}.items() if v is not None}
    before, files_before = len(deployment.dagster.changes), files(deployment.root)
    response = Response.from_any(deployment.client(app).request(**kwargs))
    deployment.statuses[response.status_code] += 1
    sent = f"{case.method.upper()} {case.operation.path}"
    check_changes(deployment, sent, response, deployment.dagster.changes[before:], files_before)
    return response


def refused(deployment: Deployment, case, headers: dict, status: tuple[int, ...], app=None) -> dict:
    """Send `case` with hostile `headers`: refused with one of `status`, the error body, nothing
    changed; its `error`."""
    response = send(deployment, case, app or deployment.app, headers)
    error = check_error(response)
    assert response.status_code in status, (headers, response.status_code, error)
    return error


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_answer_as_documented_and_change_nothing_when_refused(case, deployment):
    method, path = case.method.upper(), case.operation.path  # coverage cases try undeclared methods
    sent = f"{method} {path}"
    writes = method not in SAFE
    generated = {name.lower() for name in case.headers or {}}
    # The open operations (health, the document) declare no security, so schemathesis sends no
    # token: send it, so that an undeclared method there meets the router (405), not the guard.
    token = AUTH if path in OPEN_PATHS and "authorization" not in generated else {}

    # As generated (the token given to schemathesis): no 5xx, the documented status, headers and
    # schema, invalid data refused, an error body on every 4xx, changes only when announced.
    before, files_before = len(deployment.dagster.changes), files(deployment.root)
    response = case.call(base_url=BASE_URL, app=deployment.app, headers=token)
    deployment.statuses[response.status_code] += 1
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    case.validate_response(
        response,
        excluded_checks=[negative_data_rejection] if empty_list_item(case) else [],
        transport_kwargs={"app": deployment.app, "base_url": BASE_URL, "headers": token},
    )
    if response.status_code >= 400:
        check_error(response)
    check_changes(deployment, sent, response, deployment.dagster.changes[before:], files_before)

    # Without this API's token: every write refused (401 and its challenge); reads need it off
    # loopback only, and not even there for the health check and the document.
    hostile = deployment.next("token", NO_TOKEN)
    for app, exposed in ((deployment.app, False), (deployment.exposed, True)):
        if path == "/api/session":
            break  # the console's sign-in takes its token in the body (tests/test_api_console.py)
        if writes or (exposed and method != "OPTIONS" and path not in OPEN_PATHS):
            response = send(deployment, case, app, hostile)
            check_error(response)
            assert response.status_code == 401, (hostile, response.status_code, response.text[:300])
            assert (header(response, "WWW-Authenticate") or "").startswith('Bearer realm="backfill_pipeline"')
        else:
            response = send(deployment, case, app, hostile)
            assert response.status_code not in (401, 500), (hostile, response.status_code, response.text)

    # A Host not on the allow-list (DNS rebinding), with the token: 421, or 400 when unusable.
    refused(deployment, case, {**AUTH, "Host": deployment.next("host", BAD_HOSTS)}, (400, 421))

    if writes:
        # A body (or none) declared as anything but JSON, with the token: 415.
        content_type = deployment.next("content-type", BAD_CONTENT_TYPES)
        refused(deployment, case, {**AUTH, "Content-Type": content_type}, (415,))
    if sent in KEYED:
        # A malformed Idempotency-Key, with the token and JSON: 400 naming it, whatever the body.
        key = deployment.next("key", BAD_KEYS)
        error = refused(
            deployment, case, {**AUTH, "Content-Type": "application/json", "Idempotency-Key": key}, (400,)
        )
        assert error["fields"][0]["field"] == "Idempotency-Key", (key, error)


# Requests near the valid region of both launch routes, for what the document cannot say: dates
# the deployment has (or not), known and unknown districts, a rate above the budget (2), a
# planHash that no longer matches or one that does, keys used again.
START = st.sampled_from(VALID_DATES + [TODAY.isoformat()])
RANGE = {
    "targetDistricts": st.lists(st.sampled_from(DISTRICT_VALUES), max_size=3),
    "concurrency": st.integers(1, 2),
    "rate": st.sampled_from([0.5, 2, 3]),
    "dryRun": st.booleans(),
}
PLAUSIBLE = {
    "/api/backfills": st.fixed_dictionaries(
        {"startDate": START},
        optional={
            **RANGE,
            "endDate": START,
            "collectionType": st.sampled_from(["auto", "system-wide", "per-district"]),
            "skipExisting": st.booleans(),
            "retryFailures": st.booleans(),
            "recheckUnavailable": st.booleans(),
        },
    ),
    "/api/heal": st.fixed_dictionaries(
        {"startDate": START, "endDate": START},
        optional={**RANGE, "includeMissing": st.booleans()},
    ),
}


@pytest.mark.parametrize("deployment", ["unconfigured", "configured"], indirect=True)
def test_plausible_launches_change_only_what_they_answer(deployment):
    seen: collections.Counter = collections.Counter()
    client = deployment.client(deployment.app)
    hashes: dict[str, str] = {}

    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def launch(data) -> None:
        path = data.draw(st.sampled_from(sorted(PLAUSIBLE)))
        body = data.draw(PLAUSIBLE[path])
        confirm = data.draw(st.sampled_from(["none", "stale", "current"]))
        if confirm == "stale":
            body["planHash"] = "0" * 16
        elif confirm == "current" and path in hashes:
            body["planHash"] = hashes[path]
        key = data.draw(st.sampled_from([None, *IDEMPOTENCY_KEYS]))
        headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
        before, files_before = len(deployment.dagster.changes), files(deployment.root)
        raw = client.post(path, json=body, headers=headers)
        response = Response.from_any(raw)
        deployment.statuses[response.status_code] += 1
        check_changes(deployment, f"POST {path}", response, deployment.dagster.changes[before:], files_before)
        answer = CONTRACT.check(raw, "POST", path)
        if response.status_code >= 400:
            error = answer["error"]
            district = error["code"] == "invalid-request" and "not a known district" in error["message"]
            seen["unknown district" if district else error["code"]] += 1
        else:
            seen[response.status_code] += 1
            hashes[path] = answer["plan"]["planHash"]

    launch()
    print(dict(seen))
    # Each kind of answer was met, so none of the properties held vacuously.
    kinds = [200, 202, "plan-changed", "invalid-request", "idempotency-key-reused"]
    if not DistrictConfig(deployment.root).list():
        kinds.append("unknown district")  # configured districts put the others out of scope
    for kind in kinds:
        assert seen[kind], (kind, seen)


def test_an_empty_coverage_parameter_is_documented_as_not_given(api):
    # Found by the generated requests: `?start=` answered 200 (an empty value is as if not
    # given), while the document had it an invalid date.
    parameters = openapi.document()["paths"]["/api/coverage"]["get"]["parameters"]
    assert {p["name"] for p in parameters if p.get("allowEmptyValue")} == {
        "start",
        "end",
        "districts",
        "state",
    }
    empty = api.client.get("/api/coverage?start=&end=&districts=&state=")
    assert empty.status_code == 200 and empty.json() == api.client.get("/api/coverage").json()


@pytest.mark.parametrize("path", ["/api/backfills", "/api/heal"])
@pytest.mark.parametrize("rate", [5e-324, 0.0004, 0.009])
def test_a_rate_too_slow_to_pace_a_run_is_refused(api, path, rate):
    # Found by the generated requests: `"rate": 5e-324` (any rate whose share per run rounded to
    # 0) answered 500, the plan's pace per run being 0, which its answer does not allow.
    body = {"startDate": "2025-03-01", "endDate": "2025-03-01", "targetDistricts": ["42"], "rate": rate}
    for dry_run in (True, False):
        r = api.client.post(path, json={**body, "dryRun": dry_run})
        error = CONTRACT.check(r, "POST", path, 400)["error"]
        assert error["fields"] == [
            {"field": "rate", "message": "Input should be greater than or equal to 0.01"}
        ]
    assert api.dagster.launches == []
    slowest = api.client.post(path, json={**body, "rate": 0.01, "dryRun": True})
    assert CONTRACT.check(slowest, "POST", path, 200)["plan"]["ratePerRun"] > 0
    model = "BackfillRequest" if path == "/api/backfills" else "HealRequest"
    rate_schema = openapi.document()["components"]["schemas"][model]["properties"]["rate"]
    assert {"type": "number", "minimum": 0.01, "maximum": 8.0} in rate_schema["anyOf"]
