"""The two partitioned assets: one materialization per key that succeeded, one Failure naming the rest."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from ..collecting.batch import KeyResult, RunInfo, batch_failure, collect_batch
from ..collecting.collect import SummaryOutcome
from ..dashboard.http import error_class
from ..names import (
    ASSET_GROUP,
    BACKFILL_TAG,
    DISTRICT_ASSET,
    DISTRICTS_PARTITION,
    FORCE_TAG,
    PARENT_RUN_TAG,
    POOL,
    RECHECK_TAG,
    ROOT_RUN_TAG,
    SCOPE_TAG,
    SOURCE_TAG,
    SUMMARY_ASSET,
)
from ..scope import district_partitions_change
from ..snapshots.models import Scope
from .partitions import date_district_partitions, split_key
from .resources import RefreshService

MAX_STEP_RETRIES = 3


def transient_retry(delay: float = 15) -> dg.RetryPolicy:
    """Transient failures (connection trouble, 5xx, 429, open breaker) are retried by Dagster with
    exponential backoff; a batch with only permanent failures raises Failure(allow_retries=False)."""
    return dg.RetryPolicy(
        max_retries=MAX_STEP_RETRIES, delay=delay, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


def run_info(context: dg.AssetExecutionContext) -> RunInfo:
    """The run as the core sees it: ids, source, attempt, whether to re-collect."""
    tags = context.run.tags
    backfill_id = tags.get(BACKFILL_TAG)
    source = tags.get(SOURCE_TAG) or ("backfill" if backfill_id else "refresh")
    return RunInfo(
        run_id=context.run.run_id,
        backfill_id=backfill_id,
        source="backfill" if source == "backfill" else "refresh",
        attempt=context.retry_number + 1,
        force=_flag(tags.get(FORCE_TAG)),
        recheck_unavailable=_flag(tags.get(RECHECK_TAG)),
        earlier_runs=tuple(dict.fromkeys(t for t in (tags.get(PARENT_RUN_TAG), tags.get(ROOT_RUN_TAG)) if t)),
    )


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def materialized_earlier(context: dg.AssetExecutionContext, run: RunInfo) -> set[str]:
    """The keys of this asset that an earlier attempt of this run, or a run it re-executes (its
    worker died), materialized: a retry leaves out those and only those. What the store holds is
    not enough: a key whose files were written but whose write failed half-way (a full disk)
    must be collected, and named, again."""
    if not run.resumes:
        return set()
    keys: set[str] = set()
    for run_id in run.run_ids:
        records = context.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.asset_key == context.asset_key and event.partition is not None:
                keys.add(str(event.partition))
    return keys


def materialize(context: dg.AssetExecutionContext, result: KeyResult) -> Iterator[dg.AssetMaterialization]:
    """The key's materialization when it succeeded; its error in the run log when it failed."""
    if result.error is not None:
        context.log.error(f"{result.key} failed: {error_class(result.error)}: {result.error}")
        return
    yield dg.AssetMaterialization(
        asset_key=context.asset_key, partition=result.key, metadata=result.metadata()
    )


# A wait the dashboard asks for up to this long is waited inside the run (a step retry then);
# a longer one ends the run, and the heal sensor re-executes the keys once it is over.
MAX_WAIT_IN_RUN = 300.0


def raise_if_failed(asset: str, results: list[KeyResult], retry_number: int = 0) -> None:
    """One Failure naming only the failed keys, so Dagster marks exactly those failed; when the
    dashboard named a wait (Retry-After, the breaker's cool-down), the retry honours it."""
    failure = batch_failure(asset, results)
    if failure is None:
        return
    metadata: dict[str, Any] = {
        "failed_partitions": list(failure.errors),
        "errors": "\n".join(failure.lines()),
        "retryable": failure.retryable,
    }
    wait = failure.wait_seconds if failure.retryable else 0.0
    if wait > MAX_WAIT_IN_RUN:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
        raise dg.Failure(
            description=f"{failure.description}; deferred until {until:%Y-%m-%d %H:%M} UTC as the "
            "dashboard asked (the heal_gaps sensor re-executes them then)",
            metadata={**metadata, "deferred_until": until.isoformat()},
            allow_retries=False,
        )
    if wait > 0 and retry_number < MAX_STEP_RETRIES:
        context_line = f"{failure.description}; retried in {wait:.0f} s as the dashboard asked"
        raise dg.RetryRequested(max_retries=MAX_STEP_RETRIES, seconds_to_wait=wait) from RuntimeError(
            context_line
        )
    raise dg.Failure(description=failure.description, metadata=metadata, allow_retries=failure.retryable)


