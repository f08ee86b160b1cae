"""The deployment's one budget at the dashboard: every request of every process draws from it.

The pacing is pyrate-limiter's sliding-window log kept in a store every process shares (a SQLite
file under the data root on one machine, PostgreSQL across machines). pyrate-limiter has no
notion of precedence, so lanes are ours: a caller of a more urgent lane (the daily refresh) that
is waiting announces itself in a small table beside the bucket, and callers of later lanes
(backfills) let it go first.
"""

from __future__ import annotations

import fcntl
import ipaddress
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from enum import IntEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from pyrate_limiter import Rate, RateItem, SQLiteBucket, SQLiteQueries

from ..dataroot import DataRoot

# Requests are spaced 1/rate apart plus this margin: a request granted at t reaches the dashboard
# a few milliseconds later, and that delay varies, so a spacing of exactly 1/rate lets two
# requests land in a window that should hold one. The margin is what budget + 1 requests in a
# row may be squeezed by and still span a second: 8% is 80 ms. 5% (50 ms) was not enough on a
# loaded 2-core machine: tests/test_e2e_budget.py saw 3 requests within 0.989 s and 0.981 s at
# 2/s in CI (61 and 69 ms squeezed), once 0.986 s even at 8%. The sandbox then stamped a request
# when its thread read it; it now takes the kernel's arrival time, so its own delays no longer
# count, and the margin is left at 8% until CI shows what our side alone needs.
GUARD = 0.08
# A request leaving this long after its grant has its slot stamped again at its send (see
# SharedBudget.sending); below it, one more write to the store per request buys nothing.
LATE_MS = 3
# A request overtaken by a newer grant waits for a new slot at most this many times.
MAX_REGRANTS = 3
# A waiting caller of an urgent lane renews its announcement this often; one not renewed for
# STALE_AFTER seconds (its process died) no longer holds the others back.
POLL_SECONDS = 0.05
STALE_AFTER = 2.0
# Old grants are removed from the bucket every this many acquisitions, keeping the last
# HISTORY_MS of them: what the console reads as the deployment's requests/s now.
LEAK_EVERY = 64
HISTORY_MS = 60_000
GRANTS = "budget_grants"
# PostgreSQL: pyrate-limiter's bucket table is named ratelimit___<this>.
GRANTS_PG = "budget"
# The backfills' shares (next free slot per backfill); one unused this long is deleted.
SHARES = "budget_shares"
SHARE_FORGET_MS = 3_600_000


class BudgetUnavailable(OSError):
    """The budget's store cannot be used (a full disk, a lost database): no request goes out
    without the budget, and the attempt is transient (an OSError, as our other I/O trouble)."""


class Lane(IntEnum):
    """Who goes first when several wait for the budget: lower values first."""

    REFRESH = 0  # the daily refresh: the site shows today's numbers
    FETCH = 1  # an operator's one-off `fetch`: someone is waiting at a terminal
    BACKFILL = 2  # backfills and heals: history can wait a second


class Limiter(Protocol):
    """What the HTTP layer needs of a limiter."""

    @property
    def waited_seconds(self) -> float:
        """Seconds waited so far."""
        ...

    def acquire(self) -> float:
        """Wait for permission to send one request; the seconds waited."""
        ...

    def sending(self) -> None:
        """The request granted last is going out now (its slot is stamped no earlier)."""
        ...


def check_rate(rate: float | str, what: str = "rate") -> float:
    """`rate` when it is a finite number above 0; ValueError naming `what` otherwise."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of requests per second, got {rate!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a finite number of requests per second above 0, got {rate!r}")
    return value


def spacing_ms(rate: float) -> int:
    """Milliseconds between two requests at `rate`, with the guard."""
    return max(1, math.ceil(1000.0 / check_rate(rate) * (1 + GUARD)))


class BudgetStore(Protocol):
    """Where the budget's grants and the urgent lanes' announcements live."""

    last_grant_ms: int

    def try_grant(self, now_ms: int | None = None) -> int:
        """Take the next slot if it is free: 0 (its time in `last_grant_ms`); else the
        milliseconds until it may be. Without `now_ms` the slot is stamped once the store is held."""
        ...

    def restamp(self, granted_ms: int) -> bool:
        """The grant stamped `granted_ms` goes out only now: while it is still the newest, its
        stamp moves to now, so the next slot is a full spacing after the request's real start.
        False when a newer grant was given meanwhile (nothing moved)."""
        ...

    def announce(self, waiter: str, lane: Lane) -> None:
        """Say that `waiter` of `lane` is waiting (renewed while it waits)."""
        ...

    def withdraw(self, waiter: str) -> None:
        """`waiter` no longer waits."""
        ...

    def more_urgent_waiting(self, lane: Lane) -> bool:
        """True when a caller of an earlier lane is waiting now."""
        ...

    def now_ms(self) -> int:
        """The store's clock, milliseconds."""
        ...

    def reserve(self, name: str, spacing_ms: int) -> int:
        """Book the next slot of the share `name` (one every `spacing_ms`, kept in the store, so
        every run of one backfill draws from it): the milliseconds until the booked slot."""
        ...

    @property
    def spacing_ms(self) -> int:
        """Milliseconds between two grants."""
        ...


