"""The dashboard client against the sandbox over real loopback HTTP."""

import datetime as dt
import hashlib
import json
import threading
import time

import pytest
import requests
from conftest import TODAY, client_settings

from backfill_pipeline.dashboard.budget import spacing_ms
from backfill_pipeline.dashboard.client import DashboardClient
from backfill_pipeline.dashboard.errors import (
    CircuitOpen,
    ClientHttpError,
    ConnectionFailed,
    MaintenancePage,
    RateLimited,
    RequestTimedOut,
    ServerError,
    TruncatedCsv,
)
from backfill_pipeline.dashboard.reports import Report
from backfill_pipeline.sandbox import publication


def find_date(predicate, start=dt.date(2025, 2, 1), days=120):
    for i in range(days):
        d = start + dt.timedelta(days=i)
        if predicate(d):
            return d
    raise AssertionError("no such date in the sandbox")


NORMAL = find_date(
    lambda d: publication.is_published(d, today=TODAY) and not publication.is_closing_period(d)
)
CLOSING = find_date(lambda d: publication.is_published(d, today=TODAY) and publication.is_closing_period(d))
UNPUBLISHED = find_date(publication.is_unpublished, start=dt.date(2024, 7, 1), days=365)
OPEN_YEAR = find_date(
    lambda d: publication.is_published(d, today=TODAY) and not publication.is_closing_period(d),
    start=dt.date(2026, 11, 1),
    days=27,
)


def client_for(server, root, *, now=None, recheck_unavailable=False, **overrides) -> DashboardClient:
    settings = client_settings(
        server.url, **{"rate": 50, "breaker_threshold": 50, "read_timeout": 5, **overrides}
    )
    clock = {"now": now} if now is not None else {}
    return DashboardClient(
        settings, root, today=lambda: TODAY, recheck_unavailable=recheck_unavailable, **clock
    )


def total(server) -> int:
    return server.stats()["exportRequests"]


def test_normal_date_one_request_own_month(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, NORMAL)
    assert r.available and not r.cache_hit
    assert r.data_month == (NORMAL.year, NORMAL.month) and r.closing_period is False
    assert r.requests == 1 == total(fresh_sandbox)
    assert "/2024-2025/export.aspx?type=CSV&report=districtsummary~" in r.url
    assert f"~{NORMAL.month}/{NORMAL.day}/{NORMAL.year}~" in r.url
    assert 100 <= len(r.rows) <= 140
    assert {"DISTRICT", "REGION", "Total YTD Payments"} <= set(r.rows[0])


def test_closing_period_date_uses_the_previous_month(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, CLOSING)
    prev = (CLOSING.year, CLOSING.month - 1) if CLOSING.month > 1 else (CLOSING.year - 1, 12)
    assert r.available and r.data_month == prev and r.closing_period is True
    assert r.requests == 2 == total(fresh_sandbox)
    log = requests.get(f"{fresh_sandbox.url}/_sandbox/requests").json()
    # Own month first, then the previous month.
    month_ends = [e["path"].split("report=")[1].split("~")[1] for e in log["requests"]]
    assert [int(m.split("/")[0]) for m in month_ends] == [CLOSING.month, prev[1]]


def test_district_reports_reuse_the_summary_month(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        fetched = c.fetch_date(CLOSING, "61")
    assert [r.report for r in fetched.results] == [
        Report.SUMMARY,
        Report.DISTRICT,
        Report.DIVISION,
        Report.CLUB,
    ]
    assert all(r.available for r in fetched.results)
    assert {r.data_month for r in fetched.results} == {fetched.summary.data_month}
    # 2 summary requests (closing period), then one per district report.
    assert total(fresh_sandbox) == 5
    club = fetched.district_reports[2]
    assert all(len(row["Club Number"]) == 8 for row in club.rows)


def test_unpublished_closed_month_is_final_only_on_evidence(fresh_sandbox, tmp_path):
    # One empty answer can be a glitch: "not published" is final only when seen on two days at
    # least 24 h apart after the month closed; until then every new run asks again.
    day_one = dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC)
    with client_for(fresh_sandbox, tmp_path, now=lambda: day_one) as c:
        first = c.fetch(Report.SUMMARY, UNPUBLISHED)
        again = c.fetch(Report.SUMMARY, UNPUBLISHED)  # the same run asks once
    assert not first.available and first.requests == 2 and not first.unavailable_final
    assert again.requests == 0 and not again.unavailable_final
    later = day_one + dt.timedelta(hours=23)
    with client_for(fresh_sandbox, tmp_path, now=lambda: later) as c:
        pending = c.fetch(Report.SUMMARY, UNPUBLISHED)
    assert pending.requests == 2 and not pending.unavailable_final
    next_day = day_one + dt.timedelta(hours=25)
    with client_for(fresh_sandbox, tmp_path, now=lambda: next_day) as c:
        final = c.fetch(Report.SUMMARY, UNPUBLISHED)
    assert final.requests == 2 and final.unavailable_final
    with client_for(fresh_sandbox, tmp_path) as c:
        remembered = c.fetch(Report.SUMMARY, UNPUBLISHED)
    assert remembered.cache_hit and remembered.requests == 0 and remembered.unavailable_final
    with client_for(fresh_sandbox, tmp_path, recheck_unavailable=True) as c:
        rechecked = c.fetch(Report.SUMMARY, UNPUBLISHED)
    assert rechecked.requests == 2 and not rechecked.cache_hit
    assert total(fresh_sandbox) == 8