def dashboard_asset(
    name: str,
    partitions_def: dg.PartitionsDefinition,
    *,
    batch_size: int,
    retry_delay: float,
    deps: list[dg.AssetDep] | None = None,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """The decorator of an asset that asks the dashboard: backfills batched `batch_size` keys per
    run, the dashboard's pool, transient failures retried by Dagster."""
    return dg.asset(
        name=name,
        partitions_def=partitions_def,
        deps=deps,
        backfill_policy=dg.BackfillPolicy.multi_run(batch_size),
        pool=POOL,
        retry_policy=transient_retry(retry_delay),
        output_required=False,
        group_name=ASSET_GROUP,
        kinds={"csv", "json"},
    )


def build_assets(
    daily: dg.DailyPartitionsDefinition, *, batch_size: int, retry_delay: float = 15
) -> list[dg.AssetsDefinition]:
    """The summary (daily) and district snapshot (date x district) assets over `daily`."""

    @dashboard_asset(SUMMARY_ASSET, daily, batch_size=batch_size, retry_delay=retry_delay)
    def all_districts_summary(
        context: dg.AssetExecutionContext, refresh: RefreshService
    ) -> Iterator[dg.AssetMaterialization]:
        """All-districts summary of an as-of date: one request; summary files, rankings, metadata."""
        run, done = run_info(context), list[KeyResult]()
        for result in collect_batch(
            context.partition_keys,
            lambda key: refresh.collect_summary(dt.date.fromisoformat(key), run),
            stats=refresh.stats,
            done_earlier=materialized_earlier(context, run).__contains__,
        ):
            done.append(result)
            yield from materialize(context, result)
        collected = [r.outcome for r in done if isinstance(r.outcome, SummaryOutcome) and r.outcome.available]
        if collected:
            newest = max(collected, key=lambda o: o.as_of)
            sync_district_partitions(context, refresh.configured(), newest.in_scope)
        raise_if_failed(SUMMARY_ASSET, done, context.retry_number)

    # No dependency on the summary asset: a district's run reads the date's summary CSV from the
    # raw cache, or asks for it itself (once per date across every run: the client's fetches are
    # single-flight). A dependency would make every per-district backfill two levels, and Dagster's
    # backfill daemon starts each level on its next tick (30 s, fixed): measured by
    # scripts/bench_backfill.py, that wait was most of a small backfill's time.
    @dashboard_asset(
        DISTRICT_ASSET,
        date_district_partitions(daily),
        batch_size=batch_size,
        retry_delay=retry_delay,
    )
    def district_snapshot(
        context: dg.AssetExecutionContext, refresh: RefreshService
    ) -> Iterator[dg.AssetMaterialization]:
        """One district on one as-of date in detail: its three reports, one request each."""
        run, done = run_info(context), list[KeyResult]()
        keys = {str(key): split_key(key) for key in context.partition_keys}
        scope = district_scope(context.run.tags.get(SCOPE_TAG), {d for _, d in keys.values()})
        for result in collect_batch(
            keys,
            lambda key: refresh.collect_district(*keys[key], run, scope),
            stats=refresh.stats,
            done_earlier=materialized_earlier(context, run).__contains__,
        ):
            done.append(result)
            yield from materialize(context, result)
        raise_if_failed(DISTRICT_ASSET, done, context.retry_number)

    return [all_districts_summary, district_snapshot]


def district_scope(tagged: str | None, districts: set[str]) -> Scope:
    """The scope a detailed run records: its tag, else single-district or targeted by its keys."""
    if tagged in ("system-wide", "targeted", "single-district"):
        return tagged  # type: ignore[return-value]
    return "single-district" if len(districts) == 1 else "targeted"


def sync_district_partitions(
    context: dg.AssetExecutionContext, configured: list[str], listed: list[str]
) -> None:
    """Keep the `districts` partitions equal to the scope (see `district_partitions_change`)."""
    current = list(context.instance.get_dynamic_partitions(DISTRICTS_PARTITION))
    add, remove = district_partitions_change(current, configured, listed)
    if add:
        context.instance.add_dynamic_partitions(DISTRICTS_PARTITION, add)
    for district in remove:
        context.instance.delete_dynamic_partition(DISTRICTS_PARTITION, district)
    if add or remove:
        context.log.info(f"districts partitions: added {add}, removed {remove}")
