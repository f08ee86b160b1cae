"""The stack the API tests share (a pytest plugin: `pytest_plugins = ["api_stack"]`).

The sandbox and `dagster dev` run as real processes (as in test_e2e_dagster.py), the API is
served by uvicorn in a thread of the test process; every JSON answer can be checked against
the OpenAPI document. One stack per session, stopped after the last test that uses it.
PYTEST_DONT_REWRITE: test modules import it before pytest could load it as a plugin.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import requests
import uvicorn
from conftest import TODAY, settings

from backfill_pipeline.api import openapi
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.graphql import DagsterGraphQL
from backfill_pipeline.api.service import BackfillService
from backfill_pipeline.devstack import Service, free_port, start_configured_stack
from backfill_pipeline.sandbox import publication

DISTRICTS = ["42", "61", "109"]
TERMINAL_STATES = {"succeeded", "completed-with-failures", "failed", "canceled"}
BATCH_SIZE = 10


def published_dates(start: dt.date, n: int, *, closing: bool | None = False) -> list[str]:
    """n consecutive published dates from `start` on, inside closing windows or not as asked (None: any)."""

    def fits(d: dt.date) -> bool:
        ok = publication.is_published(d, today=TODAY)
        return ok and (closing is None or publication.is_closing_period(d) == closing)

    d = start
    while not all(fits(d + dt.timedelta(days=i)) for i in range(n)):
        d += dt.timedelta(days=1)
    return [(d + dt.timedelta(days=i)).isoformat() for i in range(n)]


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


def api_for(dagster_url: str, root: Path) -> ApiServer:
    """An API server talking to Dagster at `dagster_url` over data root `root`, today fixed."""
    deployment = settings(dagster_url=dagster_url, data_root=root, batch_size=BATCH_SIZE)
    return ApiServer(create_app(lambda: BackfillService(deployment, today=lambda: TODAY)))


class Contract:
    """Checks answers against the OpenAPI document: documented status, JSON schema, headers."""

    def __init__(self) -> None:
        self.document = openapi.document()
        self.seen: set[tuple[str, str, str]] = set()
        jsonschema.Draft202012Validator.check_schema(self.document["components"]["schemas"]["Plan"])

    def operation(self, method: str, template: str) -> dict:
        """The document's operation for (method, path template)."""
        return self.document["paths"][template][method.lower()]

    def schema(self, method: str, template: str, status: int) -> dict:
        """The response schema of an operation and status, resolvable against the document."""
        responses = self.operation(method, template)["responses"]
        assert str(status) in responses, f"{method} {template} answered {status}, not documented"
        media = responses[str(status)]["content"]["application/json"]
        return {**media["schema"], "components": self.document["components"]}

    def check(
        self, response: requests.Response, method: str, template: str, status: int | None = None
    ) -> dict:
        """Assert `status` (if given), a documented JSON answer with the documented headers; its body."""
        if status is not None:
            assert response.status_code == status, (response.status_code, response.text[:2000])
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        self.seen.add((method.upper(), template, str(response.status_code)))
        jsonschema.validate(
            body,
            self.schema(method, template, response.status_code),
            cls=jsonschema.Draft202012Validator,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
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


@dataclass
class ApiStack:
    """Handles on the running stack."""

    root: Path
    sandbox: Service
    dagster: Service
    api: ApiServer
    graphql: DagsterGraphQL
    contract: Contract
    log: Path
    extra: list = field(default_factory=list)

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

    def post(self, body, *, headers: dict | None = None, **kwargs) -> requests.Response:
        """POST /api/backfills with a JSON body (or raw `data=`)."""
        if "data" in kwargs:
            return requests.post(f"{self.url}/api/backfills", headers=headers, timeout=60, **kwargs)
        return requests.post(f"{self.url}/api/backfills", json=body, headers=headers, timeout=60)

    def status(self, backfill_id: str) -> dict:
        """GET /api/backfills/{id}, checked against the document."""
        r = requests.get(f"{self.url}/api/backfills/{backfill_id}", timeout=60)
        return self.contract.check(r, "GET", "/api/backfills/{backfillId}", 200)

    def wait_terminal(self, backfill_id: str, timeout: float = 240) -> dict:
        """Poll the status until the backfill has ended; the last status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(backfill_id)
            if status["state"] in TERMINAL_STATES:
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
            "BACKFILL_START_DATE": "2025-01-01",
            "BACKFILL_RATE": "20",
            "BACKFILL_BATCH_SIZE": str(BATCH_SIZE),
        },
    )
    graphql = DagsterGraphQL(dagster.url)
    try:
        api = api_for(dagster.url, root).start()
    except BaseException:
        dagster.stop()
        sandbox.stop()
        raise
    return ApiStack(
        root=root,
        sandbox=sandbox,
        dagster=dagster,
        api=api,
        graphql=graphql,
        contract=Contract(),
        log=base / "dagster.log",
    )


def stop_stack(stack: ApiStack) -> None:
    """Stop everything the stack started (idempotent)."""
    for server in [stack.api, *stack.extra]:
        server.stop()
    stack.dagster.stop()
    stack.sandbox.stop()


_running: list[ApiStack] = []


@pytest.fixture(scope="session")
def api_stack(tmp_path_factory) -> ApiStack:
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
