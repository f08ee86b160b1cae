"""The analyst tables as Dagster assets: snapshots collected from the sandbox over loopback HTTP by
the real assets, the tables materialized through dagster.materialize, read back with pandas as an
analyst would, and the rebuild condition evaluated tick by tick."""

import datetime as dt
import random
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import published_dates, settings, unpublished_date
from dagster._core.definitions.selector import (
    PartitionRangeSelector,
    PartitionsByAssetSelector,
    PartitionsSelector,
)
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from backfill_pipeline.defs.assets import build_assets
from backfill_pipeline.defs.partitions import daily_partitions, date_district_key, date_district_partitions
from backfill_pipeline.defs.resources import SnapshotStore, resources
from backfill_pipeline.defs.tables import build_tables_asset
from backfill_pipeline.names import (
    CLUB_TABLE,
    DISTRICT_ASSET,
    DISTRICT_TABLE,
    DISTRICTS_PARTITION,
    SUMMARY_ASSET,
)
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore
from backfill_pipeline.tables import (
    CLUB_STATISTICS,
    DISTRICT_STATISTICS,
    partition_dir,
    read_table,
    write_date,
)

START = dt.date(2019, 1, 1)
# Two eras: 2018-2019 writes `Level 2s or EOM`, 2024-2025 `Level 2s`; both land in level_2s.
(OLD,) = published_dates(dt.date(2019, 3, 11), closing=False)
# Two dates of program year 2024-2025, the README's questions' year: March and May.
(NEW,) = published_dates(dt.date(2025, 3, 10), closing=False)
(LATER,) = published_dates(dt.date(2025, 5, 12), closing=False)
DISTRICTS = ["42", "61"]
# Raw header -> stable column, written out here rather than taken from the mapping under test.
SUMMARY_CELLS = {
    "Active Clubs": "active_clubs",
    "Paid Clubs": "paid_clubs",
    "Total YTD Payments": "total_ytd_payments",
}
CLUB_CELLS = {
    "Club Name": "club_name",
    "Active Members": "active_members",
    "Goals Met": "goals_met",
    "Mem. Base": "membership_base",
}
LEVEL_2S = {OLD: "Level 2s or EOM", NEW: "Level 2s", LATER: "Level 2s"}


@pytest.fixture(scope="module")
def world(sandbox, tmp_path_factory):
    """Both dates collected (summary, and DISTRICTS in detail) by the real assets, once."""
    root = tmp_path_factory.mktemp("tables")
    daily = daily_partitions(START)
    summary, district = build_assets(daily, batch_size=10, retry_delay=0.2)
    deployment = settings(dashboard_url=sandbox.url, data_root=root, rate=100, breaker_threshold=100)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DISTRICTS_PARTITION, DISTRICTS)
    res = resources(deployment)
    for day in (OLD, NEW, LATER):
        dg.materialize([summary], partition_key=day.isoformat(), instance=instance, resources=res)
        for d in DISTRICTS:
            dg.materialize(
                [summary, district],
                selection=[district],
                partition_key=str(date_district_key(day, d)),
                instance=instance,
                resources=res,
            )
    return dict(
        root=root,
        daily=daily,
        assets=[summary, district, build_tables_asset(daily)],
        resources=res,
        instance=instance,
        store=PerDistrictFileSnapshotStore(root),
    )


def build_tables(world, *days: dt.date, raise_on_error: bool = True):
    """Materialize the tables of `days` (one run over their range, as a backfill does)."""
    return dg.materialize(
        world["assets"],
        selection=[DISTRICT_TABLE, CLUB_TABLE],
        instance=world["instance"],
        resources=world["resources"],
        raise_on_error=raise_on_error,
        tags={
            "dagster/asset_partition_range_start": min(days).isoformat(),
            "dagster/asset_partition_range_end": max(days).isoformat(),
        },
    )


