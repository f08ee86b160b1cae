"""BackfillService: plan, launch, watch, cancel and retry backfills over Dagster's GraphQL API."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, replace

from ..collecting.run_stats import read_run_stats
from ..dashboard.breaker import CircuitBreaker
from ..dashboard.cache import RawCache
from ..dashboard.calendar import unavailable_is_final, utc_today
from ..files import atomic_write_bytes
from ..names import (
    DISTRICT_ASSET,
    DISTRICTS_PARTITION,
    FORCE_TAG,
    PARENT_BACKFILL_TAG,
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
from ..planning.planner import Plan, World, make_plan
from ..planning.request import BackfillRequest
from ..scope import DistrictConfig
from ..settings import Settings, load_settings
from ..snapshots.store import PerDistrictFileSnapshotStore
from .graphql import BackfillNotFound, DagsterGraphQL, DagsterGraphQLError

STATES = {
    "REQUESTED": "running",
    "COMPLETED": "succeeded",
    "COMPLETED_SUCCESS": "succeeded",
    "COMPLETED_FAILED": "completed-with-failures",
    "FAILED": "failed",
    "FAILING": "failing",
    "CANCELING": "canceling",
    "CANCELED": "canceled",
}
CANCELLABLE = {"REQUESTED", "FAILING"}


class PlanConflict(Exception):
    """The plan hash the caller confirmed no longer matches what would be launched."""

    def __init__(self, expected: str, actual: Plan) -> None:
        super().__init__(f"plan hash {expected} no longer matches: the plan is now {actual.plan_hash}")
        self.plan = actual


class NotCancellable(Exception):
    """The backfill has already ended."""


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


class BackfillService:
    """The product's one way to start, watch, cancel and retry backfills."""

    def __init__(self, settings: Settings | None = None, *, today=utc_today) -> None:
        settings = settings or load_settings()
        self.graphql = DagsterGraphQL(settings.dagster_url)
        self.root = settings.root
        self.store = PerDistrictFileSnapshotStore(self.root)
        self.cache = RawCache(self.root)
        self.batch_size = settings.batch_size
        self.today = today

    # -- planning and launching ------------------------------------------------------------

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
        return World(
            today=self.today(),
            partition_start=dt.date.fromisoformat(dates[0]) if dates else self.today(),
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
        return make_plan(request, world, self.cache)

    def launch(self, request: BackfillRequest, *, requester: str = "api") -> Launched:
        """Plan, then (unless a dry run) launch the plan as one Dagster asset backfill."""
        plan = self.plan(request)
        request_id = uuid.uuid4().hex[:12]
        if request.plan_hash and request.plan_hash != plan.plan_hash:
            raise PlanConflict(request.plan_hash, plan)
        if request.dry_run or plan.partition_count == 0:
            return Launched(plan=plan, backfill_id=None, request_id=request_id)
        order = self.world_partitions()
        missing = [d for d in plan.districts if d not in set(order)]
        if plan.district_partitions and missing:
            self.graphql.add_dynamic_partitions(DISTRICTS_PARTITION, missing)
            order = self.world_partitions()
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
        title = f"{plan.strategy} {plan.dates[0]}..{plan.dates[-1]}" + (
            f" districts {','.join(plan.districts[:8])}" if plan.strategy == "per-district" else ""
        )
        backfill_id = self.graphql.launch_backfill(
            plan.partitions_by_assets(order), tags=tags, title=title[:100], description=plan.rationale
        )
        self._save(
            backfill_id,
            {
                "requestId": request_id,
                "requester": requester,
                "request": request.model_dump(mode="json"),
                "plan": plan.to_dict(),
                "createdAt": _now(),
            },
        )
        return Launched(plan=plan, backfill_id=backfill_id, request_id=request_id)

    def world_partitions(self) -> list[str]:
        """The `districts` partitions Dagster has now."""
        return self.graphql.partition_keys([DISTRICT_ASSET]).get("district", [])

    # -- records -------------------------------------------------------------------------------

    def _save(self, backfill_id: str, record: dict) -> None:
        atomic_write_bytes(
            self.root.backfill_record(_safe_id(backfill_id)), json.dumps(record, indent=2).encode()
        )

    def _record(self, backfill_id: str) -> dict:
        try:
            return json.loads(self.root.backfill_record(_safe_id(backfill_id)).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    # -- watching ------------------------------------------------------------------------------

    def status(self, backfill_id: str) -> dict:
        """State, counts, per-district progress, errors and performance; never blocks a run."""
        b = self.graphql.backfill(_safe_id(backfill_id))
        record = self._record(backfill_id)
        tags = {t["key"]: t["value"] for t in b["tags"]}
        per_asset = {
            s["assetKey"]["path"][0]: s
            for s in (b.get("assetBackfillData") or {}).get("assetBackfillStatuses", [])
            if "assetKey" in s
        }
        dates = _dates_of(record, per_asset)
        districts = (record.get("plan") or {}).get("districts", [])
        detailed = tags.get(STRATEGY_TAG) == "per-district"
        progress, errors, unavailable = self._store_progress(b["id"], dates, districts, detailed)
        counts = {
            "targeted": sum(s["numPartitionsTargeted"] for s in per_asset.values()),
            "materialized": sum(s["numPartitionsMaterialized"] for s in per_asset.values()),
            "failed": sum(s["numPartitionsFailed"] for s in per_asset.values()),
            "inProgress": sum(s["numPartitionsInProgress"] for s in per_asset.values()),
            "unavailable": unavailable,
            "skipped": sum((record.get("plan") or {}).get("skipped", {}).values()),
        }
        return {
            "id": b["id"],
            "state": STATES.get(b["status"], b["status"].lower()),
            "dagsterStatus": b["status"],
            "requestId": tags.get(REQUEST_ID_TAG),
            "strategy": tags.get(STRATEGY_TAG),
            # A re-executed backfill inherits its parent's tags: our record knows who asked.
            "requester": record.get("requester") or tags.get(REQUESTER_TAG),
            "retryOf": record.get("parent") or tags.get(PARENT_BACKFILL_TAG),
            "title": b.get("title"),
            "createdAt": _iso(b.get("timestamp")),
            "endedAt": _iso(b.get("endTimestamp")),
            "counts": counts,
            "assets": {
                k: {
                    "targeted": s["numPartitionsTargeted"],
                    "materialized": s["numPartitionsMaterialized"],
                    "failed": s["numPartitionsFailed"],
                    "inProgress": s["numPartitionsInProgress"],
                }
                for k, s in per_asset.items()
            },
            "runs": {"total": len(b["runs"]), "byStatus": _count(r["status"] for r in b["runs"])},
            "districts": progress,
            "districtErrors": errors,
            "performance": self._performance([r["runId"] for r in b["runs"]]),
            "plan": record.get("plan"),
            "error": (b.get("error") or {}).get("message"),
        }

    def _store_progress(self, backfill_id, dates, districts, detailed: bool):
        """Per-district progress (detailed backfills), this backfill's district errors, and the
        partitions found unavailable (a date's summary, plus each district of a detailed one)."""
        progress = {
            d: {"done": 0, "failed": 0, "unavailable": 0, "lastError": None}
            for d in (districts if detailed else [])
        }
        errors: list[dict] = []
        unavailable = 0
        for day in dates:
            manifest = self.store.read_manifest(day)
            metadata = self.store.read_metadata(day)
            if metadata is None:
                continue
            if metadata.status == "unavailable":
                unavailable += 1
            errors += [
                e.model_dump(mode="json") for e in metadata.district_errors if e.backfill_id == backfill_id
            ]
            entries = {e.district_id: e for e in manifest.districts} if manifest else {}
            for district in progress:
                entry = entries.get(district)
                if entry is None:
                    continue
                row = progress[district]
                if entry.status == "success" and entry.detail == "detailed":
                    row["done"] += 1
                elif entry.status == "failed":
                    row["failed"] += 1
                    last = next(
                        (e for e in reversed(metadata.district_errors) if e.district == district), None
                    )
                    if last is not None:
                        row["lastError"] = f"{day}: {last.error_class}: {last.message}"
                elif entry.status == "unavailable":
                    row["unavailable"] += 1
                    unavailable += 1
        return progress, errors, unavailable

    def _performance(self, run_ids: list[str]) -> dict:
        stats = read_run_stats(self.root, run_ids)
        requests = sum(s.get("requests", 0) for s in stats)
        hits = sum(s.get("cacheHits", 0) for s in stats)
        try:
            pool = self.graphql.pool(POOL)
        except DagsterGraphQLError:
            pool = {}
        breaker = CircuitBreaker(self.root).state()
        return {
            "requestsMade": requests,
            "cacheHits": hits,
            "cacheHitRate": round(hits / (hits + requests), 3) if hits + requests else None,
            "rateLimitWaitSeconds": round(sum(s.get("rateLimitWaitSeconds", 0) for s in stats), 3),
            "retries": sum(s.get("retries", 0) for s in stats),
            "runsReporting": len(stats),
            "poolSlotsInUse": pool.get("activeSlotCount"),
            "poolLimit": pool.get("limit"),
            "breakerState": breaker.state,
        }

    def list(self, limit: int = 50) -> list[dict]:
        """The latest backfills, newest first."""
        out = []
        for b in self.graphql.backfills(limit=limit):
            tags = {t["key"]: t["value"] for t in b["tags"]}
            out.append(
                {
                    "id": b["id"],
                    "state": STATES.get(b["status"], b["status"].lower()),
                    "dagsterStatus": b["status"],
                    "title": b.get("title"),
                    "partitions": b.get("numPartitions"),
                    "strategy": tags.get(STRATEGY_TAG),
                    "requester": self._record(b["id"]).get("requester") or tags.get(REQUESTER_TAG),
                    "createdAt": _iso(b.get("timestamp")),
                }
            )
        return out

    # -- control -------------------------------------------------------------------------------

    def cancel(self, backfill_id: str) -> dict:
        """Cancel a running backfill; NotCancellable when it has already ended."""
        b = self.graphql.backfill(_safe_id(backfill_id))
        if b["status"] not in CANCELLABLE:
            raise NotCancellable(f"backfill {backfill_id} is {b['status']}: nothing to cancel")
        self.graphql.cancel_backfill(b["id"])
        return self.status(b["id"])

    def retry(self, backfill_id: str, *, requester: str = "api") -> str:
        """Re-execute only the failed partitions (FROM_FAILURE); returns the new backfill id."""
        b = self.graphql.backfill(_safe_id(backfill_id))
        failed = sum(
            s.get("numPartitionsFailed", 0)
            for s in (b.get("assetBackfillData") or {}).get("assetBackfillStatuses", [])
        )
        if b["status"] in CANCELLABLE:
            raise StillRunning(f"backfill {backfill_id} is still {b['status']}; retry once it ends")
        if not failed:
            raise NothingToRetry(f"backfill {backfill_id} has no failed partition")
        new_id = self.graphql.reexecute_backfill(b["id"], "FROM_FAILURE")
        parent = self._record(backfill_id)
        self._save(new_id, {**parent, "parent": b["id"], "requester": requester, "createdAt": _now()})
        return new_id


def _safe_id(backfill_id: str) -> str:
    if not backfill_id or not backfill_id.isalnum() or len(backfill_id) > 64:
        raise BackfillNotFound(f"no backfill {backfill_id!r}")
    return backfill_id


def _dates_of(record: dict, per_asset: dict) -> list[dt.date]:
    dates = (record.get("plan") or {}).get("dates")
    if not dates:
        return []
    start, end = dt.date.fromisoformat(dates["start"]), dt.date.fromisoformat(dates["end"])
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _count(values) -> dict:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
