"""Builders shared by the snapshot-store tests (no tests here; imported by the others)."""

from __future__ import annotations

import datetime as dt

from backfill_pipeline.snapshots import (
    DistrictError,
    SourceReport,
    WriteContext,
    detailed_district,
    failed_district,
    summary_district,
    unavailable_district,
)

AS_OF = dt.date(2025, 9, 8)
MONTH = (2025, 8)

REFRESH = WriteContext(
    source="refresh",
    scope="system-wide",
    collection_method="all-districts-csv",
    configured_districts=[],
    run_id="run-refresh",
)
BACKFILL = WriteContext(
    source="backfill",
    scope="targeted",
    collection_method="per-district-csvs",
    configured_districts=["42", "61"],
    run_id="run-backfill",
    backfill_id="bf-1",
)


def summary_row(
    district: str,
    *,
    club_growth: str = "1.00%",
    payment_growth: str = "2.50%",
    active: str = "100",
    distinguished: str = "10",
) -> dict[str, str]:
    """A summary row with the columns of docs/dashboard.md §6."""
    return {
        "REGION": "05",
        "DISTRICT": district,
        "New Payments": "120",
        "April Payments": "0",
        "October Payments": "900",
        "Late Payments": "10",
        "Charter Payments": "20",
        "Total YTD Payments": "1050",
        "Payment Base": "2000",
        "% Payment Growth": payment_growth,
        "Paid Club Base": "98",
        "Paid Clubs": active,
        "% Club Growth": club_growth,
        "Active Clubs": active,
        "Distinguished Clubs": "5",
        "Select Distinguished Clubs": "3",
        "Presidents Distinguished Clubs": "2",
        "Total Distinguished Clubs": distinguished,
        "% Distinguished Clubs": "10.00%",
    }


def club_row(
    number: int,
    *,
    status: str = "Active",
    members: str = "20",
    base: str = "18",
    tier: str = "",
    division: str = "A",
    area: str = "01",
) -> dict[str, str]:
    """A club performance row (2024-2025 columns)."""
    return {
        "District": "42",
        "Division": division,
        "Area": area,
        "Club Number": f"{number:08d}",
        "Club Name": f"Club {number}",
        "Club Status": status,
        "Mem. Base": base,
        "Active Members": members,
        "Goals Met": "3",
        "Club Distinguished Status": tier,
    }


def district_row(number: int, *, new: str = "2", total: str = "30") -> dict[str, str]:
    """A district performance row."""
    return {
        "District": "42",
        "Division": "A",
        "Area": "01",
        "Club": str(number),
        "Club Name": f"Club {number}",
        "New": new,
        "Late Ren.": "1",
        "Oct. Ren.": "20",
        "Apr. Ren.": "0",
        "Total Ren.": "21",
        "Total Chart": "0",
        "Total to Date": total,
        "Distinguished Status": "",
        "Charter Date/Suspend Date": "",
    }


def source(report: str) -> SourceReport:
    """A source report with a plausible URL."""
    return SourceReport(report=report, url=f"http://dash/{report}", sha256="ab" * 32, rows=3)


def a_summary(district: str = "42", as_of: dt.date = AS_OF, **row) -> object:
    """A successful summary-detail district file."""
    return summary_district(
        district_id=district,
        as_of=as_of,
        data_month=MONTH,
        is_closing_period=True,
        summary_row=summary_row(district, **row),
        source=source("districtsummary"),
    )


def a_detailed(district: str = "42", as_of: dt.date = AS_OF, *, with_summary: bool = False):
    """A successful detailed district file."""
    return detailed_district(
        district_id=district,
        as_of=as_of,
        data_month=MONTH,
        is_closing_period=True,
        club_rows=[club_row(1, tier="D"), club_row(2, status="Low", members="8", tier="P")],
        district_rows=[district_row(1), district_row(2)],
        division_rows=[{"District": district, "Division": "A", "Area": "01", "Club": "1"}],
        sources=[
            source("clubperformance"),
            source("districtperformance"),
            source("divisionperformance"),
        ],
        summary_row=summary_row(district) if with_summary else None,
    )


def an_error(district: str = "42", *, report: str = "clubperformance") -> DistrictError:
    """A retryable timeout."""
    return DistrictError.from_exception(
        TimeoutError("read timed out"), district=district, report=report, retryable=True
    )


def a_failure(district: str = "42", as_of: dt.date = AS_OF, *, detail: str = "detailed"):
    """A failed district file."""
    return failed_district(district_id=district, as_of=as_of, detail=detail, errors=[an_error(district)])


def an_unavailable(district: str = "42", as_of: dt.date = AS_OF, *, detail: str = "detailed"):
    """A district the dashboard did not publish."""
    return unavailable_district(
        district_id=district, as_of=as_of, detail=detail, reason="footer as-of differs"
    )
