"""Turn a BackfillRequest into a plan: scope, strategy, partitions, runs and an exact request cost;
and a HealRequest into the plan that collects again exactly the cells a heal may improve.

No Dagster here: what Dagster knows (materialized and failed partitions, the order of the
`districts` partitions) is passed in by the caller.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ..dashboard.cache import RawCache
from ..dashboard.calendar import possibly_open_program_years, previous_month, program_year
from ..dashboard.reports import DISTRICT_REPORTS, Report
from ..district_ids import sort_district_ids
from ..names import DISTRICT_ASSET, KEY_SEPARATOR, SUMMARY_ASSET, district_key, key_date
from ..scope import resolve_scope
from ..snapshots.store import PerDistrictFileSnapshotStore
from .gaps import STATES, find_gaps, heal_partitions
from .request import BackfillRequest, HealRequest


class PlanError(ValueError):
    """A request that cannot be planned; `field` names the request field at fault."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class World:
    """What the planner needs to know about the deployment, read by the caller."""

    today: dt.date
    partition_start: dt.date
    configured: list[str]
    available: list[str] | None
    district_partitions: list[str]
    materialized: dict[str, set[str]]
    failed: dict[str, set[str]]
    batch_size: int
    # The deployment's budget at the dashboard (BACKFILL_RATE), requests/s; a backfill's rate is
    # a share of it.
    budget: float = 2.0
    # Keys of `materialized` whose cell the store holds as "not published" (final on evidence:
    # the caller leaves pending ones out of `materialized`); a recheck plans them again.
    unavailable: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Cost:
    """HTTP requests the plan makes when every first attempt is answered, with bounds around it."""

    requests: int
    lower: int
    upper: int
    runs: int
    seconds: float
    cached: int
    by_report: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The partitions to launch and what they will cost."""

    strategy: str
    rationale: str
    scope: str
    dates: list[str]
    districts: list[str]
    out_of_scope: list[dict]
    summary_partitions: list[str]
    district_partitions: list[str]
    skipped: dict[str, int]
    cost: Cost
    force: bool
    rate_per_run: float
    plan_hash: str = ""
    recheck_unavailable: bool = False

    @property
    def partition_count(self) -> int:
        return len(self.summary_partitions) + len(self.district_partitions)


def date_ranges(dates: Iterable[str]) -> list[tuple[str, str]]:
    """Consecutive ISO dates folded into (first, last) ranges."""
    days = sorted({dt.date.fromisoformat(d) for d in dates})
    ranges: list[tuple[str, str]] = []
    for d in days:
        if ranges and dt.date.fromisoformat(ranges[-1][1]) + dt.timedelta(days=1) == d:
            ranges[-1] = (ranges[-1][0], d.isoformat())
        else:
            ranges.append((d.isoformat(), d.isoformat()))
    return ranges


def district_ranges(keys: list[str], order: list[str]) -> list[tuple[str, str]]:
    """Date x district keys as (start, end) key ranges: rectangles when possible, else per district."""
    by_date: dict[str, set[str]] = {}
    for key in keys:
        date, _, district = key.partition(KEY_SEPARATOR)
        by_date.setdefault(date, set()).add(district)
    sets = {frozenset(v) for v in by_date.values()}
    if len(sets) == 1 and order:
        (districts,) = sets
        index = sorted(order.index(d) for d in districts if d in order)
        if len(index) == len(districts) and index == list(range(index[0], index[0] + len(index))):
            first, last = order[index[0]], order[index[-1]]
            return [(district_key(a, first), district_key(b, last)) for a, b in date_ranges(by_date)]
    by_district: dict[str, list[str]] = {}
    for date, listed in by_date.items():
        for district in listed:
            by_district.setdefault(district, []).append(date)
    return [
        (district_key(a, d), district_key(b, d))
        for d in sorted(by_district)
        for a, b in date_ranges(by_district[d])
    ]


def _runs_for_dates(dates: list[str], batch: int) -> int:
    return sum(
        math.ceil(((dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days + 1) / batch)
        for a, b in date_ranges(dates)
    )


def _runs_for_districts(keys: list[str], order: list[str], batch: int) -> int:
    """The runs Dagster's backfill makes of a date x district subset: it holds constant the
    dimension with fewer distinct values in the subset (dates on a tie), takes the other in
    contiguous ranges (districts in the order of the `districts` partitions, dates by day) and
    splits each range into runs of at most `batch` keys."""
    by_date: dict[str, list[str]] = {}
    by_district: dict[str, list[str]] = {}
    for key in keys:
        date, _, district = key.partition(KEY_SEPARATOR)
        by_date.setdefault(date, []).append(district)
        by_district.setdefault(district, []).append(date)
    if len(by_date) > len(by_district):
        return sum(_runs_for_dates(dates, batch) for dates in by_district.values())
    position = {d: i for i, d in enumerate(order)}
    runs = 0
    for districts in by_date.values():
        # A district missing from the order (not a partition yet) is a range of its own.
        indexes = sorted(position.get(d, len(position) + n * 2) for n, d in enumerate(districts))
        length = 1
        for prev, cur in zip(indexes, indexes[1:], strict=False):
            if cur == prev + 1:
                length += 1
            else:
                runs += math.ceil(length / batch)
                length = 1
        runs += math.ceil(length / batch)
    return runs


def choose_strategy(request: BackfillRequest) -> tuple[str, str]:
    """(strategy, rationale) from the collection type and whether districts were named."""
    targets = request.target_districts
    if request.collection_type == "system-wide":
        return "system-wide", (
            "system-wide asked for: one all-districts summary per date, summary detail for every "
            "in-scope district" + (" (the named districts are covered by it)" if targets else "")
        )
    if request.collection_type == "per-district":
        return "per-district", (
            "per-district asked for: three detailed reports per district per date"
            + ("" if targets else ", for every in-scope district")
        )
    if targets:
        return "per-district", (
            f"auto: {len(targets)} district(s) named, so the detailed per-district reports "
            "(3 requests per district per date) for just those"
        )
    return "system-wide", (
        "auto: no district named, so the cheap system-wide collection "
        "(1 request per date covers every district)"
    )


def _check_dates(request: BackfillRequest | HealRequest, world: World) -> None:
    """PlanError unless the request's dates are partitions of this deployment, yesterday at the latest."""
    yesterday = world.today - dt.timedelta(days=1)
    if request.last_date > yesterday:
        raise PlanError(
            "endDate" if request.end_date else "startDate",
            f"{request.last_date} is in the future or today; the dashboard shows "
            f"yesterday ({yesterday}) at the latest",
        )
    if request.start_date < world.partition_start:
        raise PlanError(
            "startDate",
            f"{request.start_date} is before this deployment's first "
            f"partition {world.partition_start} (BACKFILL_START_DATE)",
        )


