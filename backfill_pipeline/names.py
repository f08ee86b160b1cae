"""The names the Dagster layer defines and the rest of the product plans, launches and reads
against: assets, partitions, pool, jobs, run tags and the date x district key format.

No Dagster here, so the planner, the API and the CLI can use them without loading Dagster.
"""

from __future__ import annotations

import datetime as dt

SUMMARY_ASSET = "all_districts_summary"
DISTRICT_ASSET = "district_snapshot"
ASSET_GROUP = "toastmasters"
SUMMARY_JOB = "all_districts_summary_job"
DISTRICT_JOB = "district_snapshot_job"

# The analyst tables (backfill_pipeline/tables), one daily-partitioned asset each, rebuilt by the
# automation sensor when a date's snapshots change.
DISTRICT_TABLE = "district_statistics"
CLUB_TABLE = "club_statistics"
TABLES_GROUP = "analyst_tables"
TABLES_SENSOR = "rebuild_analyst_tables"

# The dynamic partitions of district ids, and the two dimensions of the date x district
# partitions (Dagster sorts dimensions by name, so keys read `date|district`).
DISTRICTS_PARTITION = "districts"
DATE_DIMENSION = "date"
DISTRICT_DIMENSION = "district"
KEY_SEPARATOR = "|"

# Every asset that asks the dashboard draws on this pool (its limit is in dagster.yaml).
POOL = "toastmasters_dashboard"

# Run tags the product sets (a backfill's tags are copied to its runs) and the assets read.
TAG_PREFIX = "backfill_pipeline/"
SOURCE_TAG = f"{TAG_PREFIX}source"
SCOPE_TAG = f"{TAG_PREFIX}scope"
FORCE_TAG = f"{TAG_PREFIX}force"
RATE_TAG = f"{TAG_PREFIX}rate"
REQUEST_ID_TAG = f"{TAG_PREFIX}request-id"
STRATEGY_TAG = f"{TAG_PREFIX}strategy"
PLAN_HASH_TAG = f"{TAG_PREFIX}plan-hash"
# Ask the dashboard again even where "not published" is final on evidence.
RECHECK_TAG = f"{TAG_PREFIX}recheck-unavailable"
# A run launched by the heal sensor (or `heal`) to re-execute cells that failed transiently.
HEAL_TAG = f"{TAG_PREFIX}heal"
# A run that rebuilds analyst tables (its limit in dagster.yaml: one at a time).
TABLES_TAG = f"{TAG_PREFIX}tables"
REQUESTER_TAG = "requester"

# Dagster's own tags the product reads or sets.
BACKFILL_TAG = "dagster/backfill"
PARENT_BACKFILL_TAG = "dagster/parent_backfill_id"
# A re-executed or retried run names the run it re-executes, and the first of the chain.
PARENT_RUN_TAG = "dagster/parent_run_id"
ROOT_RUN_TAG = "dagster/root_run_id"
PARTITION_TAG = "dagster/partition"
PRIORITY_TAG = "dagster/priority"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def concurrency_tag(runs_at_once: int) -> str:
    """The tag whose per-value limit in dagster.yaml lets a backfill run `runs_at_once` runs."""
    return f"{TAG_PREFIX}concurrency-{runs_at_once}"


def district_key(as_of: dt.date | str, district: str) -> str:
    """The date x district partition key of one (as-of date, district): `2025-09-08|42`."""
    day = as_of.isoformat() if isinstance(as_of, dt.date) else as_of
    return f"{day}{KEY_SEPARATOR}{district}"


def parse_district_key(key: str) -> tuple[dt.date, str]:
    """(as-of date, district) of a date x district key; ValueError when it is not one."""
    day, sep, district = str(key).partition(KEY_SEPARATOR)
    if not sep or not district:
        raise ValueError(f"not a date{KEY_SEPARATOR}district partition key: {key!r}")
    return dt.date.fromisoformat(day), district


def key_date(key: str) -> str:
    """The ISO date part of a date x district key."""
    return str(key).partition(KEY_SEPARATOR)[0]
