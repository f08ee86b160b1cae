"""The API's bodies as pydantic models (the OpenAPI schemas are generated from them), the backfill
states, the backfill-id rule and the coverage query, each defined once."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from ..dashboard.calendar import EARLIEST_AS_OF, iso_date_text
from ..names import DISTRICT_ASSET, SUMMARY_ASSET
from ..planning.gaps import Cell, CellState, Gaps
from ..planning.planner import Plan, PlanError
from ..planning.request import MAX_TARGETS, PLAN_HASH_PATTERN, normalised_targets
from ..scope.resolution import OutOfScopeReason, ScopeKind
from ..snapshots.models import CamelModel, DistrictError
from .graphql import DagsterGraphQLError

BackfillState = Literal[
    "running", "succeeded", "completed-with-failures", "failed", "failing", "canceling", "canceled"
]
FINAL_STATES: frozenset[BackfillState] = frozenset(
    {"succeeded", "completed-with-failures", "failed", "canceled"}
)
# Dagster still runs (and can cancel) these; what failed is not known until they end.
CANCELLABLE_STATES: frozenset[BackfillState] = frozenset({"running", "failing"})
# Dagster's BulkActionStatus of a backfill -> its state in the API.
DAGSTER_STATES: dict[str, BackfillState] = {
    "REQUESTED": "running",
    "COMPLETED": "succeeded",
    "COMPLETED_SUCCESS": "succeeded",
    "COMPLETED_FAILED": "completed-with-failures",
    "FAILED": "failed",
    "FAILING": "failing",
    "CANCELING": "canceling",
    "CANCELED": "canceled",
}

# Limits of the API's inputs.
MAX_BODY = 256 * 1024
MAX_LIST = 200
DEFAULT_LIST = 50
MAX_REQUESTER = 64

_ID = "[A-Za-z0-9]{1,64}"
BACKFILL_ID_PATTERN = f"^{_ID}$"
LINK_PATTERN = f"^/api/backfills/{_ID}$"

BackfillId = Annotated[str, Field(pattern=BACKFILL_ID_PATTERN)]
Link = Annotated[str, Field(pattern=LINK_PATTERN)]
Count = NonNegativeInt
Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(lambda t: t.isoformat(timespec="seconds"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def is_backfill_id(text: str) -> bool:
    """Whether `text` can be a backfill id: 1 to 64 letters and digits."""
    return re.fullmatch(BACKFILL_ID_PATTERN, text) is not None


def backfill_link(backfill_id: str) -> str:
    """The API path of a backfill."""
    return f"/api/backfills/{backfill_id}"


def state_of(dagster_status: str) -> BackfillState:
    """The API state of a Dagster backfill status; DagsterGraphQLError for one this API does not know."""
    try:
        return DAGSTER_STATES[dagster_status]
    except KeyError:
        raise DagsterGraphQLError(f"unknown backfill status {dagster_status!r}") from None


class ApiModel(CamelModel):
    """Base of the bodies: camelCase JSON, unknown keys rejected, every field always sent."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


# -- the plan ------------------------------------------------------------------------------------


class DateSpan(ApiModel):
    """The as-of dates of a plan."""

    start: dt.date
    end: dt.date
    count: int = Field(ge=1)


class OutOfScopeDistrict(ApiModel):
    """A district asked for (or configured) that the plan leaves out, and why."""

    id: str
    reason: OutOfScopeReason
    message: str


class PartitionCounts(ApiModel):
    """Partitions to launch, per asset."""

    summary: Count = Field(alias=SUMMARY_ASSET)
    district: Count = Field(alias=DISTRICT_ASSET)
    total: Count


class CostBody(ApiModel):
    """HTTP requests to the dashboard when every first attempt is answered, with the bounds of what
    cannot be known before fetching."""

    requests: Count
    lower_bound: Count
    upper_bound: Count
    cached_csvs: Count
    by_report: dict[str, Count]
    runs: Count
    seconds: float = Field(ge=0)
    notes: list[str]