def share_of_budget(request: BackfillRequest | HealRequest, world: World) -> float:
    """The backfill's pace: its `rate` as a share of the budget (the whole budget when not given);
    a rate above the budget is refused, since it could never be reached."""
    if request.rate is None:
        return world.budget
    if request.rate > world.budget:
        raise PlanError(
            "rate",
            f"{request.rate:g} requests/s is above the deployment's budget of {world.budget:g} "
            "(BACKFILL_RATE), which every backfill and the refresh share; ask for at most that",
        )
    return request.rate


def make_plan(request: BackfillRequest, world: World, cache: RawCache | None) -> Plan:
    """Plan a request against what the deployment, the store and the raw cache already hold."""
    _check_dates(request, world)
    share = share_of_budget(request, world)
    strategy, rationale = choose_strategy(request)
    scope = resolve_scope(request.target_districts, world.configured, world.available)
    out_of_scope = [o.to_dict() for o in scope.out_of_scope]
    districts = list(scope.in_scope)
    if strategy == "per-district" and not districts:
        why = "; ".join(f"{o['id']}: {o['message']}" for o in out_of_scope) or (
            "no district is configured and no summary has been collected yet to list them"
        )
        raise PlanError("targetDistricts", f"no district in scope ({why})")
    dates = [d.isoformat() for d in request.dates()]
    force = not request.skip_existing
    skipped = {"materialized": 0, "failed": 0}

    recheck = request.recheck_unavailable

    def keep(asset: str, key: str) -> bool:
        rechecked = recheck and key in world.unavailable.get(asset, set())
        if not force and not rechecked and key in world.materialized.get(asset, set()):
            skipped["materialized"] += 1
            return False
        if not request.retry_failures and key in world.failed.get(asset, set()):
            skipped["failed"] += 1
            return False
        return True

    summary_keys = [d for d in dates if keep(SUMMARY_ASSET, d)]
    district_keys: list[str] = []
    if strategy == "per-district":
        district_keys = [
            district_key(d, x) for d in dates for x in districts if keep(DISTRICT_ASSET, district_key(d, x))
        ]
        # The summary of a date is only needed where a district of that date is collected.
        needed = {key_date(k) for k in district_keys}
        dropped = [d for d in summary_keys if d not in needed]
        summary_keys = [d for d in summary_keys if d in needed]
        skipped["summaryNotNeeded"] = len(dropped)

    cost = _cost(request, world, cache, summary_keys, district_keys, recheck=recheck)
    if recheck:
        rationale += '; "not published" answers are asked again, even final ones'
    scope_kind = (
        "system-wide"
        if strategy == "system-wide"
        else "single-district"
        if len(districts) == 1
        else "targeted"
    )
    plan = Plan(
        strategy=strategy,
        rationale=rationale,
        scope=scope_kind,
        dates=dates,
        districts=districts,
        out_of_scope=out_of_scope,
        summary_partitions=summary_keys,
        district_partitions=district_keys,
        skipped=skipped,
        cost=cost,
        force=force,
        # Every run draws from the backfill's one share (kept in the budget's store), as it needs.
        rate_per_run=round(share, 3),
        recheck_unavailable=recheck,
    )
    plan.plan_hash = plan_hash(plan, request, share_of_budget(request, world))
    return plan


