"""Planning, launching and retrying backfills, and healing gaps: what Dagster and the store hold,
the plan, the launch."""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar

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
from ..planning.planner import (
    Plan,
    PlanError,
    World,
    date_ranges,
    district_ranges,
    make_heal_plan,
    make_plan,
)
from ..planning.request import BackfillRequest, HealRequest
from ..scope import DistrictConfig
from ..snapshots.store import PerDistrictFileSnapshotStore
from .graphql import DagsterGraphQL, DagsterGraphQLError, DagsterUnreachable
from .idempotency import Claim, Idempotency, Operation, fingerprint, resolved_after_lost_answer
from .models import CANCELLABLE_STATES, PlanBody, state_of
from .records import BackfillRecord, BackfillRecords, checked_id, now

T = TypeVar("T")


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
    """A launched backfill (or, for a dry run, only its plan); `replayed` when it is the earlier
    answer to the same Idempotency-Key (nothing launched now)."""

    plan: PlanBody
    backfill_id: str | None
    request_id: str
    replayed: bool = False


@dataclass
class Retried:
    """The new backfill that re-executes what failed; `replayed` when it is the earlier answer to
    the same Idempotency-Key (nothing launched now)."""

    backfill_id: str
    replayed: bool = False


def nearest_districts(district: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known ids most like `district`: the closest spellings first (`0042` -> `42`), then the
    numerically nearest."""
    ids = sort_district_ids(known)
    close = difflib.get_close_matches(district, ids, n=n, cutoff=0.5)
    if district.isdigit():
        numbers = [d for d in ids if d.isdigit()]
        close += sorted(numbers, key=lambda d: (abs(int(d) - int(district)), int(d)))[:n]
    return list(dict.fromkeys(close))[:n]


def unknown_district_message(unknown: list[str], known: Iterable[str]) -> str:
    """Why ids that no configuration and no collected summary name cannot become partitions."""
    known = list(known)
    parts = []
    for district in unknown:
        nearest = nearest_districts(district, known)
        parts.append(
            f"{district} is not a known district"
            + (f"; nearest known: {', '.join(nearest)}" if nearest else "")
        )
    why = (
        "a district becomes a partition only when it is configured (`backfill-pipeline districts "
        "add`) or a collected summary lists it"
    )
    if not known:
        why += (
            "; none is configured and no summary is collected yet (a backfill without "
            "targetDistricts collects one)"
        )
    return "; ".join(parts) + f" ({why})"


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
        self,
        graphql: DagsterGraphQL,
        root: DataRoot,
        *,
        batch_size: int,
        today: Callable[[], dt.date],
        budget: float = 2.0,
        idempotency: Idempotency | None = None,
    ) -> None:
        self.graphql = graphql
        self.root = root
        self.store = PerDistrictFileSnapshotStore(root)
        self.records = BackfillRecords(root)
        self.batch_size = batch_size
        self.today = today
        self.budget = budget
        self.idempotency = idempotency or Idempotency(root, graphql)

    def world(self, dates: Iterable[dt.date] = ()) -> World:
        """What Dagster and the store hold now (partition statuses, districts, scope). Among
        `dates`, what the store holds as "not published" is set apart: pending answers are not
        materialized (every backfill asks them again), final ones are listed for a recheck."""
        summary_keys = self.graphql.partition_keys([SUMMARY_ASSET])
        district_dims = self.graphql.partition_keys([DISTRICT_ASSET])
        statuses = {a: self.graphql.partition_statuses([a]) for a in (SUMMARY_ASSET, DISTRICT_ASSET)}
        materialized = {a: s.materialized for a, s in statuses.items()}
        dates_known = summary_keys.get("default") or next(iter(summary_keys.values()), [])
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
            budget=self.budget,
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
        """The plan and its exact cost; launches nothing. PlanError naming `targetDistricts` when
        it would need a district that is neither configured nor listed by a collected summary."""
        dates = request.dates()
        world = replace(self.world(dates), available=self.store.listed_districts(dates))
        plan = make_plan(request, world, RawCache(self.root))
        self._check_districts(plan, world)
        return plan

    def heal_plan(self, request: HealRequest) -> Plan:
        """The plan that collects again exactly the healable cells, and its exact cost (PlanError
        for an unknown district, as `plan`)."""
        dates = request.dates()
        world = replace(self.world(dates), available=self.store.listed_districts(dates))
        plan = make_heal_plan(request, world, self.store, RawCache(self.root))
        self._check_districts(plan, world)
        return plan

    def _check_districts(self, plan: Plan, world: World) -> None:
        """Only real districts become partitions: every district the plan names or collects
        that is not a `districts` partition yet must be configured or listed by a collected
        summary (of the plan's dates, else of any date)."""
        wanted = set(plan.districts) | {key.partition(KEY_SEPARATOR)[2] for key in plan.district_partitions}
        new = wanted - set(world.district_partitions)
        known = set(world.configured) | set(world.available or ())
        if not new - known:
            return
        known |= set(self.store.listed_districts(self.root.dates()) or ())
        unknown = sort_district_ids(new - known)
        if unknown:
            candidates = known | set(world.district_partitions)
            raise PlanError("targetDistricts", unknown_district_message(unknown, candidates))

    def district_partitions(self) -> list[str]:
        """The `districts` partitions Dagster has now, in its order."""
        return self.graphql.partition_keys([DISTRICT_ASSET]).get("district", [])

    def launch(
        self, request: BackfillRequest, *, requester: str, idempotency_key: str | None = None
    ) -> Launched:
        """Plan, then (unless a dry run or nothing is left to run) launch it as one asset backfill;
        with a key, at most once (see idempotency.py)."""

        def run(claim: Claim | None) -> Launched:
            plan = self.plan(request)
            return self._launch(plan, request, requester=requester, tags=_tags(plan, request), claim=claim)

        return self._once("backfill", request, idempotency_key, run)

    def heal(self, request: HealRequest, *, requester: str, idempotency_key: str | None = None) -> Launched:
        """Plan the heal, then (unless a dry run or nothing can be healed) launch it as one asset
        backfill tagged as a heal; with a key, at most once."""

        def run(claim: Claim | None) -> Launched:
            plan = self.heal_plan(request)
            tags = {**_tags(plan, request), HEAL_TAG: "true"}
            return self._launch(plan, request, requester=requester, tags=tags, claim=claim)

        return self._once("heal", request, idempotency_key, run)

    def _once(
        self,
        operation: Operation,
        request: BackfillRequest | HealRequest,
        key: str | None,
        run: Callable[[Claim | None], Launched],
    ) -> Launched:
        """`run` under the key's claim, or the key's earlier answer; a dry run needs no claim."""
        if key is None or request.dry_run:
            return run(None)
        with self.idempotency.claim(key, operation, fingerprint(operation, request)) as claim:
            done = claim.outcome
            if done is not None and done.plan is not None:
                return Launched(
                    plan=done.plan,
                    backfill_id=done.backfill_id,
                    request_id=done.request_id or "",
                    replayed=True,
                )
            return run(claim)

    def _launch(
        self,
        plan: Plan,
        request: BackfillRequest | HealRequest,
        *,
        requester: str,
        tags: dict[str, str],
        claim: Claim | None = None,
    ) -> Launched:
        request_id = uuid.uuid4().hex[:12]
        body = PlanBody.from_plan(plan)
        if request.plan_hash and request.plan_hash != plan.plan_hash:
            raise PlanConflict(request.plan_hash, plan)
        if request.dry_run or plan.partition_count == 0:
            if claim is not None and not request.dry_run:
                claim.complete(None, request_id=request_id, plan=body)
            return Launched(plan=body, backfill_id=None, request_id=request_id)
        order = self.district_partitions()
        # Every district of a date x district key must be a `districts` partition first; plan()
        # let only configured districts and those a collected summary lists through.
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
        record = BackfillRecord(
            request_id=request_id,
            requester=requester,
            request=request if isinstance(request, BackfillRequest) else None,
            heal=request if isinstance(request, HealRequest) else None,
            plan=body,
            created_at=now(),
        )
        if claim is not None:
            claim.begin(request_id=request_id, plan=body, record=record)
            tags = {**tags, **claim.tag}
        backfill_id = self._launched(
            claim,
            lambda: self.graphql.launch_backfill(
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
            ),
        )
        self.records.save(backfill_id, record)
        if claim is not None:
            claim.complete(backfill_id)
        return Launched(plan=body, backfill_id=backfill_id, request_id=request_id)

    @staticmethod
    def _launched(claim: Claim | None, launch: Callable[[], str]) -> str:
        """The id `launch` returns. Dagster's answer lost (unreachable mid-call): the backfill it
        may have made after all, found by the key, else the error; Dagster refused: the claim's
        record is dropped (nothing was made)."""
        try:
            return launch()
        except DagsterUnreachable as exc:
            return resolved_after_lost_answer(claim, exc)
        except DagsterGraphQLError:
            if claim is not None:
                claim.abandon()
            raise

    def retry(self, backfill_id: str, *, requester: str, idempotency_key: str | None = None) -> Retried:
        """Re-execute only the failed partitions (FROM_FAILURE); returns the new backfill id. With
        a key, at most once: the same key answers the same new backfill."""
        if idempotency_key is None:
            return Retried(self._retry(backfill_id, requester=requester, claim=None))
        asked = fingerprint("retry", backfill_id=checked_id(backfill_id))
        with self.idempotency.claim(idempotency_key, "retry", asked) as claim:
            if claim.outcome is not None and claim.outcome.backfill_id is not None:
                return Retried(claim.outcome.backfill_id, replayed=True)
            return Retried(self._retry(backfill_id, requester=requester, claim=claim))

    def _retry(self, backfill_id: str, *, requester: str, claim: Claim | None) -> str:
        b = self.graphql.backfill(checked_id(backfill_id))
        failed = sum(
            s.get("numPartitionsFailed", 0)
            for s in (b.get("assetBackfillData") or {}).get("assetBackfillStatuses", [])
        )
        if state_of(b["status"]) in CANCELLABLE_STATES:
            raise StillRunning(f"backfill {backfill_id} is still {b['status']}; retry once it ends")
        if not failed:
            raise NothingToRetry(f"backfill {backfill_id} has no failed partition")
        parent = self.records.read(backfill_id)
        record = parent.model_copy(update={"parent": b["id"], "requester": requester, "created_at": now()})
        if claim is not None:
            claim.begin(request_id=None, plan=None, record=record, retry_of=b["id"])
        new_id = self._launched(claim, lambda: self.graphql.reexecute_backfill(b["id"], "FROM_FAILURE"))
        self.records.save(new_id, record)
        if claim is not None:
            claim.complete(new_id)
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
