"""Every answer of the dashboard classed as the source says (docs/dashboard.md §7) and bounded in
size and time, over real loopback HTTP against the sandbox."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
import tracemalloc

import pytest
from conftest import TODAY, client_settings

from backfill_pipeline.dashboard.client import DashboardClient
from backfill_pipeline.dashboard.csvparse import parse_report
from backfill_pipeline.dashboard.errors import (
    BodyTooLarge,
    ClientHttpError,
    ConnectionFailed,
    DeadlineExceeded,
    HttpRequestTimeout,
    MaintenancePage,
    NotACsv,
    PermanentError,
    RateLimited,
    Redirected,
    RequestTimedOut,
    RetryableError,
    ServerError,
    TruncatedCsv,
)
from backfill_pipeline.dashboard.http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    MAX_RETRY_AFTER,
    DashboardHttp,
    RetrySettings,
    parse_retry_after,
)
from backfill_pipeline.dashboard.ratelimit import TokenBucket
from backfill_pipeline.dashboard.reports import Report
from backfill_pipeline.sandbox import SandboxServer

# A published club performance CSV (about 15 kB) and the summary of the same date.
PATH = "/2024-2025/export.aspx?type=CSV&report=clubperformance~42~3/31/2025~3/20/2025~2024-2025"
OTHER_DATE = PATH.replace("~3/20/2025~", "~3/19/2025~")
NORMAL = dt.date(2025, 3, 20)
MIB = 1024 * 1024

pytestmark = pytest.mark.timeout(30)


class Http:
    """A DashboardHttp against the sandbox whose backoff sleeps are recorded, not slept."""

    def __init__(self, server: SandboxServer, **options) -> None:
        self.server = server
        self.slept: list[float] = []
        retry = RetrySettings(
            max_attempts=options.pop("max_attempts", 3),
            backoff_base=0.01,
            backoff_max=0.02,
            max_retry_after=options.pop("max_retry_after", 120.0),
        )
        self.http = DashboardHttp(
            limiter=TokenBucket(1000),
            read_timeout=options.pop("read_timeout", 5.0),
            retry=retry,
            sleep=self.slept.append,
            **options,
        )

    def get(self, path: str = PATH) -> bytes:
        return self.http.get(self.server.url + path)

    def fails(self, error: type[Exception], path: str = PATH):
        with pytest.raises(error) as info:
            self.get(path)
        return info.value

    @property
    def sent(self) -> int:
        return self.server.stats()["exportRequests"]

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def http(fresh_sandbox):
    client = Http(fresh_sandbox)
    yield client
    client.close()


def test_the_defaults_bound_every_answer():
    plain = DashboardHttp(limiter=TokenBucket(1))
    assert plain.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 16 * MIB
    assert plain.deadline == DEFAULT_DEADLINE == 120.0
    with pytest.raises(ValueError, match="max_body_bytes"):
        DashboardHttp(limiter=TokenBucket(1), max_body_bytes=0)
    with pytest.raises(ValueError, match="deadline"):
        DashboardHttp(limiter=TokenBucket(1), deadline=0)


# -- transient: the same request can succeed later -------------------------------------------


def test_the_maintenance_page_at_200_is_retryable_and_retried(http):
    http.server.set_faults([{"kind": "html"}])
    error = http.fails(MaintenancePage)
    assert error.retryable and isinstance(error, RetryableError)
    assert "HTML" in str(error) and http.server.url in str(error) and "text/html" in str(error)
    assert http.sent == 3 and len(http.slept) == 2


def test_an_html_body_is_the_maintenance_page_whatever_its_content_type(http):
    http.server.set_faults([{"kind": "html", "contentType": "text/csv; charset=utf-8"}])
    error = http.fails(MaintenancePage)
    assert error.retryable and "bytes" in str(error)


def test_a_maintenance_page_that_clears_gives_the_csv(http):
    http.server.set_faults([{"kind": "html", "times": 2}])
    body = http.get()
    assert body.startswith(b'"District"') and http.sent == 3


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_retryable_and_never_followed(http, status):
    # The Location is another export: following it would show as one more export request.
    http.server.set_faults([{"kind": "redirect", "status": status, "location": OTHER_DATE}])
    error = http.fails(Redirected)
    assert error.retryable and error.status == status and error.location == OTHER_DATE
    assert f"HTTP {status}" in str(error) and "3/19/2025" in str(error)
    assert http.sent == 3  # three attempts, no request to the Location


def test_http_408_is_a_retryable_timeout(http):
    http.server.set_faults([{"kind": "error", "status": 408}])
    error = http.fails(HttpRequestTimeout)
    assert isinstance(error, RequestTimedOut) and error.retryable and error.status == 408
    assert "408" in str(error) and http.sent == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(http, status):
    http.server.set_faults([{"kind": "error", "status": status}])
    error = http.fails(ServerError)
    assert error.retryable and error.status == status and error.retry_after is None
    assert f"HTTP {status}" in str(error) and http.sent == 3


def test_a_connection_reset_is_retryable(http):
    http.server.set_faults([{"kind": "reset"}])
    assert http.fails(ConnectionFailed).retryable and http.sent == 3


def test_a_silent_server_times_out_retryable(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "latency", "latencyMs": 1000}])
    http = Http(fresh_sandbox, read_timeout=0.2, max_attempts=1)
    assert http.fails(RequestTimedOut).retryable


def test_a_body_shorter_than_its_content_length_is_truncated_and_retried(http):
    full = len(http.get())
    http.server.set_faults([{"kind": "truncate", "incomplete": True}])
    error = http.fails(TruncatedCsv)
    assert error.retryable and "cut short" in str(error) and f" of {full} bytes" in str(error)
    http.server.set_faults([{"kind": "truncate", "incomplete": True, "times": 1}])
    assert http.get().rstrip().endswith(b"As of 03/20/2025")


def test_a_csv_cut_mid_row_is_truncated_and_retryable(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "truncate"}])
    with client(fresh_sandbox, tmp_path) as c, pytest.raises(TruncatedCsv) as info:
        c.fetch(Report.CLUB, NORMAL, "42")
    assert info.value.retryable


# -- permanent: the same request meets it again ------------------------------------------------


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_other_4xx_are_permanent_and_not_retried(http, status):
    http.server.set_faults([{"kind": "error", "status": status}])
    error = http.fails(ClientHttpError)
    assert isinstance(error, PermanentError) and not error.retryable and error.status == status
    assert f"HTTP {status}" in str(error) and http.sent == 1


def test_a_csv_of_another_report_is_permanent(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "wrong_report"}])
    with client(fresh_sandbox, tmp_path) as c, pytest.raises(NotACsv) as info:
        c.fetch(Report.CLUB, NORMAL, "42")
    assert not info.value.retryable and "'Club Number'" in str(info.value)
    assert fresh_sandbox.stats()["exportRequests"] == 1
    for report in Report:
        body = Http(fresh_sandbox).get(
            f"/2024-2025/export.aspx?type=CSV&report={report.value}"
            + ("" if report is Report.SUMMARY else "~42")
            + "~3/31/2025~3/20/2025~2024-2025"
        )
        with pytest.raises(NotACsv, match=report.key_column):
            parse_report(body, report)


# -- bounded size ------------------------------------------------------------------------------


def test_a_huge_body_announced_by_content_length_is_refused_unread(http):
    http.server.set_faults([{"kind": "huge", "sizeMb": 100}])
    started = time.monotonic()
    error = http.fails(BodyTooLarge)
    assert error.retryable and error.limit == 16 * MIB
    assert "104857600 bytes" in str(error) and "16777216" in str(error)
    assert time.monotonic() - started < 5


def test_a_huge_streamed_body_is_aborted_at_the_cap_with_memory_bounded(fresh_sandbox):
    # Chunked: no Content-Length warns the client, the cap has to stop the download itself.
    fresh_sandbox.set_faults([{"kind": "huge", "sizeMb": 100, "chunked": True}])
    http = Http(fresh_sandbox, max_attempts=1)
    tracemalloc.start()
    try:
        started = time.monotonic()
        error = http.fails(BodyTooLarge)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "over the cap of 16777216 bytes" in str(error)
    assert peak < 24 * MIB, peak  # the cap and a read's worth, far below the 100 MB sent
    assert elapsed < 10


def test_the_cap_is_a_constructor_parameter(fresh_sandbox):
    body = Http(fresh_sandbox).get()
    assert Http(fresh_sandbox, max_body_bytes=len(body)).get() == body
    fresh_sandbox.set_faults([{"kind": "huge", "sizeMb": 1, "chunked": True}])
    small = Http(fresh_sandbox, max_body_bytes=len(body) - 1, max_attempts=1)
    assert small.fails(BodyTooLarge).limit == len(body) - 1


# -- bounded time ------------------------------------------------------------------------------


def test_a_drip_fed_body_ends_at_the_deadline_retryable(fresh_sandbox):
    # 15 kB at 2 kB/s takes 7 s; every read gets bytes well within the read timeout.
    fresh_sandbox.set_faults([{"kind": "drip", "bytesPerSecond": 2000}])
    http = Http(fresh_sandbox, read_timeout=0.5, deadline=1.0, max_attempts=1)
    started = time.monotonic()
    error = http.fails(DeadlineExceeded)
    elapsed = time.monotonic() - started
    assert isinstance(error, RequestTimedOut) and error.retryable
    assert "1 s deadline" in str(error) and "bytes in" in str(error)
    assert 1.0 <= elapsed < 2.0


def test_a_slow_body_within_the_deadline_is_read_whole(fresh_sandbox):
    clean = Http(fresh_sandbox).get()
    fresh_sandbox.set_faults([{"kind": "drip", "bytesPerSecond": 30_000}])
    http = Http(fresh_sandbox, read_timeout=0.3, deadline=5.0, max_attempts=1)
    assert http.get() == clean


# -- Retry-After -------------------------------------------------------------------------------

NOW = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("007", 7.0),
        ("-5", 0.0),  # negative: now
        ("1.5", 1.5),  # fractional: accepted as it stands
        ("-1.5", 0.0),
        ("²", None),  # Unicode digits are no delta-seconds
        ("٣", None),
        ("7²", None),
        ("+5", None),
        ("1e5", None),
        ("soon", None),
        ("9" * 5000, MAX_RETRY_AFTER),  # absurd: capped, no OverflowError
        ("604801", MAX_RETRY_AFTER),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:28:00", 10.0),  # no zone: UTC
        ("Wed, 21 Oct 2015 09:28:00 +0200", 10.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 10.0),
        ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),  # past: now
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Mon, 01 Jan 0001 00:00:00 +1400", 0.0),
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
        ("x" * 100_000, None),
    ],
)
def test_every_retry_after_form(header, seconds):
    started = time.monotonic()
    assert parse_retry_after(header, now=NOW) == seconds
    assert time.monotonic() - started < 0.5
    assert MAX_RETRY_AFTER == 7 * 24 * 3600


def test_retry_after_of_a_429_is_waited_for(http):
    http.server.set_faults([{"kind": "429", "retryAfter": 2, "times": 1}])
    assert http.get() and http.slept == [2.0]


@pytest.mark.parametrize("header", ["²", "٣", "soon"])
def test_a_retry_after_not_understood_is_absent(fresh_sandbox, header):
    # `²` travels as Latin-1; `٣` cannot be a header at all, so the sandbox refuses it.
    try:
        fresh_sandbox.set_faults([{"kind": "429", "retryAfter": header, "times": 1}])
    except ValueError as exc:
        assert "Latin-1" in str(exc)
        return
    http = Http(fresh_sandbox)
    assert http.get() and len(http.slept) == 1 and http.slept[0] < 0.1  # the backoff alone


def test_a_negative_retry_after_means_now(http):
    http.server.set_faults([{"kind": "429", "retryAfter": "-5", "times": 1}])
    assert http.get() and http.slept[0] < 0.1


def test_retry_after_of_a_503_is_honoured(http):
    http.server.set_faults([{"kind": "error", "status": 503, "retryAfter": 3, "times": 1}])
    assert http.get() and http.slept == [3.0]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"kind": "429", "retryAfter": 3600}, RateLimited),
        ({"kind": "error", "status": 503, "retryAfter": "3600"}, ServerError),
        ({"kind": "error", "status": 503, "retryAfter": "9" * 100}, ServerError),
    ],
)
def test_a_retry_after_too_long_is_not_slept_but_carried(http, fault, error):
    http.server.set_faults([fault])
    raised = http.fails(error)
    assert raised.retryable and isinstance(raised.retry_after, float)
    assert raised.retry_after == min(float(fault["retryAfter"]), MAX_RETRY_AFTER)
    assert http.slept == [] and http.sent == 1
    assert "Retry-After" in str(raised)


def test_a_retry_after_date_is_carried_in_seconds(http):
    when = email.utils.formatdate(time.time() + 7200, usegmt=True)
    http.server.set_faults([{"kind": "429", "retryAfter": when}])
    raised = http.fails(RateLimited)
    assert 7100 < raised.retry_after <= 7200 and http.slept == []


def test_retry_after_is_on_every_retryable_error():
    assert RetryableError("x").retry_after is None
    assert ServerError("x", status=500).retry_after is None
    assert RateLimited("x").retry_after is None


# -- helpers ---------------------------------------------------------------------------------


def client(server: SandboxServer, root) -> DashboardClient:
    """The product's client, one attempt per request: what the parser makes of an answer."""
    settings = client_settings(server.url, rate=50, breaker_threshold=50, read_timeout=5, max_attempts=1)
    return DashboardClient(settings, root, today=lambda: TODAY)
