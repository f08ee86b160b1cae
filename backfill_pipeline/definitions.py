"""The one Definitions of backfill_pipeline, built when Dagster loads the code location."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from . import config
from .assets import build_assets
from .dashboard.client import DEFAULT_BASE_URL
from .jobs import build_asset_jobs, prune_old_runs
from .partitions import DEFAULT_START_DATE, daily_partitions
from .resources import DistrictConfiguration, RefreshService, SnapshotStore
from .schedules import build_refresh_schedule, prune_old_runs_schedule
from .sensors import build_refresh_chain_sensor, district_discovery, run_failure_alerts


def _env(name: str, default):
    """An EnvVar when the variable is set (resolved at run launch), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _env_int(name: str, default: int):
    return dg.EnvVar.int(name) if os.environ.get(name) else default


def resources() -> dict:
    """The resources, configured from BACKFILL_* environment variables through EnvVar."""
    root = _env("BACKFILL_DATA_ROOT", "data")
    return {
        "refresh": RefreshService(
            base_url=_env("BACKFILL_DASHBOARD_URL", DEFAULT_BASE_URL),
            data_root=root,
            rate=_env("BACKFILL_RATE", "2"),
            use_cache=_env("BACKFILL_CACHE", "true"),
            connect_timeout_seconds=_env_int("BACKFILL_CONNECT_TIMEOUT", 5),
            read_timeout_seconds=_env_int("BACKFILL_READ_TIMEOUT", 60),
            max_attempts=_env_int("BACKFILL_MAX_ATTEMPTS", 4),
            breaker_threshold=_env_int("BACKFILL_BREAKER_THRESHOLD", 5),
            breaker_cooldown_seconds=_env_int("BACKFILL_BREAKER_COOLDOWN", 30),
        ),
        "store": SnapshotStore(data_root=root),
        "districts": DistrictConfiguration(data_root=root),
    }


def start_date() -> dt.date:
    """`BACKFILL_START_DATE` (YYYY-MM-DD), default the measured DEFAULT_START_DATE."""
    value = os.environ.get("BACKFILL_START_DATE")
    return dt.date.fromisoformat(value) if value else DEFAULT_START_DATE


def build_definitions(start: dt.date, *, batch_size: int = 50) -> dg.Definitions:
    """Everything: assets over partitions from `start`, jobs, schedules, sensors, resources."""
    summary, district = build_assets(daily_partitions(start), batch_size=batch_size)
    summary_job, district_job = build_asset_jobs(summary, district)
    return dg.Definitions(
        assets=[summary, district],
        jobs=[summary_job, district_job, prune_old_runs],
        schedules=[build_refresh_schedule(summary_job), prune_old_runs_schedule],
        sensors=[
            district_discovery,
            build_refresh_chain_sensor(summary_job, district_job),
            run_failure_alerts,
        ],
        resources=resources(),
        # One process per run: the run's rate limiter, cache and breaker serve all its partitions.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster dev` / the code server; reads the environment now, not at import."""
    return build_definitions(start_date(), batch_size=config.batch_size())
