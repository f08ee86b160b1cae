"""Planning, launching and retrying backfills, and healing gaps: what Dagster and the store hold,
the plan, the launch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ..dashboard.cache import RawCache
from ..dataroot import DataRoot
from ..district_ids import sort_district_ids
from ..names import (
    DISTRICT_ASSET,
    DISTRICTS_PARTITION,
    FORCE_TAG,
    HEAL_TAG,
    KEY_SEPARATOR,
    PLAN_HASH_TAG,
    POOL,
    RATE_TAG,
    RECHECK_TAG,
    REQUEST_ID_TAG,
    REQUESTER_TAG,
    SCOPE_TAG,
    SOURCE_TAG,
    STRATEGY_TAG,
    SUMMARY_ASSET,
    concurrency_tag,
    district_key,
    key_date,
)
from ..planning.planner import Plan, World, date_ranges, district_ranges, make_heal_plan, make_plan
from ..planning.request import BackfillRequest, HealRequest
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

    def world(self, dates: Iterable[dt.date] = ()) -> World:
        """What Dagster and the store hold now (partition statuses, districts, scope). Among
        `dates`, what the store holds as "not published" is set apart: pending answers are not
        materialized (every backfill asks them again), final ones are listed for a recheck."""
        summary_keys = self.graphql.partition_keys([SUMMARY_ASSET])
        district_dims = self.graphql.partition_keys([DISTRICT_ASSET])
        statuses = {a: self.graphql.partition_statuses([a]) for a in (SUMMARY_ASSET, DISTRICT_ASSET)}
        materialized = {a: s.materialized for a, s in statuses.items()}
        dates_known = summary_keys.get("default") or next(iter(summary_keys.values()), [])
        pool = self.graphql.pool(POOL)
        pending, final = self._unavailable(dates, materialized)
        for asset, keys in pending.items():
            materialized[asset] -= keys
        today = self.today()
        return World(
            today=today,
            partition_start=dt.date.fromisoformat(dates_known[0]) if dates_known else today,
            configured=DistrictConfig(self.root).list(),
            available=None,
            district_partitions=district_dims.get("district", []),
            materialized=materialized,
            failed={a: s.failed for a, s in statuses.items()},
            batch_size=self.batch_size,
            pool_limit=pool.get("limit") or pool.get("slotCount") or 2,
            unavailable={a: keys & materialized[a] for a, keys in final.items()},
        )

    def _unavailable(
        self, dates: Iterable[dt.date], materialized: dict[str, set[str]]
    ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """(pending, final): the keys among `dates` whose cell the store holds as "not published",
        per asset, from the manifests (as planning/gaps.py reads them): a date marked unavailable
        is its summary key and, when it has no district entry, every district key of that date;
        a district entry marked unavailable is its own key."""
        pending: dict[str, set[str]] = {SUMMARY_ASSET: set(), DISTRICT_ASSET: set()}
        final: dict[str, set[str]] = {SUMMARY_ASSET: set(), DISTRICT_ASSET: set()}
        by_date: dict[str, set[str]] = {}
        for key in materialized.get(DISTRICT_ASSET, set()):
            by_date.setdefault(key_date(key), set()).add(key)
        for day in dates:
            manifest = self.store.read_manifest(day)
            if manifest is None:
                continue
            iso = day.isoformat()
            if manifest.status == "unavailable":
                side = final if manifest.unavailable_final else pending
                side[SUMMARY_ASSET].add(iso)
                if not manifest.districts:
                    side[DISTRICT_ASSET] |= by_date.get(iso, set())
            for entry in manifest.districts:
                if entry.status == "unavailable":
                    side = final if entry.unavailable_final else pending
                    side[DISTRICT_ASSET].add(district_key(day, entry.district_id))
        return pending, final

    def plan(self, request: BackfillRequest) -> Plan:
        """The plan and its exact cost; launches nothing."""
        dates = request.dates()
        world = replace(self.world(dates), available=self.store.listed_districts(dates))
        return make_plan(request, world, RawCache(self.root))

    def heal_plan(self, request: HealRequest) -> Plan:
        """The plan that collects again exactly the healable cells, and its exact cost."""
        dates = request.dates()
        world = replace(self.world(dates), available=self.store.listed_districts(dates))
        return make_heal_plan(request, world, self.store, RawCache(self.root))

    def district_partitions(self) -> list[str]:
        """The `districts` partitions Dagster has now, in its order."""
        return self.graphql.partition_keys([DISTRICT_ASSET]).get("district", [])

    def launch(self, request: BackfillRequest, *, requester: str) -> Launched:
        """Plan, then (unless a dry run or nothing is left to run) launch it as one asset backfill."""
        plan = self.plan(request)
        return self._launch(plan, request, requester=requester, tags=_tags(plan, request))

    def heal(self, request: HealRequest, *, requester: str) -> Launched:
        """Plan the heal, then (unless a dry run or nothing can be healed) launch it as one asset
        backfill tagged as a heal."""
        plan = self.heal_plan(request)
        return self._launch(
            plan, request, requester=requester, tags={**_tags(plan, request), HEAL_TAG: "true"}
        )

    def _launch(
        self,
        plan: Plan,
        request: BackfillRequest | HealRequest,
        *,
        requester: str,
        tags: dict[str, str],
    ) -> Launched:
        request_id = uuid.uuid4().hex[:12]
        if request.plan_hash and request.plan_hash != plan.plan_hash:
            raise PlanConflict(request.plan_hash, plan)
        if request.dry_run or plan.partition_count == 0:
            return Launched(plan=plan, backfill_id=None, request_id=request_id)
        order = self.district_partitions()
        # Every district of a date x district key must be a `districts` partition first.
        needed = sort_district_ids({key.partition(KEY_SEPARATOR)[2] for key in plan.district_partitions})
        missing = [d for d in needed if d not in set(order)]
        if missing:
            self.graphql.add_dynamic_partitions(DISTRICTS_PARTITION, missing)
            order = self.district_partitions()
        title = f"{plan.strategy} {plan.dates[0]}..{plan.dates[-1]}" + (
            f" districts {','.join(plan.districts[:8])}"
            if plan.strategy != "system-wide" and plan.districts
            else ""
        )
        backfill_id = self.graphql.launch_backfill(
            partitions_by_assets(plan, order),
            tags={
                **tags,
                REQUESTER_TAG: requester[:64],
                REQUEST_ID_TAG: request_id,
                # Each backfill's runs at once: a per-backfill limit in dagster.yaml for each lane.
                concurrency_tag(request.concurrency): request_id,
            },
            title=title[:100],
            description=plan.rationale,
        )
        record = BackfillRecord(
            request_id=request_id,
            requester=requester,
            request=request if isinstance(request, BackfillRequest) else None,
            heal=request if isinstance(request, HealRequest) else None,
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


def _tags(plan: Plan, request: BackfillRequest | HealRequest) -> dict[str, str]:
    """The tags of a plan's backfill (Dagster copies them to its runs); the launch adds who asked,
    the request id and the concurrency lane."""
    tags = {
        STRATEGY_TAG: plan.strategy,
        SOURCE_TAG: "backfill",
        SCOPE_TAG: plan.scope,
        RATE_TAG: str(plan.rate_per_run),
        PLAN_HASH_TAG: plan.plan_hash,
    }
    if plan.force:
        tags[FORCE_TAG] = "true"
    if plan.recheck_unavailable:
        tags[RECHECK_TAG] = "true"
    return tags
