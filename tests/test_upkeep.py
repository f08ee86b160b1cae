"""Upkeep of our own records: backfill records, per-run statistics and Dagster's finished backfills
go with the runs' retention (90 days), never while a backfill still running refers to them."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from backfill_pipeline.api.idempotency import IdempotencyRecord
from backfill_pipeline.api.records import BackfillRecord, BackfillRecords
from backfill_pipeline.collecting.run_stats import record_run_stats
from backfill_pipeline.collecting.upkeep import prune_records
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.defs.jobs import prune_old_runs
from backfill_pipeline.defs.resources import SnapshotStore
from backfill_pipeline.names import BACKFILL_TAG, PARENT_BACKFILL_TAG

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def backdate(path: Path, days: float, field: str | None = None, *, mtime_days: float | None = None) -> None:
    """Make a record `days` old: the time it holds (`field`) and its file's mtime (or `mtime_days`)."""
    if field is not None:
        data = json.loads(path.read_text())
        data[field] = ago(days).isoformat()
        path.write_text(json.dumps(data))
    stamp = ago(days if mtime_days is None else mtime_days).timestamp()
    os.utime(path, (stamp, stamp))


def save_record(root: DataRoot, backfill_id: str, days: float, parent: str | None = None) -> Path:
    """A backfill record as the API writes it, `days` old."""
    BackfillRecords(root).save(backfill_id, BackfillRecord(created_at=ago(days), parent=parent))
    path = root.backfill_record(backfill_id)
    backdate(path, days)
    return path


def save_stats(root: DataRoot, run_id: str, backfill_id: str | None, days: float) -> Path:
    """A run's statistics as the collecting resource writes them, `days` old."""
    record_run_stats(root, run_id, backfill_id, {"requests": 3, "cacheHits": 1})
    path = root.run_stats(run_id)
    backdate(path, days, "finishedAt")
    return path


def save_key(root: DataRoot, digest_char: str, backfill_id: str | None, days: float) -> Path:
    """A completed Idempotency-Key record (and its lock) as the API writes them, `days` old."""
    digest = digest_char * 64
    record = IdempotencyRecord(
        operation="backfill",
        fingerprint="f" * 64,
        state="completed",
        started_at=ago(days),
        backfill_id=backfill_id,
    )
    path = root.idempotency_record(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.model_dump_json(by_alias=True))
    root.idempotency_lock(digest).write_text("")
    backdate(path, days)
    return path


def test_old_idempotency_keys_go_with_their_locks_unless_their_backfill_is_kept(tmp_path):
    root = DataRoot(tmp_path)
    old = save_key(root, "a", "old1", 100)
    kept = save_key(root, "b", "kept1", 100)
    recent = save_key(root, "c", "old1", 10)
    nothing_ran = save_key(root, "d", None, 100)  # a launch that had nothing to run
    *_, keys = prune_records(root, ago(90), keep_backfills={"kept1"}, live_runs=set())
    assert not old.exists() and not old.with_suffix(".lock").exists()
    assert not nothing_ran.exists()
    assert kept.exists() and kept.with_suffix(".lock").exists() and recent.exists()
    assert (keys.kind, sorted(keys.deleted), keys.kept_referenced, keys.kept_recent) == (
        "idempotency records",
        ["a" * 64, "d" * 64],
        ["b" * 64],
        1,
    )


def test_old_records_go_recent_and_referenced_ones_stay(tmp_path):
    root = DataRoot(tmp_path)
    old = save_record(root, "old1", 100)
    recent = save_record(root, "recent1", 10)
    kept = save_record(root, "kept1", 100)  # a backfill the caller keeps (still running)
    parent = save_record(root, "parent1", 200)  # the backfill the kept one retries...
    save_record(root, "kept1", 100, parent="parent1")
    grandparent = save_record(root, "gp1", 300)  # ...which retried this one
    save_record(root, "parent1", 200, parent="gp1")
    touched = save_record(root, "touched1", 100)
    os.utime(touched)  # written again today: new, whatever its createdAt says
    corrupt = root.backfill_record("corrupt1")
    corrupt.write_text("{not json")
    backdate(corrupt, 100)  # no time inside: its mtime decides
    temp = corrupt.with_name(".old1.json.tmp-1-x")  # a writer's temporary file: not ours to delete
    temp.write_text("{}")
    backdate(temp, 100)
    stats_live_backfill = save_stats(root, "run-a", "kept1", 100)
    stats_live_run = save_stats(root, "run-b", None, 100)
    stats_old = save_stats(root, "run-c", "old1", 100)
    stats_refresh = save_stats(root, "run-d", None, 100)
    stats_recent = save_stats(root, "run-e", "old1", 89)

    report = prune_records(root, ago(90), keep_backfills={"kept1"}, live_runs={"run-b"})

    gone = [old, corrupt, stats_old, stats_refresh]
    stay = [
        recent,
        kept,
        parent,
        grandparent,
        touched,
        temp,
        stats_live_backfill,
        stats_live_run,
        stats_recent,
    ]
    assert [p.name for p in gone if p.exists()] == []
    assert [p.name for p in stay if not p.exists()] == []
    records, stats, _ = report
    assert (records.kind, sorted(records.deleted), sorted(records.kept_referenced), records.kept_recent) == (
        "backfill records",
        ["corrupt1", "old1"],
        ["gp1", "kept1", "parent1"],
        2,
    )
    assert (sorted(stats.deleted), sorted(stats.kept_referenced), stats.kept_recent) == (
        ["run-c", "run-d"],
        ["run-a", "run-b"],
        1,
    )
    assert "2 deleted, 3 old kept" in records.summary()


