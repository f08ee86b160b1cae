"""Borda-count rankings (docs/dashboard.md §8)."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill_pipeline.snapshots import compute_borda_rankings
from backfill_pipeline.snapshots.derived import parse_decimal
from backfill_pipeline.snapshots.rankings import competition_ranks, distinguished_pct


def row(district, club, payment, total, active, region="01"):
    return {
        "REGION": region,
        "DISTRICT": district,
        "% Club Growth": club,
        "% Payment Growth": payment,
        "Total Distinguished Clubs": total,
        "Active Clubs": active,
    }


def by_id(entries):
    return {e.district_id: e for e in entries}


def test_worked_example_with_ties_and_an_all_equal_category():
    rows = [
        row("01", "5%", "2%", "10", "100"),
        row("02", "3.00%", "2.00%", "30", "100"),
        row("03", "3%", "2.0%", "5", "50"),  # 10%, exactly like district 01
        row("04", "-1%", "2%", "0", "40"),
        {"DISTRICT": "As of 04/05/2026"},  # the footer cell is not a district
    ]
    entries = compute_borda_rankings(rows)
    got = by_id(entries)
    assert set(got) == {"01", "02", "03", "04"}
    assert [got[d].club_growth_rank for d in ("01", "02", "03", "04")] == [1, 2, 2, 4]
    assert [got[d].club_growth_points for d in ("01", "02", "03", "04")] == [4, 3, 3, 1]
    # Every district has the same payment growth: that category gives 0 points.
    assert [got[d].payment_growth_points for d in got] == [0, 0, 0, 0]
    assert [got[d].distinguished_rank for d in ("01", "02", "03", "04")] == [2, 1, 2, 4]
    assert [got[d].distinguished_points for d in ("01", "02", "03", "04")] == [3, 4, 3, 1]
    assert [got[d].aggregate_score for d in ("01", "02", "03", "04")] == [7, 7, 6, 2]
    assert [(e.district_id, e.overall_rank) for e in entries] == [
        ("01", 1),
        ("02", 1),
        ("03", 3),
        ("04", 4),
    ]
    assert got["03"].distinguished_pct == 10.0


def test_missing_values_get_no_rank_and_no_points():
    rows = [
        row("42", "N/A", "1%", "1", "10"),
        row("61", "2%", "3%", "1", "0"),  # no active clubs: no distinguished percentage
        row("F", "1%", "N/A", "2", "10"),
    ]
    got = by_id(compute_borda_rankings(rows))
    assert got["42"].club_growth_rank is None and got["42"].club_growth_points == 0
    assert got["61"].club_growth_points == 3 and got["F"].club_growth_points == 2
    assert got["61"].distinguished_pct is None and got["61"].distinguished_points == 0
    assert got["F"].distinguished_points == 3 and got["42"].distinguished_points == 2


def test_all_equal_everywhere_gives_everyone_zero_and_rank_one():
    rows = [row(d, "1%", "1%", "1", "10") for d in ("01", "02", "03")]
    entries = compute_borda_rankings(rows)
    assert {e.aggregate_score for e in entries} == {0}
    assert {e.overall_rank for e in entries} == {1}
    assert compute_borda_rankings([]) == []


def test_distinguished_pct_falls_back_to_the_tiers():
    assert distinguished_pct(
        {"Active Clubs": "20", "Distinguished Clubs": "2", "Select Distinguished Clubs": "1"}
    ) == Fraction(15)
    assert distinguished_pct({"Active Clubs": "N/A", "Total Distinguished Clubs": "2"}) is None


def test_competition_ranks():
    values = [Fraction(3), None, Fraction(5), Fraction(3), Fraction(1)]
    assert competition_ranks(values) == [2, None, 1, 2, 4]


PCTS = st.sampled_from(["-5%", "-1.50%", "0%", "0.00%", "2%", "7.25%", "N/A"])
COUNTS = st.sampled_from(["0", "1", "3", "10", "N/A"])
ACTIVE = st.sampled_from(["0", "10", "20", "30"])


@st.composite
def summaries(draw):
    ids = draw(st.lists(st.integers(1, 130), min_size=1, max_size=25, unique=True))
    return [row(f"{i:02d}", draw(PCTS), draw(PCTS), draw(COUNTS), draw(ACTIVE)) for i in ids]


def _key(value):
    number = parse_decimal(value)
    return None if number is None else Fraction(number)


@settings(max_examples=150, deadline=None)
@given(summaries(), st.randoms(use_true_random=False))
def test_borda_properties(rows, rnd):
    entries = compute_borda_rankings(rows)
    n = len(rows)
    assert len(entries) == n
    # Sorted by overall rank; order of the input does not matter.
    assert [e.overall_rank for e in entries] == sorted(e.overall_rank for e in entries)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert compute_borda_rankings(shuffled) == entries

    raw = {r["DISTRICT"]: r for r in rows}
    categories = {
        "club_growth": {d: _key(r["% Club Growth"]) for d, r in raw.items()},
        "payment_growth": {d: _key(r["% Payment Growth"]) for d, r in raw.items()},
        "distinguished": {d: distinguished_pct(r) for d, r in raw.items()},
    }
    for name, values in categories.items():
        present = [v for v in values.values() if v is not None]
        all_equal = len(set(present)) <= 1
        for e in entries:
            value = values[e.district_id]
            rank = getattr(e, f"{name}_rank")
            points = getattr(e, f"{name}_points")
            if value is None:
                assert rank is None and points == 0
                continue
            assert rank == 1 + sum(1 for v in present if v > value)
            assert points == (0 if all_equal else n - rank + 1)
            assert 0 <= points <= n
    for e in entries:
        assert e.aggregate_score == (e.club_growth_points + e.payment_growth_points + e.distinguished_points)
        assert e.overall_rank == 1 + sum(1 for o in entries if o.aggregate_score > e.aggregate_score)


ABSURD = ["1e30000000", "1e400%", "-1e999999999", "9" * 5000]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ABSURD, ids=lambda v: v[:16])
def test_an_absurd_cell_ranks_as_missing_in_bounded_time(value):
    # Before: `1e400%` raised OverflowError making the float, `1e30000000` ran for hours.
    rows = [
        row("01", value, value, value, "10"),
        row("02", "1%", "2%", "3", value),
        row("03", "2%", "1%", "1", "10"),
    ]
    started = time.monotonic()
    entries = by_id(compute_borda_rankings(rows))
    assert time.monotonic() - started < 1.0
    assert entries["01"].club_growth_pct is None and entries["01"].club_growth_rank is None
    assert entries["01"].payment_growth_points == 0 and entries["01"].distinguished_pct is None
    assert entries["02"].distinguished_pct is None  # no sane active-club count
    assert entries["03"].club_growth_rank == 1