def test_unavailable_in_an_open_month_is_asked_again_by_the_next_run(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        # Today is not published yet, and may be tomorrow: only this run remembers the answer.
        r1 = c.fetch(Report.SUMMARY, TODAY)
        r2 = c.fetch(Report.SUMMARY, TODAY)
    with client_for(fresh_sandbox, tmp_path) as c:
        r3 = c.fetch(Report.SUMMARY, TODAY)
    assert not r1.available and not r2.available and r2.requests == 0
    assert not r3.available and not r3.cache_hit and r3.requests >= 1
    assert not r3.unavailable_final


def test_a_damaged_raw_blob_is_rewritten_by_the_next_download(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        a = c.fetch(Report.CLUB, NORMAL, "42")
    blob = tmp_path / "raw" / a.sha256[:2] / f"{a.sha256}.csv"
    blob.write_bytes(b"damaged")
    with client_for(fresh_sandbox, tmp_path) as c:
        b = c.fetch(Report.CLUB, NORMAL, "42")  # the damaged blob is no hit: asked again
    assert not b.cache_hit and b.sha256 == a.sha256
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == a.sha256


def test_second_fetch_is_served_from_disk_with_zero_requests(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        a = c.fetch(Report.CLUB, NORMAL, "42")
    with client_for(fresh_sandbox, tmp_path) as c:  # a new process would see the same
        b = c.fetch(Report.CLUB, NORMAL, "42")
        assert c.stats()["cacheHits"] == 1 and c.stats()["requests"] == 0
        forced = c.fetch(Report.CLUB, NORMAL, "42", force=True)
    assert b.cache_hit and b.rows == a.rows and b.sha256 == a.sha256 and b.url == a.url
    assert not forced.cache_hit and forced.sha256 == a.sha256
    assert total(fresh_sandbox) == 2
    blob = tmp_path / "raw" / a.sha256[:2] / f"{a.sha256}.csv"
    sidecar = json.loads(blob.with_suffix(".json").read_text())
    assert sidecar["url"] == a.url and sidecar["asOf"] == NORMAL.isoformat()
    assert sidecar["sha256"] == a.sha256 and sidecar["bytes"] == blob.stat().st_size == a.bytes
    assert "fetchedAt" in sidecar


def test_damaged_cache_blob_is_fetched_again(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        a = c.fetch(Report.SUMMARY, NORMAL)
        (tmp_path / "raw" / a.sha256[:2] / f"{a.sha256}.csv").write_bytes(b"garbage")
        b = c.fetch(Report.SUMMARY, NORMAL)
    assert not b.cache_hit and b.rows == a.rows and total(fresh_sandbox) == 2


def test_open_year_falls_back_to_the_bare_path_after_a_5xx(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, OPEN_YEAR)
        assert r.available and r.url == (
            f"{fresh_sandbox.url}/export.aspx?type=CSV&report=districtsummary~"
            f"{OPEN_YEAR.month}/30/{OPEN_YEAR.year}~{OPEN_YEAR.month}/{OPEN_YEAR.day}/{OPEN_YEAR.year}"
            f"~2026-2027"
        )
        assert r.requests == 2  # the 500 under /2026-2027/, then the bare path
        other = c.fetch(Report.CLUB, OPEN_YEAR, "61", data_month=r.data_month)
        assert other.available and other.requests == 1  # the 5xx is remembered for this client
    stats = fresh_sandbox.stats()
    assert stats["byStatus"].get("500") == 1


def test_closed_year_never_uses_the_bare_path(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        c.fetch_date(NORMAL, "61")
    log = requests.get(f"{fresh_sandbox.url}/_sandbox/requests").json()["requests"]
    assert log and all(e["path"].startswith("/2024-2025/export.aspx") for e in log)


# -- faults ---------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_succeeds(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "error", "status": 503, "times": 2}])
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, NORMAL)
        assert c.stats()["retries"] == 2
    assert r.available and total(fresh_sandbox) == 3


def test_5xx_exhausting_attempts_is_retryable_server_error(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "error", "status": 500}])
    with client_for(fresh_sandbox, tmp_path, max_attempts=3) as c, pytest.raises(ServerError) as info:
        c.fetch(Report.SUMMARY, NORMAL)
    assert info.value.retryable and info.value.status == 500
    assert total(fresh_sandbox) == 3


def test_429_honours_retry_after(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "429", "retryAfter": 1, "times": 1}])
    with client_for(fresh_sandbox, tmp_path) as c:
        start = time.monotonic()
        r = c.fetch(Report.SUMMARY, NORMAL)
        elapsed = time.monotonic() - start
    assert r.available and elapsed >= 1.0 and total(fresh_sandbox) == 2


