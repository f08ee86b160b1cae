"""The deployment's one budget: shared by processes through its SQLite file, with lanes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest

from backfill_pipeline.dashboard.budget import (
    LEAK_EVERY,
    STALE_AFTER,
    CappedBudget,
    Lane,
    SharedBudget,
    SharedShare,
    SqliteBudgetStore,
    check_rate,
    open_store,
    recent_rate,
)
from backfill_pipeline.dashboard.ratelimit import TokenBucket
from backfill_pipeline.dataroot import DataRoot


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most grants in any half-open window [t, t + window)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _draw(path: str, rate: float, lane: int, until: float, out) -> None:
    store = SqliteBudgetStore(Path(path), rate)
    budget = SharedBudget(store, Lane(lane))
    grants, waits = [], []
    while time.time() < until:
        waits.append(budget.acquire())
        grants.append(time.time())
    store.close()
    out.put((lane, grants, waits))


def draw_in_processes(path: Path, rate: float, lanes: list[Lane], seconds: float):
    """Each lane's process draws from the budget as fast as it lets it, for `seconds`."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    until = time.time() + seconds
    procs = [ctx.Process(target=_draw, args=(str(path), rate, int(lane), until, out)) for lane in lanes]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return results


@pytest.mark.slow
def test_processes_sharing_the_file_stay_within_the_budget_and_use_it(tmp_path):
    rate, seconds = 20.0, 4.0
    results = draw_in_processes(tmp_path / "budget.sqlite", rate, [Lane.BACKFILL] * 4, seconds)
    grants = [t for _, times, _ in results for t in times]
    assert max_in_window(grants) <= rate, "more grants in one second than the budget"
    span = max(grants) - min(grants)
    # Four processes that each want everything share one budget: it is used, not exceeded.
    assert len(grants) / span >= 0.8 * rate, (len(grants), span)
    assert all(len(times) >= 5 for _, times, _ in results), "a process was starved"


@pytest.mark.slow
def test_the_refresh_lane_waits_less_than_the_backfills(tmp_path):
    rate, seconds = 10.0, 4.0
    lanes = [Lane.REFRESH, Lane.BACKFILL, Lane.BACKFILL, Lane.BACKFILL]
    results = draw_in_processes(tmp_path / "budget.sqlite", rate, lanes, seconds)
    by_lane: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    for lane, times, waits in results:
        by_lane.setdefault(lane, []).extend(waits)
        counts[lane] = counts.get(lane, 0) + len(times)
    refresh_wait = statistics.mean(by_lane[Lane.REFRESH])
    backfill_wait = statistics.mean(by_lane[Lane.BACKFILL])
    # The refresh, always asking, gets most of the budget; the backfills still get some.
    assert refresh_wait < backfill_wait / 3, (refresh_wait, backfill_wait)
    assert counts[Lane.REFRESH] > counts[Lane.BACKFILL]
    grants = [t for _, times, _ in results for t in times]
    assert max_in_window(grants) <= rate


def test_a_fetch_goes_before_backfills_and_after_the_refresh(tmp_path):
    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 5.0)
    store.announce("refresh-waiter", Lane.REFRESH)
    assert store.more_urgent_waiting(Lane.FETCH) and store.more_urgent_waiting(Lane.BACKFILL)
    store.withdraw("refresh-waiter")
    store.announce("fetch-waiter", Lane.FETCH)
    assert store.more_urgent_waiting(Lane.BACKFILL) and not store.more_urgent_waiting(Lane.FETCH)
    store.close()


def test_a_waiter_that_died_holds_nobody_back_for_long(tmp_path):
    clock = [1000.0]
    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 5.0, clock=lambda: clock[0])
    store.announce("killed-refresh", Lane.REFRESH)  # its process died without withdrawing
    assert store.more_urgent_waiting(Lane.BACKFILL)
    clock[0] += STALE_AFTER + 0.1
    assert not store.more_urgent_waiting(Lane.BACKFILL)
    store.close()


