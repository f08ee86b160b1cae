"""Typed dashboard errors, each either retryable (try again later) or permanent.

The classification follows the source (docs/dashboard.md §7): whatever the dashboard may answer
differently a little later is retryable, and only what the same request will meet again is
permanent. When unsure, an answer is retryable: the caller bounds the attempts of a key, so a
retryable error that never clears still ends failed, while a permanent one misclassified would
lose the date at once.
"""

from __future__ import annotations

# How much of a value (a cell, a header, a Location) an error message quotes.
QUOTE_LIMIT = 60


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`repr` of a value cut to `limit` characters, saying how long it was when cut."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


class DashboardError(Exception):
    """Base class; `retryable` says whether the same request can succeed later."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class RetryableError(DashboardError):
    """A failure that can go away by itself.

    `retry_after` is how many seconds the dashboard asked us to wait (Retry-After), when it did:
    a caller that defers the request should not ask again before then.
    """

    retryable = True

    def __init__(self, message: str, *, url: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, url=url)
        self.retry_after = retry_after


class ConnectionFailed(RetryableError):
    """The connection could not be made or was dropped before an answer."""


class RequestTimedOut(RetryableError):
    """Connect or read timeout."""


class DeadlineExceeded(RequestTimedOut):
    """The whole request took longer than its deadline (a body fed drop by drop, say)."""


class HttpRequestTimeout(RequestTimedOut):
    """HTTP 408: the server gave up waiting for us."""

    def __init__(self, message: str, *, url: str | None = None, status: int = 408) -> None:
        super().__init__(message, url=url)
        self.status = status


class ServerError(RetryableError):
    """HTTP 5xx; `retry_after` when the answer (a 503, say) carried a Retry-After."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int, retry_after: float | None = None
    ) -> None:
        super().__init__(message, url=url, retry_after=retry_after)
        self.status = status


class RateLimited(RetryableError):
    """HTTP 429; `retry_after` is the server's wish in seconds, when it gave one."""

    def __init__(self, message: str, *, url: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, url=url, retry_after=retry_after)


class Redirected(RetryableError):
    """HTTP 3xx: redirects are never followed; the dashboard sends them during maintenance."""

    def __init__(self, message: str, *, url: str | None = None, status: int, location: str | None) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.location = location


class UnexpectedStatus(RetryableError):
    """A status that is neither 200, 3xx, 4xx nor 5xx (a 204 or 206, say)."""

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class MaintenancePage(RetryableError):
    """An HTML page where a CSV was expected: the dashboard's "being updated" page."""


class BodyTooLarge(RetryableError):
    """The body grew past the size cap; the download was aborted."""

    def __init__(self, message: str, *, url: str | None = None, limit: int) -> None:
        super().__init__(message, url=url)
        self.limit = limit


class TruncatedCsv(RetryableError):
    """The body stops mid-way: a short row, an open quote, data rows with no footer, fewer bytes
    than Content-Length, a connection broken mid-body, or a character cut in two."""


class UnrecognisedBody(RetryableError):
    """Text that is neither HTML nor a CSV table (one line of prose, say): retried, being unsure."""


class UndecodableBody(RetryableError):
    """The body is not UTF-8 (not at its end, which would be a truncation): retried, being unsure."""


class CircuitOpen(RetryableError):
    """The shared circuit breaker is open: the dashboard failed repeatedly, so we fail fast."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message, retry_after=retry_in)
        self.retry_in = retry_in


class PermanentError(DashboardError):
    """A failure the same request will meet again."""


class ClientHttpError(PermanentError):
    """HTTP 4xx other than 408 and 429."""

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class NotACsv(PermanentError):
    """A body that decodes, yet is not a CSV of the expected report: no key column in its header."""


class AbsurdNumber(PermanentError):
    """A numeric cell far outside any figure the dashboard has (`1e30000000`, 5000 digits)."""

    def __init__(self, message: str, *, url: str | None = None, row: int, column: str, value: str) -> None:
        super().__init__(message, url=url)
        self.row = row
        self.column = column
        self.value = value


class SuspiciousSummary(RetryableError):
    """A summary listing far fewer districts than the dashboard ever has: not a success, and most
    likely a broken answer the next attempt does not repeat (attempts are bounded by the caller)."""
