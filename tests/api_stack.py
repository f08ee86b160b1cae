"""What the API tests share (a pytest plugin: `pytest_plugins = ["api_stack"]`).

- `Contract` checks answers against the OpenAPI document.
- The fast lane: `FakeDagster` stands in for Dagster's GraphQL API behind the real BackfillService,
  planner and app; the `api` fixture serves them through Starlette's TestClient, which sends the
  test token (TOKEN) and a loopback Host with every request.
- The e2e lane: the sandbox and `dagster dev` run as real processes (as in test_e2e_dagster.py),
  the API is served by uvicorn in a thread of the test process; one stack per session, stopped
  after the last test that uses it.

PYTEST_DONT_REWRITE: test modules import it before pytest could load it as a plugin.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import requests
import uvicorn
from conftest import TODAY, settings
from starlette.testclient import TestClient

from backfill_pipeline.api import openapi
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.graphql import BackfillNotFound, DagsterGraphQL, PartitionStatuses
from backfill_pipeline.api.models import FINAL_STATES
from backfill_pipeline.api.security import Security
from backfill_pipeline.api.service import BackfillService
from backfill_pipeline.devstack import Service, free_port, start_configured_stack
from backfill_pipeline.names import DISTRICT_ASSET, KEY_SEPARATOR, PARENT_BACKFILL_TAG, SUMMARY_ASSET
from backfill_pipeline.scope import DistrictConfig

DISTRICTS = ["42", "61", "109"]
BATCH_SIZE = 10
START_DATE = dt.date(2025, 1, 1)
# The API's token in the tests, the header that carries it, and the security of a loopback API.
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOOPBACK = Security.for_server(TOKEN, "127.0.0.1")
# The API's security when it listens on every address (reads need the token too).
EXPOSED = Security.for_server(TOKEN, "0.0.0.0", extra_hosts=["api.example.org"])


# -- the contract ------------------------------------------------------------------------------------


class Contract:
    """Checks answers against the OpenAPI document: documented status, JSON schema, headers."""

    def __init__(self) -> None:
        self.document = openapi.document()

    def operation(self, method: str, template: str) -> dict:
        """The document's operation for (method, path template)."""
        return self.document["paths"][template][method.lower()]

    def schema(self, method: str, template: str, status: int | str) -> dict:
        """The response schema of an operation and status, resolvable against the document."""
        responses = self.operation(method, template)["responses"]
        assert str(status) in responses, f"{method} {template} answered {status}, not documented"
        media = responses[str(status)]["content"]["application/json"]
        return {**media["schema"], "components": self.document["components"]}

    def check(self, response, method: str, template: str, status: int | None = None) -> dict:
        """Assert `status` (if given), a documented JSON answer with the documented headers; its body.

        `response` is a requests or an httpx response (the TestClient's)."""
        if status is not None:
            assert response.status_code == status, (response.status_code, response.text[:2000])
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        validate(body, self.schema(method, template, response.status_code))
        documented = self.operation(method, template)["responses"][str(response.status_code)]
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, f"{name} missing from {response.headers}"
            if name in response.headers:
                jsonschema.validate(response.headers[name], header["schema"])
        if response.status_code >= 400:
            assert body["error"]["code"] and body["error"]["message"]
        return body

    def documented(self) -> set[tuple[str, str, str]]:
        """Every (method, path template, status) the document lists, `default` aside."""
        return {
            (method.upper(), path, status)
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
            if method != "parameters"
            for status in operation["responses"]
            if status != "default"
        }

    def request_schema(self) -> dict:
        """The POST /api/backfills request body schema."""
        return {
            **self.document["components"]["schemas"]["BackfillRequest"],
            "components": self.document["components"],
        }


