"""Schedules, sensors, the definitions and their settings: run requests and effects, without a daemon."""

import datetime as dt

import dagster as dg
import pytest
from conftest import settings

from backfill_pipeline.definitions import build_definitions
from backfill_pipeline.defs.jobs import prune_old_runs
from backfill_pipeline.defs.resources import DistrictConfiguration, SnapshotStore
from backfill_pipeline.defs.schedules import REFRESH_PRIORITY, refresh_districts_request
from backfill_pipeline.defs.sensors import district_discovery
from backfill_pipeline.names import DISTRICTS_PARTITION
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.settings import SettingsError


@pytest.fixture(scope="module")
def repo():
    """The repository of the code location, partitions from 2025-01-01."""
    return build_definitions(settings(start_date=dt.date(2025, 1, 1))).get_repository_def()


def test_daily_refresh_asks_for_yesterday_with_priority(repo, tmp_path):
    schedule = repo.get_schedule_def("daily_refresh")
    # The context is closed (`with`), so it does not leave the instance set for later tests.
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC),
            resources={"store": SnapshotStore(data_root=str(tmp_path))},
        ) as ctx,
    ):
        *window, request = schedule(ctx)
    # An empty store: the lag window's dates were never collected, so they are asked too.
    assert [r.partition_key for r in window] == [f"2026-11-{d}" for d in range(21, 28)]
    assert all(r.run_key.endswith("-again-2026-11-28") for r in window)
    assert request.partition_key == "2026-11-28"
    assert request.tags["backfill_pipeline/source"] == "refresh"
    assert int(request.tags["dagster/priority"]) > 0 and request.tags["dagster/priority"] == REFRESH_PRIORITY
    assert request.run_key == "refresh-summary-2026-11-28"


def test_refresh_chain_covers_every_in_scope_district():
    with dg.instance_for_test() as instance:
        assert refresh_districts_request(instance, dt.date(2026, 11, 28)) is None
        instance.add_dynamic_partitions(DISTRICTS_PARTITION, ["09", "42", "61", "F"])
        request = refresh_districts_request(instance, dt.date(2026, 11, 28))
    assert request.tags["dagster/asset_partition_range_start"] == "2026-11-28|09"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-11-28|F"
    assert request.tags["backfill_pipeline/source"] == "refresh"


def test_refresh_chain_sensor_only_follows_refresh_runs(repo, tmp_path):
    sensor = repo.get_sensor_def("refresh_districts_after_summary")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(DISTRICTS_PARTITION, ["42", "61"])
        for tags, expect_request in [
            ({"backfill_pipeline/source": "refresh", "dagster/partition": "2026-11-28"}, True),
            ({"dagster/backfill": "abc", "dagster/partition": "2026-11-28"}, False),
        ]:
            run = instance.create_run_for_job(job_def=repo.get_job("all_districts_summary_job"), tags=tags)
            event = dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name=run.job_name, message="ok")
            ctx = dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=event,
                dagster_instance=instance,
                dagster_run=run,
                resources={"store": SnapshotStore(data_root=str(tmp_path))},
            )
            result = sensor(ctx)
            if expect_request:
                assert isinstance(result, dg.RunRequest)
                assert result.tags["dagster/asset_partition_range_end"] == "2026-11-28|61"
                # Keyed by the summary run, so a date refreshed again chains again.
                assert result.run_key == f"refresh-districts-2026-11-28-after-{run.run_id}"
            else:
                assert isinstance(result, dg.SkipReason)


def test_discovery_keeps_partitions_equal_to_the_configuration(tmp_path):
    resources = {
        "store": SnapshotStore(data_root=str(tmp_path)),
        "districts": DistrictConfiguration(data_root=str(tmp_path)),
    }
    config = DistrictConfig(tmp_path)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(district_discovery(ctx), dg.SkipReason)  # nothing known yet

        config.set(["61", "42"])
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        result = district_discovery(ctx)
        (add,) = result.dynamic_partitions_requests
        assert add.partition_keys == ["42", "61"]
        instance.add_dynamic_partitions(DISTRICTS_PARTITION, add.partition_keys)

        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(district_discovery(ctx), dg.SkipReason)

        config.remove(["42"])
        config.add(["F"])
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        changed = district_discovery(ctx)
        kinds = {type(r).__name__: r.partition_keys for r in changed.dynamic_partitions_requests}
        assert kinds == {"AddDynamicPartitionsRequest": ["F"], "DeleteDynamicPartitionsRequest": ["42"]}