def make_heal_plan(
    request: HealRequest, world: World, store: PerDistrictFileSnapshotStore, cache: RawCache | None
) -> Plan:
    """The plan that collects again exactly the healable cells of the request's range
    (planning/gaps.py): a date's summary for the cells without detail, the detailed cells in
    detail; its cost counted as a backfill's. No partition when nothing can be healed."""
    _check_dates(request, world)
    scope = resolve_scope(request.target_districts, world.configured, world.available)
    out_of_scope = [o.to_dict() for o in scope.out_of_scope]
    if request.target_districts and not scope.in_scope:
        why = "; ".join(f"{o['id']}: {o['message']}" for o in out_of_scope)
        raise PlanError("targetDistricts", f"no district in scope ({why})")
    gaps = find_gaps(store, request.start_date, request.end_date, scope.in_scope)
    cells = gaps.healable(include_missing=request.include_missing)
    parts = heal_partitions(cells)
    left = Counter(c.state for c in gaps.cells if not c.healable(include_missing=request.include_missing))
    healed = Counter(c.state for c in cells)
    rationale = (
        f"{len(cells)} of {len(gaps.cells)} cell(s) may give more than they hold"
        + (f" ({', '.join(f'{n} {state}' for state, n in sorted(healed.items()))})" if cells else "")
        + "; a date's summary re-collects its cells without detail, the detailed ones are collected "
        "in detail" + ("" if request.include_missing else "; cells never collected are left out")
    )
    districts = sort_district_ids({c.district for c in cells})
    plan = Plan(
        strategy="heal",
        rationale=rationale,
        scope=scope.kind,
        dates=[d.isoformat() for d in request.dates()],
        districts=districts,
        out_of_scope=out_of_scope,
        summary_partitions=parts.summary,
        district_partitions=parts.districts,
        skipped={state: left[state] for state in STATES if left[state]},
        cost=_cost(request, world, cache, parts.summary, parts.districts, recheck=False),
        force=False,
        rate_per_run=round(share_of_budget(request, world), 3),
    )
    plan.plan_hash = plan_hash(plan, request, share_of_budget(request, world))
    return plan


