"""Token bucket and the file-shared circuit breaker, with controlled clocks and real processes."""

import multiprocessing
import threading

import pytest

from backfill_pipeline.dashboard.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from backfill_pipeline.dashboard.errors import CircuitOpen
from backfill_pipeline.dashboard.http import RetrySettings, backoff_delay, parse_retry_after
from backfill_pipeline.dashboard.ratelimit import TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_token_bucket_paces_to_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(41):
        bucket.acquire()
    # 1 burst token, then 40 more at 4/s.
    assert clock.now - start == pytest.approx(10.0)
    assert bucket.waited_seconds == pytest.approx(10.0)


def test_token_bucket_idle_time_does_not_build_a_burst_beyond_its_size():
    clock = FakeClock()
    bucket = TokenBucket(2, burst=3, clock=clock, sleep=clock.sleep)
    clock.now += 100
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.5) and waits[4] == pytest.approx(0.5)


def test_token_bucket_is_thread_safe():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=lambda s: None)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(10)]) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 50 acquisitions with the clock frozen: 49 owe 0.1 s each, cumulatively.
    assert bucket.waited_seconds == pytest.approx(sum(0.1 * k for k in range(1, 50)))


@pytest.mark.parametrize("rate", [0, -1])
def test_token_bucket_rejects_non_positive_rates(rate):
    with pytest.raises(ValueError):
        TokenBucket(rate)


def test_breaker_opens_fails_fast_and_recovers_through_one_probe(tmp_path):
    clock = FakeClock()
    breaker = CircuitBreaker(tmp_path, failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.before_request()
        breaker.record_failure()
    assert breaker.state().state == CLOSED
    breaker.record_failure()
    assert breaker.state().state == OPEN
    with pytest.raises(CircuitOpen) as info:
        breaker.before_request()
    assert info.value.retry_in == pytest.approx(10) == breaker.retry_in()
    clock.now += 4
    assert breaker.retry_in() == pytest.approx(6)
    clock.now += 6
    assert breaker.retry_in() == 0
    breaker.before_request()  # the probe
    assert breaker.state().state == HALF_OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_request()  # a second caller while the probe is out
    breaker.record_success()
    assert breaker.state().state == CLOSED
    breaker.before_request()


def test_failed_probe_reopens(tmp_path):
    clock = FakeClock()
    breaker = CircuitBreaker(tmp_path, failure_threshold=1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    breaker.before_request()
    breaker.record_failure()
    assert breaker.state().state == OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_request()


def test_success_resets_the_count(tmp_path):
    breaker = CircuitBreaker(tmp_path, failure_threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state().state == CLOSED


def _fail(path, n):
    b = CircuitBreaker(path, failure_threshold=1000)
    for _ in range(n):
        b.record_failure()


def test_breaker_state_is_shared_between_processes(tmp_path):
    path = tmp_path
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fail, args=(path, 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # No lost updates under the file lock: every process's failures counted.
    assert CircuitBreaker(path).state().consecutive_failures == 100
    opened_elsewhere = CircuitBreaker(path, failure_threshold=100, cooldown=60)
    opened_elsewhere.record_failure()
    with pytest.raises(CircuitOpen):
        CircuitBreaker(path, failure_threshold=100, cooldown=60).before_request()


def test_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


def test_backoff_grows_is_bounded_and_jittered():
    import random

    settings = RetrySettings(backoff_base=1, backoff_max=8)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {backoff_delay(attempt, settings, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


def test_a_late_success_does_not_close_an_open_circuit(tmp_path):
    clock = FakeClock()
    breaker = CircuitBreaker(tmp_path, failure_threshold=1, cooldown=10, clock=clock)
    breaker.record_failure()
    breaker.record_success()  # an answer to a request sent before the circuit opened
    assert breaker.state().state == OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_request()


def test_a_request_that_cannot_be_built_does_not_take_the_half_open_probe(tmp_path):
    from backfill_pipeline.dashboard.errors import ConnectionFailed
    from backfill_pipeline.dashboard.http import DashboardHttp

    clock = FakeClock()
    breaker = CircuitBreaker(tmp_path, failure_threshold=1, cooldown=10, clock=clock)
    breaker.before_request()
    breaker.record_failure()
    clock.now += 10  # the cool-down is over: the next request is the probe
    http = DashboardHttp(limiter=TokenBucket(1000), breaker=breaker, sleep=clock.sleep)
    with pytest.raises(ConnectionFailed):
        http.get("http://[not-a-host/export.aspx", max_attempts=1)
    assert http.stats.requests == 0
    breaker.before_request()  # the probe is still there for a real request
    assert breaker.state().state == HALF_OPEN
