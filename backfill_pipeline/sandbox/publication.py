"""When the sandbox dashboard publishes what: data months, closing windows, unpublished dates.

The model, all of it deterministic from the seed:
- data exists from as-of 2008-07-01 (data month July 2008) on;
- after month M ends, as-of dates 1..K of month M+1 still carry data month M, where
  K = `closing_window_days(M)` (1..25, median about 9; 12..28 for June);
- every other as-of date carries its own month;
- about 2.5% of as-of dates are never published (`is_unpublished`);
- with a `today`, nothing after today - 1 is published;
- dates `held` back (`SandboxServer.hold_back`) are not published yet: they answer as an
  unpublished date does until they are released.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from collections.abc import Iterable, Set
from functools import lru_cache

from .calendar import month_end, previous_month, program_year

DEFAULT_SEED = 42
FIRST_AS_OF = dt.date(2008, 7, 1)
FIRST_DATA_MONTH = (2008, 7)
UNPUBLISHED_RATE = 0.025

_ONE_DAY = dt.timedelta(days=1)
NOTHING_HELD: frozenset[dt.date] = frozenset()
# At most this many dates held back at once: a guard against a runaway control request.
MAX_HELD = 10_000
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def parse_held_back(values: Iterable[object]) -> frozenset[dt.date]:
    """Dates to hold back, from dates or `YYYY-MM-DD` strings; ValueError names the bad one."""
    if isinstance(values, str | bytes | dict):
        raise ValueError(f"held-back dates come as a list, got {type(values).__name__}")
    dates: set[dt.date] = set()
    for i, value in enumerate(values):
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date | str):
            raise ValueError(f"held-back date #{i} must be a YYYY-MM-DD string, got {value!r}")
        if isinstance(value, str):
            if not _ISO_DATE.fullmatch(value):
                raise ValueError(f"held-back date #{i} must be YYYY-MM-DD, got {value[:40]!r}")
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"held-back date #{i} is no calendar date: {value!r}") from None
        if value < FIRST_AS_OF:
            raise ValueError(f"held-back date #{i} ({value}) is before {FIRST_AS_OF}, the first as-of date")
        dates.add(value)
        if len(dates) > MAX_HELD:
            raise ValueError(f"at most {MAX_HELD} dates can be held back")
    return frozenset(dates)


def _digest(seed: int, tokens: tuple) -> bytes:
    return hashlib.sha256(repr((seed, *tokens)).encode()).digest()


def unit(seed: int, *tokens: object) -> float:
    """A deterministic fraction in [0, 1) for (seed, tokens)."""
    return int.from_bytes(_digest(seed, tokens)[:7], "big") / float(1 << 56)


def rng_for(seed: int, *tokens: object) -> random.Random:
    """A private random generator seeded from (seed, tokens); never the global one."""
    return random.Random(int.from_bytes(_digest(seed, tokens)[:16], "big"))


@lru_cache(maxsize=4096)
def closing_window_days(year: int, month: int, seed: int = DEFAULT_SEED) -> int:
    """Days into the next month during which as-of dates still carry data month (year, month)."""
    r = rng_for(seed, "closing", year, month)
    if month == 6:
        return r.randint(12, 28)
    # Triangular(1, 25, mode 5) has its median near 9.5, like the real closes.
    return max(1, min(25, int(r.triangular(1, 25, 5))))


def is_unpublished(as_of: dt.date, seed: int = DEFAULT_SEED) -> bool:
    """True for the few as-of dates the dashboard never published (independent of today)."""
    return unit(seed, "unpublished", as_of.toordinal()) < UNPUBLISHED_RATE


def is_published(
    as_of: dt.date,
    seed: int = DEFAULT_SEED,
    today: dt.date | None = None,
    held: Set[dt.date] = NOTHING_HELD,
) -> bool:
    """True when as-of date has data: not before 2008-07-01, before `today`, not unpublished,
    not held back."""
    if as_of < FIRST_AS_OF or (today is not None and as_of >= today) or as_of in held:
        return False
    return not is_unpublished(as_of, seed)


def scheduled_data_month(as_of: dt.date, seed: int = DEFAULT_SEED) -> tuple[int, int] | None:
    """The data month an as-of date carries (or would carry, were it published)."""
    if as_of < FIRST_AS_OF:
        return None
    prev = previous_month(as_of.year, as_of.month)
    if prev >= FIRST_DATA_MONTH and as_of.day <= closing_window_days(*prev, seed=seed):
        return prev
    return (as_of.year, as_of.month)


def data_month_for(
    as_of: dt.date,
    seed: int = DEFAULT_SEED,
    today: dt.date | None = None,
    held: Set[dt.date] = NOTHING_HELD,
) -> tuple[int, int] | None:
    """The data month of a published as-of date; None when the date is not published."""
    if not is_published(as_of, seed, today, held):
        return None
    return scheduled_data_month(as_of, seed)


def is_closing_period(as_of: dt.date, seed: int = DEFAULT_SEED) -> bool:
    """True when the as-of date carries the previous month's data."""
    dm = scheduled_data_month(as_of, seed)
    return dm is not None and dm != (as_of.year, as_of.month)


