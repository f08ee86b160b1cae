"""Who exists in the sandbox: districts per program year and the clubs of each district."""

from __future__ import annotations

import datetime as dt
import string
from functools import lru_cache
from typing import NamedTuple

from .calendar import program_year_start, sorted_districts
from .publication import DEFAULT_SEED, rng_for

LETTER_DISTRICTS = ("F", "U")
MAX_NUMERIC_DISTRICT = 131
_OPEN_ENDED = 9999


class Club(NamedTuple):
    """One club over its whole life."""

    number: str
    name: str
    division: str
    area: str
    charter: dt.date
    end: dt.date | None


def format_district(number: int) -> str:
    """Numeric district ids below 10 carry a leading zero (`01`, `09`), like the dashboard."""
    return f"{number:02d}"


@lru_cache(maxsize=16)
def _district_plan(seed: int) -> dict[str, tuple[int, int]]:
    """District id -> (first, last) program-year start in which it exists."""
    r = rng_for(seed, "district-plan")
    numbers = list(range(1, MAX_NUMERIC_DISTRICT + 1))
    gaps = set(r.sample(numbers, 2))
    kept = [n for n in numbers if n not in gaps]
    changed = r.sample(kept, 6)
    plan: dict[str, tuple[int, int]] = {}
    for n in kept:
        first, last = 2008, _OPEN_ENDED
        if n in changed[:3]:
            last = r.randint(2009, 2023)
        elif n in changed[3:]:
            first = r.randint(2010, 2024)
        plan[format_district(n)] = (first, last)
    for letter in LETTER_DISTRICTS:
        plan[letter] = (2008, _OPEN_ENDED)
    return plan


@lru_cache(maxsize=64)
def _districts_for(py_start: int, seed: int) -> tuple[str, ...]:
    plan = _district_plan(seed)
    return tuple(sorted_districts(d for d, (a, b) in plan.items() if a <= py_start <= b))


def districts_for(py: str, seed: int = DEFAULT_SEED) -> list[str]:
    """District ids of a program year (`2025-2026`), ordered like the dashboard's client does."""
    return list(_districts_for(program_year_start(py), seed))


def district_first_year(district: str, seed: int = DEFAULT_SEED) -> int | None:
    """First program-year start of a district, None for an id that never existed."""
    span = _district_plan(seed).get(district)
    return span[0] if span else None


def region_of(district: str) -> str:
    """Region number of a district; the letter districts belong to no region."""
    if not district.isdigit():
        return ""
    return str(1 + (int(district) - 1) * 14 // MAX_NUMERIC_DISTRICT)


_PLACES = (
    "Downtown",
    "Riverside",
    "Sunrise",
    "Lakeside",
    "Harbour",
    "Capital",
    "Midtown",
    "Northside",
    "Valley",
    "Summit",
    "Oak Park",
    "Maple Leaf",
    "Crossroads",
    "Pioneer",
    "Golden Gate",
    "Bay Area",
    "Köln",
    "Zürich",
    "São Paulo",
    "Montréal",
    "Malmö",
    "Kraków",
    "Ñuñoa",
    "Bogotá",
    "Reykjavík",
    "Århus",
    "Łódź",
    "Québec",
    "Düsseldorf",
    "Göteborg",
    "Yucatán",
    "Brașov",
    "Plzeň",
    "Evening",
    "Lunchtime",
    "Early Risers",
    "Westside",
    "Eastgate",
    "Metro",
    "Coastal",
    "Prairie",
    "Canyon",
    "Hilltop",
    "Gateway",
    "Heritage",
    "Lighthouse",
    "University",
    "Civic",
)
_KINDS = (
    "Toastmasters",
    "Speakers",
    "Orators",
    "Communicators",
    "Speakeasy",
    "Talkers",
    "Toastmasters Club",
    "Leaders",
    "Voices",
    "Advanced Speakers",
    "Storytellers",
)
_SPECIAL = (
    "Club Élan",
    "Toastmasters Ñandú",
    "Speak Up, Inc.",
    'The "Early Birds"',
    "Les Orateurs d'Été",
    "Ünlü Konuşmacılar",
    "Café Crème Speakers",
    "Straße Sprecher",
    "Señoras y Señores",
    "Pécs Talkers",
    "Øresund Orators",
    "Ōsaka Speakers",
)


def _club_name(r, taken: set[str]) -> str:
    if r.random() < 0.06:
        base = r.choice(_SPECIAL)
    else:
        base = f"{r.choice(_PLACES)} {r.choice(_KINDS)}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    taken.add(name)
    return name


_ESTABLISHED_FROM = dt.date(1950, 1, 1).toordinal()
_FIRST_PY_DAY = dt.date(2008, 7, 1).toordinal()
_LAST_CHARTER = dt.date(2027, 6, 30).toordinal()


@lru_cache(maxsize=512)
def clubs_of(district: str, seed: int = DEFAULT_SEED) -> tuple[Club, ...]:
    """Every club the district ever has, ordered by division, area and club number."""
    r = rng_for(seed, "clubs", district)
    size = r.randint(30, 150)
    areas = max(2, round(size / 5))
    numbers: set[int] = set()
    names: set[str] = set()
    clubs = []
    for k in range(size + round(size * 0.45)):
        established = k < size
        if established:
            charter = r.randint(_ESTABLISHED_FROM, _FIRST_PY_DAY - 1)
            end = r.randint(_FIRST_PY_DAY + 31, _LAST_CHARTER) if r.random() < 0.4 else None
            number = r.randint(1, 1_300_000)
        else:
            charter = r.randint(_FIRST_PY_DAY, _LAST_CHARTER)
            end = charter + r.randint(365, 3000) if r.random() < 0.2 else None
            # Newer clubs get higher numbers, as on the real dashboard.
            number = 1_300_000 + (charter - _FIRST_PY_DAY) * 3 + r.randrange(3)
        while number in numbers:
            number += 1
        numbers.add(number)
        area = r.randrange(areas)
        clubs.append(
            Club(
                number=f"{number:08d}",
                name=_club_name(r, names),
                division=string.ascii_uppercase[area // 4],
                area=f"{area + 1:02d}",
                charter=dt.date.fromordinal(charter),
                end=dt.date.fromordinal(end) if end is not None else None,
            )
        )
    clubs.sort(key=lambda c: (c.division, c.area, c.number))
    return tuple(clubs)


def clubs_in_program_year(district: str, py_start: int, seed: int = DEFAULT_SEED) -> list[Club]:
    """Clubs that exist at some point of the program year starting 1 July `py_start`."""
    begin, finish = dt.date(py_start, 7, 1), dt.date(py_start + 1, 6, 30)
    return [c for c in clubs_of(district, seed) if c.charter <= finish and (c.end is None or c.end >= begin)]
