"""Jobs: the two asset jobs the schedules launch, and the run-history upkeep job."""

import datetime as dt

import dagster as dg

from ..names import DISTRICT_JOB, SUMMARY_JOB

RUN_RETENTION_DAYS = 90
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


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


def materialized_anything(instance: dg.DagsterInstance, run_id: str) -> bool:
    """True when the run recorded an asset materialization."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1
    ).records
    return bool(records)


@dg.op
def delete_old_runs(context: dg.OpExecutionContext, config: PruneConfig) -> int:
    """Delete finished runs older than the retention period that materialized nothing."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=config.retention_days)
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
            if run_id == context.run_id or materialized_anything(context.instance, run_id):
                kept += 1
                continue
            context.instance.delete_run(run_id)
            deleted += 1
    context.log.info(
        f"deleted {deleted} finished runs created before {cutoff:%Y-%m-%d %H:%M} UTC; "
        f"kept {kept} that materialized partitions"
    )
    context.add_output_metadata({"deleted_runs": deleted, "kept_runs": kept, "cutoff": cutoff.isoformat()})
    return deleted


@dg.job(
    description="Delete finished runs older than the retention period that materialized nothing "
    "(Dagster OSS keeps runs forever; materializations are the partitions' history)."
)
def prune_old_runs():
    """Run-history upkeep."""
    delete_old_runs()
