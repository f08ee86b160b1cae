"""The export endpoint without HTTP: parse a request, decide what the dashboard answers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Set
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from . import data, render
from .calendar import month_end, program_year
from .population import districts_for
from .publication import (
    DEFAULT_SEED,
    NOTHING_HELD,
    data_month_for,
    last_published_of_program_year,
    latest_published,
    nearest_earlier_published,
    scheduled_data_month,
    unit,
)

_EXPORT_PATH = re.compile(r"^/(?:(\d{4}-\d{4})/)?export\.aspx$", re.IGNORECASE)
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_PY = re.compile(r"^(\d{4})-(\d{4})$")
_DISTRICT = re.compile(r"^[A-Za-z0-9]{1,4}$")

CSV_TYPE = "text/csv; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"

# How an unavailable date is answered; all are HTTP 200 (docs/dashboard.md §3).
EMPTY, HEADER, HEADER_FOOTER, OTHER_AS_OF = "empty", "header", "header_footer", "other_as_of"
_VARIANTS = ((0.15, EMPTY), (0.45, HEADER), (0.65, HEADER_FOOTER), (1.0, OTHER_AS_OF))

SERVER_ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Runtime Error</title></head><body>"
    "<h1>Server Error in '/' Application.</h1><h2><i>Runtime Error</i></h2></body></html>"
)


class BadRequest(ValueError):
    """A request the dashboard rejects for good (HTTP 400)."""


@dataclass(frozen=True)
class ReportName:
    """The parsed `report=` parameter."""

    report: str
    district: str | None
    month_end: dt.date | None
    as_of: dt.date | None
    py: str


@dataclass(frozen=True)
class ExportResponse:
    """What the dashboard answers: status, body, and how the answer was chosen."""

    status: int
    body: bytes
    content_type: str
    outcome: str
    footer_as_of: dt.date | None = None


def export_path_py(path: str) -> tuple[bool, str | None]:
    """(is an export path, PY of the path or None for the bare path)."""
    m = _EXPORT_PATH.match(unquote(path))
    if not m:
        return False, None
    return True, m.group(1)


def _parse_date(text: str, what: str) -> dt.date:
    m = _DATE.match(text)
    if not m:
        raise BadRequest(f"bad {what} date {text!r}: expected M/D/YYYY")
    try:
        return dt.date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    except ValueError as exc:
        raise BadRequest(f"bad {what} date {text!r}: {exc}") from None


def parse_program_year(text: str) -> str:
    """Validate `2025-2026`; BadRequest otherwise."""
    m = _PY.match(text)
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise BadRequest(f"bad program year {text!r}")
    return text


def parse_query(query: str) -> ReportName:
    """Parse the raw query string; `/` and `~` may come literal or percent-encoded."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params[unquote(key).lower()] = unquote(value)
    if params.get("type", "").upper() != "CSV":
        raise BadRequest("only type=CSV is supported")
    if "report" not in params:
        raise BadRequest("missing report parameter")
    return parse_report_name(params["report"])


def parse_report_name(name: str) -> ReportName:
    """Parse `clubperformance~61~8/31/2025~9/8/2025~2025-2026` and the other forms."""
    tokens = name.strip().split("~")
    report = tokens[0].lower()
    if report not in data.REPORTS:
        raise BadRequest(f"unknown report {tokens[0]!r}")
    district = None
    if report != data.SUMMARY:
        if len(tokens) != 5:
            raise BadRequest(f"{report} takes 5 tokens, got {len(tokens)}")
        district = tokens[1].strip()
        if not _DISTRICT.match(district):
            raise BadRequest(f"bad district {district!r}")
        tokens = tokens[:1] + tokens[2:]
    elif len(tokens) != 4:
        raise BadRequest(f"{report} takes 4 tokens, got {len(tokens)}")
    _, end_text, as_of_text, py = (t.strip() for t in tokens)
    end = _parse_date(end_text, "month-end") if end_text else None
    if as_of_text:
        as_of = _parse_date(as_of_text, "as-of")
    elif end is None:
        as_of = None
    else:
        raise BadRequest("missing as-of date")
    return ReportName(report, district, end, as_of, parse_program_year(py))


def _py_start(py: str) -> int:
    return int(py[:4])


@lru_cache(maxsize=256)
def _full(
    seed: int,
    report: str,
    district: str | None,
    data_month: tuple[int, int],
    as_of: dt.date,
    bom: bool,
) -> bytes:
    header = data.columns(report, _py_start(program_year(*data_month)))
    body_rows = data.rows(report, district, data_month, as_of, seed)
    return render.csv_bytes(header, body_rows, render.footer(data_month, as_of, seed), bom)


