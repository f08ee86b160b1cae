"""Gaps heal themselves: late publication through the daily refresh and its chain, transient
failures through the heal sensor. Real Dagster instance, real runs (dagster.materialize), the
sandbox over loopback HTTP, real files; the daemon's part (evaluating the schedule and sensors,
launching what they ask) is done here by hand, one tick at a time."""

import datetime as dt
import time

import dagster as dg
import pytest
from conftest import published_dates, settings

from backfill_pipeline.dashboard.breaker import CircuitBreaker
from backfill_pipeline.definitions import build_definitions
from backfill_pipeline.names import HEAL_TAG, PARTITION_TAG
from backfill_pipeline.planning.gaps import MAX_ATTEMPTS, find_gaps
from backfill_pipeline.sandbox.publication import is_published
from backfill_pipeline.sandbox.server import SandboxServer
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.verify import verify_store

DAY_1 = dt.date(2026, 11, 27)  # the first refresh's yesterday: held back, published a day late
DAY_2 = dt.date(2026, 11, 28)
DISTRICTS = ["42", "61", "109"]


@pytest.fixture
def world(tmp_path, request):
    assert is_published(DAY_1, today=dt.date(2026, 12, 1)) and is_published(DAY_2, today=dt.date(2026, 12, 1))
    start = getattr(request, "param", DAY_1)
    with SandboxServer(seed=42, today=dt.date(2026, 12, 1)) as sandbox, dg.instance_for_test() as instance:
        deployment = settings(
            dashboard_url=sandbox.url,
            data_root=tmp_path,
            rate=100,
            max_attempts=1,
            breaker_threshold=3,
            breaker_cooldown=0.5,
            retry_delay=0.05,
            start_date=start,
        )
        DistrictConfig(tmp_path).set(DISTRICTS)
        repo = build_definitions(deployment).get_repository_def()
        yield dict(
            sandbox=sandbox,
            instance=instance,
            repo=repo,
            root=tmp_path,
            store=PerDistrictFileSnapshotStore(tmp_path),
        )


def run(world, request: dg.RunRequest, job_name: str) -> dg.ExecuteInProcessResult:
    """What the daemon does with a run request: run its job with its tags (and partition)."""
    job = world["repo"].get_job(job_name)
    tags = dict(request.tags)
    if request.partition_key:
        tags[PARTITION_TAG] = request.partition_key
    return job.execute_in_process(
        instance=world["instance"], partition_key=request.partition_key, tags=tags, raise_on_error=False
    )


def chain(world, result: dg.ExecuteInProcessResult):
    """The chain sensor's evaluation of a finished summary run."""
    sensor = world["repo"].get_sensor_def("refresh_districts_after_summary")
    dagster_run = world["instance"].get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=world["instance"],
        dagster_run=dagster_run,
        resources={"store": world["repo"].get_top_level_resources()["store"]},
    ) as ctx:
        return sensor(ctx)


def refresh_day(world, day: dt.date) -> list[str]:
    """One day of the daemon: the 09:00 refresh, each summary run, then the chain it triggers.
    Returns what happened, one line per run, for the assertion messages."""
    schedule = world["repo"].get_schedule_def("daily_refresh")
    with dg.build_schedule_context(
        instance=world["instance"],
        scheduled_execution_time=dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC),
        resources={"store": world["repo"].get_top_level_resources()["store"]},
    ) as ctx:
        requests = schedule(ctx)
    log = []
    for request in requests:
        result = run(world, request, "all_districts_summary_job")
        assert result.success, request
        log.append(f"summary {request.partition_key} ({request.run_key})")
        follow = chain(world, result)
        if isinstance(follow, dg.SkipReason):
            log.append(f"  chain skipped: {follow.skip_message}")
            continue
        districts = run(world, follow, "district_snapshot_job")
        log.append(f"  districts {'succeeded' if districts.success else 'failed'} ({follow.run_key})")
    return log


def cells(world, start=DAY_1, end=DAY_2) -> dict[str, str]:
    return {c.key: c.state for c in find_gaps(world["store"], start, end, DISTRICTS).cells}