def test_both_tables_materialize_per_date_with_schema_row_count_and_preview(world):
    events = {}
    for day in (OLD, NEW):
        result = build_tables(world, day)
        events |= {
            (e.asset_key.path[-1], e.partition): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
    assert set(events) == {(t, d.isoformat()) for t in (DISTRICT_TABLE, CLUB_TABLE) for d in (OLD, NEW)}
    for (table_name, day), meta in events.items():
        schema = DISTRICT_STATISTICS if table_name == DISTRICT_TABLE else CLUB_STATISTICS
        written = pd.read_parquet(partition_dir(world["root"], table_name, dt.date.fromisoformat(day)))
        assert meta["dagster/row_count"].value == len(written) > 0
        columns = meta["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == schema.names
        assert all(c.description for c in columns)
        preview = meta["preview"].value
        shown = [*schema.key, *schema.preview]
        assert len(preview.records) == min(5, len(written))
        assert [c.name for c in preview.schema.columns] == shown
        first = written.iloc[0]
        for column in shown[1:]:  # as_of is in the path, not the file
            value = first[column]
            assert preview.records[0].data[column] == (None if pd.isna(value) else value), column
        listed = len(world["store"].read_manifest(dt.date.fromisoformat(day)).districts)
        assert meta["districts"].value == (len(DISTRICTS) if table_name == CLUB_TABLE else listed)
        assert meta["unreadable_cells"].value == 0


def test_a_range_with_dates_never_collected_fails_naming_them(world):
    gap = unpublished_date(dt.date(2024, 1, 1))
    # A table file left from before (the date's snapshot since removed) must not outlive it.
    write_date(world["root"], DISTRICT_TABLE, gap, DISTRICT_STATISTICS.empty_frame(), durable=False)
    result = build_tables(world, gap, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert gap.isoformat() in failure.step_failure_data.user_failure_data.description
    assert "no snapshot" in failure.step_failure_data.user_failure_data.description
    assert not (partition_dir(world["root"], DISTRICT_TABLE, gap) / "part-0.parquet").exists()


def test_pandas_reads_the_dataset_and_sampled_cells_equal_the_snapshot_files(world):
    for day in (OLD, NEW, LATER):
        build_tables(world, day)
    store, rng = world["store"], random.Random(7)
    # What an analyst types: pandas over the hive-partitioned folder, the date from the path.
    districts = pd.read_parquet(world["root"] / "tables" / DISTRICT_TABLE)
    clubs = pd.read_parquet(world["root"] / "tables" / CLUB_TABLE)
    districts["as_of"] = pd.to_datetime(districts["as_of"].astype(str)).dt.date
    clubs["as_of"] = pd.to_datetime(clubs["as_of"].astype(str)).dt.date
    assert set(districts["as_of"]) == set(clubs["as_of"]) == {OLD, NEW, LATER}
    for day in (OLD, NEW, LATER):
        listed = store.read_manifest(day).districts
        on_day = districts[districts["as_of"] == day].set_index("district")
        assert sorted(on_day.index) == sorted(e.district_id for e in listed)
        for district in rng.sample(sorted(on_day.index), 6) + DISTRICTS:
            snap = store.read_district(day, district)
            row = on_day.loc[district]
            assert row["status"] == snap.status and row["data_month"] == snap.data_month
            if snap.status != "success":
                continue
            for header, column in SUMMARY_CELLS.items():
                assert row[column] == int(snap.raw.summary[header].replace(",", "")), (day, district, header)
        on_clubs = clubs[clubs["as_of"] == day]
        for district in DISTRICTS:
            snap = store.read_district(day, district)
            mine = on_clubs[on_clubs["district"] == district].set_index("club_number")
            assert len(mine) == len(snap.raw.club_performance)
            for raw in rng.sample(snap.raw.club_performance, 5):
                row = mine.loc[raw["Club Number"].zfill(8)]
                assert row["club_name"] == raw["Club Name"]
                for header, column in CLUB_CELLS.items():
                    if column != "club_name":
                        assert row[column] == int(raw[header]), (day, district, header)
                assert row["level_2s"] == int(raw[LEVEL_2S[day]]), (day, district)
                assert row["detail_level"] == "detailed" and row["data_month"] == snap.data_month


def _rebuild_requests(world, cursor=None):
    result = dg.evaluate_automation_conditions(
        defs=world["assets"],
        instance=world["instance"],
        asset_selection=dg.AssetSelection.assets(DISTRICT_TABLE, CLUB_TABLE),
        cursor=cursor,
    )
    requested = result.get_requested_partitions(dg.AssetKey(DISTRICT_TABLE))
    assert requested == result.get_requested_partitions(dg.AssetKey(CLUB_TABLE))
    return result.cursor, requested


def test_a_date_is_rebuilt_once_per_change_of_its_snapshots(tmp_path):
    daily = daily_partitions(START)
    # The snapshot assets as specs: the condition reads their events, it never runs them.
    snapshots = [
        dg.AssetSpec(SUMMARY_ASSET, partitions_def=daily),
        dg.AssetSpec(DISTRICT_ASSET, partitions_def=date_district_partitions(daily)),
    ]
    defs = dg.Definitions(
        assets=[*snapshots, build_tables_asset(daily)],
        resources={"store": SnapshotStore(data_root=str(tmp_path))},
    )
    world = {"assets": defs, "instance": dg.DagsterInstance.ephemeral()}
    instance = world["instance"]
    instance.add_dynamic_partitions(DISTRICTS_PARTITION, DISTRICTS)

    def changed(asset, key):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=str(key)))

    cursor, requested = _rebuild_requests(world)
    assert requested == set(), "nothing collected, nothing to rebuild"
    changed(DISTRICT_ASSET, date_district_key(OLD, "42"))
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == {OLD.isoformat()}
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == set(), "requested once, not on every tick"
    # A refresh of the newer date's summary, and a heal of one district of the older date.
    changed(SUMMARY_ASSET, NEW.isoformat())
    changed(DISTRICT_ASSET, date_district_key(OLD, "61"))
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == {OLD.isoformat(), NEW.isoformat()}

    # A backfill has yet to collect NEW|61: NEW waits for it, then is rebuilt once it is over.
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        backfill = PartitionBackfill.from_partitions_by_assets(
            backfill_id="collecting",
            asset_graph=defs.resolve_asset_graph(),
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            partitions_by_assets=[
                PartitionsByAssetSelector(
                    asset_key=dg.AssetKey(DISTRICT_ASSET),
                    partitions=PartitionsSelector([PartitionRangeSelector(f"{NEW}|61", f"{NEW}|61")]),
                )
            ],
            title=None,
            description=None,
            run_config=None,
        )
    instance.add_backfill(backfill)
    changed(DISTRICT_ASSET, date_district_key(NEW, "42"))
    changed(DISTRICT_ASSET, date_district_key(OLD, "42"))
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == {OLD.isoformat()}, "NEW waits while the backfill has 61 to collect"
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == set()
    instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    cursor, requested = _rebuild_requests(world, cursor)
    assert requested == {NEW.isoformat()}, "remembered, and rebuilt once nothing is collecting"


def readme_questions() -> str:
    """The README's analyst questions, as written there."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("<!-- analyst-questions -->", 1)[1].split("<!-- /analyst-questions -->", 1)[0]
    return block.split("```python", 1)[1].split("```", 1)[0]


def test_the_readme_questions_answer_what_the_snapshot_files_hold(world):
    for day in (OLD, NEW, LATER):
        build_tables(world, day)
    store = world["store"]
    answers: dict = {}
    code = readme_questions()
    assert 'tables = "data/tables"' in code
    exec(code.replace('"data/tables"', repr(str(world["root"] / "tables"))), answers)

    # 1. District 42's membership: the program year's dates, the detailed member count.
    membership = answers["membership"]
    assert [d.date() for d in membership.index] == [NEW, LATER]
    for day in (NEW, LATER):
        detailed = store.read_district(day, "42").figures.detailed
        assert membership.loc[pd.Timestamp(day), "members"] == detailed.members

    # 2. Clubs distinguished in March (the newest March date) and no longer on the newest date.
    def tiers(day):
        return {
            (d, raw["Club Number"].zfill(8)): raw["Club Distinguished Status"]
            for d in DISTRICTS
            for raw in store.read_district(day, d).raw.club_performance
        }

    march, now = tiers(NEW), tiers(LATER)
    expected = {
        k for k in march.keys() & now.keys() if march[k] in ("D", "S", "P") and now[k] not in ("D", "S", "P")
    }
    lost = answers["lost"]
    assert set(zip(lost["district"], lost["club_number"], strict=True)) == expected

    # 3. Each data month's last date's rank, for every district, from the dates' rankings files.
    rank_by_month = answers["rank_by_month"]
    for day in (OLD, NEW, LATER):
        month = store.read_district(day, "42").data_month
        ranks = {r.district_id: r.overall_rank for r in store.read_rankings(day).rankings}
        column = rank_by_month[month].dropna()
        assert column.to_dict() == ranks


def test_duckdb_reads_the_same_dataset_with_its_date_from_the_path(world):
    import duckdb

    for day in (OLD, NEW, LATER):
        build_tables(world, day)
    files = world["root"] / "tables" / CLUB_TABLE / "*" / "*.parquet"
    with duckdb.connect() as con:
        sql = con.execute(
            "SELECT as_of, district, club_number, club_name, active_members, level_2s "
            f"FROM read_parquet('{files}', hive_partitioning = true) ORDER BY as_of, district, club_number"
        ).df()
        (kind,) = con.execute(
            f"SELECT DISTINCT typeof(as_of) FROM read_parquet('{files}', hive_partitioning = true)"
        ).fetchone()
    assert kind == "DATE"
    ours = read_table(world["root"], CLUB_TABLE, OLD, LATER)[list(sql.columns)]
    assert len(sql) == len(ours) > 0
    assert [d.date() if hasattr(d, "date") else d for d in sql["as_of"]] == list(ours["as_of"])
    for column in ("district", "club_number", "club_name"):
        assert sql[column].tolist() == ours[column].tolist()
    for column in ("active_members", "level_2s"):
        assert sql[column].astype("Int64").tolist() == ours[column].tolist()
