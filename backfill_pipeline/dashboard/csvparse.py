"""Parse a dashboard CSV export: header, rows as raw strings, footer (docs/dashboard.md §3-§6)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field

from .errors import NotACsv, TruncatedCsv
from .reports import Report

_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_FOOTER = re.compile(
    r"^\s*month\s+of\s+([a-z]+)\s*,\s*as\s+of\s+(\d{1,2})/(\d{1,2})/(\d{4})\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Footer:
    """The unquoted last line: `Month of Mar, As of 04/05/2026`."""

    month: int
    as_of: dt.date

    @property
    def data_month(self) -> tuple[int, int]:
        """(year, month) of the data; December data shown in January belongs to the year before."""
        year = self.as_of.year - 1 if self.month == 12 and self.as_of.month == 1 else self.as_of.year
        return (year, self.month)


@dataclass
class ParsedCsv:
    """A parsed export: header names, data rows (header name -> raw string), footer if any."""

    header: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)
    footer: Footer | None = None
    duplicates_dropped: int = 0

    def available_for(self, as_of: dt.date) -> bool:
        """True when the CSV holds data rows and its footer says exactly `as_of`."""
        return bool(self.rows) and self.footer is not None and self.footer.as_of == as_of


def parse_footer(line: str) -> Footer | None:
    """Read a footer line; None when the line is not a footer."""
    m = _FOOTER.match(line.replace('"', ""))
    if not m:
        return None
    month = _MONTHS.get(m.group(1).lower())
    if month is None:
        return None
    mm, dd, yyyy = int(m.group(2)), int(m.group(3)), int(m.group(4))
    try:
        return Footer(month=month, as_of=dt.date(yyyy, mm, dd))
    except ValueError:
        return None


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotACsv(f"body is not UTF-8 text: {exc}") from exc
    return text.removeprefix("\ufeff")


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def _club_key(report: Report, row: dict[str, str]) -> str | None:
    column = {Report.CLUB: "Club Number", Report.DISTRICT: "Club", Report.DIVISION: "Club"}.get(report)
    if column is None or column not in row:
        return None
    # Club numbers are padded in one report and not in another: compare without leading zeros.
    return row[column].strip().lstrip("0") or "0"


def parse_report(body: bytes, report: Report) -> ParsedCsv:
    """Parse an export body; raises NotACsv / TruncatedCsv for bodies that are not this report."""
    text = _decode(body)
    if not text.strip():
        return ParsedCsv(header=[])
    if _looks_like_html(text):
        raise NotACsv(f"expected a {report.value} CSV, got an HTML page")

    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    footer = parse_footer(lines[-1]) if lines else None
    if footer is not None:
        lines.pop()
    try:
        records = list(csv.reader(io.StringIO("\r\n".join(lines)), strict=True))
    except csv.Error as exc:
        raise TruncatedCsv(f"{report.value} CSV is malformed or cut short: {exc}") from exc
    records = [r for r in records if any(cell.strip() for cell in r)]
    if not records:
        return ParsedCsv(header=[], footer=footer)

    header = [h.strip() for h in records[0]]
    if report.key_column not in header:
        raise NotACsv(f"not a {report.value} CSV: no {report.key_column!r} column in header {header[:6]!r}")
    data = records[1:]
    if data and footer is None:
        raise TruncatedCsv(f"{report.value} CSV has {len(data)} rows but no footer: cut short")
    rows: dict[object, dict[str, str]] = {}
    for n, record in enumerate(data, start=2):
        if len(record) != len(header):
            raise TruncatedCsv(
                f"{report.value} CSV row {n} has {len(record)} fields, header has {len(header)}"
            )
        row = dict(zip(header, record, strict=True))
        key = _club_key(report, row)
        # Duplicate club rows occur on the real dashboard: the last one wins.
        rows.pop(key if key is not None else n, None)
        rows[key if key is not None else n] = row
    return ParsedCsv(
        header=header,
        rows=list(rows.values()),
        footer=footer,
        duplicates_dropped=len(data) - len(rows),
    )