def validate(instance, schema: dict) -> None:
    """jsonschema validation as the document's dialect (2020-12), formats checked."""
    jsonschema.validate(
        instance,
        schema,
        cls=jsonschema.Draft202012Validator,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


CONTRACT = Contract()


# -- the fast lane: Dagster faked -----------------------------------------------------------------------


def _days(start: str, end: str) -> list[str]:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


class FakeDagster(DagsterGraphQL):
    """Dagster's GraphQL API in memory: partitions, their statuses and backfills; every launch is
    recorded. `error` makes every call raise it; `ping_seconds` slows the health check down."""

    def __init__(self, districts: Iterable[str] = DISTRICTS) -> None:
        # Anything not faked here would go to a closed port and fail as DagsterUnreachable.
        super().__init__("http://127.0.0.1:9")
        self.dates = _days(START_DATE.isoformat(), (TODAY - dt.timedelta(days=1)).isoformat())
        self.districts = list(districts)
        self.materialized: dict[str, set[str]] = {SUMMARY_ASSET: set(), DISTRICT_ASSET: set()}
        self.failed: dict[str, set[str]] = {SUMMARY_ASSET: set(), DISTRICT_ASSET: set()}
        self.materializing: dict[str, set[str]] = {SUMMARY_ASSET: set(), DISTRICT_ASSET: set()}
        self.launches: list[dict] = []
        self.backfills_by_id: dict[str, dict] = {}
        self.error: Exception | None = None
        self.ping_seconds = 0.0
        # Raised once by the next launch or re-execution *after* Dagster made the backfill: its
        # answer lost (a timeout, a dropped connection).
        self.lose_next_answer: Exception | None = None
        self._ids = itertools.count(1)

    def _answer(self) -> None:
        if self.error is not None:
            raise self.error

    def ping(self) -> str:
        self._answer()
        time.sleep(self.ping_seconds)
        return "1.13.28"

    def partition_keys(self, asset_path: list[str]) -> dict[str, list[str]]:
        self._answer()
        if asset_path == [SUMMARY_ASSET]:
            return {"default": list(self.dates)}
        return {"date": list(self.dates), "district": list(self.districts)}

    def partition_statuses(self, asset_path: list[str]) -> PartitionStatuses:
        self._answer()
        (asset,) = asset_path
        return PartitionStatuses(
            set(self.materialized[asset]), set(self.failed[asset]), set(self.materializing[asset])
        )

    def materializing_keys(self, asset_path: list[str]) -> set[str]:
        return self.partition_statuses(asset_path).in_progress

    def pool(self, key: str) -> dict:
        self._answer()
        return {"slotCount": 2, "activeSlotCount": 0, "limit": 2, "pendingStepCount": 0, "activeRunIds": []}

    def add_dynamic_partitions(self, partitions_def: str, keys: list[str]) -> None:
        self._answer()
        self.districts += [k for k in keys if k not in self.districts]

    def launch_backfill(self, partitions_by_assets, *, tags=None, title=None, description=None) -> str:
        self._answer()
        targeted = {
            p["assetKey"]["path"][0]: self.keys(p["partitions"]["ranges"]) for p in partitions_by_assets
        }
        self.launches.append({"partitionsByAssets": partitions_by_assets, "tags": dict(tags or {})})
        return self._answered(self._new(targeted, dict(tags or {}), title))

    def _answered(self, backfill_id: str) -> str:
        lost, self.lose_next_answer = self.lose_next_answer, None
        if lost is not None:
            raise lost
        return backfill_id

    def keys(self, ranges: list[dict]) -> list[str]:
        """The partition keys of LaunchBackfillParams ranges (date x district ranges as rectangles)."""
        out = []
        for r in ranges:
            if KEY_SEPARATOR not in r["start"]:
                out += _days(r["start"], r["end"])
                continue
            (a, x), (b, y) = r["start"].split(KEY_SEPARATOR), r["end"].split(KEY_SEPARATOR)
            block = self.districts[self.districts.index(x) : self.districts.index(y) + 1]
            out += [f"{day}{KEY_SEPARATOR}{d}" for day in _days(a, b) for d in block]
        return out

    def _new(self, targeted: dict[str, list[str]], tags: dict[str, str], title: str | None) -> str:
        backfill_id = f"fake{next(self._ids):04d}"
        self.backfills_by_id[backfill_id] = {
            "status": "REQUESTED",
            "tags": tags,
            "title": title,
            "timestamp": time.time(),
            "endTimestamp": None,
            "targeted": targeted,
            "failedKeys": set(),
        }
        return backfill_id

    def finish(self, backfill_id: str, failed: Iterable[str] = ()) -> None:
        """End a backfill as Dagster would: `failed` keys failed, every other one materialized."""
        b = self.backfills_by_id[backfill_id]
        b["failedKeys"] = set(failed)
        for asset, keys in b["targeted"].items():
            for key in keys:
                lost = key in b["failedKeys"]
                (self.failed if lost else self.materialized)[asset].add(key)
                (self.materialized if lost else self.failed)[asset].discard(key)
        b["status"] = "COMPLETED_FAILED" if b["failedKeys"] else "COMPLETED_SUCCESS"
        b["endTimestamp"] = b["timestamp"] + 60

    def backfill(self, backfill_id: str) -> dict:
        self._answer()
        if backfill_id not in self.backfills_by_id:
            raise BackfillNotFound(f"Backfill id {backfill_id} could not be found.")
        b = self.backfills_by_id[backfill_id]
        ended = b["status"].startswith("COMPLETED")
        counts = []
        for asset, keys in b["targeted"].items():
            failed = len(b["failedKeys"] & set(keys))
            counts.append(
                {
                    "__typename": "AssetPartitionsStatusCounts",
                    "assetKey": {"path": [asset]},
                    "numPartitionsTargeted": len(keys),
                    "numPartitionsInProgress": 0,
                    "numPartitionsMaterialized": len(keys) - failed if ended else 0,
                    "numPartitionsFailed": failed,
                }
            )
        runs = [{"runId": f"{backfill_id}r{i}", "status": "SUCCESS", "tags": []} for i in range(len(counts))]
        return {
            "id": backfill_id,
            "status": b["status"],
            "numPartitions": sum(len(keys) for keys in b["targeted"].values()),
            "timestamp": b["timestamp"],
            "endTimestamp": b["endTimestamp"],
            "title": b["title"],
            "tags": [{"key": k, "value": v} for k, v in b["tags"].items()],
            "error": None,
            "assetBackfillData": {"assetBackfillStatuses": counts},
            "runs": runs if ended else [],
        }

    def backfills(self, limit: int = 50, cursor: str | None = None) -> list[dict]:
        self._answer()
        return [self.backfill(i) for i in reversed(self.backfills_by_id)][:limit]

    def backfills_since(self, created_after: float, *, page: int = 100, most: int = 2000) -> list[dict]:
        self._answer()
        listed = [self.backfill(i) for i in reversed(self.backfills_by_id)]
        return [b for b in listed if b["timestamp"] > created_after][:most]

    def cancel_backfill(self, backfill_id: str) -> None:
        self._answer()
        b = self.backfills_by_id[backfill_id]
        b["status"], b["endTimestamp"] = "CANCELED", b["timestamp"] + 30

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        self._answer()
        parent = self.backfills_by_id[backfill_id]
        targeted = {
            a: [k for k in keys if k in parent["failedKeys"]] for a, keys in parent["targeted"].items()
        }
        # Dagster copies the parent's tags to a re-executed backfill.
        tags = {**parent["tags"], PARENT_BACKFILL_TAG: backfill_id}
        self.launches.append({"reexecutionOf": backfill_id, "tags": tags})
        return self._answered(
            self._new({a: keys for a, keys in targeted.items() if keys}, tags, parent["title"])
        )


def fake_service(root: Path, dagster: DagsterGraphQL, **values) -> BackfillService:
    """The real BackfillService over data root `root`, talking to `dagster`, today fixed."""
    deployment = settings(data_root=root, batch_size=BATCH_SIZE, **values)
    service = BackfillService(deployment, today=lambda: TODAY)
    service.graphql = dagster
    return service


def api_client(
    app, *, host: str = "127.0.0.1", headers: dict | None = None, raise_server_exceptions: bool = True
) -> TestClient:
    """Starlette's TestClient on `app`, with Host `host` and the test token (unless `headers`
    says otherwise)."""
    return TestClient(
        app,
        base_url=f"http://{host}",
        headers=AUTH if headers is None else headers,
        raise_server_exceptions=raise_server_exceptions,
    )


@dataclass
class FakeApi:
    """The app over the real service with Dagster faked, and handles on both."""

    client: TestClient
    dagster: FakeDagster
    root: Path

    def launch(self, body: dict, *, requester: str = "tester") -> str:
        """POST a request that must launch; the new backfill's id."""
        r = self.client.post("/api/backfills", json=body, headers={"X-Requested-By": requester})
        return CONTRACT.check(r, "POST", "/api/backfills", 202)["backfillId"]

    def client_with(self, security: Security, **client) -> TestClient:
        """Another app over the same fake Dagster and data root, guarded by `security`."""
        return api_client(
            create_app(lambda: fake_service(self.root, self.dagster), security=security), **client
        )


@pytest.fixture
def api(tmp_path) -> Iterator[FakeApi]:
    """A FakeApi with DISTRICTS configured and partitioned, nothing materialized, nothing launched."""
    root = tmp_path / "data"
    DistrictConfig(root).set(DISTRICTS)
    dagster = FakeDagster()
    with api_client(create_app(lambda: fake_service(root, dagster), security=LOOPBACK)) as client:
        yield FakeApi(client=client, dagster=dagster, root=root)


# -- uvicorn in a thread (both lanes) -------------------------------------------------------------------


class ApiServer:
    """The API app served by uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name=f"api-{self.port}", daemon=True)

    def start(self, timeout: float = 20) -> ApiServer:
        """Start serving; return once uvicorn listens."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def api_for(dagster_url: str, root: Path, **values) -> ApiServer:
    """An API server talking to Dagster at `dagster_url` over data root `root`, today fixed,
    guarded by the test token."""
    deployment = settings(dagster_url=dagster_url, data_root=root, batch_size=BATCH_SIZE, **values)
    app = create_app(lambda: BackfillService(deployment, today=lambda: TODAY), security=LOOPBACK)
    return ApiServer(app)


# -- the e2e lane: real Dagster ---------------------------------------------------------------------------


@dataclass
class ApiStack:
    """Handles on the running stack."""

    root: Path
    sandbox: Service
    dagster: Service
    api: ApiServer
    graphql: DagsterGraphQL
    log: Path

    @property
    def url(self) -> str:
        """The API's base URL."""
        return self.api.url

    def faults(self, rules: list[dict]) -> None:
        """Replace the sandbox's fault rules."""
        requests.put(f"{self.sandbox.url}/_sandbox/faults", json=rules, timeout=5).raise_for_status()

    def sandbox_stats(self, reset: bool = False) -> dict:
        """The sandbox's request counters (zeroed first when `reset`)."""
        if reset:
            requests.post(f"{self.sandbox.url}/_sandbox/stats/reset", timeout=5).raise_for_status()
        r = requests.get(f"{self.sandbox.url}/_sandbox/stats", timeout=5)
        r.raise_for_status()
        return r.json()

    def post(self, body, *, headers: dict | None = None) -> requests.Response:
        """POST /api/backfills with a JSON body and the test token."""
        return requests.post(
            f"{self.url}/api/backfills", json=body, headers={**AUTH, **(headers or {})}, timeout=60
        )

    def status(self, backfill_id: str) -> dict:
        """GET /api/backfills/{id}, checked against the document."""
        r = requests.get(f"{self.url}/api/backfills/{backfill_id}", timeout=60)
        return CONTRACT.check(r, "GET", "/api/backfills/{backfillId}", 200)

    def wait_terminal(self, backfill_id: str, timeout: float = 240) -> dict:
        """Poll the status until the backfill has ended; the last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(backfill_id)
            if status["state"] in FINAL_STATES:
                return status
            assert time.monotonic() < deadline, f"backfill {backfill_id} still {status['state']}"
            time.sleep(2)


def start_stack(base: Path) -> ApiStack:
    """Start sandbox, `dagster dev` and the API; wait until the districts partitions are synced."""
    root = base / "data"
    sandbox, dagster = start_configured_stack(
        base,
        today=TODAY.isoformat(),
        districts=DISTRICTS,
        env={
            "BACKFILL_START_DATE": START_DATE.isoformat(),
            "BACKFILL_RATE": "20",
            "BACKFILL_BATCH_SIZE": str(BATCH_SIZE),
        },
    )
    try:
        # The same budget as the stack's Dagster (BACKFILL_RATE above).
        api = api_for(dagster.url, root, rate=20).start()
    except BaseException:
        dagster.stop()
        sandbox.stop()
        raise
    return ApiStack(
        root=root,
        sandbox=sandbox,
        dagster=dagster,
        api=api,
        graphql=DagsterGraphQL(dagster.url),
        log=base / "dagster.log",
    )


def stop_stack(stack: ApiStack) -> None:
    """Stop everything the stack started (idempotent)."""
    stack.api.stop()
    stack.dagster.stop()
    stack.sandbox.stop()


_running: list[ApiStack] = []


@pytest.fixture(scope="session")
def api_stack(tmp_path_factory) -> Iterator[ApiStack]:
    """The shared stack, started on first use."""
    stack = start_stack(tmp_path_factory.mktemp("api"))
    _running.append(stack)
    yield stack
    stop_stack(stack)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the stack as soon as no test left in the session needs it (others start their own)."""
    if not _running or "api_stack" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    rest = items[items.index(nextitem) :] if nextitem is not None else []
    if not any("api_stack" in getattr(i, "fixturenames", ()) for i in rest):
        stop_stack(_running.pop())