class ProcessLock:
    """A lock across threads and processes: a thread lock, then a blocking flock on a file.

    pyrate-limiter's own file lock (filelock) polls every 50 ms while another process holds it,
    which at every slot boundary delayed most waiters by that much (measured by
    scripts/bench_budget.py: 50 ms per request with four processes); a blocking flock is woken
    by the kernel as soon as the holder lets go."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._thread = threading.RLock()
        self._depth = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock, waiting as long as it takes."""
        self._thread.acquire()
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return True

    def release(self) -> None:
        """Let the lock go."""
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self) -> None:
        """Close the lock file."""
        os.close(self._fd)


def _bucket(path: Path, rate: Rate, lock: ProcessLock) -> SQLiteBucket:
    """pyrate-limiter's SQLite bucket over `path`, guarded by `lock` (as its init_from_file does
    with a file lock, but with ours)."""
    conn = sqlite3.connect(path, isolation_level="DEFERRED", timeout=10, check_same_thread=False)
    with lock:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(SQLiteQueries.CREATE_BUCKET_TABLE.format(table=GRANTS))
        conn.execute(
            SQLiteQueries.CREATE_INDEX_ON_TIMESTAMP.format(index_name=f"idx_{GRANTS}_ts", table_name=GRANTS)
        )
        conn.commit()
    return SQLiteBucket([rate], conn, GRANTS, lock=lock)