def test_prune_deletes_finished_runs_older_than_retention(tmp_path):
    @dg.op
    def noop():
        return 1

    @dg.job
    def tiny():
        noop()

    @dg.asset
    def thing():
        return 1

    with dg.instance_for_test() as instance:
        old = [tiny.execute_in_process(instance=instance).run_id for _ in range(3)]
        history = dg.materialize([thing], instance=instance).run_id
        store = {"store": SnapshotStore(data_root=str(tmp_path))}  # our records: test_upkeep.py
        keep = prune_old_runs.execute_in_process(
            instance=instance,
            run_config={"ops": {"delete_old_runs": {"config": {"retention_days": 30}}}},
            resources=store,
        )
        assert keep.output_for_node("delete_old_runs") == 0
        result = prune_old_runs.execute_in_process(
            instance=instance,
            run_config={"ops": {"delete_old_runs": {"config": {"retention_days": 0}}}},
            resources=store,
        )
        assert result.output_for_node("delete_old_runs") >= 3
        remaining = {r.run_id for r in instance.get_runs()}
        assert not remaining & set(old) and result.run_id in remaining
        assert history in remaining  # its materialization is the asset's history
        assert instance.get_latest_materialization_event(thing.key) is not None


def test_definitions_load_without_environment():
    from backfill_pipeline.definitions import defs

    loaded = defs()
    snapshots = [a for a in loaded.assets if a.op.pool == "toastmasters_dashboard"]
    assert {a.key.to_user_string() for a in snapshots} == {"all_districts_summary", "district_snapshot"}
    for asset in snapshots:
        assert asset.backfill_policy.max_partitions_per_run == 50
        assert asset.descriptions_by_key[asset.key]
    # The analyst tables: one multi-asset, no pool (it never asks the dashboard), one run per backfill.
    (tables,) = [a for a in loaded.assets if a not in snapshots]
    assert {k.to_user_string() for k in tables.keys} == {"district_statistics", "club_statistics"}
    assert tables.op.pool is None and tables.backfill_policy.max_partitions_per_run is None
    assert all(tables.descriptions_by_key[k] for k in tables.keys)


def test_resources_get_the_values_of_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKFILL_DASHBOARD_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("BACKFILL_RATE", "0.5")
    monkeypatch.setenv("BACKFILL_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("BACKFILL_BATCH_SIZE", "7")
    from backfill_pipeline.definitions import defs

    loaded = defs()
    refresh = loaded.resources["refresh"]
    # The values the CLI and the API read too, shown as the resource's configuration in the UI.
    assert (refresh.base_url, refresh.rate, refresh.connect_timeout_seconds) == (
        "http://127.0.0.1:9",
        0.5,
        2.5,
    )
    assert refresh.data_root == loaded.resources["store"].data_root == str(tmp_path)
    dashboard = [a for a in loaded.assets if a.op.pool == "toastmasters_dashboard"]
    assert {a.backfill_policy.max_partitions_per_run for a in dashboard} == {7}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BACKFILL_RATE", "nan"),
        ("BACKFILL_RATE", "0"),
        ("BACKFILL_BATCH_SIZE", "0"),
        ("BACKFILL_START_DATE", "2025-13-01"),
        ("BACKFILL_CONNECT_TIMEOUT", "-1"),
    ],
)
def test_a_bad_setting_stops_the_code_location_naming_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    from backfill_pipeline.definitions import defs

    with pytest.raises(SettingsError, match=variable):
        defs()