def test_a_cutoff_without_timezone_is_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone"):
        prune_records(DataRoot(tmp_path), dt.datetime(2026, 1, 1), keep_backfills=set(), live_runs=set())


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
def cell() -> int:
    return 1


@dg.op
def step() -> int:
    return 1


@dg.job
def collect():
    step()


def add_backfill(
    instance: dg.DagsterInstance,
    status: BulkActionStatus,
    created_days: float,
    ended_days: float | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """An asset backfill in the instance, created (and ended) that many days ago."""
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=AssetGraph.from_assets([cell]),
        partition_names=["a", "b"],
        asset_selection=[cell.key],
        backfill_timestamp=ago(created_days).timestamp(),
        tags=tags or {},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    ).with_status(status)
    if ended_days is not None:
        backfill = backfill.with_end_timestamp(ago(ended_days).timestamp())
    instance.add_backfill(backfill)
    return backfill.backfill_id


def test_the_prune_job_deletes_old_finished_backfills_and_their_records_not_running_ones(tmp_path):
    root = DataRoot(tmp_path / "data")
    with dg.instance_for_test() as instance:
        old = add_backfill(instance, BulkActionStatus.COMPLETED_SUCCESS, 120, 100)
        old_failed = add_backfill(instance, BulkActionStatus.COMPLETED_FAILED, 95, 91)
        recent = add_backfill(instance, BulkActionStatus.COMPLETED_FAILED, 100, 10)  # ran long
        running = add_backfill(instance, BulkActionStatus.REQUESTED, 120)
        retried = add_backfill(instance, BulkActionStatus.CANCELED, 130, 125)
        retry = add_backfill(instance, BulkActionStatus.REQUESTED, 1, tags={PARENT_BACKFILL_TAG: retried})
        for backfill_id, days in (
            (old, 120),
            (old_failed, 95),
            (recent, 100),
            (running, 120),
            (retried, 130),
        ):
            save_record(root, backfill_id, days)
        save_record(root, retry, 1, parent=retried)
        orphan = save_record(root, "neverlaunched", 100)  # Dagster never had it
        # Each backfill's runs, executed for real, and their statistics as old as the backfill.
        runs = {
            b: collect.execute_in_process(instance=instance, tags={BACKFILL_TAG: b}).run_id
            for b in (old, old_failed, recent, running)
        }
        for backfill_id, days in ((old, 100), (old_failed, 91), (recent, 10), (running, 100)):
            save_stats(root, runs[backfill_id], backfill_id, days)
        refresh = collect.execute_in_process(instance=instance).run_id
        save_stats(root, refresh, None, 100)
        queued = instance.create_run_for_job(collect).run_id  # not finished: a live run
        save_stats(root, queued, None, 100)

        result = prune_old_runs.execute_in_process(
            instance=instance, resources={"store": SnapshotStore(data_root=str(root))}
        )

        assert result.success
        left = {b.backfill_id for b in instance.get_backfills()}
        assert left == {recent, running, retried, retry}
        records = {p.stem for p in (root.path / "backfills").iterdir()}
        assert records == {recent, running, retried, retry}
        assert not orphan.exists()
        stats = {p.stem for p in (root.path / "state" / "runs").iterdir()}
        assert stats == {runs[recent], runs[running], queued}
        # Dagster's runs are the runs job's: these are recent, all stay.
        assert set(runs.values()) | {refresh, queued} <= {r.run_id for r in instance.get_runs()}

        assert result.output_for_node("prune_old_backfills") == {
            "backfills": 2,
            "backfill records": 3,
            "run statistics": 3,
            "idempotency records": 0,
        }
        [output] = [
            e
            for e in result.all_events
            if e.event_type_value == "STEP_OUTPUT" and e.step_key == "prune_old_backfills"
        ]
        metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
        assert sorted(metadata["deleted_backfills"]) == sorted([old, old_failed])
        assert sorted(metadata["kept_live_backfills"]) == sorted([running, retry])
        assert sorted(metadata["backfill_records"]["deleted"]) == sorted([old, old_failed, "neverlaunched"])
        # Old records kept: a backfill still running, the one a running retry retries, and one that
        # started long ago but ended recently (Dagster still shows it).
        assert sorted(metadata["backfill_records"]["keptReferenced"]) == sorted([running, retried, recent])
        assert sorted(metadata["run_statistics"]["keptReferenced"]) == sorted([runs[running], queued])
        assert metadata["run_statistics"]["keptRecent"] == 1
        assert sorted(metadata["kept_referenced_backfills"]) == [retried]
        logged = "\n".join(e.user_message for e in instance.all_logs(result.run_id))
        assert "deleted 2 finished backfills" in logged and "backfill records: 3 deleted" in logged


def test_runs_of_a_backfill_still_running_outlive_the_retention(tmp_path):
    with dg.instance_for_test() as instance:
        running = add_backfill(instance, BulkActionStatus.REQUESTED, 1)
        ended = add_backfill(instance, BulkActionStatus.COMPLETED_SUCCESS, 2, 1)
        kept = collect.execute_in_process(instance=instance, tags={BACKFILL_TAG: running}).run_id
        gone = collect.execute_in_process(instance=instance, tags={BACKFILL_TAG: ended}).run_id
        result = prune_old_runs.execute_in_process(
            instance=instance,
            run_config={"ops": {"delete_old_runs": {"config": {"retention_days": 0}}}},
            resources={"store": SnapshotStore(data_root=str(tmp_path))},
        )
        remaining = {r.run_id for r in instance.get_runs()}
        assert kept in remaining and gone not in remaining and result.run_id in remaining
