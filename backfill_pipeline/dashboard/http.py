"""Polite HTTP GETs: timeouts, error classification, backoff with jitter, rate limit, breaker.

Every answer is bounded (docs/dashboard.md §7): the body is streamed under a size cap
(`max_body_bytes`) and the whole request under a deadline (`deadline`), so neither a huge body
nor one fed a byte at a time can hold a run or its memory.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions

from .breaker import CircuitBreaker
from .budget import Limiter
from .csvparse import looks_like_html
from .errors import (
    BodyTooLarge,
    CircuitOpen,
    ClientHttpError,
    ConnectionFailed,
    DashboardError,
    DeadlineExceeded,
    HttpRequestTimeout,
    MaintenancePage,
    RateLimited,
    Redirected,
    RequestTimedOut,
    RetryableError,
    ServerError,
    TruncatedCsv,
    UnexpectedStatus,
    quoted,
)

USER_AGENT = "backfill_pipeline/0.1 (Toastmasters district statistics collector; polite: about 2 requests/s)"

# The largest body accepted: the biggest real export (the summary) is well under 1 MiB.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# Seconds one HTTP request may take from sending it to the last byte of its body.
DEFAULT_DEADLINE = 120.0
# The longest wait a Retry-After can ask for; anything longer (or absurd) is cut to this.
MAX_RETRY_AFTER = 7 * 24 * 3600.0
# How much one read asks for: a read returns what has arrived, up to this.
_READ_SIZE = 64 * 1024

_DELTA_SECONDS = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)


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
    """Seconds to wait from a Retry-After header; None when absent or not understood.

    Accepted: delta-seconds in ASCII digits (`120`); a fraction (`1.5`) is accepted as it
    stands; a negative number (`-5`) means now (0). An HTTP-date (`Wed, 21 Oct 2015 07:28:00
    GMT`) gives the seconds until then, 0 when past; a date without a zone is taken as UTC.
    Anything longer than MAX_RETRY_AFTER (7 days: `9` x 5000, the year 9999) is cut to it.
    Non-ASCII digits (`²`, `٣`) or any other text count as absent. Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or not text.isascii():
        return None
    delta = _DELTA_SECONDS.fullmatch(text)
    if delta is not None:
        sign, whole, _ = delta.groups()
        if sign:
            return 0.0
        if len(whole.lstrip("0")) > len(str(int(MAX_RETRY_AFTER))):
            return MAX_RETRY_AFTER  # more digits than the cap has: never build the huge number
        return min(float(text), MAX_RETRY_AFTER)
    if len(text) > 64:  # an HTTP-date has 29 characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - (now if now is not None else time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def backoff_delay(attempt: int, settings: RetrySettings, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    ceiling = min(settings.backoff_max, settings.backoff_base * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class DashboardHttp:
    """GETs export URLs and returns the body; raises typed errors after retries are spent.

    `max_body_bytes` caps a body (more aborts the download: BodyTooLarge); `deadline` caps the
    seconds of one request, body included (DeadlineExceeded). Both errors are retryable.
    """

    def __init__(
        self,
        *,
        limiter: Limiter,
        breaker: CircuitBreaker | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry: RetrySettings = RetrySettings(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        if not deadline > 0:
            raise ValueError(f"deadline must be positive seconds, got {deadline}")
        self.limiter = limiter
        self.breaker = breaker
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = HttpStats()

    def close(self) -> None:
        """Close the underlying session."""
        self.session.close()

    def get(self, url: str, *, max_attempts: int | None = None, retry_5xx: bool = True) -> bytes:
        """The body of a 200 answer; retries retryable failures with backoff.

        An open circuit is raised at once (failing fast is its point); with `retry_5xx=False` a
        5xx is too, so the caller can try another path. A Retry-After longer than
        `max_retry_after` is not slept through: the error is raised with its `retry_after`, for
        the caller to ask again no sooner.
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
                if exc.retry_after is not None:
                    if exc.retry_after > self.retry.max_retry_after:
                        raise
                    delay = max(delay, exc.retry_after)
                self.stats.retries += 1
                self.stats.backoff_seconds += delay
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _get_once(self, url: str) -> bytes:
        # The request is prepared before the budget is asked (between a grant and the send
        # nothing but the send itself should happen), and before the breaker may let a probe
        # through: a request that cannot be built must not hold the half-open breaker.
        prepared = self._prepare(url)
        if self.breaker:
            self.breaker.before_request()
        self.limiter.acquire()
        self.limiter.sending()
        self.stats.requests += 1
        try:
            response = self._send(url, prepared)
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

    def _prepare(self, url: str) -> tuple[requests.PreparedRequest, Any]:
        """The GET as requests would build it (the session's headers, the environment's proxies
        and certificates), ready to send."""
        try:
            prepared = self.session.prepare_request(requests.Request("GET", url))
            settings = self.session.merge_environment_settings(prepared.url, {}, True, None, None)
        except requests.RequestException as exc:
            raise ConnectionFailed(f"request to {url} failed: {exc}", url=url) from exc
        return prepared, settings

    def _send(self, url: str, prepared: tuple[requests.PreparedRequest, Any]) -> bytes:
        started = self._clock()
        connect_timeout, read_timeout = self.timeout
        request, settings = prepared
        try:
            r = self.session.send(
                request,
                timeout=(connect_timeout, min(read_timeout, self.deadline)),
                allow_redirects=False,
                **settings,
            )
        except requests.Timeout as exc:
            raise RequestTimedOut(f"timed out waiting for an answer from {url}: {exc}", url=url) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise ConnectionFailed(f"connection to {url} failed: {exc}", url=url) from exc
        except requests.RequestException as exc:
            raise ConnectionFailed(f"request to {url} failed: {exc}", url=url) from exc
        try:
            _check_status(r, url)
            content_type = r.headers.get("Content-Type", "")
            if "html" in content_type.lower():
                raise MaintenancePage(
                    f"expected a CSV, got an HTML page (Content-Type {quoted(content_type)}) from {url}",
                    url=url,
                )
            body = self._read_body(r, url, started)
        finally:
            r.close()
        if looks_like_html(body):
            raise MaintenancePage(f"expected a CSV, got an HTML page ({len(body)} bytes) from {url}", url=url)
        return body

    def _read_body(self, r: requests.Response, url: str, started: float) -> bytes:
        """The body, read as it arrives: never more than the cap, never past the deadline."""
        cap = self.max_body_bytes
        declared = _content_length(r)
        if declared is not None and declared > cap:
            raise BodyTooLarge(
                f"Content-Length {declared} bytes is over the cap of {cap} bytes: {url}", url=url, limit=cap
            )
        body = io.BytesIO()
        received = 0
        while True:
            elapsed = self._clock() - started
            if elapsed > self.deadline:
                raise DeadlineExceeded(
                    f"no complete answer within the {self.deadline:g} s deadline "
                    f"({received} bytes in {elapsed:.1f} s): {url}",
                    url=url,
                )
            try:
                chunk = r.raw.read1(_READ_SIZE, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise RequestTimedOut(f"read timed out after {received} bytes of {url}", url=url) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                expected = f" of {declared}" if declared is not None else ""
                raise TruncatedCsv(
                    f"body cut short: the connection broke after {received}{expected} bytes "
                    f"of {url}: {type(exc).__name__}",
                    url=url,
                ) from exc
            if not chunk:
                break
            received += len(chunk)
            if received > cap:
                raise BodyTooLarge(
                    f"body is over the cap of {cap} bytes (aborted after {received} bytes): {url}",
                    url=url,
                    limit=cap,
                )
            body.write(chunk)
        if declared is not None and not r.headers.get("Content-Encoding") and received < declared:
            raise TruncatedCsv(f"body cut short: {received} of {declared} bytes of {url}", url=url)
        r.raw.release_conn()  # read to the end: the connection can serve the next request
        return body.getvalue()


def _check_status(r: requests.Response, url: str) -> None:
    """Raise the typed error of any status but 200 (docs/dashboard.md §7)."""
    status = r.status_code
    if status == 200:
        return
    if 300 <= status < 400:
        location = r.headers.get("Location")
        where = f" to {quoted(location, 200)}" if location else ""
        raise Redirected(
            f"HTTP {status} redirect{where} from {url} (redirects are not followed)",
            url=url,
            status=status,
            location=location,
        )
    if status == 429:
        header = r.headers.get("Retry-After")
        retry_after = parse_retry_after(header)
        raise RateLimited(
            f"HTTP 429 Too Many Requests from {url}{_retry_after_note(header, retry_after)}",
            url=url,
            retry_after=retry_after,
        )
    if status == 408:
        raise HttpRequestTimeout(f"HTTP 408 Request Timeout from {url}", url=url)
    if status >= 500:
        header = r.headers.get("Retry-After")
        retry_after = parse_retry_after(header)
        raise ServerError(
            f"HTTP {status} from {url}{_retry_after_note(header, retry_after)}",
            url=url,
            status=status,
            retry_after=retry_after,
        )
    if 400 <= status < 500:
        raise ClientHttpError(f"HTTP {status} from {url}", url=url, status=status)
    raise UnexpectedStatus(f"HTTP {status} from {url}, expected 200", url=url, status=status)


def _retry_after_note(header: str | None, seconds: float | None) -> str:
    if header is None:
        return ""
    if seconds is None:
        return f" (Retry-After {quoted(header)} not understood)"
    return f" (Retry-After {seconds:g} s)"


def _content_length(r: requests.Response) -> int | None:
    value = r.headers.get("Content-Length", "").strip()
    if not (value.isascii() and value.isdigit()):
        return None
    return 10**18 if len(value) > 18 else int(value)  # an absurd length is over any cap


def error_class(exc: BaseException) -> str:
    """The name recorded in snapshot metadata for an error."""
    return type(exc).__name__ if isinstance(exc, DashboardError) else f"Unexpected{type(exc).__name__}"
