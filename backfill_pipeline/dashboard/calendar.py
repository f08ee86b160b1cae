"""Program years, data months and month ends (docs/dashboard.md §1 and §4)."""

from __future__ import annotations

import calendar
import datetime as dt
import re

EARLIEST_AS_OF = dt.date(2008, 7, 1)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def program_year(year: int, month: int) -> str:
    """Program year of a data month: July to June, written `2024-2025`."""
    start = year if month >= 7 else year - 1
    return f"{start}-{start + 1}"


def month_end(year: int, month: int) -> dt.date:
    """Last day of a month."""
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def previous_month(year: int, month: int) -> tuple[int, int]:
    """The month before (year, month)."""
    return (year - 1, 12) if month == 1 else (year, month - 1)


def month_closed_at(as_of: dt.date) -> dt.date:
    """The last day on which the dashboard may still publish data for `as_of`'s month: its month
    end plus the longest closing window seen (31 days)."""
    return month_end(as_of.year, as_of.month) + dt.timedelta(days=31)


# Two "not published" answers must be this far apart to count as two days' evidence.
EVIDENCE_GAP = dt.timedelta(hours=24)


def unavailable_on_evidence(as_of: dt.date, seen: list[dt.datetime]) -> bool:
    """Whether "no data for as_of" is final: seen on two days at least 24 h apart, both after the
    month's closing window (one empty or wrong-as-of answer can be a glitch)."""
    after = sorted(t for t in seen if t.date() > month_closed_at(as_of))
    return len(after) >= 2 and after[-1] - after[0] >= EVIDENCE_GAP


def utc_today() -> dt.date:
    """Today in UTC, the calendar of Dagster's daily partitions and schedules."""
    return dt.datetime.now(dt.UTC).date()


def possibly_open_program_years(today: dt.date) -> set[str]:
    """Program years that may still be published on `today`: today's, and in July the one
    before (June data is published well into July, under the old program year)."""
    years = {program_year(today.year, today.month)}
    if today.month == 7:
        years.add(program_year(today.year, 6))
    return years


def url_date(d: dt.date) -> str:
    """A date as the report name writes it: `M/D/YYYY`, unpadded."""
    return f"{d.month}/{d.day}/{d.year}"


def parse_as_of(text: str, today: dt.date | None = None) -> dt.date:
    """Validate a user-typed as-of date: ISO `YYYY-MM-DD`, not before 2008-07-01, not after today."""
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text.strip()):
        raise ValueError(f"date must look like YYYY-MM-DD, got {text!r}")
    try:
        d = dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"not a calendar date: {text!r}") from exc
    return check_as_of(d, today)


def iso_date_text(value: object) -> object:
    """A date as pydantic should take it from outside: a string only when written `YYYY-MM-DD`
    (pydantic alone would also take timestamps and other forms); ValueError otherwise."""
    if isinstance(value, str):
        if not _ISO_DATE.fullmatch(value.strip()):
            raise ValueError("must be a date written YYYY-MM-DD")
        return value.strip()
    return value


def check_as_of(d: dt.date, today: dt.date | None = None) -> dt.date:
    """Reject as-of dates outside 2008-07-01 .. today."""
    today = today or utc_today()
    if d < EARLIEST_AS_OF:
        raise ValueError(f"{d.isoformat()} is before {EARLIEST_AS_OF.isoformat()}, the first exported date")
    if d > today:
        raise ValueError(f"{d.isoformat()} is in the future (today is {today.isoformat()})")
    return d
