"""A circuit breaker whose state every process shares: a small JSON file under the data root
(every process on the machine), or a row in PostgreSQL (every machine whose runs reach the
database, the same one the budget uses when it is kept there)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from ..dataroot import DataRoot
from ..files import atomic_write_bytes
from .errors import CircuitOpen

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


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
        """Apply `change` to the current state under the store's lock (None: no write); the result."""
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

    TABLE = "backfill_breaker"

    def __init__(self, url: str, name: str = "dashboard") -> None:
        # Imported here: only a deployment on PostgreSQL needs the driver loaded.
        from psycopg_pool import ConnectionPool

        self._name = name
        # A pool, as the budget's: every request asks the breaker first.
        self._pool = ConnectionPool(
            url, min_size=1, max_size=2, open=True, kwargs={"autocommit": False, "connect_timeout": 5}
        )
        with self._pool.connection() as conn:
            # Processes starting together would race on CREATE TABLE IF NOT EXISTS.
            conn.execute(f"SELECT pg_advisory_xact_lock(hashtext('{self.TABLE}'))")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TABLE} (name TEXT PRIMARY KEY, state JSONB NOT NULL)"
            )
            conn.execute(
                f"INSERT INTO {self.TABLE} (name, state) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, json.dumps(asdict(BreakerState()))),
            )

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    @staticmethod
    def _state(value: object) -> BreakerState:
        try:
            data = json.loads(value) if isinstance(value, str | bytes) else value
            return BreakerState(**data)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return BreakerState()

    def read(self) -> BreakerState:
        """The current state."""
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT state FROM {self.TABLE} WHERE name = %s", (self._name,)).fetchone()
        return self._state(row[0]) if row else BreakerState()

    def update(self, change: Callable[[BreakerState], BreakerState | None]) -> BreakerState:
        """Read under `SELECT ... FOR UPDATE`, change, write, commit: one process at a time. Most
        calls change nothing (a closed breaker, a success after a success): those read without
        the lock, which at 50 requests/s saved a locking transaction per request and answer."""
        current = self.read()
        if change(BreakerState(**asdict(current))) is None:
            return current
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT state FROM {self.TABLE} WHERE name = %s FOR UPDATE", (self._name,)
            ).fetchone()
            current = self._state(row[0]) if row else BreakerState()
            changed = change(BreakerState(**asdict(current)))
            if changed is None:
                return current
            conn.execute(
                f"INSERT INTO {self.TABLE} (name, state) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state",
                (self._name, json.dumps(asdict(changed))),
            )
            return changed


def open_breaker_store(where: str | None, root: DataRoot | Path | str) -> BreakerStore:
    """The breaker's store beside the budget's: PostgreSQL for a `postgresql://` URL (the
    budget store setting), the data root's file otherwise."""
    if where is not None and where.startswith(("postgresql://", "postgres://")):
        return PostgresBreakerStore(where)
    return FileBreakerStore(DataRoot.of(root))


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

        self.store.update(change)
        if refused:
            raise refused[0]

    def record_success(self) -> None:
        """The dashboard answered: reset the count, and close a half-open circuit (the probe).

        A late answer to a request sent before the circuit opened does not close it."""
        self.store.update(lambda s: BreakerState() if s.state != OPEN and s != BreakerState() else None)

    def record_failure(self) -> None:
        """A retryable failure: count it, and open the circuit at the threshold or a failed probe."""

        def change(s: BreakerState) -> BreakerState:
            s.consecutive_failures += 1
            if s.state == HALF_OPEN or s.consecutive_failures >= self.failure_threshold:
                s.state, s.opened_at, s.probe_started_at = OPEN, self._clock(), None
            return s

        self.store.update(change)
