"""CSV bytes as the dashboard writes them: every field quoted, CRLF, an unquoted footer line."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from .publication import DEFAULT_SEED, unit

BOM = b"\xef\xbb\xbf"
# English names, independent of the process locale.
MONTH_ABBR = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MONTH_NAME = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_FOOTER_DATE = re.compile(rb"As of (\d{2})/(\d{2})/(\d{4})")


def footer(data_month: tuple[int, int], as_of: dt.date, seed: int = DEFAULT_SEED) -> str:
    """`Month of Mar, As of 04/05/2026`; a few dates use the full month name or another case."""
    month = data_month[1]
    u = unit(seed, "footer", as_of.toordinal())
    name = MONTH_ABBR[month]
    if u < 0.05:
        name = MONTH_NAME[month]
    elif u < 0.06:
        name = name.upper()
    elif u < 0.07:
        name = name.lower()
    return f"Month of {name}, As of {as_of:%m/%d/%Y}"


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def csv_bytes(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[str]] = (),
    footer_line: str | None = None,
    bom: bool = False,
) -> bytes:
    """UTF-8 CSV: quoted header and rows, then the unquoted footer, CRLF after every line."""
    lines = []
    if header is not None:
        lines.append(",".join(map(_quote, header)))
    lines.extend(",".join(map(_quote, row)) for row in rows)
    if footer_line is not None:
        lines.append(footer_line)
    if not lines:
        return b""
    body = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return BOM + body if bom else body


def footer_as_of(body: bytes) -> dt.date | None:
    """The as-of date of a body's footer, None when it has none."""
    m = _FOOTER_DATE.search(body[-200:])
    if not m:
        return None
    return dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))


def rewrite_footer_date(body: bytes, new_date: dt.date) -> bytes:
    """The body with its footer's as-of date replaced (fault injection)."""
    head, tail = body[:-200], body[-200:]
    return head + _FOOTER_DATE.sub(f"As of {new_date:%m/%d/%Y}".encode(), tail, count=1)


def truncate(body: bytes) -> bytes:
    """The body cut in the middle of a row (a data row when there is one), never mid-character."""
    if not body:
        return body
    lines = body.split(b"\r\n")
    # Drop the footer and the empty string after the last CRLF; pick a row about 60% in.
    data = [ln for ln in lines if ln.startswith(b'"')]
    target = data[min(len(data) - 1, max(1, int(len(data) * 0.6)))] if data else lines[0]
    start = body.index(target)
    cut = start + max(1, len(target) // 2)
    while cut > start + 1 and 0x80 <= body[cut] <= 0xBF:
        cut -= 1
    return body[:cut]