class PlanBody(ApiModel):
    """A plan as the API shows it: partition lists shortened to counts and a date span."""

    strategy: Literal["system-wide", "per-district", "heal"]
    rationale: str
    scope: ScopeKind
    dates: DateSpan
    districts: list[str]
    out_of_scope: list[OutOfScopeDistrict]
    partitions: PartitionCounts
    skipped: dict[str, Count] = Field(
        description="Partitions left out: materialized, failed, summaryNotNeeded; for a heal, the "
        "cells left out, by state."
    )
    cost: CostBody
    force: bool
    recheck_unavailable: bool = Field(
        default=False, description='"Not published" answers are asked again, even final ones.'
    )
    rate_per_run: float = Field(
        gt=0, description="Requests/s all the runs of the backfill draw together: its share of the budget."
    )
    plan_hash: str = Field(pattern=PLAN_HASH_PATTERN)

    @classmethod
    def from_plan(cls, plan: Plan) -> PlanBody:
        """The body of a planner's Plan."""
        cost = plan.cost
        return cls(
            strategy=plan.strategy,
            rationale=plan.rationale,
            scope=plan.scope,
            dates=DateSpan(start=plan.dates[0], end=plan.dates[-1], count=len(plan.dates)),
            districts=plan.districts,
            out_of_scope=plan.out_of_scope,
            partitions=PartitionCounts(
                summary=len(plan.summary_partitions),
                district=len(plan.district_partitions),
                total=plan.partition_count,
            ),
            skipped=plan.skipped,
            cost=CostBody(
                requests=cost.requests,
                lower_bound=cost.lower,
                upper_bound=cost.upper,
                cached_csvs=cost.cached,
                by_report=cost.by_report,
                runs=cost.runs,
                seconds=cost.seconds,
                notes=cost.notes,
            ),
            force=plan.force,
            recheck_unavailable=plan.recheck_unavailable,
            rate_per_run=plan.rate_per_run,
            plan_hash=plan.plan_hash,
        )


# -- a backfill's status and the list ---------------------------------------------------------------


class AssetCounts(ApiModel):
    """Partitions of one asset (or of the whole backfill) by outcome."""

    targeted: Count
    materialized: Count
    failed: Count
    in_progress: Count


class BackfillCounts(AssetCounts):
    """Partitions of the whole backfill, plus those found unavailable and those the plan skipped."""

    unavailable: Count
    skipped: Count


class RunCounts(ApiModel):
    """The backfill's Dagster runs."""

    total: Count
    by_status: dict[str, Count]


class DistrictProgress(ApiModel):
    """Dates of one district collected in detail, failed or unavailable, and its last error."""

    done: Count = 0
    failed: Count = 0
    unavailable: Count = 0
    last_error: str | None = None


class Performance(ApiModel):
    """What the backfill's runs asked of the dashboard, and the shared limits they ran under."""

    requests_made: Count
    cache_hits: Count
    cache_hit_rate: float | None
    rate_limit_wait_seconds: float
    retries: Count
    runs_reporting: Count
    pool_slots_in_use: int | None
    pool_limit: int | None
    breaker_state: str
    budget_rate: float = Field(description="The deployment's budget at the dashboard, requests/s.")
    budget_rate_now: float | None = Field(
        description="Requests/s the whole deployment was granted over the last 10 s (every run, "
        "the refresh and CLI fetches); null when the budget's store could not be read."
    )


class BackfillStatus(ApiModel):
    """A backfill's state, counts, per-district progress, errors, performance and plan."""

    id: BackfillId
    state: BackfillState
    dagster_status: str
    request_id: str | None
    strategy: str | None
    requester: str | None
    retry_of: str | None
    title: str | None
    created_at: Timestamp | None
    ended_at: Timestamp | None
    counts: BackfillCounts
    assets: dict[str, AssetCounts]
    runs: RunCounts
    districts: dict[str, DistrictProgress]
    district_errors: list[DistrictError]
    performance: Performance
    plan: PlanBody | None
    error: str | None


