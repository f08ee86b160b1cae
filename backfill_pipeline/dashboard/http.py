"""Polite HTTP GETs: timeouts, error classification, backoff with jitter, rate limit, breaker."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from .breaker import CircuitBreaker
from .errors import (
    CircuitOpen,
    ClientHttpError,
    ConnectionFailed,
    DashboardError,
    NotACsv,
    RateLimited,
    RequestTimedOut,
    RetryableError,
    ServerError,
)
from .ratelimit import TokenBucket

USER_AGENT = "backfill_pipeline/0.1 (Toastmasters district statistics collector; polite: about 2 requests/s)"


@dataclass(frozen=True)
class RetrySettings:
    """How often and how long to retry retryable failures."""

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0


@dataclass
class HttpStats:
    """What this client did: HTTP requests sent, retries, seconds slept in backoff."""

    requests: int = 0
    retries: int = 0
    backoff_seconds: float = 0.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def backoff_delay(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class DashboardHttp:
    """GETs export URLs and returns the body; raises typed errors after retries are spent."""

    def __init__(
        self,
        *,
        limiter: TokenBucket,
        breaker: CircuitBreaker | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry: RetrySettings = RetrySettings(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.limiter = limiter
        self.breaker = breaker
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = HttpStats()

    def close(self) -> None:
        """Close the underlying session."""
        self.session.close()

    def get(self, url: str, *, max_attempts: int | None = None, retry_5xx: bool = True) -> bytes:
        """The body of a 200 answer; retries retryable failures with backoff.

        An open circuit is raised at once (failing fast is its point); with `retry_5xx=False` a
        5xx is too, so the caller can try another path.
        """
        attempts = max_attempts or self.retry.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return self._get_once(url)
            except RetryableError as exc:
                if attempt == attempts or isinstance(exc, CircuitOpen):
                    raise
                if isinstance(exc, ServerError) and not retry_5xx:
                    raise
                delay = backoff_delay(attempt, self.retry, self._rng)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    if exc.retry_after > self.retry.max_retry_after:
                        raise
                    delay = max(delay, exc.retry_after)
                self.stats.retries += 1
                self.stats.backoff_seconds += delay
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _get_once(self, url: str) -> bytes:
        if self.breaker:
            self.breaker.before_request()
        self.limiter.acquire()
        self.stats.requests += 1
        try:
            response = self._send(url)
        except RetryableError:
            if self.breaker:
                self.breaker.record_failure()
            raise
        except DashboardError:
            # The dashboard answered, if wrongly: it is up, so the breaker counts a success.
            if self.breaker:
                self.breaker.record_success()
            raise
        if self.breaker:
            self.breaker.record_success()
        return response

    def _send(self, url: str) -> bytes:
        try:
            r = self.session.get(url, timeout=self.timeout, allow_redirects=False)
            body = r.content
        except requests.Timeout as exc:
            raise RequestTimedOut(f"timed out: {exc}", url=url) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise ConnectionFailed(f"connection failed: {exc}", url=url) from exc
        except requests.RequestException as exc:
            raise ConnectionFailed(f"request failed: {exc}", url=url) from exc
        if r.status_code == 429:
            retry_after = parse_retry_after(r.headers.get("Retry-After"))
            raise RateLimited("HTTP 429 Too Many Requests", url=url, retry_after=retry_after)
        if r.status_code >= 500:
            raise ServerError(f"HTTP {r.status_code}", url=url, status=r.status_code)
        if r.status_code != 200:
            raise ClientHttpError(f"HTTP {r.status_code}", url=url, status=r.status_code)
        if "html" in r.headers.get("Content-Type", "").lower():
            raise NotACsv("expected a CSV, got an HTML page (Content-Type text/html)", url=url)
        return body


def error_class(exc: BaseException) -> str:
    """The name recorded in snapshot metadata for an error."""
    return type(exc).__name__ if isinstance(exc, DashboardError) else f"Unexpected{type(exc).__name__}"
