"""BackfillService: plan, launch, watch, cancel and retry backfills over Dagster's GraphQL API; show
the store's gaps and heal them.

A facade over launching.py (plans, launches, retries, heals), status.py (status, list, cancel),
records.py (what each backfill asked) and planning/gaps.py (the gaps); the CLI and the REST API
use only this.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ..dashboard.calendar import utc_today
from ..planning.gaps import Gaps, find_gaps
from ..planning.planner import Plan, World
from ..planning.request import BackfillRequest, HealRequest
from ..settings import Settings, load_settings
from ..snapshots.store import PerDistrictFileSnapshotStore
from .graphql import BackfillNotFound, DagsterGraphQL, DagsterGraphQLError, DagsterUnreachable
from .idempotency import SETTLE_SECONDS, Idempotency, IdempotencyConflict, LaunchPending
from .launching import Launched, Launcher, NothingToRetry, PlanConflict, Retried, StillRunning
from .models import BackfillStatus, BackfillSummary, CoverageRange
from .status import NotCancellable, StatusReader

__all__ = [
    "BackfillNotFound",
    "BackfillService",
    "DagsterGraphQLError",
    "DagsterUnreachable",
    "IdempotencyConflict",
    "LaunchPending",
    "Launched",
    "NotCancellable",
    "NothingToRetry",
    "PlanConflict",
    "Retried",
    "StillRunning",
]


class BackfillService:
    """The product's one way to start, watch, cancel and retry backfills."""

    def __init__(self, settings: Settings | None = None, *, today: Callable[[], dt.date] = utc_today) -> None:
        settings = settings or load_settings()
        self.graphql = DagsterGraphQL(settings.dagster_url)
        self.root = settings.root
        self.batch_size = settings.batch_size
        # The deployment's budget at the dashboard: a backfill's rate is a share of it.
        self.budget = settings.rate
        self.budget_store = settings.budget_store
        self.today = today
        # How long a launch record left `launching` waits before it may be launched again.
        self.settle = SETTLE_SECONDS

    # Built per call from the current `graphql`, so replacing it (tests do) takes effect everywhere.
    def _launcher(self) -> Launcher:
        return Launcher(
            self.graphql,
            self.root,
            batch_size=self.batch_size,
            today=self.today,
            budget=self.budget,
            idempotency=Idempotency(self.root, self.graphql, settle=self.settle),
        )

    def _reader(self) -> StatusReader:
        return StatusReader(self.graphql, self.root, budget=self.budget, budget_store=self.budget_store)

    def world(self, dates: list[dt.date] | None = None) -> World:
        """What Dagster and the store hold now (partition statuses, districts, scope)."""
        return self._launcher().world(dates or ())

    def world_partitions(self) -> list[str]:
        """The `districts` partitions Dagster has now."""
        return self._launcher().district_partitions()

    def plan(self, request: BackfillRequest) -> Plan:
        """The plan and its exact cost; launches nothing."""
        return self._launcher().plan(request)

    def launch(
        self, request: BackfillRequest, *, requester: str = "api", idempotency_key: str | None = None
    ) -> Launched:
        """Plan, then (unless a dry run) launch the plan as one Dagster asset backfill; with an
        idempotency key, at most once for that key (the same key answers the same backfill)."""
        return self._launcher().launch(request, requester=requester, idempotency_key=idempotency_key)

    def heal(
        self, request: HealRequest, *, requester: str = "api", idempotency_key: str | None = None
    ) -> Launched:
        """Plan the heal of a range's healable cells, then (unless a dry run or nothing can be
        healed) launch exactly those as one Dagster asset backfill; with a key, at most once."""
        return self._launcher().heal(request, requester=requester, idempotency_key=idempotency_key)

    def gaps(self, query: CoverageRange) -> Gaps:
        """Every cell of the query's range (defaults applied against today) with its state, from
        the store alone (no Dagster); PlanError naming the query field at fault."""
        start, end = query.span(self.today())
        return find_gaps(PerDistrictFileSnapshotStore(self.root), start, end, query.districts)

    def retry(
        self, backfill_id: str, *, requester: str = "api", idempotency_key: str | None = None
    ) -> Retried:
        """Re-execute only the failed partitions (FROM_FAILURE) as a new backfill; with a key, at
        most once (the same key answers the same new backfill, `replayed`)."""
        return self._launcher().retry(backfill_id, requester=requester, idempotency_key=idempotency_key)

    def status(self, backfill_id: str) -> BackfillStatus:
        """State, counts, per-district progress, errors and performance; never blocks a run."""
        return self._reader().status(backfill_id)

    def list(self, limit: int = 50) -> list[BackfillSummary]:
        """The latest backfills, newest first."""
        return self._reader().list(limit)

    def cancel(self, backfill_id: str) -> BackfillStatus:
        """Cancel a running backfill; NotCancellable when it has already ended."""
        return self._reader().cancel(backfill_id)
