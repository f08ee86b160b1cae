"""Collecting one date (system-wide) or one (date, district) (detailed) into the store. No Dagster."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from ..dashboard.client import DashboardClient, FetchResult
from ..dashboard.errors import DashboardError, SuspiciousSummary
from ..dashboard.http import error_class
from ..dashboard.reports import DISTRICT_REPORTS, Report
from ..district_ids import district_ids_from_summary
from ..scope import resolve_scope
from ..snapshots.builders import (
    detailed_district,
    failed_district,
    summary_district,
    unavailable_district,
)
from ..snapshots.models import DistrictError, SourceReport, SummaryError, WriteContext
from ..snapshots.rankings import compute_borda_rankings
from ..snapshots.store import PerDistrictFileSnapshotStore

log = logging.getLogger(__name__)

# The dashboard lists 125-132 districts; a summary with far fewer is broken, not small.
MIN_DISTRICTS = 50


def is_transient(exc: BaseException) -> bool:
    """Whether the same attempt can succeed later: the dashboard's retryable errors, and our own
    I/O trouble (a full disk, a lost mount) which an operator fixes without touching the data."""
    if isinstance(exc, DashboardError):
        return exc.retryable
    return isinstance(exc, OSError)


@dataclass
class SummaryOutcome:
    """What collecting one date's summary gave."""

    as_of: dt.date
    available: bool
    fetch: FetchResult
    districts: list[str] = field(default_factory=list)
    in_scope: list[str] = field(default_factory=list)
    out_of_scope: list[dict] = field(default_factory=list)

    def metadata(self) -> dict:
        """Figures for the Dagster UI."""
        f = self.fetch
        return {
            "status": "available" if self.available else "unavailable",
            "rows": len(f.rows),
            "districts": len(self.districts),
            "districts_written": len(self.in_scope),
            "out_of_scope": len(self.out_of_scope),
            "data_month": f"{f.data_month[0]:04d}-{f.data_month[1]:02d}" if f.data_month else "",
            "closing_period": bool(f.closing_period),
            "sha256": f.sha256 or "",
            "url": f.url or "",
            "cache_hit": f.cache_hit,
            "requests": f.requests,
        }


@dataclass
class DistrictOutcome:
    """What collecting one (date, district) gave: success, unavailable, skipped or failed."""

    as_of: dt.date
    district: str
    status: str
    error: DashboardError | Exception | None = None
    results: list[FetchResult] = field(default_factory=list)

    @property
    def retryable(self) -> bool:
        return bool(getattr(self.error, "retryable", False))

    def metadata(self) -> dict:
        """Figures for the Dagster UI."""
        meta = {
            "status": self.status,
            "requests": sum(r.requests for r in self.results),
            "cache_hits": sum(r.cache_hit for r in self.results),
            "rows": sum(len(r.rows) for r in self.results),
        }
        if self.results and self.results[0].data_month:
            y, m = self.results[0].data_month
            meta["data_month"] = f"{y:04d}-{m:02d}"
            meta["closing_period"] = bool(self.results[0].closing_period)
        if self.error is not None:
            meta["error"] = f"{error_class(self.error)}: {self.error}"
        return meta


def collect_summary(
    client: DashboardClient,
    store: PerDistrictFileSnapshotStore,
    as_of: dt.date,
    *,
    configured: list[str],
    context: WriteContext,
    attempt: int = 1,
) -> SummaryOutcome:
    """Fetch a date's summary; write summary-detail files for in-scope districts, rankings, metadata.
    A failure is recorded in the date's collections (attempt history) and raised."""
    try:
        return _collect_summary(client, store, as_of, configured=configured, context=context)
    except Exception as exc:
        error = SummaryError.from_exception(
            exc,
            retryable=is_transient(exc),
            attempt=attempt,
            run_id=context.run_id,
            backfill_id=context.backfill_id,
        )
        try:
            store.record_summary_failure(as_of, error, context=context)
        except OSError as record_failed:  # a full disk: the Dagster failure still says why
            log.warning("could not record the summary failure of %s: %s", as_of, record_failed)
        raise


