"""Raw cells to typed values, read as the store reads its figures (snapshots/derived.py). A cell
that cannot be read becomes null and is reported, never raised: one hostile cell must not cost
a date its table."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..snapshots.derived import MISSING, parse_int, parse_pct

log = logging.getLogger(__name__)

_TRUE = frozenset({"Y", "YES", "TRUE", "1"})
_FALSE = frozenset({"N", "NO", "FALSE", "0"})
_INT64 = 2**63 - 1
# A reported value is cut to this many characters (a cell can hold a whole HTML page).
_SHOWN = 80


@dataclass(frozen=True)
class BadValue:
    """A cell that could not be read as its column's type (it is null in the table)."""

    as_of: dt.date
    district: str
    report: str
    column: str
    value: str
    club_number: str | None = None


@dataclass
class BuildReport:
    """What a build met besides data: unreadable cells, and raw headers no era mapping knows."""

    bad_values: list[BadValue] = field(default_factory=list)
    unknown_headers: dict[str, set[str]] = field(default_factory=dict)

    def bad(self, value: BadValue) -> None:
        """Record an unreadable cell (its text cut to a readable length)."""
        self.bad_values.append(replace(value, value=value.value[:_SHOWN]))

    def unknown(self, report: str, headers: Iterable[str]) -> None:
        """Record raw headers of `report` that went to the catch-all."""
        if headers:
            self.unknown_headers.setdefault(report, set()).update(headers)

    def extend(self, other: BuildReport) -> None:
        """Add what another build met."""
        self.bad_values += other.bad_values
        for report, headers in other.unknown_headers.items():
            self.unknown(report, headers)

    def lines(self, table: str, as_of: dt.date) -> list[str]:
        """One line per kind of problem, with a few examples (none when there is none)."""
        out = []
        if self.bad_values:
            shown = ", ".join(f"{b.district}/{b.column}={b.value!r}" for b in self.bad_values[:5])
            out.append(f"{table} {as_of}: {len(self.bad_values)} unreadable cells made null: {shown}")
        for report, headers in sorted(self.unknown_headers.items()):
            out.append(f"{table} {as_of}: unknown {report} columns kept raw: {sorted(headers)}")
        return out

    def log(self, table: str, as_of: dt.date) -> None:
        """`lines` as warnings of this module's logger."""
        for line in self.lines(table, as_of):
            log.warning("%s", line)


def _integer(text: str) -> int | None:
    value = parse_int(text)
    return value if value is not None and -_INT64 <= value <= _INT64 else None


def _flag(text: str) -> bool | None:
    upper = text.strip().upper()
    return True if upper in _TRUE else False if upper in _FALSE else None


_READERS = {"Int64": _integer, "Float64": parse_pct, "boolean": _flag}


def read_cell(dtype: str, raw: str | None) -> tuple[Any, bool]:
    """(value, readable): a string column keeps the raw text as written; a number or flag column
    gives None for an empty or `N/A` cell (readable) and for what it cannot read (not readable)."""
    if raw is None:
        return None, True
    if dtype == "string":
        return raw, True
    if raw.strip().upper() in MISSING:
        return None, True
    value = _READERS[dtype](raw)
    return value, value is not None
