"""Schedules: the daily refresh of yesterday, and the weekly run-history upkeep."""


import datetime as dt

import dagster as dg

from .assets import SCOPE_TAG, SOURCE_TAG
from .jobs import prune_old_runs
from .partitions import DISTRICTS_PARTITION, date_district_key

# Refresh runs jump the queue ahead of backfill runs (higher dagster/priority runs first).
REFRESH_PRIORITY = "10"


REFRESH_TAGS = {SOURCE_TAG: "refresh", "dagster/priority": REFRESH_PRIORITY}


def refresh_summary_request(as_of: dt.date) -> dg.RunRequest:
    """The refresh run of one date's summary (which also syncs the `districts` partitions)."""
    return dg.RunRequest(
        run_key=f"refresh-summary-{as_of}",
        partition_key=as_of.isoformat(),
        tags={**REFRESH_TAGS, SCOPE_TAG: "system-wide"},
    )


def refresh_districts_request(instance: dg.DagsterInstance, as_of: dt.date) -> dg.RunRequest | None:
    """One ranged run over (as_of x every in-scope district); None when no district is known yet."""
    districts = instance.get_dynamic_partitions(DISTRICTS_PARTITION)
    if not districts:
        return None
    # The district dimension of the range spans the dynamic partitions in their stored order,
    # which the summary run has just made equal to the in-scope set.
    return dg.RunRequest(
        run_key=f"refresh-districts-{as_of}",
        tags={
            **REFRESH_TAGS,
            SCOPE_TAG: "single-district" if len(districts) == 1 else "targeted",
            "dagster/asset_partition_range_start": str(date_district_key(as_of, districts[0])),
            "dagster/asset_partition_range_end": str(date_district_key(as_of, districts[-1])),
        },
    )


def build_refresh_schedule(summary_job, cron: str = "0 9 * * *") -> dg.ScheduleDefinition:
    """The daily refresh: yesterday's summary; a sensor then refreshes every in-scope district."""

    @dg.schedule(
        name="daily_refresh",
        cron_schedule=cron,
        job=summary_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day: yesterday's summary, then every in-scope district, ahead of backfills.",
    )
    def daily_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """Refresh yesterday (the dashboard shows the previous day)."""
        return refresh_summary_request(context.scheduled_execution_time.date() - dt.timedelta(days=1))

    return daily_refresh


prune_old_runs_schedule = dg.ScheduleDefinition(
    name="prune_old_runs_weekly",
    job=prune_old_runs,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly: delete finished runs older than the retention period.",
)
