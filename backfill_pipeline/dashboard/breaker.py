"""A circuit breaker whose state every process shares: a small JSON file under the data root
(every process on the machine), or a row in PostgreSQL (every machine whose runs reach the
database, the same one the budget uses when it is kept there).

A store that cannot be used (a lost database) is BreakerUnavailable, an OSError: the attempt is
transient, and no request goes out without the breaker's say. Recording an answer in a store that
cannot be used is logged and skipped: the answer itself is good.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from ..dataroot import DataRoot
from ..files import atomic_write_bytes
from .budget import STATUS_QUERY_OPTIONS, is_postgres_url, shared_store
from .errors import CircuitOpen

log = logging.getLogger(__name__)
# Seconds a breaker operation waits for the database before it is BreakerUnavailable.
DB_TIMEOUT = 5.0

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class BreakerUnavailable(OSError):
    """The breaker's shared store cannot be used; transient, as our other I/O trouble."""


@dataclass
class BreakerState:
    """What the state file holds."""

    state: str = CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    probe_started_at: float | None = None


class BreakerStore(Protocol):
    """Where the shared state lives: read it, or change it atomically against every other process."""

    def read(self) -> BreakerState:
        """The current state."""
        ...

    def update(self, change: Callable[[BreakerState], BreakerState | None]) -> BreakerState:
        """Apply `change` to the current state under the store's lock (None: no write); the result.
        `change` runs once."""
        ...

    def close(self) -> None:
        """Release what the store holds open."""
        ...


class FileBreakerStore:
    """`<root>/state/breaker.json` under a file lock: every process on this machine."""

    def __init__(self, root: DataRoot) -> None:
        self.path = root.breaker_state
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(root.breaker_lock)

    def _read(self) -> BreakerState:
        try:
            return BreakerState(**json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return BreakerState()

    def read(self) -> BreakerState:
        """The current state (closed when there is no readable file)."""
        with self._lock:
            return self._read()

    def update(self, change: Callable[[BreakerState], BreakerState | None]) -> BreakerState:
        """Read, change and write under the file lock."""
        with self._lock:
            current = self._read()
            changed = change(BreakerState(**asdict(current)))
            if changed is None:
                return current
            atomic_write_bytes(self.path, json.dumps(asdict(changed)).encode(), durable=False)
            return changed

    def close(self) -> None:
        """Nothing is held open between calls."""


class PostgresBreakerStore:
    """One row of `backfill_breaker` in PostgreSQL, changed under a row lock: every machine whose
    runs reach the database. The clock stays each process's own (opened_at is epoch seconds)."""

    def __init__(self, url: str) -> None:
        # Imported here: only a deployment on PostgreSQL needs the driver loaded.
        from psycopg_pool import ConnectionPool

        try:
            # A pool, as the budget's: every request asks the breaker first.
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=2,
                open=True,
                timeout=DB_TIMEOUT,
                kwargs={"autocommit": False, "connect_timeout": int(DB_TIMEOUT)},
            )
            with self._pool.connection() as conn:
                # Processes starting together would race on CREATE TABLE IF NOT EXISTS.
                conn.execute(f"SELECT pg_advisory_xact_lock(hashtext('{BREAKER_TABLE}'))")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {BREAKER_TABLE} "
                    "(name TEXT PRIMARY KEY, state JSONB NOT NULL)"
                )
                conn.execute(
                    f"INSERT INTO {BREAKER_TABLE} (name, state) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (BREAKER_ROW, json.dumps(asdict(BreakerState()))),
                )
        except Exception as exc:
            raise BreakerUnavailable(f"the dashboard breaker's store cannot be used: {exc}") from exc

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    def read(self) -> BreakerState:
        """The current state."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(
                    f"SELECT state FROM {BREAKER_TABLE} WHERE name = %s", (BREAKER_ROW,)
                ).fetchone()
        except Exception as exc:
            raise BreakerUnavailable(f"the dashboard breaker's store cannot be read: {exc}") from exc
        return _state(row[0]) if row else BreakerState()

    def update(self, change: Callable[[BreakerState], BreakerState | None]) -> BreakerState:
        """Read under `SELECT ... FOR UPDATE`, change, write, commit: one process at a time."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(
                    f"SELECT state FROM {BREAKER_TABLE} WHERE name = %s FOR UPDATE", (BREAKER_ROW,)
                ).fetchone()
                current = _state(row[0]) if row else BreakerState()
                changed = change(BreakerState(**asdict(current)))
                if changed is None:
                    return current
                conn.execute(
                    f"INSERT INTO {BREAKER_TABLE} (name, state) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state",
                    (BREAKER_ROW, json.dumps(asdict(changed))),
                )
                return changed
        except Exception as exc:
            raise BreakerUnavailable(f"the dashboard breaker's store cannot be used: {exc}") from exc


