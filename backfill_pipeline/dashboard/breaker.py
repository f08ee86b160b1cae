"""A circuit breaker whose state lives in a small JSON file, shared by every process on the machine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

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


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive retryable failures; probes after `cooldown` s."""

    def __init__(
        self,
        root: DataRoot | Path | str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        root = DataRoot.of(root)
        self.path = root.breaker_state
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(root.breaker_lock)

    def _read(self) -> BreakerState:
        try:
            return BreakerState(**json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return BreakerState()

    def _write(self, state: BreakerState) -> None:
        atomic_write_bytes(self.path, json.dumps(asdict(state)).encode(), durable=False)

    def state(self) -> BreakerState:
        """The current shared state."""
        with self._lock:
            return self._read()

    def retry_in(self) -> float:
        """Seconds until a request may go again: 0 unless open and still cooling down."""
        s = self.state()
        if s.state != OPEN:
            return 0.0
        return max(0.0, (s.opened_at or 0) + self.cooldown - self._clock())

    def before_request(self) -> None:
        """Raise CircuitOpen while open; let exactly one probe through once the cool-down ends."""
        with self._lock:
            s = self._read()
            now = self._clock()
            if s.state == CLOSED:
                return
            if s.state == OPEN:
                remaining = (s.opened_at or 0) + self.cooldown - now
                if remaining > 0:
                    raise CircuitOpen(
                        f"dashboard circuit open after {s.consecutive_failures} failures; "
                        f"next probe in {remaining:.1f}s",
                        retry_in=remaining,
                    )
                s.state, s.probe_started_at = HALF_OPEN, now
                self._write(s)
                return
            # Half-open: one probe is in flight; a probe that never reported back is given up on.
            if s.probe_started_at is not None and now - s.probe_started_at < self.cooldown:
                raise CircuitOpen("dashboard circuit half-open: a probe is in flight", retry_in=1.0)
            s.probe_started_at = now
            self._write(s)

    def record_success(self) -> None:
        """The dashboard answered: reset the count, and close a half-open circuit (the probe).

        A late answer to a request sent before the circuit opened does not close it."""
        with self._lock:
            s = self._read()
            if s.state != OPEN and s != BreakerState():
                self._write(BreakerState())

    def record_failure(self) -> None:
        """A retryable failure: count it, and open the circuit at the threshold or a failed probe."""
        with self._lock:
            s = self._read()
            s.consecutive_failures += 1
            if s.state == HALF_OPEN or s.consecutive_failures >= self.failure_threshold:
                s.state, s.opened_at, s.probe_started_at = OPEN, self._clock(), None
            self._write(s)