def test_a_late_date_gets_its_summary_and_every_district_in_detail_without_a_human(world):
    world["sandbox"].hold_back([DAY_1])
    day_one = refresh_day(world, DAY_1 + dt.timedelta(days=1))
    # Not published yet: pending (asked again), no detailed "unavailable" files written.
    assert set(cells(world, DAY_1, DAY_1).values()) == {"unavailable-pending"}, day_one
    assert not world["store"].read_manifest(DAY_1).districts
    assert any("not published yet" in line for line in day_one)

    world["sandbox"].release()  # the dashboard publishes it a day late
    day_two = refresh_day(world, DAY_2 + dt.timedelta(days=1))
    assert set(cells(world).values()) == {"detailed"}, day_two
    assert not [line for line in day_one + day_two if "failed" in line]
    assert [line.split()[1] for line in day_two if line.startswith("summary")] == [
        DAY_1.isoformat(),
        DAY_2.isoformat(),
    ]
    # Every district of both dates was materialized once, each by its own chained run.
    materialized = world["instance"].get_materialized_partitions(dg.AssetKey("district_snapshot"))
    assert materialized == {f"{d}|{x}" for d in (DAY_1, DAY_2) for x in DISTRICTS}

    # A third day finds nothing left to ask again in the window.
    day_three = refresh_day(world, DAY_2 + dt.timedelta(days=2))
    assert [line for line in day_three if line.startswith("summary")] == [
        "summary 2026-11-29 (refresh-summary-2026-11-29)"
    ], day_three


def heal_tick(world):
    sensor = world["repo"].get_sensor_def("heal_gaps")
    with dg.build_sensor_context(
        instance=world["instance"], resources={"store": world["repo"].get_top_level_resources()["store"]}
    ) as ctx:
        return sensor(ctx)


def test_the_heal_sensor_re_executes_transient_failures_once_the_dashboard_answers(world):
    # Day one's refresh meets an outage for two districts' reports.
    world["sandbox"].set_faults([{"kind": "error", "status": 503, "district": "61"}])
    world["sandbox"].add_fault({"kind": "html", "district": "109"})
    refresh_day(world, DAY_1 + dt.timedelta(days=1))
    state = cells(world, DAY_1, DAY_1)
    assert state == {f"{DAY_1}|42": "detailed", f"{DAY_1}|61": "summary", f"{DAY_1}|109": "summary"}
    gaps = find_gaps(world["store"], DAY_1, DAY_1, DISTRICTS)
    assert all(c.detail_wanted for c in gaps.cells if c.district != "42")

    # While the breaker is open the sensor waits; after its cool-down it re-executes.
    breaker = CircuitBreaker(world["root"])
    for _ in range(3):
        breaker.record_failure()
    assert isinstance(heal_tick(world), dg.SkipReason)
    world["sandbox"].clear_faults()
    time.sleep(0.6)  # the breaker's cool-down (the heal run's first request is its probe), and settling
    requests = heal_tick(world)
    assert not isinstance(requests, dg.SkipReason), requests
    assert [r.tags[HEAL_TAG] for r in requests] == ["true"]
    (request,) = requests
    assert request.tags["dagster/asset_partition_range_start"] == f"{DAY_1}|61"
    assert request.tags["dagster/asset_partition_range_end"] == f"{DAY_1}|109"
    assert run(world, request, "district_snapshot_job").success
    assert set(cells(world, DAY_1, DAY_1).values()) == {"detailed"}
    assert isinstance(heal_tick(world), dg.SkipReason)  # nothing left


def test_a_district_that_always_fails_ends_failed_after_bounded_attempts(world):
    world["sandbox"].set_faults([{"kind": "html", "district": "61", "report": "clubperformance"}])
    refresh_day(world, DAY_1 + dt.timedelta(days=1))
    time.sleep(0.5)  # 8 step-retry delays (0.4 s): the failed run's own retries are over
    runs = 0
    for _ in range(120):
        [cell] = find_gaps(world["store"], DAY_1, DAY_1, ["61"]).cells
        if not cell.detail_wanted:
            break
        requests = heal_tick(world)
        if isinstance(requests, dg.SkipReason):
            time.sleep(0.25)  # the breaker's cool-down, or the run's own retries settling
            continue
        runs += len(requests)
        for request in requests:
            run(world, request, "district_snapshot_job")
    assert 1 <= runs <= MAX_ATTEMPTS, "healing must stop"
    time.sleep(0.6)
    assert heal_tick(world).skip_message == "nothing to heal"
    [cell] = [c for c in find_gaps(world["store"], DAY_1, DAY_1, ["61"]).cells]
    assert cell.state == "summary" and not cell.detail_wanted  # its summary data is kept
    assert cell.attempts >= MAX_ATTEMPTS
    kept = world["store"].read_metadata(DAY_1).errors_with_data_kept
    assert {e.error_class for e in kept if e.district == "61"} <= {"MaintenancePage", "CircuitOpen"}
    assert any(e.error_class == "MaintenancePage" and "HTML" in e.message for e in kept)


