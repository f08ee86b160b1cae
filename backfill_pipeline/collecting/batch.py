"""The batch loop of a run: collect each partition key on its own, so one key's failure never
stops the others, skip what an earlier attempt of the same run already did, and say what each
key cost the dashboard. No Dagster here: the assets turn the results into events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..dashboard.errors import DashboardError
from ..dashboard.http import error_class
from ..snapshots.models import MAX_DEFER_SECONDS, CollectionMethod, Scope, WriteContext
from ..snapshots.store import PerDistrictFileSnapshotStore
from .collect import DistrictOutcome, SummaryOutcome, is_transient

Outcome = SummaryOutcome | DistrictOutcome


@dataclass(frozen=True)
class RunInfo:
    """The run that collects: its ids, why it was launched and which attempt of its step this is."""

    run_id: str
    backfill_id: str | None = None
    source: Literal["refresh", "backfill"] = "refresh"
    attempt: int = 1
    force: bool = False
    recheck_unavailable: bool = False
    # The runs this one re-executes (a run retried after its worker died): what they collected
    # counts as done, so each partition is materialized once.
    earlier_runs: tuple[str, ...] = ()

    @property
    def resumes(self) -> bool:
        """True when an earlier attempt (of this step, or a run this one re-executes) may have done keys."""
        return self.attempt > 1 or bool(self.earlier_runs)

    @property
    def run_ids(self) -> set[str]:
        """This run and the runs it re-executes."""
        return {self.run_id, *self.earlier_runs}

    def write_context(self, scope: Scope, method: CollectionMethod, configured: list[str]) -> WriteContext:
        """How the store records this run's writes."""
        return WriteContext(
            source=self.source,
            scope=scope,
            collection_method=method,
            run_id=self.run_id,
            backfill_id=self.backfill_id,
            configured_districts=configured,
        )


@dataclass
class KeyResult:
    """One partition key: its outcome (or the exception it raised) and what it cost."""

    key: str
    outcome: Outcome | None
    error: BaseException | None = None
    cost: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True when the key raised or its outcome is a failure."""
        return self.error is not None

    def metadata(self) -> dict:
        """The outcome's figures and the key's cost, for the Dagster UI."""
        return {**(self.outcome.metadata() if self.outcome else {}), **self.cost}


def collect_batch(
    keys: Iterable[str],
    collect: Callable[[str], Outcome],
    *,
    stats: Callable[[], dict],
    done_earlier: Callable[[str], bool] = lambda key: False,
) -> Iterator[KeyResult]:
    """Collect each key in turn; a key done by an earlier attempt of the run is left out."""
    for key in keys:
        if done_earlier(key):
            continue
        before = stats()
        try:
            outcome = collect(key)
        except Exception as exc:  # one key's failure must not stop the others
            yield KeyResult(key, None, exc, _cost(before, stats()))
            continue
        error = outcome.error if isinstance(outcome, DistrictOutcome) and outcome.status == "failed" else None
        yield KeyResult(key, outcome, error, _cost(before, stats()))


def _cost(before: dict, after: dict) -> dict[str, float]:
    return {
        "requests": after["requests"] - before["requests"],
        "cache_hits": after["cacheHits"] - before["cacheHits"],
        "rate_limit_wait_seconds": round(after["rateLimitWaitSeconds"] - before["rateLimitWaitSeconds"], 3),
    }


@dataclass(frozen=True)
class BatchFailure:
    """The keys of a batch that failed, with their errors; retryable when any error is."""

    asset: str
    errors: dict[str, BaseException]

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed for at least one key."""
        return any(is_transient(exc) for exc in self.errors.values())

    @property
    def wait_seconds(self) -> float:
        """How long the dashboard asked us to wait (Retry-After, an open breaker's cool-down): the
        longest wait named by a transient failure, 0 when none named one."""
        waits = [
            float(w)
            for exc in self.errors.values()
            if is_transient(exc)
            for w in (getattr(exc, "retry_after", None), getattr(exc, "retry_in", None))
            if isinstance(w, int | float) and w > 0
        ]
        return min(max(waits, default=0.0), MAX_DEFER_SECONDS)

    @property
    def description(self) -> str:
        """One line naming the failed keys."""
        return f"{self.asset}: {len(self.errors)} partition(s) failed: " + ", ".join(self.errors)

    def lines(self) -> list[str]:
        """`key: ErrorClass: message` for each failed key."""
        return [f"{key}: {error_class(exc)}: {exc}" for key, exc in self.errors.items()]


def batch_failure(asset: str, results: Iterable[KeyResult]) -> BatchFailure | None:
    """The failures among `results`, or None when every key succeeded."""
    errors = {r.key: r.error for r in results if r.error is not None}
    return BatchFailure(asset, errors) if errors else None


# -- resuming a retried step: what an earlier attempt of the same run did ------------------------


def earlier_permanent_failure(
    store: PerDistrictFileSnapshotStore, as_of: dt.date, district: str, run: RunInfo
) -> DistrictOutcome | None:
    """A permanent failure an earlier attempt of this run met: not fetched again, it would fail again."""
    if run.attempt == 1:
        return None
    snap = store.read_district(as_of, district)
    if snap is None or snap.status != "failed" or not snap.errors:
        return None
    last = snap.errors[-1]
    if last.run_id != run.run_id or last.retryable:
        return None
    error = StoredError(f"{last.error_class}: {last.message}")
    return DistrictOutcome(as_of=as_of, district=district, status="failed", error=error)


class StoredError(DashboardError):
    """A permanent error read back from the store on a retry."""
