"""The four reports, their names and export URLs (docs/dashboard.md §2)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from .calendar import month_end, program_year, url_date


class Report(StrEnum):
    """A dashboard export; the value is the report-name prefix."""

    SUMMARY = "districtsummary"
    DISTRICT = "districtperformance"
    DIVISION = "divisionperformance"
    CLUB = "clubperformance"

    @property
    def per_district(self) -> bool:
        return self is not Report.SUMMARY

    @property
    def key_column(self) -> str:
        """A column every real CSV of this report has; without it the body is not this report."""
        return {
            Report.SUMMARY: "DISTRICT",
            Report.DISTRICT: "Club",
            Report.DIVISION: "Division",
            Report.CLUB: "Club Number",
        }[self]


DISTRICT_REPORTS = (Report.DISTRICT, Report.DIVISION, Report.CLUB)


def report_name(
    report: Report, data_month: tuple[int, int], as_of: dt.date, district: str | None = None
) -> str:
    """`districtsummary~7/31/2025~8/5/2025~2025-2026` and the per-district forms."""
    year, month = data_month
    tokens = [report.value]
    if report.per_district:
        if not district:
            raise ValueError(f"{report.value} needs a district id")
        tokens.append(district)
    elif district is not None:
        raise ValueError("the summary report takes no district id")
    tokens += [url_date(month_end(year, month)), url_date(as_of), program_year(year, month)]
    return "~".join(tokens)


def export_url(base_url: str, name: str, py: str | None) -> str:
    """The literal export URL; `py=None` gives the bare path (open year fallback only)."""
    base = base_url.rstrip("/")
    prefix = f"{base}/{py}" if py else base
    # Built as a literal string: `/` and `~` must reach the server unencoded.
    return f"{prefix}/export.aspx?type=CSV&report={name}"
