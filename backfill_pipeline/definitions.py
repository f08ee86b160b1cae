"""The one Definitions of backfill_pipeline, built when Dagster loads the code location."""

from __future__ import annotations

import dagster as dg

from .defs.assets import build_assets
from .defs.jobs import build_asset_jobs, prune_old_runs
from .defs.partitions import daily_partitions
from .defs.resources import resources
from .defs.schedules import build_refresh_schedule, prune_old_runs_schedule
from .defs.sensors import (
    build_heal_sensor,
    build_refresh_chain_sensor,
    district_discovery,
    run_failure_alerts,
)
from .defs.tables import build_tables_asset, tables_sensor
from .settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything: the snapshot assets and the analyst tables over partitions from the start date,
    jobs, schedules, sensors, resources."""
    daily = daily_partitions(settings.start_date)
    summary, district = build_assets(daily, batch_size=settings.batch_size, retry_delay=settings.retry_delay)
    summary_job, district_job = build_asset_jobs(summary, district)
    return dg.Definitions(
        assets=[summary, district, build_tables_asset(daily)],
        jobs=[summary_job, district_job, prune_old_runs],
        schedules=[build_refresh_schedule(summary_job, settings.start_date), prune_old_runs_schedule],
        sensors=[
            district_discovery,
            build_refresh_chain_sensor(summary_job, district_job),
            build_heal_sensor(
                summary_job,
                district_job,
                breaker_cooldown=settings.breaker_cooldown,
                retry_delay=settings.retry_delay,
                shared_store=settings.budget_store,
            ),
            run_failure_alerts,
            tables_sensor,
        ],
        resources=resources(settings),
        # One process per run: the run's rate limiter, cache and breaker serve all its partitions.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster dev` / the code server; reads and checks the settings now, not at import."""
    return build_definitions(load_settings())
