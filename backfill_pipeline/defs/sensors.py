"""Sensors: district discovery, the refresh chain, healing the gaps, and run-failure alerts."""

import datetime as dt
import json

import dagster as dg

from ..dashboard.breaker import CircuitBreaker
from ..names import (
    BACKFILL_TAG,
    DISTRICT_ASSET,
    DISTRICTS_PARTITION,
    HEAL_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SCOPE_TAG,
    SOURCE_TAG,
    SUMMARY_ASSET,
)
from ..planning.healing import (
    MAX_BATCHES,
    HealBatch,
    automatic_heal_cells,
    heal_batches,
    unrecorded_failures,
)
from ..scope import district_partitions_change
from .partitions import date_district_key
from .resources import DistrictConfiguration, SnapshotStore
from .schedules import LAG_WINDOW_DAYS, refresh_districts_request


@dg.sensor(
    name="district_discovery",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the districts partitions equal to the configured districts, or adds every "
    "district the newest summary lists when none are configured.",
)
def district_discovery(
    context: dg.SensorEvaluationContext, store: SnapshotStore, districts: DistrictConfiguration
) -> dg.SensorResult | dg.SkipReason:
    """Sync the `districts` partitions with the configured districts (or the newest summary's)."""
    configured = districts.configured()
    listed = None if configured else store.open().listed_districts()
    if not configured and listed is None:
        return dg.SkipReason("no district configured and no summary collected yet")
    current = list(context.instance.get_dynamic_partitions(DISTRICTS_PARTITION))
    add, remove = district_partitions_change(current, configured, listed)
    if not add and not remove:
        return dg.SkipReason("districts partitions already match the scope")
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(dg.AddDynamicPartitionsRequest(DISTRICTS_PARTITION, add))
    if remove:
        requests.append(dg.DeleteDynamicPartitionsRequest(DISTRICTS_PARTITION, remove))
    context.log.info(f"districts partitions: add {add}, remove {remove}")
    return dg.SensorResult(dynamic_partitions_requests=requests)


def build_refresh_chain_sensor(summary_job, district_job) -> dg.SensorDefinition:
    """After a refresh run of the summary succeeds, refresh that date's districts in detail."""

    @dg.run_status_sensor(
        name="refresh_districts_after_summary",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[summary_job],
        request_job=district_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After the daily summary refresh succeeds, refresh every in-scope district.",
    )
    def refresh_districts_after_summary(context: dg.RunStatusSensorContext, store: SnapshotStore):
        """Chain the district refresh after a successful summary refresh run."""
        run = context.dagster_run
        if run.tags.get(SOURCE_TAG) != "refresh" or not run.tags.get(PARTITION_TAG):
            return dg.SkipReason("not a refresh run of one date")
        as_of = dt.date.fromisoformat(run.tags[PARTITION_TAG])
        manifest = store.open().read_manifest(as_of)
        if manifest is not None and manifest.status == "unavailable" and not manifest.districts:
            # Not published yet: the refresh asks for the summary again, and chains from there.
            return dg.SkipReason(f"{as_of} is not published yet; the daily refresh asks again")
        # Keyed by the summary run: a date refreshed again (published late) chains again.
        request = refresh_districts_request(context.instance, as_of, again=f"after-{run.run_id}")
        return request or dg.SkipReason("no district partitions yet")

    return refresh_districts_after_summary


def heal_request(batch: HealBatch, summary_job, district_job) -> dg.RunRequest:
    """The run of one heal batch: a date's summary, or a block of its districts in detail."""
    tags = {SOURCE_TAG: "backfill", HEAL_TAG: "true"}
    if batch.asset == "summary":
        return dg.RunRequest(
            run_key=batch.run_key,
            job_name=summary_job.name,
            partition_key=batch.as_of.isoformat(),
            tags={**tags, SCOPE_TAG: "system-wide"},
        )
    return dg.RunRequest(
        run_key=batch.run_key,
        job_name=district_job.name,
        tags={
            **tags,
            SCOPE_TAG: "single-district" if len(batch.districts) == 1 else "targeted",
            RANGE_START_TAG: str(date_district_key(batch.as_of, batch.districts[0])),
            RANGE_END_TAG: str(date_district_key(batch.as_of, batch.districts[-1])),
        },
    )