def test_a_long_retry_after_defers_the_key_instead_of_retrying_it_soon(world):
    # The dashboard says "come back in an hour": the run does not retry in seconds, the cell
    # records when, and the heal sensor leaves it alone until then.
    world["sandbox"].set_faults([{"kind": "429", "retryAfter": 3600, "district": "61", "times": 1}])
    refresh_day(world, DAY_1 + dt.timedelta(days=1))
    runs = world["instance"].get_run_records(dg.RunsFilter(job_name="district_snapshot_job"))
    events = world["instance"].all_logs(runs[0].dagster_run.run_id)
    assert not [
        e for e in events if e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    failure = next(
        e for e in events if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
    )
    assert "deferred until" in failure.dagster_event.event_specific_data.error.message
    [cell] = find_gaps(world["store"], DAY_1, DAY_1, ["61"]).cells
    wait = cell.retry_not_before - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < wait <= dt.timedelta(hours=1)
    time.sleep(0.5)
    assert heal_tick(world).skip_message == "nothing to heal"


def test_a_short_retry_after_is_waited_inside_the_run(world):
    world["sandbox"].set_faults([{"kind": "429", "retryAfter": 2, "district": "61", "times": 1}])
    log = refresh_day(world, DAY_1 + dt.timedelta(days=1))
    assert "districts succeeded" in log[-1], log
    runs = world["instance"].get_run_records(dg.RunsFilter(job_name="district_snapshot_job"))
    events = world["instance"].all_logs(runs[0].dagster_run.run_id)
    retries = [
        e for e in events if e.dagster_event and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert len(retries) == 1 and "retry in 2.0 seconds" in retries[0].message


LONG_CLOSED = published_dates(dt.date(2025, 3, 10), 1, closing=False)[0]


@pytest.mark.parametrize("world", [dt.date(2025, 1, 1)], indirect=True)
def test_one_wrong_as_of_answer_in_a_long_closed_month_is_asked_again_and_collected(world, monkeypatch):
    import backfill_pipeline.planning.healing as healing

    # One glitch: the dashboard answers another as-of date once (and the previous month's
    # request, asked next, the same). Not final: pending, asked again a day later.
    world["sandbox"].set_faults([{"kind": "wrong_as_of", "asOf": LONG_CLOSED.isoformat(), "times": 2}])
    summary = dg.RunRequest(
        partition_key=LONG_CLOSED.isoformat(), tags={"backfill_pipeline/source": "backfill"}
    )
    assert run(world, summary, "all_districts_summary_job").success
    assert set(cells(world, LONG_CLOSED, LONG_CLOSED).values()) == {"unavailable-pending"}
    assert isinstance(heal_tick(world), dg.SkipReason)  # asked again only a day later
    monkeypatch.setattr(healing, "PENDING_RECHECK_AFTER", dt.timedelta(0))  # "a day later"
    [request] = heal_tick(world)
    assert request.partition_key == LONG_CLOSED.isoformat() and request.tags[HEAL_TAG] == "true"
    assert run(world, request, "all_districts_summary_job").success
    assert set(cells(world, LONG_CLOSED, LONG_CLOSED).values()) == {"summary"}
    assert verify_store(world["store"]) == []


def test_a_failure_the_store_could_not_record_is_healed_from_dagsters_record(world, monkeypatch):
    # The data root is full while 61's file is written: the store holds no trace of the failure
    # (it could not write one), but the failed run's step failure names the key as transient.
    real = PerDistrictFileSnapshotStore.write_districts

    def full_disk(self, as_of, snapshots, **kw):
        if any(s.district_id == "61" and s.detail == "detailed" for s in snapshots):
            raise OSError(28, "No space left on device")
        return real(self, as_of, snapshots, **kw)

    monkeypatch.setattr(PerDistrictFileSnapshotStore, "write_districts", full_disk)
    log = refresh_day(world, DAY_1 + dt.timedelta(days=1))
    assert "districts failed" in log[-1], log
    [cell] = find_gaps(world["store"], DAY_1, DAY_1, ["61"]).cells
    assert cell.state == "summary" and cell.last_error is None  # nothing recorded in the store
    monkeypatch.undo()  # space is freed
    time.sleep(0.5)
    [request] = heal_tick(world)
    assert request.tags["dagster/asset_partition_range_start"] == f"{DAY_1}|61"
    assert run(world, request, "district_snapshot_job").success
    assert set(cells(world, DAY_1, DAY_1).values()) == {"detailed"}
    assert heal_tick(world).skip_message == "nothing to heal"