def closing_window(year: int, month: int, seed: int = DEFAULT_SEED) -> tuple[dt.date, dt.date]:
    """First and last as-of dates of the close of data month (year, month)."""
    first = month_end(year, month) + _ONE_DAY
    return first, first + dt.timedelta(days=closing_window_days(year, month, seed) - 1)


def scheduled_as_of_dates(year: int, month: int, seed: int = DEFAULT_SEED) -> list[dt.date]:
    """Every as-of date that carries data month (year, month), published or not."""
    if (year, month) < FIRST_DATA_MONTH:
        return []
    prev = previous_month(year, month)
    start_day = 1 if prev < FIRST_DATA_MONTH else closing_window_days(*prev, seed=seed) + 1
    d = dt.date(year, month, start_day)
    last = closing_window(year, month, seed)[1]
    out = []
    while d <= last:
        out.append(d)
        d += _ONE_DAY
    return out


def published_as_of_dates(
    year: int,
    month: int,
    seed: int = DEFAULT_SEED,
    today: dt.date | None = None,
    held: Set[dt.date] = NOTHING_HELD,
) -> list[dt.date]:
    """The published as-of dates that carry data month (year, month)."""
    return [d for d in scheduled_as_of_dates(year, month, seed) if is_published(d, seed, today, held)]


def nearest_earlier_published(
    data_month: tuple[int, int],
    before: dt.date,
    seed: int = DEFAULT_SEED,
    today: dt.date | None = None,
    held: Set[dt.date] = NOTHING_HELD,
) -> dt.date | None:
    """The latest published as-of date before `before` that carries `data_month`."""
    for d in reversed(scheduled_as_of_dates(*data_month, seed=seed)):
        if d < before and is_published(d, seed, today, held):
            return d
    return None


def latest_published(
    today: dt.date, seed: int = DEFAULT_SEED, held: Set[dt.date] = NOTHING_HELD
) -> dt.date | None:
    """The newest published as-of date seen on `today` (usually today - 1)."""
    d = today - _ONE_DAY
    while d >= FIRST_AS_OF:
        if is_published(d, seed, today, held):
            return d
        d -= _ONE_DAY
    return None


def open_program_year(
    today: dt.date, seed: int = DEFAULT_SEED, held: Set[dt.date] = NOTHING_HELD
) -> str | None:
    """The program year still being published: the one of the latest published data month."""
    latest = latest_published(today, seed, held)
    month = scheduled_data_month(latest, seed) if latest is not None else None
    return program_year(*month) if month is not None else None


def last_published_of_program_year(
    py_start: int,
    seed: int = DEFAULT_SEED,
    today: dt.date | None = None,
    held: Set[dt.date] = NOTHING_HELD,
) -> dt.date | None:
    """The newest published as-of date whose data month lies in program year `py_start`."""
    for month in (6, 5):
        for d in reversed(scheduled_as_of_dates(py_start + 1, month, seed)):
            if is_published(d, seed, today, held):
                return d
    return None
