"""Planning, launching and retrying backfills: what Dagster and the store hold, the plan, the launch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..dashboard.cache import RawCache
from ..dashboard.calendar import unavailable_is_final
from ..dataroot import DataRoot
from ..names import (
    DISTRICT_ASSET,
    DISTRICTS_PARTITION,
    FORCE_TAG,
    PLAN_HASH_TAG,
    POOL,
    RATE_TAG,
    REQUEST_ID_TAG,
    REQUESTER_TAG,
    SCOPE_TAG,
    SOURCE_TAG,
    STRATEGY_TAG,
    SUMMARY_ASSET,
    concurrency_tag,
    key_date,
)
from ..planning.planner import Plan, World, date_ranges, district_ranges, make_plan
from ..planning.request import BackfillRequest
from ..scope import DistrictConfig
from ..snapshots.store import PerDistrictFileSnapshotStore
from .graphql import DagsterGraphQL
from .models import CANCELLABLE_STATES, PlanBody, state_of
from .records import BackfillRecord, BackfillRecords, checked_id, now


class PlanConflict(Exception):
    """The plan hash the caller confirmed no longer matches what would be launched."""

    def __init__(self, expected: str, actual: Plan) -> None:
        super().__init__(f"plan hash {expected} no longer matches: the plan is now {actual.plan_hash}")
        self.plan = actual


class NothingToRetry(Exception):
    """The backfill has no failed partition to re-execute."""


class StillRunning(Exception):
    """The backfill has not ended yet, so what failed is not known yet."""


@dataclass
class Launched:
    """A launched backfill (or, for a dry run, only its plan)."""

    plan: Plan
    backfill_id: str | None
    request_id: str


def partitions_by_assets(plan: Plan, district_order: list[str]) -> list[dict]:
    """LaunchBackfillParams.partitionsByAssets of a plan: consecutive dates folded into ranges.

    `district_order` is the order of the `districts` partitions in Dagster: when every date
    targets the same contiguous block of districts, one range per date run covers them all
    (a range of date x district keys is a rectangle), which Dagster launches faster.
    """
    out = []
    if plan.summary_partitions:
        ranges = [{"start": a, "end": b} for a, b in date_ranges(plan.summary_partitions)]
        out.append({"assetKey": {"path": [SUMMARY_ASSET]}, "partitions": {"ranges": ranges}})
    if plan.district_partitions:
        ranges = [
            {"start": a, "end": b} for a, b in district_ranges(plan.district_partitions, district_order)
        ]
        out.append({"assetKey": {"path": [DISTRICT_ASSET]}, "partitions": {"ranges": ranges}})
    return out


class Launcher:
    """Plans against what Dagster and the store hold, launches plans and retries what failed."""

    def __init__(
        self, graphql: DagsterGraphQL, root: DataRoot, *, batch_size: int, today: Callable[[], dt.date]
    ) -> None:
        self.graphql = graphql
        self.root = root
        self.store = PerDistrictFileSnapshotStore(root)
        self.records = BackfillRecords(root)
        self.batch_size = batch_size
        self.today = today

    def world(self) -> World:
        """What Dagster and the store hold now (partition statuses, districts, scope)."""
        summary_keys = self.graphql.partition_keys([SUMMARY_ASSET])
        district_dims = self.graphql.partition_keys([DISTRICT_ASSET])
        statuses = {a: self.graphql.partition_statuses([a]) for a in (SUMMARY_ASSET, DISTRICT_ASSET)}
        dates = summary_keys.get("default") or next(iter(summary_keys.values()), [])
        pool = self.graphql.pool(POOL)
        for day in self._recent_unavailable():
            # Materialized as unavailable, but maybe only because the dashboard lagged: not final.
            statuses[SUMMARY_ASSET].materialized.discard(day)
            statuses[DISTRICT_ASSET].materialized -= {
                k for k in statuses[DISTRICT_ASSET].materialized if key_date(k) == day
            }
        today = self.today()
        return World(
            today=today,
            partition_start=dt.date.fromisoformat(dates[0]) if dates else today,
            configured=DistrictConfig(self.root).list(),
            available=None,
            district_partitions=district_dims.get("district", []),
            materialized={a: s.materialized for a, s in statuses.items()},
            failed={a: s.failed for a, s in statuses.items()},
            batch_size=self.batch_size,
            pool_limit=pool.get("limit") or pool.get("slotCount") or 2,
        )

    def _recent_unavailable(self) -> list[str]:
        """Dates stored as unavailable while that answer may still change (not cached either)."""
        today = self.today()
        out, day = [], today - dt.timedelta(days=1)
        while not unavailable_is_final(day, today):
            metadata = self.store.read_metadata(day)
            if metadata is not None and metadata.status == "unavailable":
                out.append(day.isoformat())
            day -= dt.timedelta(days=1)
        return out

    def plan(self, request: BackfillRequest) -> Plan:
        """The plan and its exact cost; launches nothing."""
        world = replace(self.world(), available=self.store.listed_districts(request.dates()))
        return make_plan(request, world, RawCache(self.root))

    def district_partitions(self) -> list[str]:
        """The `districts` partitions Dagster has now, in its order."""
        return self.graphql.partition_keys([DISTRICT_ASSET]).get("district", [])

    def launch(self, request: BackfillRequest, *, requester: str) -> Launched:
        """Plan, then (unless a dry run or nothing is left to run) launch it as one asset backfill."""
        plan = self.plan(request)
        request_id = uuid.uuid4().hex[:12]
        if request.plan_hash and request.plan_hash != plan.plan_hash:
            raise PlanConflict(request.plan_hash, plan)
        if request.dry_run or plan.partition_count == 0:
            return Launched(plan=plan, backfill_id=None, request_id=request_id)
        order = self.district_partitions()
        missing = [d for d in plan.districts if d not in set(order)]
        if plan.district_partitions and missing:
            self.graphql.add_dynamic_partitions(DISTRICTS_PARTITION, missing)
            order = self.district_partitions()
        title = f"{plan.strategy} {plan.dates[0]}..{plan.dates[-1]}" + (
            f" districts {','.join(plan.districts[:8])}" if plan.strategy == "per-district" else ""
        )
        backfill_id = self.graphql.launch_backfill(
            partitions_by_assets(plan, order),
            tags=_tags(plan, request, request_id, requester),
            title=title[:100],
            description=plan.rationale,
        )
        record = BackfillRecord(
            request_id=request_id,
            requester=requester,
            request=request,
            plan=PlanBody.from_plan(plan),
            created_at=now(),
        )
        self.records.save(backfill_id, record)
        return Launched(plan=plan, backfill_id=backfill_id, request_id=request_id)

    def retry(self, backfill_id: str, *, requester: str) -> str:
        """Re-execute only the failed partitions (FROM_FAILURE); returns the new backfill id."""
        b = self.graphql.backfill(checked_id(backfill_id))
        failed = sum(
            s.get("numPartitionsFailed", 0)
            for s in (b.get("assetBackfillData") or {}).get("assetBackfillStatuses", [])
        )
        if state_of(b["status"]) in CANCELLABLE_STATES:
            raise StillRunning(f"backfill {backfill_id} is still {b['status']}; retry once it ends")
        if not failed:
            raise NothingToRetry(f"backfill {backfill_id} has no failed partition")
        new_id = self.graphql.reexecute_backfill(b["id"], "FROM_FAILURE")
        parent = self.records.read(backfill_id)
        update = {"parent": b["id"], "requester": requester, "created_at": now()}
        self.records.save(new_id, parent.model_copy(update=update))
        return new_id


def _tags(plan: Plan, request: BackfillRequest, request_id: str, requester: str) -> dict[str, str]:
    tags = {
        REQUESTER_TAG: requester[:64],
        REQUEST_ID_TAG: request_id,
        STRATEGY_TAG: plan.strategy,
        SOURCE_TAG: "backfill",
        SCOPE_TAG: plan.scope,
        RATE_TAG: str(plan.rate_per_run),
        PLAN_HASH_TAG: plan.plan_hash,
        # Each backfill's runs at once: a per-backfill limit in dagster.yaml for each lane.
        concurrency_tag(request.concurrency): request_id,
    }
    if plan.force:
        tags[FORCE_TAG] = "true"
    return tags
