"""The assets through dagster.materialize, against the sandbox over loopback HTTP, with a temp root."""

import datetime as dt
import json

import dagster as dg
import pytest
from conftest import published_dates, settings, unpublished_date

from backfill_pipeline.defs.assets import build_assets
from backfill_pipeline.defs.partitions import daily_partitions, date_district_key
from backfill_pipeline.defs.resources import resources
from backfill_pipeline.defs.sensors import run_failure_alerts
from backfill_pipeline.names import DISTRICTS_PARTITION, FORCE_TAG
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore

START = dt.date(2025, 1, 1)
DATE_A, DATE_B = published_dates(dt.date(2025, 3, 10), 2, closing=False)
(CLOSING,) = published_dates(dt.date(2025, 4, 1), closing=True)
UNPUBLISHED = unpublished_date(dt.date(2025, 1, 1))


@pytest.fixture
def env(fresh_sandbox, tmp_path):
    summary, district = build_assets(daily_partitions(START), batch_size=10, retry_delay=0.2)
    deployment = settings(
        dashboard_url=fresh_sandbox.url, data_root=tmp_path, rate=100, breaker_threshold=100, max_attempts=1
    )
    instance = dg.DagsterInstance.ephemeral()
    return dict(
        sandbox=fresh_sandbox,
        root=tmp_path,
        summary=summary,
        district=district,
        resources=resources(deployment),
        instance=instance,
        store=PerDistrictFileSnapshotStore(tmp_path),
    )


def materialize_summary(env, key: dt.date, **kw):
    return dg.materialize(
        [env["summary"]],
        partition_key=key.isoformat(),
        instance=env["instance"],
        resources=env["resources"],
        **kw,
    )


def materialize_districts(env, start_key, end_key, tags=None, raise_on_error=True):
    return dg.materialize(
        [env["summary"], env["district"]],
        selection=[env["district"]],
        instance=env["instance"],
        resources=env["resources"],
        raise_on_error=raise_on_error,
        tags={
            "dagster/asset_partition_range_start": str(start_key),
            "dagster/asset_partition_range_end": str(end_key),
            **(tags or {}),
        },
    )


def materializations(result):
    return {str(e.partition): e.materialization.metadata for e in result.get_asset_materialization_events()}


def test_summary_writes_every_district_rankings_and_metadata(env):
    result = materialize_summary(env, CLOSING)
    meta = materializations(result)[CLOSING.isoformat()]
    assert meta["status"].value == "available"
    assert 120 <= meta["districts"].value <= 135 and meta["rows"].value >= meta["districts"].value
    assert meta["closing_period"].value is True
    assert meta["data_month"].value == f"{CLOSING.year}-{CLOSING.month - 1:02d}"
    assert meta["requests"].value == 2 and meta["cache_hits"].value == 0
    assert len(meta["sha256"].value) == 64 and "rate_limit_wait_seconds" in meta

    store = env["store"]
    metadata = store.read_metadata(CLOSING)
    assert metadata.status == "success" and metadata.source == "refresh"
    assert metadata.scope == "system-wide" and metadata.collection_method == "all-districts-csv"
    assert len(metadata.successful_districts) == meta["districts"].value
    assert metadata.is_closing_period is True
    assert store.read_rankings(CLOSING) is not None
    d61 = store.read_district(CLOSING, "61")
    assert d61.detail == "summary" and d61.status == "success" and d61.raw.summary["DISTRICT"] == "61"
    # The districts partitions follow the newest summary when nothing is configured.
    assert env["instance"].get_dynamic_partitions(DISTRICTS_PARTITION) == metadata.successful_districts
    assert env["sandbox"].stats()["byReport"]["districtsummary"] == 2


def test_unpublished_date_is_materialized_as_unavailable(env):
    result = materialize_summary(env, UNPUBLISHED)
    assert result.success
    assert materializations(result)[UNPUBLISHED.isoformat()]["status"].value == "unavailable"
    assert env["store"].read_metadata(UNPUBLISHED).status == "unavailable"


def test_configured_districts_limit_scope_and_partitions(env):
    DistrictConfig(env["root"]).set(["42", "61", "F"])
    result = materialize_summary(env, DATE_A)
    meta = materializations(result)[DATE_A.isoformat()]
    assert meta["districts_written"].value == 3 and meta["out_of_scope"].value == 0
    assert env["store"].read_metadata(DATE_A).successful_districts == ["42", "61", "F"]
    assert env["instance"].get_dynamic_partitions(DISTRICTS_PARTITION) == ["42", "61", "F"]


def test_district_snapshot_batch_writes_detailed_files_and_skips_them_next_time(env):
    env["instance"].add_dynamic_partitions(DISTRICTS_PARTITION, ["42", "61"])
    materialize_summary(env, DATE_A)
    materialize_summary(env, DATE_B)
    before = env["sandbox"].stats()["exportRequests"]
    result = materialize_districts(env, date_district_key(DATE_A, "42"), date_district_key(DATE_B, "61"))
    metas = materializations(result)
    assert set(metas) == {f"{d}|{x}" for d in (DATE_A, DATE_B) for x in ("42", "61")}
    # One request per report: the data month comes from the summary (cached on disk).
    assert env["sandbox"].stats()["exportRequests"] - before == 4 * 3
    for _key, meta in metas.items():
        assert meta["status"].value == "success" and meta["requests"].value == 3
    snap = env["store"].read_district(DATE_A, "61")
    assert snap.detail == "detailed" and snap.raw.club_performance and snap.figures.detailed.clubs > 0
    assert snap.raw.summary is not None  # the district's summary row is kept alongside
    meta = env["store"].read_metadata(DATE_A)
    assert set(meta.detailed_districts) == {"42", "61"} and meta.status == "success"

    again = materialize_districts(env, date_district_key(DATE_A, "42"), date_district_key(DATE_B, "61"))
    assert {m["status"].value for m in materializations(again).values()} == {"skipped"}
    assert env["sandbox"].stats()["exportRequests"] - before == 12  # no new request

    forced = materialize_districts(
        env, date_district_key(DATE_A, "42"), date_district_key(DATE_A, "42"), tags={FORCE_TAG: "true"}
    )
    assert {m["status"].value for m in materializations(forced).values()} == {"success"}