def test_a_share_caps_one_caller_inside_the_budget(tmp_path):
    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 50.0)
    capped = CappedBudget(TokenBucket(5.0), SharedBudget(store, Lane.BACKFILL))
    grants = []
    until = time.time() + 2.0
    while time.time() < until:
        capped.acquire()
        grants.append(time.time())
    store.close()
    assert max_in_window(grants) <= 6  # the share's burst of one plus five a second
    assert 9 <= len(grants) <= 12
    assert capped.waited_seconds > 1.0


def test_threads_of_one_process_share_the_budget_too(tmp_path):
    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 20.0)
    grants: list[float] = []
    until = time.time() + 2.0

    def draw() -> None:
        budget = SharedBudget(store, Lane.BACKFILL)
        while time.time() < until:
            budget.acquire()
            grants.append(time.time())

    threads = [threading.Thread(target=draw) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert max_in_window(grants) <= 20 and len(grants) >= 0.8 * 20 * 2


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), 0, -1, "fast", "", None])
def test_rates_that_cannot_be_a_budget_are_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        check_rate(rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenBucket(rate)  # type: ignore[arg-type]


def test_the_store_is_the_data_roots_file_unless_told_otherwise(tmp_path):
    root = DataRoot(tmp_path / "root")
    store = open_store(None, root, 2.0)
    assert store.path == root.path / "state" / "budget.sqlite" and store.path.exists()
    store.close()
    other = open_store(str(tmp_path / "shared.sqlite"), root, 2.0)
    assert other.path == tmp_path / "shared.sqlite"
    other.close()
    with pytest.raises(ValueError, match="budget store"):
        open_store("redis://somewhere", root, 2.0)


def test_a_store_that_cannot_be_used_stops_requests_with_a_transient_error(tmp_path):
    from backfill_pipeline.collecting.collect import is_transient
    from backfill_pipeline.dashboard.budget import BudgetUnavailable

    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 5.0)
    store._bucket.conn.close()  # as a full disk or a lost database would leave it: unusable
    with pytest.raises(BudgetUnavailable, match="budget's store cannot be used") as caught:
        SharedBudget(store, Lane.BACKFILL).acquire()
    assert is_transient(caught.value)


def test_the_runs_of_one_backfill_draw_from_one_share(tmp_path):
    # Two runs (two stores on one file, as two processes have): 4 requests/s between them, the
    # slots handed out in turn whoever asks; another backfill's share is its own.
    path = tmp_path / "budget.sqlite"
    first, second = SqliteBudgetStore(path, 50.0), SqliteBudgetStore(path, 50.0)
    try:
        waits = [store.reserve("backfill:a", 250) for store in (first, second, first, second)]
        assert waits[0] == 0
        assert [round(w / 250) for w in waits] == [0, 1, 2, 3]
        assert second.reserve("backfill:b", 250) == 0
    finally:
        first.close()
        second.close()