BREAKER_TABLE = "backfill_breaker"
BREAKER_ROW = "dashboard"


def _state(value: object) -> BreakerState:
    try:
        data = json.loads(value) if isinstance(value, str | bytes) else value
        return BreakerState(**data)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return BreakerState()


def open_breaker_store(where: str | None, root: DataRoot | Path | str) -> BreakerStore:
    """The breaker's store beside the budget's (`budget.shared_store`): PostgreSQL for a
    `postgresql://` URL, the data root's file otherwise."""
    url = shared_store(where)
    if is_postgres_url(url):
        return PostgresBreakerStore(url)  # type: ignore[arg-type]
    return FileBreakerStore(DataRoot.of(root))


def read_breaker_state(where: str | None, root: DataRoot | Path | str) -> str:
    """The shared state's name, read without writing or creating anything (for status pages):
    a database that does not answer fails within 2 s."""
    url = shared_store(where)
    if url is None or not is_postgres_url(url):
        try:
            return BreakerState(**json.loads(DataRoot.of(root).breaker_state.read_text())).state
        except FileNotFoundError:
            return CLOSED
        except (ValueError, TypeError):
            return CLOSED  # as the store reads an unreadable file
    import psycopg

    with psycopg.connect(url, connect_timeout=2, autocommit=True, options=STATUS_QUERY_OPTIONS) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (BREAKER_TABLE,)).fetchone()
        if found is None or found[0] is None:
            return CLOSED
        row = conn.execute(f"SELECT state FROM {BREAKER_TABLE} WHERE name = %s", (BREAKER_ROW,)).fetchone()
    return _state(row[0]).state if row else CLOSED


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive retryable failures; probes after `cooldown` s."""

    def __init__(
        self,
        root: DataRoot | Path | str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.time,
        shared_store: str | None = None,
    ) -> None:
        self.store = open_breaker_store(shared_store, root)
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock

    def state(self) -> BreakerState:
        """The current shared state."""
        return self.store.read()

    def close(self) -> None:
        """Release the store's connections (PostgreSQL)."""
        self.store.close()

    def __enter__(self) -> CircuitBreaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def retry_in(self) -> float:
        """Seconds until a request may go again: 0 unless open and still cooling down."""
        s = self.state()
        if s.state != OPEN:
            return 0.0
        return max(0.0, (s.opened_at or 0) + self.cooldown - self._clock())

    def before_request(self) -> None:
        """Raise CircuitOpen while open; let exactly one probe through once the cool-down ends."""
        refused: list[CircuitOpen] = []

        def change(s: BreakerState) -> BreakerState | None:
            now = self._clock()
            if s.state == CLOSED:
                return None
            if s.state == OPEN:
                remaining = (s.opened_at or 0) + self.cooldown - now
                if remaining > 0:
                    refused.append(
                        CircuitOpen(
                            f"dashboard circuit open after {s.consecutive_failures} failures; "
                            f"next probe in {remaining:.1f}s",
                            retry_in=remaining,
                        )
                    )
                    return None
                s.state, s.probe_started_at = HALF_OPEN, now
                return s
            # Half-open: one probe is in flight; a probe that never reported back is given up on.
            if s.probe_started_at is not None and now - s.probe_started_at < self.cooldown:
                refused.append(CircuitOpen("dashboard circuit half-open: a probe is in flight", retry_in=1.0))
                return None
            s.probe_started_at = now
            return s

        try:
            self.store.update(change)
        except BreakerUnavailable as exc:
            log.warning("breaker: a failure not recorded: %s", exc)
        if refused:
            raise refused[0]

    def record_success(self) -> None:
        """The dashboard answered: reset the count, and close a half-open circuit (the probe).

        A late answer to a request sent before the circuit opened does not close it."""
        try:
            self.store.update(lambda s: BreakerState() if s.state != OPEN and s != BreakerState() else None)
        except BreakerUnavailable as exc:
            log.warning("breaker: a success not recorded: %s", exc)

    def record_failure(self) -> None:
        """A retryable failure: count it, and open the circuit at the threshold or a failed probe."""

        def change(s: BreakerState) -> BreakerState:
            s.consecutive_failures += 1
            if s.state == HALF_OPEN or s.consecutive_failures >= self.failure_threshold:
                s.state, s.opened_at, s.probe_started_at = OPEN, self._clock(), None
            return s

        try:
            self.store.update(change)
        except BreakerUnavailable as exc:
            log.warning("breaker: a failure not recorded: %s", exc)
