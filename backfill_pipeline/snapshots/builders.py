"""Build district files from fetched rows: summary, detailed, failed and unavailable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from .derived import derive_detailed_figures, derive_summary_figures
from .models import (
    Detail,
    DistrictError,
    DistrictFigures,
    DistrictSnapshot,
    RawRows,
    SourceReport,
    utc_now,
)

Row = Mapping[str, str]
DataMonthLike = tuple[int, int] | str | None


def _rows(rows: Iterable[Row]) -> list[dict[str, str]]:
    return [dict(r) for r in rows]


def summary_district(
    *,
    district_id: str,
    as_of: dt.date,
    data_month: DataMonthLike,
    is_closing_period: bool,
    summary_row: Row,
    source: SourceReport,
    collected_at: dt.datetime | None = None,
) -> DistrictSnapshot:
    """A successful district file of summary detail, from its all-districts summary row."""
    return DistrictSnapshot(
        district_id=district_id,
        as_of_date=as_of,
        data_month=data_month,
        is_closing_period=is_closing_period,
        collected_at=collected_at or utc_now(),
        status="success",
        detail="summary",
        sources=[source],
        raw=RawRows(summary=dict(summary_row)),
        figures=DistrictFigures(summary=derive_summary_figures(summary_row)),
    )


def detailed_district(
    *,
    district_id: str,
    as_of: dt.date,
    data_month: DataMonthLike,
    is_closing_period: bool,
    club_rows: Iterable[Row],
    district_rows: Iterable[Row],
    division_rows: Iterable[Row],
    sources: Sequence[SourceReport],
    summary_row: Row | None = None,
    collected_at: dt.datetime | None = None,
) -> DistrictSnapshot:
    """A successful detailed district file from its three reports (plus its summary row)."""
    clubs, districts, divisions = _rows(club_rows), _rows(district_rows), _rows(division_rows)
    return DistrictSnapshot(
        district_id=district_id,
        as_of_date=as_of,
        data_month=data_month,
        is_closing_period=is_closing_period,
        collected_at=collected_at or utc_now(),
        status="success",
        detail="detailed",
        sources=list(sources),
        raw=RawRows(
            summary=dict(summary_row) if summary_row is not None else None,
            club_performance=clubs,
            district_performance=districts,
            division_performance=divisions,
        ),
        figures=derive_detailed_figures(clubs, districts, divisions, summary_row),
    )


def failed_district(
    *,
    district_id: str,
    as_of: dt.date,
    detail: Detail,
    errors: Sequence[DistrictError],
    data_month: DataMonthLike = None,
    is_closing_period: bool = False,
    sources: Sequence[SourceReport] = (),
    collected_at: dt.datetime | None = None,
) -> DistrictSnapshot:
    """A failed district file carrying its errors (at least one)."""
    return DistrictSnapshot(
        district_id=district_id,
        as_of_date=as_of,
        data_month=data_month,
        is_closing_period=is_closing_period,
        collected_at=collected_at or utc_now(),
        status="failed",
        detail=detail,
        sources=list(sources),
        errors=list(errors),
    )


def unavailable_district(
    *,
    district_id: str,
    as_of: dt.date,
    detail: Detail,
    reason: str | None = None,
    data_month: DataMonthLike = None,
    is_closing_period: bool = False,
    sources: Sequence[SourceReport] = (),
    collected_at: dt.datetime | None = None,
    final: bool = False,
) -> DistrictSnapshot:
    """A district the dashboard did not publish for that date (a normal outcome, not an error);
    `final` when the evidence says it never will."""
    return DistrictSnapshot(
        district_id=district_id,
        as_of_date=as_of,
        data_month=data_month,
        is_closing_period=is_closing_period,
        collected_at=collected_at or utc_now(),
        status="unavailable",
        detail=detail,
        sources=list(sources),
        unavailable_reason=reason,
        unavailable_final=final,
    )