def test_429_with_a_too_long_retry_after_gives_up_retryable(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "429", "retryAfter": 3600}])
    with client_for(fresh_sandbox, tmp_path) as c, pytest.raises(RateLimited) as info:
        c.fetch(Report.SUMMARY, NORMAL)
    assert info.value.retryable and info.value.retry_after == 3600
    assert total(fresh_sandbox) == 1


def test_html_page_with_200_is_the_maintenance_page_and_retried(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "html"}])
    with client_for(fresh_sandbox, tmp_path, max_attempts=2) as c, pytest.raises(MaintenancePage) as info:
        c.fetch(Report.SUMMARY, NORMAL)
    assert info.value.retryable and total(fresh_sandbox) == 2


def test_truncated_body_is_a_typed_retryable_error(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "truncate"}])
    with client_for(fresh_sandbox, tmp_path) as c, pytest.raises(TruncatedCsv) as info:
        c.fetch(Report.CLUB, NORMAL, "42")
    assert info.value.retryable
    assert total(fresh_sandbox) == 1


def test_wrong_as_of_in_footer_is_unavailable_not_accepted(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "wrong_as_of"}])
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, NORMAL)
    assert not r.available and r.rows == [] and total(fresh_sandbox) == 2


def test_connection_reset_is_retried(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "reset", "times": 1}])
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, NORMAL)
        assert c.stats()["retries"] == 1
    assert r.available


def test_reset_every_time_ends_in_connection_failed(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "reset"}])
    with client_for(fresh_sandbox, tmp_path, max_attempts=2) as c, pytest.raises(ConnectionFailed):
        c.fetch(Report.SUMMARY, NORMAL)


def test_slow_answer_times_out_and_is_retryable(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "latency", "latencyMs": 1500}])
    with client_for(fresh_sandbox, tmp_path, read_timeout=0.3, max_attempts=1) as c:
        with pytest.raises(RequestTimedOut) as info:
            c.fetch(Report.SUMMARY, NORMAL)
    assert info.value.retryable


def test_4xx_is_permanent_and_not_retried(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c, pytest.raises(ClientHttpError) as info:
        c.http.get(f"{fresh_sandbox.url}/2024-2025/export.aspx?type=CSV&report=nosuchreport~1~2")
    assert info.value.status // 100 == 4 and not info.value.retryable
    assert c.http.stats.requests == 1


def test_user_agent_is_honest(fresh_sandbox, tmp_path):
    with client_for(fresh_sandbox, tmp_path) as c:
        assert "backfill_pipeline" in c.http.session.headers["User-Agent"]


# -- breaker and limiter -------------------------------------------------------------------


def test_breaker_opens_fails_fast_and_recovers(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "error", "status": 503}])
    with client_for(fresh_sandbox, tmp_path, max_attempts=1, breaker_threshold=3, breaker_cooldown=1) as c:
        for _ in range(3):
            with pytest.raises(ServerError):
                c.fetch(Report.SUMMARY, NORMAL)
        assert c.stats()["breakerState"] == "open"
        before = total(fresh_sandbox)
        started = time.monotonic()
        with pytest.raises(CircuitOpen):
            c.fetch(Report.SUMMARY, NORMAL)
        assert time.monotonic() - started < 0.5
        assert total(fresh_sandbox) == before  # failing fast: nothing sent
    # Another client (another process would do the same) shares the open state on disk.
    with client_for(fresh_sandbox, tmp_path, breaker_threshold=3, breaker_cooldown=1) as other:
        with pytest.raises(CircuitOpen):
            other.fetch(Report.SUMMARY, NORMAL)
    fresh_sandbox.clear_faults()
    time.sleep(1.1)
    with client_for(fresh_sandbox, tmp_path, breaker_threshold=3, breaker_cooldown=1) as c:
        r = c.fetch(Report.SUMMARY, NORMAL)  # the half-open probe
        assert r.available and c.stats()["breakerState"] == "closed"


