"""Issue 14, point 3: two run workers with separate local data roots (as on two machines) and one
PostgreSQL share one budget at the dashboard and one circuit breaker. Real processes fetching from
the sandbox over loopback HTTP through the real dashboard client; a real server, started here."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from conftest import client_settings, published_dates
from pg_server import postgres_server
from test_dashboard_budget import max_in_window
from together import run_together

from backfill_pipeline.collecting.collect import is_transient
from backfill_pipeline.dashboard.breaker import (
    OPEN,
    BreakerUnavailable,
    CircuitBreaker,
    PostgresBreakerStore,
    read_breaker_state,
)
from backfill_pipeline.dashboard.client import DashboardClient
from backfill_pipeline.dashboard.errors import CircuitOpen
from backfill_pipeline.dashboard.reports import Report
from backfill_pipeline.sandbox.server import SandboxServer
from backfill_pipeline.snapshots.models import NOT_AN_ATTEMPT

pytestmark = pytest.mark.slow

RATE = 4.0
SECONDS = 8.0
DATES = published_dates(dt.date(2025, 2, 3), 40)
DISTRICTS = ["42", "61", "109"]


@pytest.fixture(scope="module")
def database():
    with postgres_server() as url:
        yield url


def _worker(url: str, dashboard: str, root: str, first: int, ready, out) -> None:
    """One machine: its own data root and client, the shared store; fetch for SECONDS."""
    settings = client_settings(dashboard, rate=RATE, budget_store=url, use_cache=False)
    with DashboardClient(settings, root) as client:
        ready.wait(timeout=60)
        until, done = time.time() + SECONDS, 0
        for i in range(first, first + 10_000):
            if time.time() >= until:
                break
            client.fetch(Report.CLUB, DATES[i % len(DATES)], DISTRICTS[i % 3], data_month=(2025, 1))
            done += 1
        out.put(done)


def run_workers(url: str, dashboard: str, roots: list[str]) -> list[int]:
    """One worker per root, starting together once all are connected."""
    each = [(url, dashboard, root, n * 5000) for n, root in enumerate(roots)]
    return run_together(_worker, each, timeout=SECONDS + 90)


def test_two_machines_share_one_budget_at_the_dashboard(database, tmp_path):
    with SandboxServer(seed=42, today=dt.date(2026, 11, 30)) as sandbox:
        done = run_workers(database, sandbox.url, [str(tmp_path / "a"), str(tmp_path / "b")])
        arrivals = [e["t"] for e in sandbox.requests() if e["report"]]
    assert all(n > 5 for n in done), f"both machines fetched: {done}"
    assert len(arrivals) == sum(done)
    # One budget, not one per machine: at most RATE (+10%) in any second at the dashboard.
    busiest = max_in_window(arrivals)
    print(f"{len(arrivals)} requests from two machines, busiest second {busiest} at {RATE}/s")
    assert busiest <= RATE * 1.1, f"{busiest} requests within one second at a budget of {RATE}/s"
    span = max(arrivals) - min(arrivals)
    assert len(arrivals) / span >= RATE * 0.8, "and the budget was used, not starved"


def test_a_breaker_opened_by_one_machine_is_open_for_the_other(database, tmp_path):
    with SandboxServer(seed=42, today=dt.date(2026, 11, 30)) as sandbox:
        sandbox.set_faults([{"kind": "error", "status": 503}])
        one = DashboardClient(
            client_settings(
                sandbox.url, budget_store=database, breaker_threshold=2, breaker_cooldown=60, max_attempts=1
            ),
            tmp_path / "a",
        )
        other = DashboardClient(
            client_settings(sandbox.url, budget_store=database, breaker_threshold=2, breaker_cooldown=60),
            tmp_path / "b",
        )
        with one, other:
            for day in DATES[:2]:
                with pytest.raises(Exception):  # noqa: B017 (the 503, whatever its class)
                    one.fetch(Report.SUMMARY, day)
            assert one.breaker.state().state == OPEN
            asked = len(sandbox.requests())
            # The other machine never failed a request, yet will not send one.
            with pytest.raises(CircuitOpen):
                other.fetch(Report.SUMMARY, DATES[3])
            assert len(sandbox.requests()) == asked, "no request left the other machine"
            assert other.breaker.retry_in() > 50
        # The state is in the database, not in either data root.
        assert not (tmp_path / "b" / "state" / "breaker.json").exists()
        store = PostgresBreakerStore(database)
        try:
            assert store.read().state == OPEN
        finally:
            store.close()
        # Reset for the other tests of this database.
        with CircuitBreaker(tmp_path / "a", shared_store=database) as breaker:
            breaker.store.update(lambda s: type(s)())


def test_a_lost_breaker_database_is_transient_and_not_an_attempt(database, tmp_path):
    lost = "postgresql://postgres@127.0.0.1:9/postgres"  # nothing listens there
    began = time.monotonic()
    with pytest.raises(BreakerUnavailable) as caught:
        CircuitBreaker(tmp_path, shared_store=lost)
    assert time.monotonic() - began < 15, "bounded, not the pool's default 30 s"
    # An OSError: the collection is transient (retried, healed), and no request counts as an attempt.
    assert isinstance(caught.value, OSError) and is_transient(caught.value)
    assert "BreakerUnavailable" in NOT_AN_ATTEMPT
    # The status page says so within its 2 s, without creating anything.
    with pytest.raises(Exception):  # noqa: B017 (psycopg's OperationalError)
        read_breaker_state(lost, tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    # And reads the live database's state without writing.
    assert read_breaker_state(database, tmp_path / "nowhere") in ("closed", "open", "half-open")
    assert read_breaker_state(None, tmp_path / "nowhere") == "closed"
