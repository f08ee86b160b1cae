"""Watching backfills: one backfill's status (Dagster's counts, the store's progress, the runs'
performance), the list, and cancelling."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from ..collecting.run_stats import read_run_stats
from ..dashboard.breaker import read_breaker_state
from ..dashboard.budget import recent_rate
from ..dataroot import DataRoot
from ..names import PARENT_BACKFILL_TAG, POOL, REQUEST_ID_TAG, REQUESTER_TAG, STRATEGY_TAG
from ..snapshots.models import DistrictError
from ..snapshots.store import PerDistrictFileSnapshotStore
from .graphql import DagsterGraphQL, DagsterGraphQLError
from .models import (
    CANCELLABLE_STATES,
    AssetCounts,
    BackfillCounts,
    BackfillStatus,
    BackfillSummary,
    DistrictProgress,
    Performance,
    PlanBody,
    RunCounts,
    state_of,
)
from .records import BackfillRecords, checked_id

# The deployment's requests/s "now" is what its budget granted over this many seconds.
BUDGET_WINDOW_S = 10.0


class NotCancellable(Exception):
    """The backfill has already ended."""


class StatusReader:
    """Reads backfills from Dagster, the store and the run statistics; never blocks a run."""

    def __init__(
        self, graphql: DagsterGraphQL, root: DataRoot, *, budget: float, budget_store: str | None = None
    ) -> None:
        self.graphql = graphql
        self.root = root
        self.budget = budget
        self.budget_store = budget_store
        self.store = PerDistrictFileSnapshotStore(root)
        self.records = BackfillRecords(root)

    def status(self, backfill_id: str) -> BackfillStatus:
        """State, counts, per-district progress, errors and performance of one backfill."""
        b = self.graphql.backfill(checked_id(backfill_id))
        record = self.records.read(backfill_id)
        tags = _tags(b)
        per_asset = asset_counts(b)
        detailed = tags.get(STRATEGY_TAG) == "per-district"
        progress, errors, unavailable = self._store_progress(b["id"], record.plan, detailed)
        counts = BackfillCounts(
            targeted=sum(a.targeted for a in per_asset.values()),
            materialized=sum(a.materialized for a in per_asset.values()),
            failed=sum(a.failed for a in per_asset.values()),
            in_progress=sum(a.in_progress for a in per_asset.values()),
            unavailable=unavailable,
            skipped=sum(record.plan.skipped.values()) if record.plan else 0,
        )
        return BackfillStatus(
            id=b["id"],
            state=state_of(b["status"]),
            dagster_status=b["status"],
            request_id=tags.get(REQUEST_ID_TAG),
            strategy=tags.get(STRATEGY_TAG),
            # A re-executed backfill inherits its parent's tags: our record knows who asked.
            requester=record.requester or tags.get(REQUESTER_TAG),
            retry_of=record.parent or tags.get(PARENT_BACKFILL_TAG),
            title=b.get("title"),
            created_at=_time(b.get("timestamp")),
            ended_at=_time(b.get("endTimestamp")),
            counts=counts,
            assets=per_asset,
            runs=RunCounts(total=len(b["runs"]), by_status=Counter(r["status"] for r in b["runs"])),
            districts=progress,
            district_errors=errors,
            performance=self._performance([r["runId"] for r in b["runs"]]),
            plan=record.plan,
            error=(b.get("error") or {}).get("message"),
        )

    def _store_progress(
        self, backfill_id: str, plan: PlanBody | None, detailed: bool
    ) -> tuple[dict[str, DistrictProgress], list[DistrictError], int]:
        """Per-district progress (detailed backfills), this backfill's district errors, and the
        partitions found unavailable (a date's summary, plus each district of a detailed one)."""
        districts = plan.districts if plan and detailed else []
        progress = {d: DistrictProgress() for d in districts}
        errors: list[DistrictError] = []
        unavailable = 0
        for day in _days(plan):
            metadata = self.store.read_metadata(day)
            if metadata is None:
                continue
            manifest = self.store.read_manifest(day)
            if metadata.status == "unavailable":
                unavailable += 1
            # A failed detail on a district whose summary data was kept is recorded beside that
            # data (the file stays a success): it is this backfill's failure all the same.
            kept = metadata.errors_with_data_kept
            errors += [e for e in [*metadata.district_errors, *kept] if e.backfill_id == backfill_id]
            entries = {e.district_id: e for e in manifest.districts} if manifest else {}
            for district, row in progress.items():
                entry = entries.get(district)
                if entry is None:
                    continue
                failed_beside = [e for e in kept if e.district == district]
                if entry.status == "success" and entry.detail == "detailed":
                    row.done += 1
                elif entry.status == "failed" or (entry.status == "success" and failed_beside):
                    row.failed += 1
                    tried = failed_beside or metadata.district_errors
                    last = next((e for e in reversed(tried) if e.district == district), None)
                    if last is not None:
                        row.last_error = f"{day}: {last.error_class}: {last.message}"
                elif entry.status == "unavailable":
                    row.unavailable += 1
                    unavailable += 1
        return progress, errors, unavailable

    def _performance(self, run_ids: list[str]) -> Performance:
        stats = read_run_stats(self.root, run_ids)
        requests = sum(s.get("requests", 0) for s in stats)
        hits = sum(s.get("cacheHits", 0) for s in stats)
        try:
            pool = self.graphql.pool(POOL)
        except DagsterGraphQLError:
            pool = {}
        return Performance(
            requests_made=requests,
            cache_hits=hits,
            cache_hit_rate=round(hits / (hits + requests), 3) if hits + requests else None,
            rate_limit_wait_seconds=round(sum(s.get("rateLimitWaitSeconds", 0) for s in stats), 3),
            retries=sum(s.get("retries", 0) for s in stats),
            runs_reporting=len(stats),
            pool_slots_in_use=pool.get("activeSlotCount"),
            pool_limit=pool.get("limit"),
            breaker_state=self._breaker_state(),
            budget_rate=self.budget,
            budget_rate_now=self._budget_now(),
        )

    def _breaker_state(self) -> str:
        try:
            return read_breaker_state(self.budget_store, self.root)
        except Exception:
            # The shared store cannot be read (a lost database): say so rather than fail the page.
            return "unknown"

    def _budget_now(self) -> float | None:
        try:
            return round(recent_rate(self.budget_store, self.root, BUDGET_WINDOW_S), 2)
        except Exception:
            # Any driver's error alike (a locked file, a lost database): the page says "not known".
            return None

    def list(self, limit: int = 50) -> list[BackfillSummary]:
        """The latest backfills, newest first."""
        out = []
        for b in self.graphql.backfills(limit=limit):
            tags = _tags(b)
            summary = BackfillSummary(
                id=b["id"],
                state=state_of(b["status"]),
                dagster_status=b["status"],
                title=b.get("title"),
                partitions=b.get("numPartitions"),
                strategy=tags.get(STRATEGY_TAG),
                requester=self.records.read(b["id"]).requester or tags.get(REQUESTER_TAG),
                created_at=_time(b.get("timestamp")),
                progress=total_counts(asset_counts(b)),
            )
            out.append(summary)
        return out

    def cancel(self, backfill_id: str) -> BackfillStatus:
        """Cancel a running backfill; NotCancellable when it has already ended."""
        b = self.graphql.backfill(checked_id(backfill_id))
        if state_of(b["status"]) not in CANCELLABLE_STATES:
            raise NotCancellable(f"backfill {backfill_id} is {b['status']}: nothing to cancel")
        self.graphql.cancel_backfill(b["id"])
        return self.status(b["id"])


def asset_counts(backfill: dict) -> dict[str, AssetCounts]:
    """Partitions by outcome for each asset of an asset backfill, as Dagster counts them."""
    return {
        s["assetKey"]["path"][0]: AssetCounts(
            targeted=s["numPartitionsTargeted"],
            materialized=s["numPartitionsMaterialized"],
            failed=s["numPartitionsFailed"],
            in_progress=s["numPartitionsInProgress"],
        )
        for s in (backfill.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
        if "assetKey" in s
    }


def total_counts(per_asset: dict[str, AssetCounts]) -> AssetCounts | None:
    """The sum over the assets; None when Dagster gave no counts (not an asset backfill)."""
    if not per_asset:
        return None
    return AssetCounts(
        targeted=sum(a.targeted for a in per_asset.values()),
        materialized=sum(a.materialized for a in per_asset.values()),
        failed=sum(a.failed for a in per_asset.values()),
        in_progress=sum(a.in_progress for a in per_asset.values()),
    )


def _tags(backfill: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in backfill["tags"]}


def _days(plan: PlanBody | None) -> list[dt.date]:
    if plan is None:
        return []
    start, end = plan.dates.start, plan.dates.end
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _time(timestamp: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp else None