def _cost(request, world, cache, summary_keys, district_keys, *, recheck: bool = False) -> Cost:
    def known(report: Report, district: str | None, date: str) -> str | None:
        """`available`, `unavailable` or None: what the raw cache already answered and the run
        will not ask again. "Not published" is known only when final on evidence and not
        rechecked: a pending one is asked again by every run, so it costs its request."""
        if cache is None:
            return None
        hit = cache.lookup(report.value, district, dt.date.fromisoformat(date))
        if hit is None:
            return None
        if hit.available:
            return "available" if cache.read(hit.sha256 or "") is not None else None
        return "unavailable" if hit.unavailable_final() and not recheck else None

    by_report = {r.value: 0 for r in Report}
    cached = uncertain_summary = 0
    maybe_saved = 0
    summary_state = {}
    for date in sorted(set(summary_keys) | {key_date(k) for k in district_keys}):
        summary_state[date] = known(Report.SUMMARY, None, date)
    for date in summary_keys:
        if summary_state[date] is None:
            by_report[Report.SUMMARY.value] += 1
            uncertain_summary += 1
        else:
            cached += 1
    dates_needing_summary_in_district_run = set()
    for key in district_keys:
        date, _, district = key.partition(KEY_SEPARATOR)
        state = summary_state[date]
        if state == "unavailable":
            continue
        if state is None and date not in summary_keys:
            dates_needing_summary_in_district_run.add(date)
        for report in DISTRICT_REPORTS:
            if known(report, district, date) is None:
                by_report[report.value] += 1
                if state is None:
                    maybe_saved += 1
            else:
                cached += 1
    by_report[Report.SUMMARY.value] += len(dates_needing_summary_in_district_run)
    uncertain_summary += len(dates_needing_summary_in_district_run)
    exact = sum(by_report.values())
    runs = _runs_for_dates(summary_keys, world.batch_size) + _runs_for_districts(
        district_keys, world.district_partitions, world.batch_size
    )
    open_years = _open_year_runs(summary_keys, district_keys, world)
    notes = []
    if uncertain_summary:
        notes.append(
            f"+{uncertain_summary} if every uncached date is inside a closing window "
            "(one more summary request each)"
        )
    if maybe_saved:
        notes.append(f"-{maybe_saved} if the uncached dates turn out unpublished (no district requests)")
    if open_years:
        notes.append(f"+{open_years} if the open program year answers 5xx under /PY/ (one per run)")
    notes.append("retries of transient failures add requests")
    return Cost(
        requests=exact,
        lower=exact - maybe_saved,
        upper=exact + uncertain_summary + open_years,
        runs=runs,
        seconds=round(exact / share_of_budget(request, world), 1),
        cached=cached,
        by_report=by_report,
        notes=notes,
    )


def _open_year_runs(summary_keys, district_keys, world) -> int:
    """Runs touching a possibly open program year: each may meet one 5xx under /PY/ first."""
    open_years = possibly_open_program_years(world.today)

    def is_open(date: str) -> bool:
        day = dt.date.fromisoformat(date)
        # A date's data month is its own month or the one before (closing period).
        months = [(day.year, day.month), previous_month(day.year, day.month)]
        return any(program_year(*m) in open_years for m in months)

    return _runs_for_dates([d for d in summary_keys if is_open(d)], world.batch_size) + _runs_for_districts(
        [k for k in district_keys if is_open(key_date(k))], world.district_partitions, world.batch_size
    )


def plan_hash(plan: Plan, request: BackfillRequest | HealRequest, share: float) -> str:
    """A digest of what would be launched; it changes when the store or Dagster state changes."""
    body = {
        "strategy": plan.strategy,
        "summary": plan.summary_partitions,
        "districts": plan.district_partitions,
        "force": plan.force,
        "rate": share,
        "concurrency": request.concurrency,
        "cost": asdict(plan.cost)["requests"],
        "recheck": plan.recheck_unavailable,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
