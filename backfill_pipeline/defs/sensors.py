"""Sensors: district discovery, the refresh chain, and run-failure alerts."""

import datetime as dt
import json

import dagster as dg

from ..names import BACKFILL_TAG, DISTRICTS_PARTITION, PARTITION_TAG, SOURCE_TAG
from ..scope import district_partitions_change
from .resources import DistrictConfiguration, SnapshotStore
from .schedules import refresh_districts_request


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
    def refresh_districts_after_summary(context: dg.RunStatusSensorContext):
        """Chain the district refresh after a successful summary refresh run."""
        run = context.dagster_run
        if run.tags.get(SOURCE_TAG) != "refresh" or not run.tags.get(PARTITION_TAG):
            return dg.SkipReason("not a refresh run of one date")
        request = refresh_districts_request(context.instance, dt.date.fromisoformat(run.tags[PARTITION_TAG]))
        return request or dg.SkipReason("no district partitions yet")

    return refresh_districts_after_summary


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