class BackfillSummary(ApiModel):
    """One backfill in the list."""

    id: BackfillId
    state: BackfillState
    dagster_status: str
    title: str | None
    partitions: Count | None
    strategy: str | None
    requester: str | None
    created_at: Timestamp | None
    progress: AssetCounts | None = Field(
        default=None, description="Partitions by outcome, as Dagster counts them (asset backfills)."
    )


class BackfillList(ApiModel):
    """The latest backfills, newest first."""

    backfills: list[BackfillSummary]


# -- answers to launches and retries ----------------------------------------------------------------


class Links(ApiModel):
    """Where to follow a new backfill."""

    self_: Link = Field(alias="self")


class RetryLinks(Links):
    """Where to follow a retry, and the backfill it retries."""

    retry_of: Link


class LaunchedBody(ApiModel):
    """A launched backfill and its plan."""

    backfill_id: BackfillId
    request_id: str
    plan: PlanBody
    links: Links


class DryRun(ApiModel):
    """A dry run's plan; nothing launched."""

    request_id: str
    plan: PlanBody


class NothingToRun(ApiModel):
    """A plan with no partition left to run; nothing launched."""

    backfill_id: None = None
    request_id: str
    plan: PlanBody
    message: str


class Retried(ApiModel):
    """The new backfill that re-executes what failed."""

    backfill_id: BackfillId
    retry_of: BackfillId
    links: RetryLinks


class DagsterVersion(ApiModel):
    """The Dagster the API talks to."""

    version: str


class Health(ApiModel):
    """Dagster answers; its version is shown to callers allowed to read (off loopback: with the
    token), null to others."""

    status: Literal["ok"] = "ok"
    dagster: DagsterVersion | None


# -- coverage: the gaps of a range of dates x districts -----------------------------------------------

# A coverage query spans at most ten years (the answer is read from one manifest per date).
MAX_COVERAGE_DAYS = 3660
# Without `start`, a coverage query covers the 30 days up to `end`.
DEFAULT_COVERAGE_DAYS = 30
# The cells listed when no state is asked for: those that are not complete (with the summary
# cells whose detail failed and is still wanted).
GAP_STATES: tuple[CellState, ...] = ("unavailable-pending", "failed-transient", "failed-permanent", "missing")


