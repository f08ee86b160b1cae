"""Parse a dashboard CSV export: header, rows as raw strings, footer (docs/dashboard.md §3-§6).

Numbers stay raw strings here, but a numeric cell no real figure could be (`1e30000000`, 5000
digits) makes the whole answer an error before anything is written: `absurd_number` is the
bounded test, shared with `snapshots/derived.py`, which reads the figures.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .errors import (
    AbsurdNumber,
    MaintenancePage,
    NotACsv,
    TruncatedCsv,
    UndecodableBody,
    UnrecognisedBody,
    quoted,
)
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


# A number as the dashboard writes one once `%` and thousands separators are gone: ASCII only.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# Bounds of a sane figure: no dashboard number has more digits or a larger power of ten.
MAX_SIGNIFICANT_DIGITS = 30
MAX_ABS_EXPONENT = 30
_MAX_NUMBER_CHARS = 100


def number_text(value: str) -> str:
    """A cell as a number's text: trimmed, without thousands separators or a trailing `%`."""
    return value.strip().replace(",", "").removesuffix("%").strip()


def bounded_decimal(text: str) -> Decimal | None:
    """The Decimal of a number's text, in time bounded by its length; None when the text is no
    number (ASCII digits, a sign, a point, an exponent) or an absurd one (`absurd_number`)."""
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        return None
    mantissa, _, exponent = text.lower().partition("e")
    if len(mantissa.lstrip("+-").replace(".", "").strip("0")) > MAX_SIGNIFICANT_DIGITS:
        return None
    if len(exponent.lstrip("+-").lstrip("0")) > 4:
        return None  # checked before Decimal sees it: 1e30000000 must not become a number
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if abs(number.adjusted()) <= MAX_ABS_EXPONENT else None


def absurd_number(value: str) -> bool:
    """True for a numeric-looking cell no figure could be: more than 30 significant digits, a power
    of ten beyond 10**30 or 10**-30 (`1e30000000`, `1e400%`, a 5000-digit integer). Bounded time."""
    if len(value) <= MAX_SIGNIFICANT_DIGITS and "e" not in value and "E" not in value:
        return False  # number_text only removes characters: the cell is too short to be absurd
    text = number_text(value)
    if len(text) <= MAX_SIGNIFICANT_DIGITS and "e" not in text and "E" not in text:
        return False  # too short to be absurd: the common case, decided without a regex
    return _NUMBER.fullmatch(text) is not None and bounded_decimal(text) is None


def _decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":
            raise TruncatedCsv(
                f"body cut short inside a UTF-8 character at byte {exc.start} of {len(body)}"
            ) from exc
        raise UndecodableBody(
            f"body is not UTF-8 text: byte {exc.start} of {len(body)} ({body[exc.start : exc.start + 4]!r}): "
            f"{exc.reason}"
        ) from exc
    return text.removeprefix("\ufeff")


def looks_like_html(body: bytes | str) -> bool:
    """True when a body starts like an HTML page (its first 512 characters are enough)."""
    head = body[:1024]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    text = text.removeprefix("\ufeff").lstrip()[:512].lower()
    return text.startswith("<") or "<html" in text or "<!doctype" in text


def _club_key(report: Report, row: dict[str, str]) -> str | None:
    column = {Report.CLUB: "Club Number", Report.DISTRICT: "Club", Report.DIVISION: "Club"}.get(report)
    if column is None or column not in row:
        return None
    # Club numbers are padded in one report and not in another: compare without leading zeros.
    return row[column].strip().lstrip("0") or "0"


def parse_report(body: bytes, report: Report) -> ParsedCsv:
    """Parse an export body, or raise what is wrong with it (docs/dashboard.md §3, §7).

    Retryable: an HTML page (MaintenancePage), a body cut short (TruncatedCsv), text that is
    not UTF-8 (UndecodableBody) or not a CSV table (UnrecognisedBody). Permanent: a CSV of
    another report (NotACsv) and an absurd number (AbsurdNumber).
    """
    text = _decode(body)
    if not text.strip():
        return ParsedCsv(header=[])
    if looks_like_html(text):
        raise MaintenancePage(f"expected a {report.value} CSV, got an HTML page ({len(body)} bytes)")

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
        if len(header) < 2:
            raise UnrecognisedBody(
                f"expected a {report.value} CSV, got text that is no CSV table: {quoted(records[0][0])}"
            )
        raise NotACsv(
            f"not a {report.value} CSV: no {report.key_column!r} column in header "
            f"{quoted(', '.join(header), 120)}"
        )
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
        _refuse_absurd_numbers(report, n, row)
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


def _refuse_absurd_numbers(report: Report, n: int, row: dict[str, str]) -> None:
    for column, value in row.items():
        # absurd_number's own first test, inlined: a call per cell was a fifth of a re-run's CPU.
        if len(value) <= MAX_SIGNIFICANT_DIGITS and "e" not in value and "E" not in value:
            continue
        if absurd_number(value):
            raise AbsurdNumber(
                f"{report.value} CSV row {n}, column {quoted(column)}: absurd number {quoted(value, 40)}",
                row=n,
                column=column,
                value=value[:200],
            )
