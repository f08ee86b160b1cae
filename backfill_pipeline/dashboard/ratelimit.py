"""A thread-safe token bucket that paces requests to a rate per second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .budget import check_rate


class TokenBucket:
    """Allows `rate` acquisitions per second on average, with bursts of at most `burst`."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # nan <= 0 is False: the rate is checked as finite and above 0, not merely "not <= 0".
        check_rate(rate)
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            # A negative balance is a debt: this caller waits until it is paid back.
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            self.waited_seconds += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def sending(self) -> None:
        """Nothing to do: the bucket paces by acquisitions."""