@pytest.mark.slow
def test_limiter_rate_measured_at_the_server_within_10_percent(fresh_sandbox, tmp_path):
    rate = 10.0
    with client_for(fresh_sandbox, tmp_path, rate=rate, use_cache=False) as c:
        for _ in range(31):
            c.fetch(Report.SUMMARY, NORMAL)
        waited = c.stats()["rateLimitWaitSeconds"]
    log = requests.get(f"{fresh_sandbox.url}/_sandbox/requests?limit=100").json()["requests"]
    times = sorted(e["t"] for e in log)
    assert len(times) == 31
    measured = (len(times) - 1) / (times[-1] - times[0])
    # The limiter spaces requests by the budget's guard as well (10/s is 108 ms apart, 9.26/s),
    # so "within 10%" is of that pace: never above the budget, and not far below the pace
    # (a loaded machine answering slowly makes a one-at-a-time client slower, never faster).
    paced = 1000.0 / spacing_ms(rate)
    assert measured <= rate, measured
    assert measured >= paced * 0.90, (measured, paced)
    assert waited > 2.0


def test_open_year_transient_errors_are_retried_before_the_fallback(fresh_sandbox, tmp_path):
    # A 429 under /2026-2027/ is retried (after Retry-After), then the 500 sends us to the bare path.
    fresh_sandbox.set_faults([{"kind": "429", "retryAfter": 1, "times": 1}])
    with client_for(fresh_sandbox, tmp_path) as c:
        r = c.fetch(Report.SUMMARY, OPEN_YEAR)
    assert r.available and "/export.aspx?" in r.url and "/2026-2027/" not in r.url
    log = requests.get(f"{fresh_sandbox.url}/_sandbox/requests").json()["requests"]
    statuses = [e["status"] for e in log]
    assert statuses == [429, 500, 200]


def test_an_open_circuit_is_not_retried(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "error", "status": 503}])
    with client_for(fresh_sandbox, tmp_path, max_attempts=4, breaker_threshold=2, breaker_cooldown=60) as c:
        with pytest.raises(CircuitOpen):
            c.fetch(Report.SUMMARY, NORMAL)  # 2 failures open it; the 3rd attempt fails fast
        assert total(fresh_sandbox) == 2 and c.stats()["retries"] == 2
        started = time.monotonic()
        with pytest.raises(CircuitOpen):
            c.fetch(Report.SUMMARY, NORMAL)
        assert time.monotonic() - started < 0.2 and total(fresh_sandbox) == 2


def summaries_at_once(sandbox, root, as_of: dt.date, callers: int) -> list:
    """`callers` clients (as the runs of one date's districts) fetching one summary together; a
    slow answer keeps the first inside its request while the others arrive."""
    sandbox.set_faults([{"kind": "latency", "latencyMs": 600}])
    results: list = []

    def fetch() -> None:
        with client_for(sandbox, root) as c:
            results.append(c.fetch(Report.SUMMARY, as_of))

    threads = [threading.Thread(target=fetch) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == callers
    return results


def test_runs_that_need_one_dates_summary_at_once_ask_for_it_once(fresh_sandbox, tmp_path):
    # Every district's run of a date reads its summary; several run at once (issue 11).
    results = summaries_at_once(fresh_sandbox, tmp_path, NORMAL, 4)
    assert all(r.available for r in results)
    assert sum(r.requests for r in results) == 1 == total(fresh_sandbox)
    assert sorted(r.cache_hit for r in results) == [False, True, True, True]


def test_a_not_published_answer_got_while_others_waited_is_not_asked_again(fresh_sandbox, tmp_path):
    results = summaries_at_once(fresh_sandbox, tmp_path, TODAY, 3)
    assert not any(r.available for r in results)
    # Asked (its own month, then the previous one) by the first caller only.
    asked = [r.requests for r in results if r.requests]
    assert len(asked) == 1 and asked[0] == total(fresh_sandbox) >= 2
    # A caller that comes later, alone, asks again: "not published" may change by then.
    with client_for(fresh_sandbox, tmp_path) as c:
        assert c.fetch(Report.SUMMARY, TODAY).requests == asked[0]
