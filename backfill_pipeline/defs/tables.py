"""The analyst tables as Dagster assets: one multi-asset writes both tables of a date from its
snapshot files, and an automation sensor rebuilds a date whenever its snapshots change."""

import datetime as dt
from collections.abc import Iterator
from functools import cache
from typing import Any

import dagster as dg
import pandas as pd

from ..names import (
    DATE_DIMENSION,
    DISTRICT_ASSET,
    SOURCE_TAG,
    SUMMARY_ASSET,
    TABLES_GROUP,
    TABLES_SENSOR,
    TABLES_TAG,
)
from ..snapshots.rootcheck import check_data_root
from ..tables import CLUB_STATISTICS, DISTRICT_STATISTICS, TABLES, Table, TableWrite, rebuild_date
from .assets import transient_retry
from .resources import SnapshotStore

AC = dg.AutomationCondition

# A date is rebuilt once any of its snapshot partitions was materialized since the table was last
# requested, and only when none of them is still to be collected (by a run, or by a backfill that
# has not reached it yet): one rebuild per date per backfill, not one per batch. Not eager(): it
# looks at the latest date only and waits for every parent, so history, and any date with a
# failed district, would never be rebuilt.
REBUILD_CONDITION = (
    AC.any_deps_match(AC.newly_updated())
    .since(AC.newly_requested())
    .with_label("snapshots changed since the last rebuild was requested")
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
)

PREVIEW_ROWS = 5
SHOWN_PROBLEMS = 20
RUN_TAGS = {SOURCE_TAG: "tables", TABLES_TAG: "rebuild"}


@cache
def column_schema(table: Table) -> dg.TableSchema:
    """The table's columns as Dagster shows them: name, type, description."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.dtype, description=c.description) for c in table.columns]
    )


def table_spec(table: Table) -> dg.AssetSpec:
    """One analyst table: downstream of the date's summary and of each of its districts."""
    return dg.AssetSpec(
        table.name,
        description=table.description,
        deps=[
            dg.AssetDep(SUMMARY_ASSET),
            dg.AssetDep(
                DISTRICT_ASSET,
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                    partition_dimension_name=DATE_DIMENSION
                ),
            ),
        ],
        group_name=TABLES_GROUP,
        kinds={"pandas", "parquet"},
        automation_condition=REBUILD_CONDITION,
        skippable=True,
        metadata={"dagster/column_schema": column_schema(table), "key": ", ".join(table.key)},
    )


def table_metadata(write: TableWrite) -> dict[str, Any]:
    """A materialization's metadata: schema, row count, a small preview, its file and problems."""
    table = TABLES[write.table]
    bad = write.report.bad_values
    unknown = {report: sorted(headers) for report, headers in sorted(write.report.unknown_headers.items())}
    return {
        "dagster/column_schema": column_schema(table),
        "dagster/row_count": write.rows,
        "preview": preview(table, write.frame),
        "path": dg.MetadataValue.path(str(write.path)),
        "districts": int(write.frame["district"].nunique()),
        "unreadable_cells": len(bad),
        "unreadable_examples": dg.MetadataValue.json(
            [
                {"district": b.district, "report": b.report, "column": b.column, "value": b.value}
                for b in bad[:SHOWN_PROBLEMS]
            ]
        ),
        "unknown_headers": dg.MetadataValue.json(unknown),
    }


def preview(table: Table, frame: pd.DataFrame) -> dg.MetadataValue:
    """The first rows of the table's key and preview columns, as a Dagster table."""
    head = frame.head(PREVIEW_ROWS)[[*table.key, *table.preview]]
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), str(head[c].dtype)) for c in head.columns])
    records = [dg.TableRecord({str(c): _plain(v) for c, v in row.items()}) for _, row in head.iterrows()]
    return dg.MetadataValue.table(records, schema=schema)


def _plain(value: object) -> str | int | float | bool | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        plain = value.item()
        if isinstance(plain, bool | int | float | str):
            return plain
    return str(value)  # dates, timestamps


def build_tables_asset(daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """Both analyst tables over the as-of dates, written together from one read of each date."""

    @dg.multi_asset(
        name="analyst_tables",
        specs=[table_spec(DISTRICT_STATISTICS), table_spec(CLUB_STATISTICS)],
        partitions_def=daily,
        can_subset=False,
        # A backfill of the tables (a year rebuilt from the snapshots) is one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        # Our own I/O trouble (a full disk, a lost mount) is retried as the snapshots' is; a date
        # without a snapshot is a Failure that is not.
        retry_policy=transient_retry(),
    )
    def analyst_tables(context: dg.AssetExecutionContext, store: SnapshotStore) -> Iterator[Any]:
        """district_statistics and club_statistics of each date: rebuilt from its snapshot files
        with pandas, written as hive-partitioned Parquet under the data root."""
        check_data_root(store.root).raise_if_unsafe()
        days = [dt.date.fromisoformat(k) for k in context.partition_keys]
        context.log.info(f"rebuilding {len(days)} date(s), {days[0]} to {days[-1]}")
        missing = []
        for day in days:
            rebuilt = rebuild_date(store.root, day)
            for line in rebuilt.problems():
                context.log.warning(line)
            if not rebuilt.has_snapshot:
                missing.append(day.isoformat())
                continue
            for write in rebuilt.writes:
                yield dg.AssetMaterialization(
                    asset_key=write.table, partition=day.isoformat(), metadata=table_metadata(write)
                )
        if missing:
            shown = ", ".join(missing[:SHOWN_PROBLEMS]) + (" ..." if len(missing) > SHOWN_PROBLEMS else "")
            raise dg.Failure(
                description=f"{len(missing)} date(s) have no snapshot to build tables from (their old "
                f"table files, if any, were removed): {shown}",
                metadata={"dates_without_snapshot": missing},
                allow_retries=False,
            )

    return analyst_tables


tables_sensor = dg.AutomationConditionSensorDefinition(
    TABLES_SENSOR,
    target=dg.AssetSelection.groups(TABLES_GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    run_tags=RUN_TAGS,
    # Runs, not backfills: a backfill's runs would take the slots dagster.yaml keeps for the
    # dashboard backfills; these carry backfill_pipeline/tables, limited to one at a time.
    emit_backfills=False,
    minimum_interval_seconds=30,
    description="Rebuilds a date's analyst tables once its snapshots changed (refresh, backfill, "
    "heal) and none of them is still being collected.",
)