def test_partitions_change_is_exact_when_configured_and_add_only_otherwise():
    from backfill_pipeline.scope import district_partitions_change

    assert district_partitions_change(["42", "61"], ["61", "F"], None) == (["F"], ["42"])
    # Nothing configured: a district gone from the dashboard keeps its partition (and history).
    assert district_partitions_change(["42", "61"], [], ["61", "109"]) == (["109"], [])
    assert district_partitions_change([], [], None) == ([], [])


def test_daily_refresh_asks_again_for_recent_dates_not_complete(repo, tmp_path):
    from conftest import a_detailed, a_summary

    from backfill_pipeline.snapshots.models import WriteContext
    from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore

    store = PerDistrictFileSnapshotStore(tmp_path)
    ctx = WriteContext(source="refresh", scope="system-wide", collection_method="all-districts-csv")
    for n in range(20, 28):
        day = dt.date(2026, 11, n)
        store.write_districts(day, [a_summary("42", day), a_summary("61", day)], context=ctx)
        store.write_district(a_detailed("42", day), context=ctx)
        store.write_district(a_detailed("61", day), context=ctx)
    store.mark_date_unavailable(dt.date(2026, 11, 27), context=ctx)  # late: pending, ask again
    store.root.district(dt.date(2026, 11, 26), "42").unlink()  # a detail never collected
    store.rebuild(dt.date(2026, 11, 26))
    store.write_district(a_summary("61", dt.date(2026, 11, 25)), context=ctx)  # kept: detailed stays
    for n in range(21, 25):
        store.mark_date_unavailable(dt.date(2026, 11, n), context=ctx)  # has data: not demoted
    (store.root.date_dir(dt.date(2026, 11, 27)) / "district_42.json").unlink()
    (store.root.date_dir(dt.date(2026, 11, 27)) / "district_61.json").unlink()
    store.rebuild(dt.date(2026, 11, 27))
    store.mark_date_unavailable(dt.date(2026, 11, 20), context=ctx)  # outside the window
    schedule = repo.get_schedule_def("daily_refresh")
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC),
            resources={"store": SnapshotStore(data_root=str(tmp_path))},
        ) as ctx,
    ):
        instance.add_dynamic_partitions(DISTRICTS_PARTITION, ["42", "61"])
        requests = schedule(ctx)
    summary = [(r.partition_key, r.run_key) for r in requests if r.partition_key]
    districts = [r for r in requests if not r.partition_key]
    assert summary == [
        ("2026-11-27", "refresh-summary-2026-11-27-again-2026-11-28"),
        ("2026-11-28", "refresh-summary-2026-11-28"),
    ]
    [again] = districts
    assert again.tags["dagster/asset_partition_range_start"] == "2026-11-26|42"
    assert again.run_key == "refresh-districts-2026-11-26-again-2026-11-28"


def test_the_refresh_resource_checks_its_configuration_as_the_settings_do(tmp_path):
    from backfill_pipeline.defs.resources import RefreshService, run_share

    good = RefreshService.from_settings(settings(data_root=tmp_path, rate=3))
    assert good.settings() == settings(data_root=tmp_path, rate=3).client()
    # A value changed in the launchpad is checked too, and named by the resource's field.
    with pytest.raises(SettingsError, match="resource refresh.rate=0.0"):
        good.model_copy(update={"rate": 0.0}).settings()
    with pytest.raises(SettingsError, match="resource refresh.base_url='ftp://x'"):
        good.model_copy(update={"base_url": "ftp://x"}).settings()
    # A run's rate tag: only a finite positive rate replaces the deployment's.
    # A run's rate tag is a share of the budget, never above it; anything else fails the run.
    assert run_share("0.5", 3.0) == 0.5 and run_share("30", 3.0) == 3.0 and run_share(None, 3.0) is None
    for tag in ("inf", "nan", "0", "-1", "fast", "", "1e999"):
        with pytest.raises(dg.Failure, match="run tag backfill_pipeline/rate"):
            run_share(tag, 3.0)
