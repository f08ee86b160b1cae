"""The dashboard's calendar, written for the sandbox alone.

The sandbox is an independent implementation of the dashboard's protocol (docs/dashboard.md):
it shares no code with the product, so a mistake in the product's URL or calendar rules shows
up as a failing test instead of being mirrored here.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable


def program_year(year: int, month: int) -> str:
    """`2024-2025` for the months July 2024 to June 2025."""
    start = year if month >= 7 else year - 1
    return f"{start}-{start + 1}"


def program_year_start(py: str) -> int:
    """2024 for `2024-2025`; ValueError for anything else."""
    first, sep, second = py.partition("-")
    if not (
        sep and len(first) == len(second) == 4 and (first + second).isascii() and (first + second).isdigit()
    ):
        raise ValueError(f"not a program year: {py!r}")
    if int(second) != int(first) + 1:
        raise ValueError(f"not a program year: {py!r}")
    return int(first)


def month_end(year: int, month: int) -> dt.date:
    """The last day of a month."""
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def previous_month(year: int, month: int) -> tuple[int, int]:
    """The month before."""
    return (year - 1, 12) if month == 1 else (year, month - 1)


def sorted_districts(ids: Iterable[str]) -> list[str]:
    """Numeric district ids in numeric order, letters after them."""
    return sorted(set(ids), key=lambda d: (0, int(d), d) if d.isdigit() else (1, 0, d))
