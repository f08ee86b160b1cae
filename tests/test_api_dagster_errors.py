"""Dagster down (503), Dagster answering errors (502), and slow Dagster calls that must not block the
event loop: the real GraphQL client against a closed port or a tiny fake server (fast lane)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from api_stack import CONTRACT, LOOPBACK, ApiServer, FakeDagster, api_client, fake_service
from conftest import TODAY, settings
from starlette.testclient import TestClient

from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.service import BackfillService
from backfill_pipeline.devstack import free_port

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
ONE = "/api/backfills/{backfillId}"
RETRY = "/api/backfills/{backfillId}/retry"
# (method, path template, path, JSON body): one call of every operation that asks Dagster.
CALLS = [
    ("GET", "/api/health", "/api/health", None),
    ("GET", LIST, LIST, None),
    ("POST", LIST, LIST, {"startDate": "2025-04-14"}),
    ("GET", ONE, "/api/backfills/abc123", None),
    ("DELETE", ONE, "/api/backfills/abc123", None),
    ("POST", RETRY, "/api/backfills/abc123/retry", None),
    ("POST", "/api/heal", "/api/heal", {"startDate": "2025-04-14", "endDate": "2025-04-15"}),
]


def client_for(dagster_url: str, root) -> TestClient:
    """The app over the real service and GraphQL client, Dagster at `dagster_url`."""
    deployment = settings(dagster_url=dagster_url, data_root=root)
    return api_client(create_app(lambda: BackfillService(deployment, today=lambda: TODAY), security=LOOPBACK))


class _GraphQLError(http.server.BaseHTTPRequestHandler):
    """Answers every GraphQL document with a GraphQL error, as Dagster does on a broken query."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"errors": [{"message": "Cannot query field 'x' on type 'Query'."}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_dagster() -> Iterator[str]:
    """The URL of a server that answers every GraphQL document with an error."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GraphQLError)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("method", "template", "path", "body"), CALLS)
def test_dagster_unreachable_answers_503(tmp_path, method, template, path, body):
    with client_for(f"http://127.0.0.1:{free_port()}", tmp_path) as client:
        r = client.request(method, path, json=body)
    error = CONTRACT.check(r, method, template, 503)["error"]
    assert error["code"] == "dagster-unreachable", error
    assert int(r.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("method", "template", "path", "body"), CALLS)
def test_dagster_error_answers_502(tmp_path, broken_dagster, method, template, path, body):
    with client_for(broken_dagster, tmp_path) as client:
        r = client.request(method, path, json=body)
    error = CONTRACT.check(r, method, template, 502)["error"]
    assert error["code"] == "dagster-error" and "Cannot query field" in error["message"]


def test_calls_to_dagster_do_not_block_the_event_loop(tmp_path):
    dagster = FakeDagster()
    dagster.ping_seconds = 1.0
    with ApiServer(create_app(lambda: fake_service(tmp_path, dagster), security=LOOPBACK)) as server:
        answers: list[int] = []

        def health():
            answers.append(requests.get(server.url + "/api/health", timeout=30).status_code)

        threads = [threading.Thread(target=health) for _ in range(6)]
        started = time.monotonic()
        for t in threads:
            t.start()
        # While six health checks wait on Dagster, the loop still answers at once.
        r = requests.get(server.url + "/api/openapi.json", timeout=30)
        quick = time.monotonic() - started
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    assert r.status_code == 200 and quick < 0.9, quick
    assert answers == [200] * 6
    assert elapsed < 3.0, f"six 1 s calls took {elapsed:.1f}s: they ran one after another"
