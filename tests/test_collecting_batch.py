"""The batch loop of a run, without Dagster: per-key errors, cost per key, resuming a retried step."""

from __future__ import annotations

from conftest import AS_OF, a_detailed

from backfill_pipeline.collecting.batch import (
    RunInfo,
    batch_failure,
    collect_batch,
    earlier_permanent_failure,
)
from backfill_pipeline.collecting.collect import DistrictOutcome
from backfill_pipeline.dashboard.errors import NotACsv, ServerError
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore, failed_district
from backfill_pipeline.snapshots.models import DistrictError


class Meter:
    """A run's statistics that grow by 3 requests and 1 cache hit per key collected."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> dict:
        return {"requests": 3 * self.n, "cacheHits": self.n, "rateLimitWaitSeconds": 0.5 * self.n}


def test_each_key_on_its_own_and_what_it_cost():
    meter = Meter()

    def collect(key: str) -> DistrictOutcome:
        meter.n += 1
        if key == "b":
            raise ServerError("HTTP 503", status=503)
        status = "failed" if key == "c" else "success"
        error = NotACsv("an HTML page") if key == "c" else None
        return DistrictOutcome(as_of=AS_OF, district="42", status=status, error=error)

    results = list(collect_batch(["a", "b", "c", "d"], collect, stats=meter, done_earlier=lambda k: k == "d"))
    assert [r.key for r in results] == ["a", "b", "c"]  # d was done by an earlier attempt
    assert [r.failed for r in results] == [False, True, True]
    assert results[0].cost == {"requests": 3, "cache_hits": 1, "rate_limit_wait_seconds": 0.5}
    assert results[0].metadata()["status"] == "success" and results[0].metadata()["requests"] == 3
    assert results[1].outcome is None and isinstance(results[1].error, ServerError)

    failure = batch_failure("district_snapshot", results)
    assert failure is not None and list(failure.errors) == ["b", "c"]
    assert failure.retryable  # b may succeed later, so Dagster retries the step
    assert failure.description == "district_snapshot: 2 partition(s) failed: b, c"
    assert failure.lines() == ["b: ServerError: HTTP 503", "c: NotACsv: an HTML page"]
    assert batch_failure("x", results[:1]) is None
    assert not batch_failure("x", results[2:]).retryable  # only permanent failures: no retry


def test_a_permanent_failure_of_this_run_is_not_fetched_again_on_its_retry(tmp_path):
    store = PerDistrictFileSnapshotStore(tmp_path)
    first, retry, other = RunInfo("run-1"), RunInfo("run-1", attempt=2), RunInfo("run-2", attempt=2)
    detail_ctx = first.write_context("targeted", "per-district-csvs", [])
    store.write_district(a_detailed("61"), context=detail_ctx)
    error = DistrictError.from_exception(
        NotACsv("a CSV of another report"), district="09", report="clubperformance", run_id="run-1"
    )
    store.write_district(
        failed_district(district_id="09", as_of=AS_OF, detail="detailed", errors=[error]), context=detail_ctx
    )
    earlier = earlier_permanent_failure(store, AS_OF, "09", retry)
    assert earlier is not None and earlier.status == "failed" and "NotACsv" in str(earlier.error)
    assert earlier_permanent_failure(store, AS_OF, "09", first) is None
    assert earlier_permanent_failure(store, AS_OF, "09", other) is None
    assert earlier_permanent_failure(store, AS_OF, "61", retry) is None
    # A run re-executing a dead one resumes it; a first attempt does not.
    assert RunInfo("r2", earlier_runs=("r1",)).resumes and RunInfo("r2", earlier_runs=("r1",)).run_ids == {
        "r1",
        "r2",
    }
    assert not first.resumes and retry.resumes


def test_a_summary_listing_too_few_districts_is_a_transient_failure_recorded_and_forgotten(tmp_path):
    # A broken answer (3 districts where the dashboard lists ~128), already in the raw cache, so
    # the real client serves it without a request: not a success, not remembered, retried later.
    from conftest import REFRESH, client_settings

    from backfill_pipeline.collecting.collect import collect_summary
    from backfill_pipeline.dashboard.cache import CachedAnswer, RawCache
    from backfill_pipeline.dashboard.client import DashboardClient
    from backfill_pipeline.dashboard.errors import SuspiciousSummary

    body = b'"REGION","DISTRICT"\r\n"01","42"\r\n"01","61"\r\n"01","09"\r\nMonth of Aug, As of 09/08/2025\r\n'
    cache = RawCache(tmp_path)
    sha = cache.put(body, url="http://dashboard/x", as_of=AS_OF)
    cache.remember(CachedAnswer("districtsummary", None, AS_OF.isoformat(), True, "http://dashboard/x", sha))
    store = PerDistrictFileSnapshotStore(tmp_path)
    with DashboardClient(client_settings("http://127.0.0.1:9"), tmp_path) as client:
        try:
            collect_summary(client, store, AS_OF, configured=[], context=REFRESH)
        except SuspiciousSummary as exc:
            assert exc.retryable and "3 districts" in str(exc)
        else:
            raise AssertionError("a 3-district summary was taken for a success")
    assert cache.lookup("districtsummary", None, AS_OF) is None  # the next attempt asks again
    [error] = store.read_manifest(AS_OF).summary_errors
    assert error.error_class == "SuspiciousSummary" and error.retryable
