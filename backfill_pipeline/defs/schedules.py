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


def refresh_districts_request(
    instance: dg.DagsterInstance, as_of: dt.date, *, again: str | None = None
) -> dg.RunRequest | None:
    """One ranged run over (as_of x every in-scope district); None when no district is known yet.
    `again` makes the run key new (a run key is used once, for ever)."""
    districts = instance.get_dynamic_partitions(DISTRICTS_PARTITION)
    if not districts:
        return None
    # The district dimension of the range spans the dynamic partitions in their stored order,
    # which the summary run has just made equal to the in-scope set.
    return dg.RunRequest(
        run_key=f"refresh-districts-{as_of}" + (f"-{again}" if again else ""),
        tags={
            **REFRESH_TAGS,
            SCOPE_TAG: "single-district" if len(districts) == 1 else "targeted",
            RANGE_START_TAG: str(date_district_key(as_of, districts[0])),
            RANGE_END_TAG: str(date_district_key(as_of, districts[-1])),
        },
    )


# The daily refresh looks this far back for dates it has not completed. The dashboard is
# sometimes one or two days behind (docs/dashboard.md §7) and publishes a late date within days;
# a week is three times that, at the cost of at most one summary request per incomplete date
# per day. A date still unpublished after the window is pending, and the heal sensor asks it
# again daily until "not published" is final on evidence.
LAG_WINDOW_DAYS = 7


def incomplete_dates(store, instance: dg.DagsterInstance, yesterday: dt.date, first: dt.date):
    """The dates of the lag window (before yesterday) the refresh must ask again: (date, what),
    `what` being "summary" (not published yet, failed, never collected) or "districts" (the
    summary is in, some in-scope district is not collected in detail)."""
    districts = instance.get_dynamic_partitions(DISTRICTS_PARTITION)
    out = []
    for back in range(LAG_WINDOW_DAYS, 0, -1):
        day = yesterday - dt.timedelta(days=back)
        if day < first:
            continue
        manifest = store.read_manifest(day)
        if manifest is None or manifest.status == "failed" and not manifest.districts:
            out.append((day, "summary"))
        elif manifest.status == "unavailable" and not manifest.districts:
            if not manifest.unavailable_final:
                out.append((day, "summary"))
        elif districts and any(not _settled(manifest, d) for d in districts):
            out.append((day, "districts"))
    return out


def _settled(manifest, district: str) -> bool:
    entry = next((e for e in manifest.districts if e.district_id == district), None)
    if entry is None:
        return False
    if entry.status == "success":
        return entry.detail == "detailed"
    return entry.status == "unavailable" and entry.unavailable_final


def build_refresh_schedule(summary_job, first: dt.date, cron: str = "0 9 * * *") -> dg.ScheduleDefinition:
    """The daily refresh: yesterday's summary; a sensor then refreshes every in-scope district."""

    @dg.schedule(
        name="daily_refresh",
        cron_schedule=cron,
        job=summary_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every day: yesterday's summary, then every in-scope district, ahead of backfills; "
        f"dates of the last {LAG_WINDOW_DAYS} days not complete yet are asked again.",
    )
    def daily_refresh(context: dg.ScheduleEvaluationContext, store: SnapshotStore) -> list[dg.RunRequest]:
        """Refresh yesterday (the dashboard shows the previous day) and recent dates not complete yet."""
        yesterday = context.scheduled_execution_time.date() - dt.timedelta(days=1)
        requests: list[dg.RunRequest] = []
        for day, what in incomplete_dates(store.open(), context.instance, yesterday, first):
            if what == "summary":
                requests.append(refresh_summary_request(day, attempt_on=yesterday))
            else:
                request = refresh_districts_request(context.instance, day, again=f"again-{yesterday}")
                if request is not None:
                    requests.append(request)
        if yesterday >= first:
            requests.append(refresh_summary_request(yesterday))
        return requests

    return daily_refresh


prune_old_runs_schedule = dg.ScheduleDefinition(
    name="prune_old_runs_weekly",
    job=prune_old_runs,
    cron_schedule="30 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly: delete finished runs and backfills older than the retention period, and "
    "our records of them, never those a backfill still running refers to.",
)
