"""Jobs: the two asset jobs the schedules launch, and the upkeep job of the history (Dagster's
runs and backfills, and our records of them)."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import dagster as dg

from ..collecting.upkeep import prune_records, referenced_backfills
from ..names import BACKFILL_TAG, DISTRICT_JOB, PARENT_BACKFILL_TAG, SUMMARY_JOB
from .resources import SnapshotStore

RUN_RETENTION_DAYS = 90
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
NOT_FINISHED = [s for s in dg.DagsterRunStatus if s not in FINISHED]
# Dagster's backfill statuses (BulkActionStatus values) of a backfill still running; every other
# status is final (completed, failed, canceled).
LIVE_BACKFILL = {"REQUESTED", "CANCELING", "FAILING"}


def build_asset_jobs(summary: dg.AssetsDefinition, district: dg.AssetsDefinition):
    """One job per asset, so a schedule can ask for one date or one date x all districts."""
    return (
        dg.define_asset_job(
            SUMMARY_JOB,
            selection=[summary],
            description="Collect the all-districts summary of as-of dates.",
        ),
        dg.define_asset_job(
            DISTRICT_JOB,
            selection=[district],
            description="Collect districts in detail for as-of dates.",
        ),
    )


class PruneConfig(dg.Config):
    """How old a finished run must be before it is deleted."""

    retention_days: int = RUN_RETENTION_DAYS


def cutoff_of(config: PruneConfig) -> dt.datetime:
    """The moment before which finished history is old."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=config.retention_days)


def all_backfills(instance: dg.DagsterInstance) -> Iterator[Any]:
    """Every backfill of the instance (PartitionBackfill), newest first, a page at a time."""
    cursor = None
    while True:
        page = instance.get_backfills(cursor=cursor, limit=100)
        yield from page
        if len(page) < 100:
            return
        cursor = page[-1].backfill_id


def live_backfill_ids(instance: dg.DagsterInstance) -> set[str]:
    """The backfills still running."""
    return {b.backfill_id for b in all_backfills(instance) if b.status.value in LIVE_BACKFILL}


def ended_at(backfill: Any) -> dt.datetime:
    """When a finished backfill ended (when it was created, for one that did not record its end)."""
    return dt.datetime.fromtimestamp(backfill.backfill_end_timestamp or backfill.backfill_timestamp, dt.UTC)


def _sql_run_storage(instance: dg.DagsterInstance) -> Any:
    from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

    storage: Any = instance.run_storage
    if not isinstance(storage, SqlRunStorage):  # the legacy composite storage wraps it
        storage = getattr(getattr(storage, "_storage", None), "run_storage", None)
    return storage if isinstance(storage, SqlRunStorage) else None


def delete_backfill(instance: dg.DagsterInstance, backfill: Any) -> bool:
    """Delete a finished backfill from the instance (its row and tags, in one transaction; its
    runs are the runs job's). Dagster 1.13 has no public call for it (the storage method proposed
    in dagster-io/dagster#25165 was not merged), so this deletes from the SQL run storage (SQLite
    or Postgres) directly; False for any other storage. The row goes only if it is still final."""
    from dagster._core.storage.runs.schema import BackfillTagsTable, BulkActionsTable

    storage = _sql_run_storage(instance)
    if storage is None:
        return False
    final = [s.value for s in type(backfill.status) if s.value not in LIVE_BACKFILL]
    with_tags = storage.has_backfill_tags_table()
    with storage.connect() as conn:
        gone = conn.execute(
            BulkActionsTable.delete()
            .where(BulkActionsTable.c.key == backfill.backfill_id)
            .where(BulkActionsTable.c.status.in_(final))
        ).rowcount
        if gone and with_tags:
            conn.execute(
                BackfillTagsTable.delete().where(BackfillTagsTable.c.backfill_id == backfill.backfill_id)
            )
    if gone and instance.backfill_log_storage_enabled():
        instance.compute_log_manager.delete_logs(prefix=backfill.log_storage_prefix)
    return bool(gone)