def test_a_backfills_share_paces_all_its_runs_together(tmp_path):
    path = tmp_path / "budget.sqlite"
    stores = [SqliteBudgetStore(path, 100.0) for _ in range(2)]
    shares = [
        CappedBudget(SharedShare(s, "backfill:x", 10.0), SharedBudget(s, Lane.BACKFILL)) for s in stores
    ]
    grants: list[float] = []

    def draw(limiter) -> None:
        until = time.time() + 2.0
        while time.time() < until:
            limiter.acquire()
            grants.append(time.time())

    threads = [threading.Thread(target=draw, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    # 10/s together (not 10/s each), over 2 s, whichever of them asks.
    assert 19 <= len(grants) <= 23
    assert max_in_window(sorted(grants)) <= 11


def test_a_request_that_leaves_late_has_its_slot_stamped_at_its_send(tmp_path):
    """What happens between a grant and its send (a busy CPU) must not squeeze the spacing at
    the dashboard: the late request's slot moves to its send, and the next grant is a full
    spacing after that. A prompt send stays as it was; a grant no longer the newest is given up
    and a new slot waited for."""
    now = [1_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 2.0, clock=lambda: now[0])
    first, second = (SharedBudget(store, Lane.BACKFILL, sleep=sleep, clock=lambda: now[0]) for _ in range(2))
    first.acquire()
    granted = store.last_grant_ms
    now[0] += 0.2  # the request leaves 200 ms after its grant
    first.sending()
    second.acquire()
    # (pyrate-limiter's wait may round up by a millisecond or two)
    assert store.spacing_ms <= store.last_grant_ms - (granted + 200) < store.spacing_ms + 10
    # Sent at once: nothing moves.
    second.sending()
    sent = store.last_grant_ms
    first.acquire()
    assert store.spacing_ms <= store.last_grant_ms - sent < store.spacing_ms + 10
    # A grant overtaken by a newer one (its send later than a whole spacing) is given up: the
    # request waits for a new slot, a spacing after the newer grant, instead of going out with it.
    now[0] += 1.0
    second.acquire()
    newest = store.last_grant_ms
    first.sending()
    assert store.last_grant_ms - newest >= store.spacing_ms
    store.close()


def test_a_late_send_whose_restamp_fails_waits_for_a_new_slot_instead_of_failing(tmp_path, monkeypatch):
    """Only moving the grant failed (a locked file): the request is not lost, it takes a new slot."""
    now = [1_000_000.0]
    store = SqliteBudgetStore(tmp_path / "budget.sqlite", 2.0, clock=lambda: now[0])
    budget = SharedBudget(
        store, Lane.BACKFILL, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
    )
    budget.acquire()
    first = store.last_grant_ms

    def locked(granted_ms: int) -> bool:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "restamp", locked)
    now[0] += 0.2
    budget.sending()  # no BudgetUnavailable
    assert store.last_grant_ms - first >= store.spacing_ms, "a new slot, a spacing after the old one"
    store.close()


def test_the_deployments_rate_now_is_read_from_the_budget_without_writing(tmp_path):
    root = DataRoot(tmp_path)
    assert recent_rate(None, root) == 0.0 and not root.budget_file.exists()  # never used
    store = SqliteBudgetStore(root.budget_file, 1000.0)
    now_ms = store.now_ms()
    for i in range(30):  # 30 grants within the last 10 s (5 s from its edge: a slow read still counts them)
        assert store.try_grant(now_ms - 5000 + i * 150) == 0
    before = root.budget_file.stat().st_mtime_ns
    assert recent_rate(None, root, seconds=10) == 3.0
    assert root.budget_file.stat().st_mtime_ns == before
    # More grants than LEAK_EVERY stay readable for a minute: the leak keeps HISTORY_MS.
    start = store.now_ms()
    assert all(store.try_grant(start + 10 + i * 5) == 0 for i in range(LEAK_EVERY * 2))
    assert recent_rate(None, root, seconds=10) * 10 == 30 + LEAK_EVERY * 2
    store.close()
    # A file that is not a budget: an error for the caller to say "not known", nothing written.
    bad = tmp_path / "not-a-budget.sqlite"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        recent_rate(str(bad), root)
    assert bad.read_bytes() == b"garbage" * 100


def _open_and_grant(path: str, out) -> None:
    try:
        store = SqliteBudgetStore(Path(path), 1000.0)
        store.try_grant()
        store.close()
        out.put("ok")
    except Exception as exc:  # what a run would have died of
        out.put(repr(exc))


def test_processes_opening_a_new_budget_at_once_all_open_it(tmp_path):
    """Each fresh file is opened by six processes together: the first switches it to WAL while
    the others arrive (CI saw 'database is locked' from that race)."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        out = ctx.Queue()
        path = str(tmp_path / f"budget-{attempt}.sqlite")
        procs = [ctx.Process(target=_open_and_grant, args=(path, out)) for _ in range(6)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=10)
        assert results == ["ok"] * 6, results