class SqliteBudgetStore:
    """The budget in a SQLite file (WAL, a blocking file lock around each grant): one machine."""

    def __init__(self, path: Path, rate: float, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rate = Rate(1, spacing_ms(rate))
        self._clock = clock
        self._file_lock = ProcessLock(path.with_name(path.name + ".lock"))
        self._bucket = _bucket(path, self.rate, self._file_lock)
        # The lanes' announcements live in a file of their own: a write there between the
        # bucket's count and its insert would make SQLite refuse the insert (a stale snapshot).
        lanes = path.with_name(path.stem + "-lanes" + path.suffix)
        self._lanes = sqlite3.connect(lanes, timeout=10, isolation_level=None, check_same_thread=False)
        # Under the file lock, as the bucket's own set-up: processes opening a new budget at once
        # raced to switch the file to WAL, and SQLite refuses that change ("database is locked")
        # without waiting (seen in CI with four clients starting together).
        with self._file_lock:
            self._lanes.execute("PRAGMA journal_mode=WAL")
            self._lanes.execute(
                "CREATE TABLE IF NOT EXISTS budget_waiters (waiter TEXT PRIMARY KEY, lane INTEGER, seen REAL)"
            )
            self._lanes.execute(
                f"CREATE TABLE IF NOT EXISTS {SHARES} (name TEXT PRIMARY KEY, next_ms INTEGER)"
            )
        self._lock = threading.Lock()
        self._grants = 0
        self.last_grant_ms = 0

    @property
    def spacing_ms(self) -> int:
        """Milliseconds between two grants."""
        return self.rate.interval

    def now_ms(self) -> int:
        """Wall-clock milliseconds: every process on the machine shares it."""
        return int(self._clock() * 1000)

    def try_grant(self, now_ms: int | None = None) -> int:
        """Take the next slot if it is free: 0; else the milliseconds until it may be."""
        # The file lock first (the bucket takes it again, reentrant): a slot stamped before a
        # wait for the lock would be stamped earlier than its request can go out.
        with self._lock, self._file_lock:
            stamp = self.now_ms() if now_ms is None else now_ms
            item = RateItem("dashboard", stamp)
            if self._bucket.put(item):
                self.last_grant_ms = stamp
                self._grants += 1
                if self._grants % LEAK_EVERY == 0:
                    self._bucket.leak(stamp - HISTORY_MS)
                return 0
            waiting = self._bucket.waiting(item)
            assert isinstance(waiting, int)  # the SQLite bucket is synchronous
            return max(1, waiting)

    def restamp(self, granted_ms: int) -> bool:
        """Move the grant stamped `granted_ms` to now while it is the newest grant; False when a
        newer one was given meanwhile."""
        with self._lock, self._file_lock:
            stamp = self.now_ms()
            if stamp <= granted_ms:
                return True
            conn = self._bucket.conn
            try:
                moved = conn.execute(
                    f"UPDATE {GRANTS} SET item_timestamp = ? WHERE item_timestamp = ? "
                    f"AND NOT EXISTS (SELECT 1 FROM {GRANTS} WHERE item_timestamp > ?)",
                    (stamp, granted_ms, granted_ms),
                ).rowcount
                conn.commit()
            except BaseException:
                # Never leave the shared file's write lock held by a failed transaction.
                conn.rollback()
                raise
            return moved > 0

    def announce(self, waiter: str, lane: Lane) -> None:
        """Say that `waiter` of `lane` is waiting (renewed while it waits)."""
        with self._lock:
            self._lanes.execute(
                "INSERT INTO budget_waiters VALUES (?, ?, ?) "
                "ON CONFLICT(waiter) DO UPDATE SET seen = excluded.seen",
                (waiter, int(lane), self._clock()),
            )

    def withdraw(self, waiter: str) -> None:
        """`waiter` no longer waits (and announcements nobody renewed are forgotten)."""
        with self._lock:
            self._lanes.execute(
                "DELETE FROM budget_waiters WHERE waiter = ? OR seen < ?",
                (waiter, self._clock() - STALE_AFTER),
            )

    def reserve(self, name: str, spacing_ms: int) -> int:
        """Book the next slot of the share `name`: the milliseconds until it."""
        with self._lock:
            now = self.now_ms()
            self._lanes.execute("BEGIN IMMEDIATE")
            try:
                # Slots older than a spacing are not saved up: a share never bursts.
                row = self._lanes.execute(
                    f"INSERT INTO {SHARES} VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                    "next_ms = max(next_ms, ?) + ? RETURNING next_ms",
                    (name, now + spacing_ms, now, spacing_ms),
                ).fetchone()
                self._lanes.execute(f"DELETE FROM {SHARES} WHERE next_ms < ?", (now - SHARE_FORGET_MS,))
                self._lanes.execute("COMMIT")
            except BaseException:
                self._lanes.execute("ROLLBACK")
                raise
        return max(0, int(row[0]) - spacing_ms - now)

    def more_urgent_waiting(self, lane: Lane) -> bool:
        """True when a caller of an earlier lane is waiting now."""
        with self._lock:
            row = self._lanes.execute(
                "SELECT 1 FROM budget_waiters WHERE lane < ? AND seen >= ? LIMIT 1",
                (int(lane), self._clock() - STALE_AFTER),
            ).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the connections."""
        self._bucket.close()
        self._lanes.close()
        self._file_lock.close()


class SharedBudget:
    """One caller's door to the deployment's budget, in its lane."""

    def __init__(
        self,
        store: BudgetStore,
        lane: Lane,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.lane = lane
        self._sleep = sleep
        self._clock = clock
        self._waiter = uuid.uuid4().hex
        self.waited_seconds = 0.0
        self._granted_ms: int | None = None
        self._granted_at = 0.0

    def acquire(self) -> float:
        """Wait until the budget has a slot and no more urgent lane waits; the seconds waited.
        BudgetUnavailable when its store cannot be used."""
        try:
            return self._acquire()
        except BudgetUnavailable:
            raise
        except Exception as exc:
            # sqlite3 and psycopg errors alike ("database or disk is full", a lost connection).
            raise BudgetUnavailable(f"the dashboard budget's store cannot be used: {exc}") from exc

    def _acquire(self) -> float:
        started = self._clock()
        announced = False
        while True:
            if self.lane > Lane.REFRESH and self.store.more_urgent_waiting(self.lane):
                # The urgent caller takes the next slot: look again about when it has.
                wait_ms = min(self.store.spacing_ms, int(POLL_SECONDS * 1000) * 4)
            else:
                # Taken before the attempt: the stamp is no earlier, so lateness is never missed.
                attempt_at = self._clock()
                wait_ms = self.store.try_grant()
                if wait_ms == 0:
                    break
            if self.lane < Lane.BACKFILL:
                # Renewed on every turn, so the later lanes keep yielding while this one waits.
                self.store.announce(self._waiter, self.lane)
                announced = True
                wait_ms = min(wait_ms, int(POLL_SECONDS * 1000) * 4)
            self._sleep(wait_ms / 1000)
        self._granted_ms = self.store.last_grant_ms
        self._granted_at = attempt_at
        if announced:
            self.store.withdraw(self._waiter)
        waited = self._clock() - started
        self.waited_seconds += waited
        return waited

    def sending(self) -> None:
        """Stamp the last grant at this moment when the request is leaving late: what happens
        between a grant and its send (the lane's bookkeeping, a busy CPU) must not squeeze the
        spacing at the dashboard. A grant so late that a newer one was given meanwhile is given
        up, and a new slot waited for. BudgetUnavailable when the store cannot be used."""
        for _ in range(MAX_REGRANTS):
            granted, self._granted_ms = self._granted_ms, None
            # Lateness by this process's own clock: asking the store's (a database round trip on
            # PostgreSQL) for every request would cost more than the rule saves.
            if granted is None or (self._clock() - self._granted_at) * 1000 < LATE_MS:
                return
            try:
                if self.store.restamp(granted):
                    return
            except Exception:
                # The grant stands; only moving it failed (a locked file, a pool hiccup). As for
                # an overtaken grant, a new slot is waited for: acquire() is BudgetUnavailable
                # when the store is really gone.
                pass
            self.acquire()
        # Overtaken again and again (a machine too busy to send on time): the request goes out
        # on the last grant taken, unchecked for lateness.
        self._granted_ms = None


class SharedShare:
    """A backfill's share of the budget, kept in the budget's store: all its runs together draw
    at most `rate` requests/s, whichever of them is fetching (none waits for a fixed split)."""

    def __init__(
        self,
        store: BudgetStore,
        name: str,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.name = name
        # No guard here: the budget's spacing keeps the dashboard's windows; this is fairness.
        self.spacing_ms = max(1, math.ceil(1000.0 / check_rate(rate)))
        self._sleep = sleep
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Wait for this share's next slot; the seconds waited."""
        try:
            wait_ms = self.store.reserve(self.name, self.spacing_ms)
        except Exception as exc:
            raise BudgetUnavailable(f"the dashboard budget's store cannot be used: {exc}") from exc
        if wait_ms:
            self._sleep(wait_ms / 1000)
        self.waited_seconds += wait_ms / 1000
        return wait_ms / 1000

    def sending(self) -> None:
        """Nothing to do: a share is fairness, the budget keeps the spacing."""


class CappedBudget:
    """A share inside the budget: at most `share` requests/s for this caller, then the budget."""

    def __init__(self, share: Limiter, budget: Limiter) -> None:
        self.share = share
        self.budget = budget

    @property
    def waited_seconds(self) -> float:
        """Seconds waited on the share and on the budget."""
        return self.share.waited_seconds + self.budget.waited_seconds

    def acquire(self) -> float:
        """Wait for the share, then for the budget."""
        return self.share.acquire() + self.budget.acquire()

    def sending(self) -> None:
        """The budget's grant is going out now."""
        self.budget.sending()


class PostgresBudgetStore:
    """The budget in PostgreSQL (pyrate-limiter's Postgres bucket, the database's clock): every
    machine whose runs reach the same database shares it."""

    def __init__(self, url: str, rate: float, *, table: str = GRANTS_PG) -> None:
        # Imported here: only a deployment on PostgreSQL needs the driver loaded.
        from psycopg_pool import ConnectionPool
        from pyrate_limiter import PostgresBucket

        self.rate = Rate(1, spacing_ms(rate))
        self._pool = ConnectionPool(url, min_size=1, max_size=4, open=True, kwargs={"autocommit": False})
        self._bucket = PostgresBucket(self._pool, table, [self.rate])
        # The bucket's own table (pyrate-limiter prefixes the name it is given).
        self._grants_table = self._bucket._full_tbl
        self._lock = threading.Lock()
        self._grants = 0
        self.last_grant_ms = 0
        with self._pool.connection() as conn:
            # Processes starting together would race on CREATE TABLE IF NOT EXISTS (a duplicate
            # key in pg_type): one at a time, as pyrate-limiter does for its own table.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('budget_waiters'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS budget_waiters "
                "(waiter TEXT PRIMARY KEY, lane INTEGER NOT NULL, seen TIMESTAMPTZ NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SHARES} (name TEXT PRIMARY KEY, next_ms BIGINT NOT NULL)"
            )

    @property
    def spacing_ms(self) -> int:
        """Milliseconds between two grants."""
        return self.rate.interval

    def now_ms(self) -> int:
        """The database's clock, milliseconds: one clock for every machine."""
        now = self._bucket.now()
        assert isinstance(now, int)
        return now

    def try_grant(self, now_ms: int | None = None) -> int:
        """Take the next slot if it is free: 0; else the milliseconds until it may be."""
        stamp = self.now_ms() if now_ms is None else now_ms
        item = RateItem("dashboard", stamp)
        with self._lock:
            if self._bucket.put(item):
                self.last_grant_ms = stamp
                self._grants += 1
                if self._grants % LEAK_EVERY == 0:
                    self._bucket.leak(stamp - HISTORY_MS)
                return 0
            waiting = self._bucket.waiting(item)
            assert isinstance(waiting, int)
            # The bucket was locked by another machine's grant (NOWAIT): look again at once.
            return max(1, waiting)

    def restamp(self, granted_ms: int) -> bool:
        """Move the grant stamped `granted_ms` to the database's now while it is the newest grant;
        False when a newer one was given meanwhile."""
        from psycopg import sql

        table = sql.Identifier(self._grants_table)
        with self._pool.connection() as conn:
            # The bucket's column is a TIMESTAMP written as TO_TIMESTAMP(ms / 1000): matched alike.
            moved = conn.execute(
                sql.SQL(
                    "UPDATE {t} SET item_timestamp = clock_timestamp() "
                    "WHERE item_timestamp = TO_TIMESTAMP(%s) AND clock_timestamp() > item_timestamp "
                    "AND NOT EXISTS (SELECT 1 FROM {t} WHERE item_timestamp > TO_TIMESTAMP(%s))"
                ).format(t=table),
                (granted_ms / 1000, granted_ms / 1000),
            ).rowcount
            if moved:
                return True
            newer = conn.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE item_timestamp > TO_TIMESTAMP(%s))").format(
                    t=table
                ),
                (granted_ms / 1000,),
            ).fetchone()
        return not (newer and newer[0])

    def reserve(self, name: str, spacing_ms: int) -> int:
        """Book the next slot of the share `name` (the database's clock): the milliseconds until it."""
        with self._pool.connection() as conn:
            row = conn.execute(
                f"WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) "
                f"INSERT INTO {SHARES} SELECT %s, ms + %s FROM now ON CONFLICT (name) DO UPDATE SET "
                f"next_ms = GREATEST({SHARES}.next_ms, (SELECT ms FROM now)) + %s "
                "RETURNING next_ms, (SELECT ms FROM now)",
                (name, spacing_ms, spacing_ms),
            ).fetchone()
            assert row is not None  # INSERT ... RETURNING gives one row
            conn.execute(
                f"DELETE FROM {SHARES} WHERE next_ms < %s",
                (int(row[1]) - SHARE_FORGET_MS,),
            )
        return max(0, int(row[0]) - spacing_ms - int(row[1]))

    def announce(self, waiter: str, lane: Lane) -> None:
        """Say that `waiter` of `lane` is waiting (renewed while it waits)."""
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO budget_waiters VALUES (%s, %s, clock_timestamp()) "
                "ON CONFLICT (waiter) DO UPDATE SET seen = excluded.seen",
                (waiter, int(lane)),
            )

    def withdraw(self, waiter: str) -> None:
        """`waiter` no longer waits (and announcements nobody renewed are forgotten)."""
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM budget_waiters WHERE waiter = %s "
                "OR seen < clock_timestamp() - make_interval(secs => %s)",
                (waiter, STALE_AFTER),
            )

    def more_urgent_waiting(self, lane: Lane) -> bool:
        """True when a caller of an earlier lane is waiting now."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM budget_waiters WHERE lane < %s "
                "AND seen >= clock_timestamp() - make_interval(secs => %s) LIMIT 1",
                (int(lane), STALE_AFTER),
            ).fetchone()
        return row is not None

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()


def recent_rate(where: str | None, root: DataRoot, seconds: float = 10.0) -> float:
    """Requests/s the whole deployment was granted over the last `seconds` (at most HISTORY_MS),
    read without writing anything: 0 when the budget has never been used. OSError (or the
    database driver's error) when the store cannot be read."""
    window_ms = int(min(seconds * 1000, HISTORY_MS))
    where = shared_store(where)
    if is_postgres_url(where):
        count = _recent_in_postgres(where, window_ms)  # type: ignore[arg-type]
    else:
        count = _recent_in_sqlite(root.budget_file if where is None else Path(where), window_ms)
    return count / (window_ms / 1000)


def _recent_in_sqlite(path: Path, window_ms: int) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            f"SELECT COUNT(*) FROM {GRANTS} WHERE item_timestamp >= ?",
            (int(time.time() * 1000) - window_ms,),
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        conn.close()
    return int(row[0]) if row else 0


# A status page's query of the database: answered within 2 s, or "not known".
STATUS_QUERY_OPTIONS = "-c statement_timeout=2000"


def _recent_in_postgres(url: str, window_ms: int) -> int:
    import psycopg
    from psycopg import sql

    name = f"ratelimit___{GRANTS_PG}"
    # A status page waits on this: a database that does not answer is "not known" in 2 s.
    with psycopg.connect(
        url, connect_timeout=2, autocommit=True, options="-c statement_timeout=2000"
    ) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(
            sql.SQL(
                "SELECT COUNT(*) FROM {t} WHERE item_timestamp >= now() - make_interval(secs => %s)"
            ).format(t=sql.Identifier(name)),
            (window_ms / 1000,),
        ).fetchone()
    return int(row[0]) if row else 0


def open_store(where: str | None, root: DataRoot, rate: float) -> SqliteBudgetStore | PostgresBudgetStore:
    """The budget's store: a `postgresql://` URL, a SQLite file path, or None for the data root's
    own SQLite file; Dagster's database when none is given and its instance is on PostgreSQL
    (`shared_store`)."""
    where = shared_store(where)
    if where is None:
        return SqliteBudgetStore(root.budget_file, rate)
    if is_postgres_url(where):
        return PostgresBudgetStore(where, rate)
    if "://" in where:
        raise ValueError(f"budget store {where!r}: give a SQLite file path or a postgresql:// URL")
    return SqliteBudgetStore(Path(where), rate)


# -- where the shared state lives -----------------------------------------------------------------

POSTGRES_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)
_HOST = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


