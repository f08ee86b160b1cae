"""Derived figures from raw CSV rows (docs/dashboard.md §6): pure functions, tolerant of gaps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal

from ..dashboard.csvparse import bounded_decimal, number_text
from .models import (
    ClubsByStatus,
    DetailedFigures,
    DistinguishedByTier,
    DistrictFigures,
    DistrictPayments,
    SummaryDistinguished,
    SummaryFigures,
    SummaryPayments,
)

Row = Mapping[str, str]

# Cells that say "no value".
MISSING = frozenset({"", "N/A", "NA", "-", "--"})
# A whole number of at most this many ASCII digits is read with int() directly.
_PLAIN_DIGITS = 18
_STATUSES = ("active", "low", "suspended", "ineligible")
_TIERS = {"D": "distinguished", "S": "select", "P": "presidents"}


def parse_int(value: str | None) -> int | None:
    """`"123"` -> 123; empty, `N/A`, not a whole number, or absurd (`1e30000000`) -> None.

    Bounded time whatever the cell holds: `bounded_decimal` refuses more than 30 digits or a
    power of ten beyond 10**30 before any arithmetic.
    """
    text = (value or "").strip().replace(",", "")
    digits = text[1:] if text[:1] in ("+", "-") else text
    if 0 < len(digits) <= _PLAIN_DIGITS and digits.isascii() and digits.isdigit():
        return int(text)  # the common case, without a Decimal: a re-run parses millions of cells
    if text.upper() in MISSING:
        return None
    number = bounded_decimal(text)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def parse_decimal(value: str | None) -> Decimal | None:
    """`"-7.69%"` -> Decimal('-7.69'); empty, `N/A`, not a number, or absurd -> None. Exact."""
    text = number_text(value or "")
    if text.upper() in MISSING:
        return None
    return bounded_decimal(text)


def parse_pct(value: str | None) -> float | None:
    """`"-7.69%"` -> -7.69; `N/A` or absurd (`1e400%`) -> None; never overflows a float."""
    number = parse_decimal(value)
    return None if number is None else float(number)


def _column(row: Row, *names: str) -> str | None:
    # Columns are renamed between program years: take the first spelling present.
    for name in names:
        if name in row:
            return row[name]
    return None


def _sum(rows: Iterable[Row], *names: str) -> int | None:
    total, seen = 0, False
    for row in rows:
        value = parse_int(_column(row, *names))
        if value is not None:
            total += value
            seen = True
    return total if seen else None


def derive_summary_figures(summary_row: Row) -> SummaryFigures:
    """Figures of one district's row of the all-districts summary."""
    row = summary_row
    region = (row.get("REGION") or "").strip() or None
    distinguished = SummaryDistinguished(
        distinguished=parse_int(row.get("Distinguished Clubs")),
        select=parse_int(row.get("Select Distinguished Clubs")),
        presidents=parse_int(row.get("Presidents Distinguished Clubs")),
        smedley=parse_int(row.get("Smedley Distinguished Clubs")),
        total=parse_int(row.get("Total Distinguished Clubs")),
    )
    return SummaryFigures(
        region=region,
        payments=SummaryPayments(
            new=parse_int(row.get("New Payments")),
            april=parse_int(row.get("April Payments")),
            october=parse_int(row.get("October Payments")),
            late=parse_int(row.get("Late Payments")),
            charter=parse_int(row.get("Charter Payments")),
            total_ytd=parse_int(row.get("Total YTD Payments")),
            base=parse_int(row.get("Payment Base")),
        ),
        payment_growth_pct=parse_pct(row.get("% Payment Growth")),
        paid_club_base=parse_int(row.get("Paid Club Base")),
        paid_clubs=parse_int(row.get("Paid Clubs")),
        club_growth_pct=parse_pct(row.get("% Club Growth")),
        active_clubs=parse_int(row.get("Active Clubs")),
        distinguished_clubs=distinguished,
        distinguished_pct=parse_pct(row.get("% Distinguished Clubs")),
    )


def clubs_by_status(club_rows: Iterable[Row]) -> ClubsByStatus:
    """Count clubs by `Club Status`; unexpected values are kept under their raw text."""
    counts = ClubsByStatus()
    for row in club_rows:
        raw = (row.get("Club Status") or "").strip()
        field = raw.lower()
        if field in _STATUSES:
            setattr(counts, field, getattr(counts, field) + 1)
        else:
            counts.other[raw] = counts.other.get(raw, 0) + 1
    return counts


def distinguished_by_tier(club_rows: Iterable[Row]) -> DistinguishedByTier:
    """Count clubs by the `Club Distinguished Status` letter; unknown letters counted apart."""
    tiers = DistinguishedByTier()
    for row in club_rows:
        raw = (row.get("Club Distinguished Status") or "").strip()
        tier = _TIERS.get(raw.upper())
        if not raw:
            tiers.none += 1
        elif tier is not None:
            setattr(tiers, tier, getattr(tiers, tier) + 1)
        else:
            tiers.unknown[raw] = tiers.unknown.get(raw, 0) + 1
    tiers.total = tiers.distinguished + tiers.select + tiers.presidents
    return tiers


def district_payments(district_rows: Iterable[Row]) -> DistrictPayments:
    """Sum the payment columns of the district performance report."""
    rows = list(district_rows)
    return DistrictPayments(
        new=_sum(rows, "New"),
        late_renewals=_sum(rows, "Late Ren.", "Late Ren"),
        october_renewals=_sum(rows, "Oct. Ren.", "Oct Ren."),
        april_renewals=_sum(rows, "Apr. Ren.", "Apr Ren."),
        total_renewals=_sum(rows, "Total Ren.", "Total Ren"),
        charter=_sum(rows, "Total Chart", "Charter"),
        total_to_date=_sum(rows, "Total to Date"),
    )


def derive_detailed_figures(
    club_rows: Iterable[Row],
    district_rows: Iterable[Row],
    division_rows: Iterable[Row],
    summary_row: Row | None = None,
) -> DistrictFigures:
    """Figures of a detailed district: members from `Active Members`, never from payments."""
    clubs = list(club_rows)
    districts = list(district_rows)
    divisions = list(division_rows)
    # Club performance is the club list; the other reports stand in when it has no rows.
    listing = clubs or districts or divisions
    division_ids = Counter((r.get("Division") or "").strip() for r in listing)
    area_ids = Counter(((r.get("Division") or "").strip(), (r.get("Area") or "").strip()) for r in listing)
    detailed = DetailedFigures(
        clubs=len(listing),
        divisions=len([d for d in division_ids if d]),
        areas=len([a for a in area_ids if a[1]]),
        members=_sum(clubs, "Active Members"),
        member_base=_sum(clubs, "Mem. Base"),
        clubs_by_status=clubs_by_status(clubs),
        distinguished_by_tier=distinguished_by_tier(clubs),
        payments=district_payments(districts),
    )
    summary = derive_summary_figures(summary_row) if summary_row is not None else None
    return DistrictFigures(summary=summary, detailed=detailed)