# How far back heal_gaps looks for failed runs whose failures the store may not hold.
FAILED_RUNS_WINDOW = dt.timedelta(days=2)


def transient_failures(instance: dg.DagsterInstance, since: dt.datetime) -> dict[str, dict[str, int]]:
    """asset -> partition key -> failed runs since `since` that named it in a transient Failure
    (from the step failures' metadata, which the assets fill in)."""
    out: dict[str, dict[str, int]] = {SUMMARY_ASSET: {}, DISTRICT_ASSET: {}}
    runs = instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=since), limit=200
    )
    for run in runs:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
        for record in records:
            event = record.event_log_entry.dagster_event
            data = getattr(event, "event_specific_data", None)
            failure = getattr(data, "user_failure_data", None)
            metadata = getattr(failure, "metadata", None) or {}
            retryable = getattr(metadata.get("retryable"), "value", False)
            keys = getattr(metadata.get("failed_partitions"), "value", None)
            asset = event.step_key if event is not None else None
            if retryable is not True or not isinstance(keys, list) or asset not in out:
                continue
            for key in {str(k) for k in keys}:
                out[asset][key] = out[asset].get(key, 0) + 1
    return out


def build_heal_sensor(
    summary_job, district_job, *, breaker_cooldown: float, retry_delay: float, shared_store: str | None = None
) -> dg.SensorDefinition:
    """Re-executes what failed for transient reasons once the dashboard answers again, and asks
    pending "not published" dates again daily: outages heal without a human."""

    @dg.sensor(
        name="heal_gaps",
        jobs=[summary_job, district_job],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-executes (date, district) cells that failed for transient reasons (at most "
        "8 attempts each, after any Retry-After, once the dashboard's breaker lets requests through) "
        "and asks pending 'not published' dates again once a day.",
    )
    def heal_gaps(context: dg.SensorEvaluationContext, store: SnapshotStore):
        """Launch runs for the cells that heal themselves (see backfill_pipeline.planning.healing)."""
        with CircuitBreaker(store.root, cooldown=breaker_cooldown, shared_store=shared_store) as breaker:
            wait = breaker.retry_in()
        if wait > 0:
            return dg.SkipReason(f"the dashboard is failing (breaker open, {wait:.0f} s more): healing waits")
        now = dt.datetime.now(dt.UTC)
        window_start = now.date() - dt.timedelta(days=LAG_WINDOW_DAYS + 1)
        snapshots = store.open()
        cells = automatic_heal_cells(
            snapshots, now=now, refresh_window_start=window_start, retry_delay=retry_delay
        )
        # Failures the store could not record (its disk was full): Dagster's own record of them.
        # They never overlap the store's cells: a recorded failure is left to the store's path.
        failed = transient_failures(context.instance, now - FAILED_RUNS_WINDOW)
        for asset, district_keys in ((SUMMARY_ASSET, False), (DISTRICT_ASSET, True)):
            cells += unrecorded_failures(snapshots, failed[asset], district_keys=district_keys)
        if not cells:
            return dg.SkipReason("nothing to heal")
        order = list(context.instance.get_dynamic_partitions(DISTRICTS_PARTITION))
        batches = heal_batches(cells, order)[:MAX_BATCHES]
        context.log.info(f"healing {len(cells)} cells in {len(batches)} runs")
        return [heal_request(b, summary_job, district_job) for b in batches]

    return heal_gaps


def alert_record(run: dg.DagsterRun, message: str) -> dict:
    """One line of the alert log."""
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runId": run.run_id,
        "job": run.job_name,
        "backfillId": run.tags.get(BACKFILL_TAG),
        "partition": run.tags.get(PARTITION_TAG),
        "source": run.tags.get(SOURCE_TAG),
        "message": message,
    }


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run in the alert log under the data root.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, store: SnapshotStore) -> None:
    """Append a JSON line per failed run to `<root>/alerts/run-failures.jsonl` and log it."""
    message = context.failure_event.message or "run failed"
    record = alert_record(context.dagster_run, message)
    path = store.root.run_failure_log
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    context.log.error(f"run {record['runId']} ({record['job']}) failed: {message}")