def _collect_summary(
    client: DashboardClient,
    store: PerDistrictFileSnapshotStore,
    as_of: dt.date,
    *,
    configured: list[str],
    context: WriteContext,
) -> SummaryOutcome:
    fetch = client.fetch(Report.SUMMARY, as_of)
    if not fetch.available:
        store.mark_date_unavailable(
            as_of,
            context=context,
            reason="the dashboard has no data for it",
            final=fetch.unavailable_final,
        )
        return SummaryOutcome(as_of=as_of, available=False, fetch=fetch)

    districts = district_ids_from_summary(row.get("DISTRICT", "") for row in fetch.rows)
    if len(districts) < MIN_DISTRICTS:
        if client.cache is not None:
            # Not a usable answer: the next attempt must ask the dashboard again.
            client.cache.forget(Report.SUMMARY.value, None, as_of)
        raise SuspiciousSummary(
            f"summary for {as_of} lists {len(districts)} districts (expected 125-132)", url=fetch.url
        )
    scope = resolve_scope(None, configured, districts)
    rows = {_summary_id(row): row for row in fetch.rows if _summary_id(row)}
    source = SourceReport.from_fetch(fetch)
    snapshots = [
        summary_district(
            district_id=d,
            as_of=as_of,
            data_month=fetch.data_month,
            is_closing_period=bool(fetch.closing_period),
            summary_row=rows[d],
            source=source,
        )
        for d in scope.in_scope
    ]
    store.write_districts(as_of, snapshots, context=context, summary_answered=True)
    store.write_rankings(as_of, compute_borda_rankings(fetch.rows), data_month=fetch.data_month)
    return SummaryOutcome(
        as_of=as_of,
        available=True,
        fetch=fetch,
        districts=districts,
        in_scope=list(scope.in_scope),
        out_of_scope=[o.to_dict() for o in scope.out_of_scope],
    )


def _summary_id(row: dict[str, str]) -> str | None:
    """The normalised district id of a summary row, or None for rows without a valid one."""
    ids = district_ids_from_summary([row.get("DISTRICT", "")])
    return ids[0] if ids else None


def collect_district(
    client: DashboardClient,
    store: PerDistrictFileSnapshotStore,
    as_of: dt.date,
    district: str,
    *,
    context: WriteContext,
    force: bool = False,
    attempt: int = 1,
) -> DistrictOutcome:
    """Fetch a district's three reports for a date and write its detailed file (or its failure).

    `force` re-collects a district already collected in detail; the CSVs still come from the
    raw cache when it has them (an export for a past as-of date never changes).
    """
    if not force and store.has_successful_detailed(as_of, district):
        return DistrictOutcome(as_of=as_of, district=district, status="skipped")

    results: list[FetchResult] = []
    report: Report | None = Report.SUMMARY
    try:
        # The same date's summary settled its data month; it is on disk (raw cache) by now,
        # so this costs no request when the summary asset ran first.
        summary = client.fetch(Report.SUMMARY, as_of)
        if not summary.available:
            snap = unavailable_district(
                district_id=district,
                as_of=as_of,
                detail="detailed",
                reason="the dashboard has no data for this date",
                final=summary.unavailable_final,
            )
            store.write_district(snap, context=context)
            return DistrictOutcome(as_of=as_of, district=district, status="unavailable")
        for report in DISTRICT_REPORTS:
            results.append(client.fetch(report, as_of, district, data_month=summary.data_month))
    except DashboardError as exc:
        error = DistrictError.from_exception(
            exc,
            retryable=is_transient(exc),
            district=district,
            report=report.value if report else None,
            attempt=attempt,
            run_id=context.run_id,
            backfill_id=context.backfill_id,
        )
        store.write_district(
            failed_district(district_id=district, as_of=as_of, detail="detailed", errors=[error]),
            context=context,
        )
        log.warning("district %s on %s failed at %s: %s", district, as_of, report, exc)
        return DistrictOutcome(as_of=as_of, district=district, status="failed", error=exc, results=results)

    sources = [SourceReport.from_fetch(r) for r in results]
    month, closing = summary.data_month, bool(summary.closing_period)
    if not all(r.available for r in results):
        missing = [r.report.value for r in results if not r.available]
        snap = unavailable_district(
            district_id=district,
            as_of=as_of,
            data_month=month,
            is_closing_period=closing,
            detail="detailed",
            sources=sources,
            reason=f"not on the dashboard that date ({', '.join(missing)} empty)",
            final=all(r.unavailable_final for r in results if not r.available),
        )
        store.write_district(snap, context=context)
        return DistrictOutcome(as_of=as_of, district=district, status="unavailable", results=results)

    by_report = {r.report: r for r in results}
    summary_row = next((row for row in summary.rows if _summary_id(row) == district), None)
    snap = detailed_district(
        district_id=district,
        as_of=as_of,
        data_month=month,
        is_closing_period=closing,
        club_rows=by_report[Report.CLUB].rows,
        district_rows=by_report[Report.DISTRICT].rows,
        division_rows=by_report[Report.DIVISION].rows,
        sources=[SourceReport.from_fetch(summary), *sources],
        summary_row=summary_row,
    )
    store.write_district(snap, context=context)
    return DistrictOutcome(as_of=as_of, district=district, status="success", results=results)
