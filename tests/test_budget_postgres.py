"""The budget on PostgreSQL: processes with their own data roots (as on separate machines) share one
budget through the database, lanes included. A real server, started for the test."""

from __future__ import annotations

import statistics
import time

import pytest
from pg_server import postgres_server
from test_dashboard_budget import max_in_window
from together import run_together

from backfill_pipeline.dashboard.budget import (
    Lane,
    PostgresBudgetStore,
    SharedBudget,
    open_store,
    recent_rate,
    spacing_ms,
)
from backfill_pipeline.dataroot import DataRoot

# Seconds of real servers, processes or generated requests, but no Dagster process: the full
# suite runs it, the fast lane (-m "not e2e and not slow") leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def database():
    with postgres_server() as url:
        yield url


def _draw(url: str, rate: float, lane: int, seconds: float, ready, out) -> None:
    store = PostgresBudgetStore(url, rate)
    budget = SharedBudget(store, Lane(lane))
    grants, waits = [], []
    ready.wait(timeout=60)
    until = time.time() + seconds
    while time.time() < until:
        waits.append(budget.acquire())
        grants.append(store.now_ms() / 1000)
    store.close()
    out.put((lane, grants, waits))


def draw(url: str, rate: float, lanes: list[Lane], seconds: float):
    """Each lane's process draws from the database's budget for `seconds`, all starting together."""
    return run_together(_draw, [(url, rate, int(lane), seconds) for lane in lanes], timeout=seconds + 60)


def test_processes_on_one_database_share_one_budget_and_the_refresh_goes_first(database):
    rate = 10.0
    results = draw(database, rate, [Lane.REFRESH, Lane.BACKFILL, Lane.BACKFILL], 4.0)
    grants = sorted(t for _, times, _ in results for t in times)
    assert max_in_window(grants) <= rate
    # Used: most of the paced budget (the guard leaves 10/s at 9.26/s) in the last 3 seconds,
    # measured on a machine that also runs the server and three polling processes.
    busy = [t for t in grants if t >= grants[-1] - 3.0]
    paced = 1000.0 / spacing_ms(rate)
    assert len(busy) >= 0.7 * paced * 3.0, len(busy)
    refresh = statistics.mean(w for lane, _, waits in results if lane == Lane.REFRESH for w in waits)
    backfill = statistics.mean(w for lane, _, waits in results if lane == Lane.BACKFILL for w in waits)
    assert refresh < backfill, (refresh, backfill)


def test_a_postgres_url_selects_the_database(database, tmp_path):
    store = open_store(database, DataRoot(tmp_path), 5.0)
    try:
        assert isinstance(store, PostgresBudgetStore)
        # The module's other tests drew from the same table a moment ago: their last slot passes.
        time.sleep(2 * store.spacing_ms / 1000)
        assert store.try_grant(store.now_ms()) == 0
        assert store.try_grant(store.now_ms()) > 0  # the next slot is 210 ms away
    finally:
        store.close()
    assert not (tmp_path / "state" / "budget.sqlite").exists()


def test_the_runs_of_one_backfill_draw_from_one_share_in_the_database(database):
    first, second = PostgresBudgetStore(database, 50.0), PostgresBudgetStore(database, 50.0)
    try:
        waits = [store.reserve("backfill:pg", 250) for store in (first, second, first, second)]
        assert [round(w / 250) for w in waits] == [0, 1, 2, 3]
        assert second.reserve("backfill:pg-other", 250) == 0
    finally:
        first.close()
        second.close()


def test_a_late_send_moves_its_slot_in_the_database_too(database):
    store = PostgresBudgetStore(database, 2.0)
    budget = SharedBudget(store, Lane.BACKFILL)
    try:
        budget.acquire()
        granted = store.last_grant_ms
        time.sleep(0.2)  # the request leaves 200 ms after its grant
        budget.sending()
        budget.acquire()
        # The next grant is a spacing after the send, not after the grant.
        assert store.last_grant_ms - granted >= 200 + store.spacing_ms - 5
    finally:
        store.close()


def test_the_deployments_rate_now_is_read_from_the_database(database, tmp_path):
    store = PostgresBudgetStore(database, 1000.0)
    try:
        granted = 0
        for _ in range(20):
            granted += store.try_grant() == 0
            time.sleep(0.005)
        # Every grant of the last 10 s, this test's and the module's others' alike.
        assert recent_rate(database, DataRoot(tmp_path), seconds=10) * 10 >= granted > 0
    finally:
        store.close()
