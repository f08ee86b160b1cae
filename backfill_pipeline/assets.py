"""The two partitioned assets: thin loops over `collect`, one materialization per key that succeeded."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from .collect import DistrictOutcome, collect_district, collect_summary
from .dashboard.errors import DashboardError
from .dashboard.http import error_class
from .partitions import DISTRICTS_PARTITION, date_district_partitions, split_key
from .planner import FORCE_TAG, POOL, SCOPE_TAG, SOURCE_TAG
from .resources import DistrictConfiguration, RefreshService, SnapshotStore
from .scope import district_partitions_change
from .snapshots.models import WriteContext

GROUP = "toastmasters"


def transient_retry(delay: float = 15) -> dg.RetryPolicy:
    """Transient failures (connection trouble, 5xx, 429, open breaker) are retried by Dagster with
    exponential backoff; a batch with only permanent failures raises Failure(allow_retries=False)."""
    return dg.RetryPolicy(
        max_retries=3, delay=delay, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


def _write_context(
    context: dg.AssetExecutionContext, scope: str, method: str, configured: list[str]
) -> WriteContext:
    tags = context.run.tags
    backfill_id = tags.get("dagster/backfill")
    return WriteContext(
        source=tags.get(SOURCE_TAG) or ("backfill" if backfill_id else "refresh"),
        scope=scope,
        collection_method=method,
        run_id=context.run.run_id,
        backfill_id=backfill_id,
        configured_districts=configured,
    )


def _forced(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(FORCE_TAG, "").lower() in ("1", "true", "yes")


def _stat_delta(before: dict, after: dict) -> dict:
    return {
        "requests": after["requests"] - before["requests"],
        "cache_hits": after["cacheHits"] - before["cacheHits"],
        "rate_limit_wait_seconds": round(after["rateLimitWaitSeconds"] - before["rateLimitWaitSeconds"], 3),
    }


def _failure(asset: str, failures: list[tuple[str, BaseException]]) -> dg.Failure:
    retryable = any(getattr(exc, "retryable", False) for _, exc in failures)
    lines = [f"{key}: {error_class(exc)}: {exc}" for key, exc in failures]
    return dg.Failure(
        description=f"{asset}: {len(failures)} partition(s) failed: " + ", ".join(key for key, _ in failures),
        metadata={
            "failed_partitions": [k for k, _ in failures],
            "errors": "\n".join(lines),
            "retryable": retryable,
        },
        allow_retries=retryable,
    )


def build_assets(
    daily: dg.DailyPartitionsDefinition, *, batch_size: int = 50, retry_delay: float = 15
) -> list[dg.AssetsDefinition]:
    """The summary (daily) and district snapshot (date x district) assets over `daily`."""
    date_district = date_district_partitions(daily)
    retry_policy = transient_retry(retry_delay)

    @dg.asset(
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.multi_run(batch_size),
        pool=POOL,
        retry_policy=retry_policy,
        output_required=False,
        group_name=GROUP,
        kinds={"csv", "json"},
    )
    def all_districts_summary(
        context: dg.AssetExecutionContext,
        refresh: RefreshService,
        store: SnapshotStore,
        districts: DistrictConfiguration,
    ) -> Iterator[dg.AssetMaterialization]:
        """All-districts summary of an as-of date: one request; summary files, rankings, metadata."""
        snapshot_store = store.open()
        configured = districts.configured()
        wc = _write_context(context, "system-wide", "all-districts-csv", configured)
        failures: list[tuple[str, BaseException]] = []
        newest_districts: tuple[dt.date, list[str]] | None = None
        for key in context.partition_keys:
            as_of = dt.date.fromisoformat(key)
            if context.retry_number > 0 and _summary_done_in_this_run(context, snapshot_store, as_of):
                continue  # materialized by an earlier attempt of this run
            before = refresh.stats()
            try:
                outcome = collect_summary(
                    refresh.client, snapshot_store, as_of, configured=configured, context=wc
                )
            except Exception as exc:  # noqa: BLE001 - one date's failure must not stop the others
                context.log.error(f"summary {key} failed: {error_class(exc)}: {exc}")
                failures.append((key, exc))
                continue
            if outcome.out_of_scope:
                context.log.info(f"{key}: out of scope: {outcome.out_of_scope}")
            if outcome.available and (newest_districts is None or as_of > newest_districts[0]):
                newest_districts = (as_of, outcome.in_scope)
            yield dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata={**outcome.metadata(), **_stat_delta(before, refresh.stats())},
            )
        if newest_districts is not None:
            _sync_district_partitions(context, snapshot_store, configured, *newest_districts)
        if failures:
            raise _failure("all_districts_summary", failures)

    @dg.asset(
        partitions_def=date_district,
        backfill_policy=dg.BackfillPolicy.multi_run(batch_size),
        pool=POOL,
        retry_policy=retry_policy,
        output_required=False,
        group_name=GROUP,
        kinds={"csv", "json"},
        deps=[
            dg.AssetDep(
                all_districts_summary,
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date"),
            )
        ],
    )
    def district_snapshot(
        context: dg.AssetExecutionContext,
        refresh: RefreshService,
        store: SnapshotStore,
        districts: DistrictConfiguration,
    ) -> Iterator[dg.AssetMaterialization]:
        """One district on one as-of date in detail: its three reports, one request each."""
        snapshot_store = store.open()
        configured = districts.configured()
        keys = list(context.partition_keys)
        n_districts = len({split_key(k)[1] for k in keys})
        scope = context.run.tags.get(SCOPE_TAG) or ("single-district" if n_districts == 1 else "targeted")
        wc = _write_context(context, scope, "per-district-csvs", configured)
        force = _forced(context)
        failures: list[tuple[str, BaseException]] = []
        for key in keys:
            as_of, district = split_key(key)
            if context.retry_number > 0 and _done_in_this_run(context, snapshot_store, as_of, district):
                continue  # materialized by an earlier attempt of this run
            before = refresh.stats()
            try:
                outcome = _earlier_attempt(context, snapshot_store, as_of, district) or collect_district(
                    refresh.client,
                    snapshot_store,
                    as_of,
                    district,
                    context=wc,
                    force=force,
                    attempt=context.retry_number + 1,
                )
            except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the others
                context.log.error(f"{key} failed: {error_class(exc)}: {exc}")
                failures.append((str(key), exc))
                continue
            if outcome.status == "failed":
                failures.append((str(key), outcome.error))
                continue
            yield dg.AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata={**outcome.metadata(), **_stat_delta(before, refresh.stats())},
            )
        if failures:
            raise _failure("district_snapshot", failures)

    return [all_districts_summary, district_snapshot]


def _earlier_attempt(context, store, as_of, district) -> DistrictOutcome | None:
    """On a retry, a permanent failure of this run is not fetched again: it would fail again."""
    if context.retry_number == 0:
        return None
    snap = store.read_district(as_of, district)
    if snap is None or snap.status != "failed" or not snap.errors:
        return None
    last = snap.errors[-1]
    if last.run_id != context.run.run_id or last.retryable:
        return None
    return DistrictOutcome(
        as_of=as_of,
        district=district,
        status="failed",
        error=_StoredError(f"{last.error_class}: {last.message}"),
    )


class _StoredError(DashboardError):
    """A permanent error read back from the store on a retry."""


def _summary_done_in_this_run(context, store, as_of) -> bool:
    return any(
        c.run_id == context.run.run_id and c.collection_method == "all-districts-csv"
        for c in store.read_collections(as_of).collections
    )


def _done_in_this_run(context, store, as_of, district) -> bool:
    snap = store.read_district(as_of, district)
    return bool(
        snap is not None
        and snap.status == "success"
        and snap.collection is not None
        and snap.collection.run_id == context.run.run_id
    )


def _sync_district_partitions(
    context, store, configured: list[str], as_of: dt.date, summary_districts: list[str]
) -> None:
    """Keep the `districts` partitions equal to the scope (see `district_partitions_change`)."""
    current = context.instance.get_dynamic_partitions(DISTRICTS_PARTITION)
    add, remove = district_partitions_change(current, configured, summary_districts)
    if add:
        context.instance.add_dynamic_partitions(DISTRICTS_PARTITION, add)
    for d in remove:
        context.instance.delete_dynamic_partition(DISTRICTS_PARTITION, d)
    if add or remove:
        context.log.info(f"districts partitions: added {add}, removed {remove}")
