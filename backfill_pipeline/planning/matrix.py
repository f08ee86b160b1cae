"""The coverage of a range as a dates x districts matrix of one-letter states: what the console's
heatmap paints (47,000 cells for a year of 128 districts, one string per date), with the totals
per district and per date, and the details of every cell that is not complete.

pandas earns its place here: the cells become a table, the table a grid reindexed onto every
date and district of the range (a cell the store has never heard of is `missing`), and the
margins are two crosstabs, instead of hand-kept dictionaries of counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .gaps import STATES, Gaps

# One letter per state, in the legend's order (`in-progress` is not the store's: it is laid over
# from Dagster's materializing partitions, below).
CODES: dict[str, str] = {
    "detailed": "D",
    "summary": "S",
    "unavailable-final": "U",
    "unavailable-pending": "P",
    "failed-transient": "T",
    "failed-permanent": "F",
    "missing": "M",
}
COMPLETE = frozenset({"detailed", "unavailable-final"})
# Laid over the store's state: a run collecting the cell now (Dagster's materializing partitions).
IN_PROGRESS = "in-progress"
CODES[IN_PROGRESS] = "R"


def coverage_matrix(gaps: Gaps, in_progress: Iterable[str] | None = None) -> dict:
    """The matrix of `gaps` as JSON data: dates, districts, the codes, one row string per date,
    totals per state for each district and each date, and the details of incomplete cells.
    `in_progress`: the `date|district` keys (or bare dates: every district) being collected now,
    None when that is not known (Dagster was not asked, or did not answer)."""
    # Imported on the first matrix: pandas 3 loads pyarrow with it (about 70 MB), which the API
    # process needs only once the console asks for a heatmap.
    import pandas as pd

    dates = [gaps.start + dt.timedelta(days=i) for i in range((gaps.end - gaps.start).days + 1)]
    districts = list(gaps.districts)
    cells = pd.DataFrame(
        {
            "date": [c.as_of for c in gaps.cells],
            "district": [c.district for c in gaps.cells],
            "state": [c.state for c in gaps.cells],
        },
        columns=["date", "district", "state"],
    ).drop_duplicates(["date", "district"], keep="last")
    grid = (
        cells.pivot(index="date", columns="district", values="state")
        .reindex(index=dates, columns=districts)
        .fillna("missing")
    )
    running = _in_range(in_progress or (), dates, districts)
    for date, district in running:
        grid.at[date, district] = IN_PROGRESS
    codes = grid.apply(lambda column: column.map(CODES))
    states = pd.Categorical(grid.to_numpy().ravel(), categories=[*STATES, IN_PROGRESS])
    long = pd.DataFrame(
        {
            "date": [d for d in dates for _ in districts],
            "district": districts * len(dates),
            "state": states,
        }
    )
    by_district = pd.crosstab(long["district"], long["state"], dropna=False).reindex(districts, fill_value=0)
    by_date = pd.crosstab(long["date"], long["state"], dropna=False).reindex(dates, fill_value=0)
    details = {
        c.key: c.to_dict() for c in gaps.cells if c.state not in COMPLETE and (c.attempts or c.last_error)
    }
    return {
        "start": gaps.start.isoformat(),
        "end": gaps.end.isoformat(),
        "dates": [d.isoformat() for d in dates],
        "districts": districts,
        "codes": CODES,
        "rows": ["".join(row) for row in codes.itertuples(index=False)] if districts else ["" for _ in dates],
        "totals": {state: int((states == state).sum()) for state in STATES},
        "inProgress": len(running),
        "inProgressKnown": in_progress is not None,
        "byDistrict": {str(d): _nonzero(row) for d, row in by_district.to_dict("index").items()},
        "byDate": {str(d): _nonzero(row) for d, row in by_date.to_dict("index").items()},
        "details": details,
    }


def _nonzero(row: dict) -> dict[str, int]:
    return {state: int(row.get(state, 0)) for state in (*STATES, IN_PROGRESS) if row.get(state, 0)}


def _in_range(keys: Iterable[str], dates: list[dt.date], districts: list[str]) -> set[tuple[dt.date, str]]:
    wanted_dates, wanted = set(dates), set(districts)
    out: set[tuple[dt.date, str]] = set()
    for key in keys:
        day, _, district = key.partition("|")
        try:
            date = dt.date.fromisoformat(day)
        except ValueError:
            continue
        if date not in wanted_dates:
            continue
        if district:
            if district in wanted:
                out.add((date, district))
        else:
            out.update((date, d) for d in districts)
    return out