def materialized_anything(instance: dg.DagsterInstance, run_id: str) -> bool:
    """True when the run recorded an asset materialization."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1
    ).records
    return bool(records)


@dg.op
def delete_old_runs(context: dg.OpExecutionContext, config: PruneConfig) -> int:
    """Delete finished runs older than the retention period that materialized nothing."""
    cutoff = cutoff_of(config)
    live = live_backfill_ids(context.instance)
    deleted = kept = 0
    cursor = None
    while True:
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, created_before=cutoff), limit=200, cursor=cursor
        )
        if not records:
            break
        cursor = records[-1].dagster_run.run_id
        for record in records:
            run_id = record.dagster_run.run_id
            # Deleting a run deletes its events, and materializations are the partitions'
            # history (the asset pages, skipExisting): those runs stay.
            # A run of a backfill still running stays too (its status counts it).
            in_live_backfill = record.dagster_run.tags.get(BACKFILL_TAG) in live
            if (
                run_id == context.run_id
                or in_live_backfill
                or materialized_anything(context.instance, run_id)
            ):
                kept += 1
                continue
            context.instance.delete_run(run_id)
            deleted += 1
    context.log.info(
        f"deleted {deleted} finished runs created before {cutoff:%Y-%m-%d %H:%M} UTC; "
        f"kept {kept} that materialized partitions or belong to a backfill still running"
    )
    context.add_output_metadata({"deleted_runs": deleted, "kept_runs": kept, "cutoff": cutoff.isoformat()})
    return deleted


@dg.op
def prune_old_backfills(context: dg.OpExecutionContext, config: PruneConfig, store: SnapshotStore) -> dict:
    """Delete finished backfills older than the retention period and our records of them."""
    cutoff = cutoff_of(config)
    instance = context.instance
    backfills = list(all_backfills(instance))
    live = {b.backfill_id for b in backfills if b.status.value in LIVE_BACKFILL}
    # A backfill still running keeps those it retries (Dagster's tag, our record's parent).
    parents = {b.tags.get(PARENT_BACKFILL_TAG) for b in backfills if b.backfill_id in live}
    referenced = referenced_backfills(store.root, live | {p for p in parents if p})
    old = [b for b in backfills if b.backfill_id not in referenced and ended_at(b) < cutoff]
    deleted = [b.backfill_id for b in old if delete_backfill(instance, b)]
    if len(deleted) < len(old):
        context.log.warning(
            f"{len(old) - len(deleted)} old finished backfills could not be deleted: the run "
            "storage is not SQL; their records stay with them"
        )
    # A record stays as long as Dagster shows its backfill (a finished one newer than the cutoff
    # too), and whatever its age while a backfill still running (or a run not finished) refers to it.
    shown = {b.backfill_id for b in backfills} - set(deleted)
    live_runs = set(instance.get_run_ids(filters=dg.RunsFilter(statuses=NOT_FINISHED)))
    report = prune_records(store.root, cutoff, keep_backfills=shown, live_runs=live_runs)
    retried = (referenced - live) & shown
    context.log.info(
        f"deleted {len(deleted)} finished backfills that ended before {cutoff:%Y-%m-%d %H:%M} UTC; "
        f"kept {len(live)} still running, {len(retried)} that a running one retries and "
        f"{len(shown) - len(live) - len(retried)} others"
        + "".join(f"; {pruned.summary()}" for pruned in report)
    )
    counts = {"backfills": len(deleted), **{p.kind: len(p.deleted) for p in report}}
    context.add_output_metadata(
        {
            "cutoff": cutoff.isoformat(),
            "deleted_backfills": _listed(deleted),
            "kept_live_backfills": _listed(sorted(live)),
            "kept_referenced_backfills": _listed(sorted(retried)),
            **{
                p.kind.replace(" ", "_"): dg.MetadataValue.json(
                    {
                        "deleted": _names(p.deleted),
                        "keptReferenced": _names(p.kept_referenced),
                        "keptRecent": p.kept_recent,
                    }
                )
                for p in report
            },
        }
    )
    return counts


METADATA_NAMES = 200  # at most so many names per list in the op's metadata (the counts are whole)


def _names(names: list[str]) -> list[str]:
    if len(names) <= METADATA_NAMES:
        return names
    return [*names[:METADATA_NAMES], f"... and {len(names) - METADATA_NAMES} more"]


def _listed(names: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.json(_names(names))


@dg.job(
    description="Delete finished runs older than the retention period that materialized nothing "
    "(Dagster OSS keeps runs forever; materializations are the partitions' history), finished "
    "backfills as old, and our records of them (backfill records, run statistics), never those "
    "a backfill still running refers to."
)
def prune_old_runs():
    """History upkeep: old finished runs, backfills and our records of them."""
    delete_old_runs()
    prune_old_backfills()