class CoverageRange(ApiModel):
    """A range of as-of dates (default: the 30 days up to yesterday) and districts (default: the
    configured ones, else every district the collected summaries list)."""

    start: dt.date | None = None
    end: dt.date | None = None
    districts: list[str] | None = Field(default=None, max_length=MAX_TARGETS)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_only(cls, value):
        return iso_date_text(value)

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: list[str] | None) -> list[str] | None:
        return normalised_targets(value)

    def span(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """(start, end) with the defaults applied; PlanError naming `start` or `end` for a date
        after yesterday or before 2008-07-01, a reversed or a too long range."""
        yesterday = today - dt.timedelta(days=1)
        end = self.end or yesterday
        start = self.start or max(end - dt.timedelta(days=DEFAULT_COVERAGE_DAYS), EARLIEST_AS_OF)
        for name, day in (("end", end), ("start", start)):
            if day > yesterday:
                raise PlanError(
                    name,
                    f"{day} is today or later; the dashboard shows yesterday ({yesterday}) at the latest",
                )
            if day < EARLIEST_AS_OF:
                raise PlanError(name, f"{day} is before {EARLIEST_AS_OF}, the first exported date")
        if end < start:
            raise PlanError("end", f"{end} is before start {start}")
        if (end - start).days >= MAX_COVERAGE_DAYS:
            raise PlanError("end", f"a coverage query spans at most {MAX_COVERAGE_DAYS} days")
        return start, end


def coverage_dict(gaps: Gaps, query: CoverageQuery) -> dict:
    """`Gaps.to_dict()` listing the cells `query` asks for (the CLI's JSON, the API's answer)."""
    return {**gaps.to_dict(states=()), "cells": [c.to_dict() for c in gaps.cells if query.listed(c)]}


DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class CoverageQuery(CoverageRange):
    """`GET /api/coverage`'s query and `backfill-pipeline gaps`' options: a range, and the states
    of the cells to list."""

    state: list[CellState] | None = None

    def listed(self, cell: Cell) -> bool:
        """Whether the answer lists `cell`: its state asked for, or (none asked) not complete."""
        if self.state is not None:
            return cell.state in self.state
        return cell.state in GAP_STATES or cell.healable()


class MatrixQuery(CoverageRange):
    """`GET /api/coverage/matrix`'s query: a range (the matrix shows every state), and whether to
    ask Dagster which cells its runs are collecting now (the console paints first without, then
    with)."""

    in_progress: bool = True


class StateTotals(ApiModel):
    """Cells per state (every state listed)."""

    detailed: Count
    summary: Count
    unavailable_final: Count = Field(alias="unavailable-final")
    unavailable_pending: Count = Field(alias="unavailable-pending")
    failed_transient: Count = Field(alias="failed-transient")
    failed_permanent: Count = Field(alias="failed-permanent")
    missing: Count


class CellError(CamelModel):
    """A cell's last failed attempt."""

    error_class: str = Field(alias="class")
    message: str
    retryable: bool
    at: DateTime
    report: str
    run_id: str | None
    backfill_id: str | None


class CoverageCell(CamelModel):
    """One (date, district): its state; its file's detail, its counted attempts, its last error and
    when the dashboard asked to come back, each only when there is one."""

    # Keys the store may add later are left out rather than refused.
    model_config = ConfigDict(extra="ignore")

    as_of: dt.date
    district: str
    state: CellState
    detail: str | SkipJsonSchema[None] = None
    attempts: Count | SkipJsonSchema[None] = None
    last_error: CellError | SkipJsonSchema[None] = None
    retry_not_before: DateTime | SkipJsonSchema[None] = None


class Coverage(ApiModel):
    """The cells of a range of dates x districts: totals per state, how many a heal would collect
    again, and the cells asked for (by default those not complete)."""

    start: dt.date
    end: dt.date
    districts: list[str]
    totals: StateTotals
    healable: Count
    cells: list[CoverageCell]

    @classmethod
    def from_gaps(cls, gaps: Gaps, query: CoverageQuery) -> Coverage:
        """The answer to `query` over `gaps`."""
        return cls.model_validate(coverage_dict(gaps, query))

    def to_json(self) -> dict:
        """The answer as JSON data (a cell's absent keys stay absent)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# -- errors ------------------------------------------------------------------------------------------


class FieldError(ApiModel):
    """One invalid request field (camelCase name, or `body`) and what is wrong with it."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """What went wrong: a machine code, a message, and for some codes the fields or the current plan."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern="^[a-z0-9-]+$")
    message: str = Field(min_length=1)
    fields: list[FieldError] | SkipJsonSchema[None] = None
    plan: PlanBody | SkipJsonSchema[None] = None


class ErrorBody(ApiModel):
    """Every answer other than success: `{"error": {"code", "message", ...}}`."""

    error: ErrorDetail


# -- the console ------------------------------------------------------------------------------------


class SignIn(CamelModel):
    """The console's sign-in: the API's token, exchanged for a session cookie."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=1024)


class SessionState(ApiModel):
    """Whether the caller is signed in (the session cookie, or a bearer token, of this API)."""

    signed_in: bool


class CoverageMatrix(ApiModel):
    """A range as a dates x districts matrix of one-letter states (the console's heatmap): one
    string per date, a letter per district in `districts` order, `codes` naming the letters."""

    start: dt.date
    end: dt.date
    dates: list[dt.date]
    districts: list[str]
    codes: dict[str, str]
    rows: list[str]
    totals: StateTotals
    in_progress: Count = Field(description="Cells a run is collecting now (code `R`).")
    in_progress_known: bool = Field(
        description="False when Dagster was not asked (`inProgress=false`) or did not answer: no `R` shown."
    )
    by_district: dict[str, dict[str, Count]]
    by_date: dict[str, dict[str, Count]]
    details: dict[str, CoverageCell] = Field(
        description="The cells that are not complete and have a cause (attempts, last error), by "
        "`date|district` key."
    )
    dagster_url: str

    def to_json(self) -> dict:
        """The answer as JSON data (a cell's absent keys stay absent)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
