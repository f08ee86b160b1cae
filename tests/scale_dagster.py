"""A Dagster at the default partition space with 128 districts and a week materialized: what the
scale tests (the asset page, the console's heatmap) run against. `dagster dev` over its own
instance; runs that start fail at once (no dashboard listens), and none is wanted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from backfill_pipeline.devstack import Service, dagster_service, free_port

DISTRICTS = [f"{i:02d}" for i in range(1, 127)] + ["F", "U"]
SEEDED_DAYS = 7


def seed(instance: dg.DagsterInstance, first: dt.date, last: dt.date) -> None:
    """Runless materializations of both assets for every date from `first` to `last`."""
    day = first
    while day <= last:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="all_districts_summary", partition=day.isoformat())
        )
        for d in DISTRICTS:
            key = dg.MultiPartitionKey({"date": day.isoformat(), "district": d})
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key="district_snapshot", partition=key)
            )
        day += dt.timedelta(days=1)


@contextmanager
def seeded_dagster(base: Path) -> Iterator[tuple[Service, dt.date]]:
    """The running Dagster and yesterday (the newest seeded date)."""
    home = base / "home"
    service = dagster_service(
        free_port(),
        home=home,
        env={
            "BACKFILL_DATA_ROOT": str(base / "dagster-data"),
            # Nothing listens there: a run that starts fails at once, and none is wanted here.
            "BACKFILL_DASHBOARD_URL": "http://127.0.0.1:9",
            "BACKFILL_MAX_ATTEMPTS": "1",
            "BACKFILL_CONNECT_TIMEOUT": "1",
        },
        log_path=base / "dagster.log",
    )
    yesterday = dt.date.today() - dt.timedelta(days=1)
    with service:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("districts", DISTRICTS)
            seed(instance, yesterday - dt.timedelta(days=SEEDED_DAYS - 1), yesterday)
        yield service, yesterday
