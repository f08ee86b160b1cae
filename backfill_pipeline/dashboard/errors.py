"""Typed dashboard errors, each either retryable (try again later) or permanent."""

from __future__ import annotations


class DashboardError(Exception):
    """Base class; `retryable` says whether the same request can succeed later."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class RetryableError(DashboardError):
    """A failure that can go away by itself: connection trouble, timeouts, 429, 5xx."""

    retryable = True


class ConnectionFailed(RetryableError):
    """The connection could not be made or was dropped."""


class RequestTimedOut(RetryableError):
    """Connect or read timeout."""


class ServerError(RetryableError):
    """HTTP 5xx."""

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class RateLimited(RetryableError):
    """HTTP 429; `retry_after` is the server's wish in seconds, when it gave one."""

    def __init__(self, message: str, *, url: str | None = None, retry_after: float | None) -> None:
        super().__init__(message, url=url)
        self.retry_after = retry_after


class CircuitOpen(RetryableError):
    """The shared circuit breaker is open: the dashboard failed repeatedly, so we fail fast."""

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class PermanentError(DashboardError):
    """A failure the same request will meet again."""


class ClientHttpError(PermanentError):
    """HTTP 4xx other than 429."""

    def __init__(self, message: str, *, url: str | None = None, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status


class NotACsv(PermanentError):
    """The body is not a CSV of the expected report (HTML page, wrong columns, bad encoding)."""


class TruncatedCsv(NotACsv):
    """The CSV stops mid-way: a short row, an open quote, or data rows with no footer."""


class SuspiciousSummary(PermanentError):
    """A summary listing far fewer districts than the dashboard ever has: not a success."""
