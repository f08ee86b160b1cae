"""Jobs: the two asset jobs the schedules launch, and the run-history upkeep job."""


import datetime as dt

import dagster as dg

RUN_RETENTION_DAYS = 90
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def build_asset_jobs(summary: dg.AssetsDefinition, district: dg.AssetsDefinition
                     ):
    """One job per asset, so a schedule can ask for one date or one date x all districts."""
    return (
        dg.define_asset_job("all_districts_summary_job", selection=[summary],
                            description="Collect the all-districts summary of as-of dates."),
        dg.define_asset_job("district_snapshot_job", selection=[district],
                            description="Collect districts in detail for as-of dates."),
    )


class PruneConfig(dg.Config):
    """How old a finished run must be before it is deleted."""

    retention_days: int = RUN_RETENTION_DAYS


@dg.op
def delete_old_runs(context: dg.OpExecutionContext, config: PruneConfig) -> int:
    """Delete finished runs (and their event logs) older than the retention period."""
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=config.retention_days)
    deleted = 0
    while True:
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(statuses=FINISHED, created_before=cutoff), limit=200
        )
        records = [r for r in records if r.dagster_run.run_id != context.run_id]
        if not records:
            break
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
            deleted += 1
    context.log.info(f"deleted {deleted} finished runs created before {cutoff:%Y-%m-%d %H:%M} UTC")
    context.add_output_metadata({"deleted_runs": deleted, "cutoff": cutoff.isoformat()})
    return deleted


@dg.job(description="Delete finished runs older than the retention period (Dagster OSS keeps them forever).")
def prune_old_runs():
    """Run-history upkeep."""
    delete_old_runs()
