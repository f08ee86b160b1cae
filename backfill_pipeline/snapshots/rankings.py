"""Borda-count ranking of the districts of one summary (docs/dashboard.md §8)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction

from ..district_ids import InvalidDistrictId, district_sort_key, normalise_district_id
from .derived import parse_decimal, parse_int
from .models import RankingEntry

Row = Mapping[str, str]
Value = Fraction | None

CATEGORIES = ("club_growth", "payment_growth", "distinguished")


def distinguished_pct(row: Row) -> Fraction | None:
    """`Total Distinguished Clubs` / `Active Clubs` x 100, exact; None without active clubs."""
    active = parse_int(row.get("Active Clubs"))
    total = parse_int(row.get("Total Distinguished Clubs"))
    if total is None:
        # Older summaries lack the total: add the tiers that are there.
        tiers = [
            parse_int(row.get(c))
            for c in (
                "Distinguished Clubs",
                "Select Distinguished Clubs",
                "Presidents Distinguished Clubs",
                "Smedley Distinguished Clubs",
            )
        ]
        present = [t for t in tiers if t is not None]
        total = sum(present) if present else None
    if total is None or not active:
        return None
    return Fraction(total * 100, active)


def competition_ranks(values: Sequence[Value]) -> list[int | None]:
    """Standard competition ranking, high to low: equal values share a rank, then a gap."""
    present = sorted((v for v in values if v is not None), reverse=True)
    first_position: dict[Fraction, int] = {}
    for position, value in enumerate(present, start=1):
        first_position.setdefault(value, position)
    return [None if v is None else first_position[v] for v in values]


def borda_points(values: Sequence[Value], n: int) -> tuple[list[int | None], list[int]]:
    """Ranks and points (n - rank + 1) of one category; 0 points for all when all are equal."""
    ranks = competition_ranks(values)
    distinct = {v for v in values if v is not None}
    if len(distinct) <= 1:
        return ranks, [0] * len(values)
    return ranks, [0 if r is None else n - r + 1 for r in ranks]


def _fraction(value: Decimal | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def _as_float(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 4)


def compute_borda_rankings(summary_rows: Iterable[Row]) -> list[RankingEntry]:
    """Rank every district of a summary by the Borda count over the three categories."""
    by_district: dict[str, Row] = {}
    for row in summary_rows:
        try:
            district = normalise_district_id((row.get("DISTRICT") or "").strip())
        except InvalidDistrictId:
            continue  # footer cells and blank lines
        by_district[district] = row
    districts = sorted(by_district, key=district_sort_key)
    rows = [by_district[d] for d in districts]
    n = len(rows)
    values = {
        "club_growth": [_fraction(parse_decimal(r.get("% Club Growth"))) for r in rows],
        "payment_growth": [_fraction(parse_decimal(r.get("% Payment Growth"))) for r in rows],
        "distinguished": [distinguished_pct(r) for r in rows],
    }
    scored = {c: borda_points(values[c], n) for c in CATEGORIES}
    aggregates = [sum(scored[c][1][i] for c in CATEGORIES) for i in range(n)]
    overall = competition_ranks([Fraction(a) for a in aggregates])
    entries = []
    for i, district in enumerate(districts):
        entries.append(
            RankingEntry(
                district_id=district,
                region=(rows[i].get("REGION") or "").strip() or None,
                club_growth_pct=_as_float(values["club_growth"][i]),
                payment_growth_pct=_as_float(values["payment_growth"][i]),
                distinguished_pct=_as_float(values["distinguished"][i]),
                club_growth_rank=scored["club_growth"][0][i],
                payment_growth_rank=scored["payment_growth"][0][i],
                distinguished_rank=scored["distinguished"][0][i],
                club_growth_points=scored["club_growth"][1][i],
                payment_growth_points=scored["payment_growth"][1][i],
                distinguished_points=scored["distinguished"][1][i],
                aggregate_score=aggregates[i],
                overall_rank=overall[i],
            )
        )
    entries.sort(key=lambda e: (e.overall_rank, district_sort_key(e.district_id)))
    return entries