def _full_response(
    seed: int, name: ReportName, as_of: dt.date, bom: bool, outcome: str = "full"
) -> ExportResponse:
    data_month = scheduled_data_month(as_of, seed)
    body = _full(seed, name.report, name.district, data_month, as_of, bom)
    return ExportResponse(200, body, CSV_TYPE, outcome, as_of)


def _header_only(name: ReportName, py: str, bom: bool, outcome: str) -> ExportResponse:
    header = data.columns(name.report, _py_start(py))
    return ExportResponse(200, render.csv_bytes(header, bom=bom), CSV_TYPE, outcome)


def _unavailable(
    seed: int,
    today: dt.date,
    path_py: str | None,
    name: ReportName,
    py: str,
    bom: bool,
    earlier: dt.date | None,
    held: Set[dt.date] = NOTHING_HELD,
) -> ExportResponse:
    """One of the four 200 answers for a date that is not available, fixed per request."""
    key = (path_py, name.report, name.district, name.month_end, name.as_of, name.py)
    u = unit(seed, "unavailable", repr(key))
    variant = next(v for limit, v in _VARIANTS if u < limit)
    if variant == OTHER_AS_OF:
        if earlier is not None:
            return _full_response(seed, name, earlier, bom, OTHER_AS_OF)
        variant = HEADER
    if variant == EMPTY:
        return ExportResponse(200, b"", CSV_TYPE, EMPTY)
    footer_date = earlier or (latest_published(name.as_of, seed, held) if name.as_of else None)
    if footer_date is not None and footer_date >= today:
        footer_date = latest_published(today, seed, held)
    if variant == HEADER or footer_date is None:
        return _header_only(name, py, bom, HEADER)
    footer_month = scheduled_data_month(footer_date, seed)
    if footer_month is None:
        return _header_only(name, py, bom, HEADER)
    header = data.columns(name.report, _py_start(py))
    footer = render.footer(footer_month, footer_date, seed)
    return ExportResponse(
        200, render.csv_bytes(header, (), footer, bom), CSV_TYPE, HEADER_FOOTER, footer_date
    )


def resolve(
    path_py: str | None,
    name: ReportName,
    today: dt.date,
    seed: int = DEFAULT_SEED,
    bom: bool = False,
    held: Set[dt.date] = NOTHING_HELD,
) -> ExportResponse:
    """The dashboard's answer to a parsed export request (`path_py` None = the bare path).

    `held` dates are not published yet: they answer as any unpublished date does.
    """
    latest = latest_published(today, seed, held)
    latest_month = scheduled_data_month(latest, seed) if latest else None
    open_py = program_year(*latest_month) if latest_month else None
    if path_py is not None:
        path_py = parse_program_year(path_py)
        if path_py == open_py:
            # The real dashboard fails the open year under /{PY}/; only the bare path serves it.
            return ExportResponse(500, SERVER_ERROR_PAGE.encode(), HTML_TYPE, "open_year")
    serve_py = path_py or open_py or name.py
    if name.district is not None and name.district not in districts_for(serve_py, seed):
        return _header_only(name, serve_py, bom, "unknown_district")
    if name.month_end is None:
        if path_py is None:
            target = latest
        elif open_py is not None and _py_start(path_py) < _py_start(open_py):
            target = last_published_of_program_year(_py_start(path_py), seed, today, held)
        else:
            target = None
        if target is None:
            return _header_only(name, serve_py, bom, HEADER)
        return _full_response(seed, name, target, bom, "latest")
    if name.as_of is None:
        return _header_only(name, serve_py, bom, HEADER)
    requested = (name.month_end.year, name.month_end.month)
    requested_py = program_year(*requested)
    if path_py is None and requested_py != open_py:
        # The bare path ignores the PY token: a closed-year request gets live data.
        if latest is None:
            return _header_only(name, serve_py, bom, HEADER)
        return _full_response(seed, name, latest, bom, "live_year")
    consistent = name.month_end == month_end(*requested) and (
        path_py is None or path_py == requested_py == name.py
    )
    if not consistent:
        return _unavailable(seed, today, path_py, name, serve_py, bom, None, held)
    if data_month_for(name.as_of, seed, today, held) == requested:
        return _full_response(seed, name, name.as_of, bom)
    earlier = nearest_earlier_published(requested, name.as_of, seed, today, held)
    return _unavailable(seed, today, path_py, name, requested_py, bom, earlier, held)


def bad_request(message: str) -> ExportResponse:
    """The 400 answer to a malformed export request."""
    return ExportResponse(400, f"Bad Request: {message}\n".encode(), TEXT_TYPE, "bad_request")