def is_postgres_url(where: str | None) -> bool:
    """Whether a store setting names a PostgreSQL database (else a SQLite file, or the default)."""
    return where is not None and where.startswith(("postgresql://", "postgres://"))


def dagster_postgres_url(env: Mapping[str, str]) -> str | None:
    """The `postgresql://` URL of Dagster's own database when its instance is on PostgreSQL
    (DAGSTER_PG_HOST set, with the other DAGSTER_PG_* variables as deploy/dagster-postgres.yaml
    reads them); None otherwise. ValueError naming a variable that is missing or malformed."""
    host = env.get("DAGSTER_PG_HOST", "").strip()
    if not host:
        return None
    unset = [name for name in POSTGRES_VARIABLES if name not in env]
    if unset:
        raise ValueError(
            f"DAGSTER_PG_HOST is set, so Dagster's storage is PostgreSQL: set {', '.join(unset)} too"
        )
    port = env["DAGSTER_PG_PORT"].strip()
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"DAGSTER_PG_PORT={port!r} is not a port number")
    if _HOST.fullmatch(host):
        netloc_host = host
    else:
        try:
            netloc_host = f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise ValueError(f"DAGSTER_PG_HOST={host!r} is not a host name or address") from None
    user, password = quote(env["DAGSTER_PG_USERNAME"], safe=""), quote(env["DAGSTER_PG_PASSWORD"], safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    return f"postgresql://{credentials}{netloc_host}:{port}/{quote(env['DAGSTER_PG_DB'], safe='')}"


def shared_store(where: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Where the budget and the breaker are kept: the setting when given, else Dagster's own
    database when its instance is on PostgreSQL, else None (the data root's files). Resolved where
    the stores are opened, so the database's password is never a setting."""
    if where is not None:
        return where
    return dagster_postgres_url(os.environ if env is None else env)