def test_a_summary_write_never_replaces_a_detailed_file(env):
    env["instance"].add_dynamic_partitions(DISTRICTS_PARTITION, ["42"])
    materialize_districts(env, date_district_key(DATE_A, "42"), date_district_key(DATE_A, "42"))
    materialize_summary(env, DATE_A)
    assert env["store"].read_district(DATE_A, "42").detail == "detailed"


def test_permanent_failure_fails_only_that_district(env):
    env["instance"].add_dynamic_partitions(DISTRICTS_PARTITION, ["42", "61", "109"])
    materialize_summary(env, DATE_A)
    env["sandbox"].set_faults([{"kind": "error", "status": 404, "district": "61"}])
    result = materialize_districts(
        env, date_district_key(DATE_A, "42"), date_district_key(DATE_A, "109"), raise_on_error=False
    )
    assert not result.success
    assert set(materializations(result)) == {f"{DATE_A}|42", f"{DATE_A}|109"}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"{DATE_A}|61" in failure.event_specific_data.error.message
    assert f"{DATE_A}|42" not in failure.event_specific_data.error.message
    materialized = env["instance"].get_materialized_partitions(env["district"].key)
    assert f"{DATE_A}|61" not in materialized and f"{DATE_A}|42" in materialized

    meta = env["store"].read_metadata(DATE_A)
    # The failed detail attempt does not demote 61's summary-level data: it is recorded beside it.
    assert meta.status == "success" and meta.failed_districts == []
    assert env["store"].read_district(DATE_A, "61").detail == "summary"
    error = next(e for e in meta.errors_with_data_kept if e.district == "61")
    assert error.error_class == "ClientHttpError" and error.retryable is False
    assert error.report == "districtperformance" and error.run_id == result.run_id

    # Fixed at the source, a re-run of the failed key succeeds.
    env["sandbox"].clear_faults()
    retry = materialize_districts(env, date_district_key(DATE_A, "61"), date_district_key(DATE_A, "61"))
    assert retry.success and env["store"].read_metadata(DATE_A).status == "success"


def test_failed_run_records_an_alert_line(env):
    env["instance"].add_dynamic_partitions(DISTRICTS_PARTITION, ["61"])
    env["sandbox"].set_faults([{"kind": "error", "status": 404}])
    result = materialize_districts(
        env, date_district_key(DATE_A, "61"), date_district_key(DATE_A, "61"), raise_on_error=False
    )
    run = env["instance"].get_run_by_id(result.run_id)
    failure_event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_event=failure_event,
        dagster_instance=env["instance"],
        dagster_run=run,
        resources={"store": env["resources"]["store"]},
    ).for_run_failure()
    run_failure_alerts(context)
    lines = (env["root"] / "alerts" / "run-failures.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["runId"] == result.run_id and record["message"]


def test_transient_failure_is_retried_by_dagster_and_each_key_materializes_once(env):
    env["instance"].add_dynamic_partitions(DISTRICTS_PARTITION, ["42", "61"])
    materialize_summary(env, DATE_A)
    # One 503 for district 61; the client makes one attempt, so the step fails retryable.
    env["sandbox"].set_faults([{"kind": "error", "status": 503, "district": "61", "times": 1}])
    result = materialize_districts(env, date_district_key(DATE_A, "42"), date_district_key(DATE_A, "61"))
    assert result.success
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" in events and "STEP_RESTARTED" in events
    keys = [str(e.partition) for e in result.get_asset_materialization_events()]
    assert sorted(keys) == [f"{DATE_A}|42", f"{DATE_A}|61"]  # once each, despite two attempts
    snap = env["store"].read_district(DATE_A, "61")
    assert snap.status == "success" and snap.detail == "detailed"
    assert env["store"].read_metadata(DATE_A).status == "success"


def test_a_summary_failure_is_retried_and_the_other_dates_are_not_redone(env):
    env["sandbox"].set_faults([{"kind": "error", "status": 503, "asOf": DATE_B.isoformat(), "times": 1}])
    result = dg.materialize(
        [env["summary"]],
        instance=env["instance"],
        resources=env["resources"],
        tags={
            "dagster/asset_partition_range_start": DATE_A.isoformat(),
            "dagster/asset_partition_range_end": DATE_B.isoformat(),
        },
    )
    assert result.success
    keys = [str(e.partition) for e in result.get_asset_materialization_events()]
    expected = {(DATE_A + dt.timedelta(days=i)).isoformat() for i in range((DATE_B - DATE_A).days + 1)}
    assert sorted(keys) == sorted(expected)  # once each
