"""Schedules: the daily refresh of yesterday, and the weekly run-history upkeep."""

import datetime as dt

import dagster as dg

from ..names import (
    DISTRICTS_PARTITION,
    PRIORITY_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SCOPE_TAG,
    SOURCE_TAG,
)
from .jobs import prune_old_runs
from .partitions import date_district_key
from .resources import SnapshotStore

# Refresh runs jump the queue ahead of backfill runs (higher dagster/priority runs first).
REFRESH_PRIORITY = "10"


REFRESH_TAGS = {SOURCE_TAG: "refresh", PRIORITY_TAG: REFRESH_PRIORITY}


def refresh_summary_request(as_of: dt.date, attempt_on: dt.date | None = None) -> dg.RunRequest:
    """The refresh run of one date's summary (which also syncs the `districts` partitions)."""
    return dg.RunRequest(
        run_key=f"refresh-summary-{as_of}" + (f"-again-{attempt_on}" if attempt_on else ""),
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
            RANGE_START_TAG: str(date_district_key(as_of, districts[0])),
            RANGE_END_TAG: str(date_district_key(as_of, districts[-1])),
        },
    )


LAGGING_DAYS = 2


def lagging_dates(store, yesterday: dt.date) -> list[dt.date]:
    """The days before yesterday stored as unavailable: the dashboard is sometimes a day or two
    behind, and an unavailable answer that recent is not final, so the refresh asks again."""
    out = []
    for back in range(LAGGING_DAYS, 0, -1):
        day = yesterday - dt.timedelta(days=back)
        metadata = store.read_metadata(day)
        if metadata is not None and metadata.status == "unavailable":
            out.append(day)
    return out


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
    def daily_refresh(context: dg.ScheduleEvaluationContext, store: SnapshotStore) -> list[dg.RunRequest]:
        """Refresh yesterday (the dashboard shows the previous day) and recent dates it lagged on."""
        yesterday = context.scheduled_execution_time.date() - dt.timedelta(days=1)
        again = [
            refresh_summary_request(d, attempt_on=yesterday) for d in lagging_dates(store.open(), yesterday)
        ]
        return [*again, refresh_summary_request(yesterday)]

    return daily_refresh


prune_old_runs_schedule = dg.ScheduleDefinition(
    name="prune_old_runs_weekly",
    job=prune_old_runs,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly: delete finished runs older than the retention period.",
)
