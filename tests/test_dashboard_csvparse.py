"""CSV parsing: BOM, CRLF, quoting, footers, duplicates and bodies that are not the report."""

import datetime as dt
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill_pipeline.dashboard.csvparse import (
    Footer,
    absurd_number,
    bounded_decimal,
    number_text,
    parse_footer,
    parse_report,
)
from backfill_pipeline.dashboard.errors import (
    AbsurdNumber,
    MaintenancePage,
    NotACsv,
    TruncatedCsv,
    UndecodableBody,
    UnrecognisedBody,
)
from backfill_pipeline.dashboard.reports import Report

MONTH_NAMES = [
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
]


def csv_body(header, rows, footer="Month of Mar, As of 04/05/2026", bom=False) -> bytes:
    lines = [",".join(f'"{h}"' for h in header)]
    lines += [",".join(f'"{v}"' for v in row) for row in rows]
    if footer is not None:
        lines.append(footer)
    text = "\r\n".join(lines) + "\r\n"
    return (("\ufeff" if bom else "") + text).encode()


SUMMARY_HEADER = ["REGION", "DISTRICT", "% Club Growth", "Total YTD Payments"]


def test_summary_rows_footer_and_crlf():
    body = csv_body(SUMMARY_HEADER, [["01", "42", "-7.69%", "2310"], ["02", "F", "N/A", "0"]])
    parsed = parse_report(body, Report.SUMMARY)
    assert parsed.header == SUMMARY_HEADER
    assert parsed.rows == [
        {"REGION": "01", "DISTRICT": "42", "% Club Growth": "-7.69%", "Total YTD Payments": "2310"},
        {"REGION": "02", "DISTRICT": "F", "% Club Growth": "N/A", "Total YTD Payments": "0"},
    ]
    assert parsed.footer == Footer(month=3, as_of=dt.date(2026, 4, 5))
    assert parsed.footer.data_month == (2026, 3)
    assert parsed.available_for(dt.date(2026, 4, 5))
    assert not parsed.available_for(dt.date(2026, 4, 4))


def test_bom_is_stripped():
    parsed = parse_report(csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"]], bom=True), Report.SUMMARY)
    assert parsed.header[0] == "REGION"


def test_quoted_fields_with_commas_quotes_and_unicode():
    header = ["District", "Division", "Area", "Club Number", "Club Name"]
    body = (
        '"District","Division","Area","Club Number","Club Name"\r\n'
        '"61","A","01","00001666","Club Élan, ""Ñandú"" Speakers"\r\n'
        "Month of Aug, As of 09/08/2025\r\n"
    ).encode()
    parsed = parse_report(body, Report.CLUB)
    assert parsed.header == header
    assert parsed.rows[0]["Club Name"] == 'Club Élan, "Ñandú" Speakers'
    assert parsed.rows[0]["Club Number"] == "00001666"


def test_duplicate_club_rows_keep_the_last():
    header = ["District", "Club Number", "Club Name", "Active Members"]
    rows = [["61", "00001666", "A", "10"], ["61", "00002000", "B", "5"], ["61", "00001666", "A", "12"]]
    parsed = parse_report(csv_body(header, rows), Report.CLUB)
    assert [r["Club Number"] for r in parsed.rows] == ["00002000", "00001666"]
    assert parsed.rows[-1]["Active Members"] == "12"
    assert parsed.duplicates_dropped == 1


def test_duplicates_detected_across_padding_in_district_performance():
    header = ["District", "Club", "Club Name"]
    parsed = parse_report(csv_body(header, [["61", "9905", "X"], ["61", "00009905", "X2"]]), Report.DISTRICT)
    assert len(parsed.rows) == 1 and parsed.rows[0]["Club Name"] == "X2"


@pytest.mark.parametrize(
    "body",
    [b"", b"\r\n", csv_body(SUMMARY_HEADER, [], footer=None), csv_body(SUMMARY_HEADER, [])],
    ids=["empty", "blank-line", "header-only", "header-and-footer"],
)
def test_unavailable_bodies_have_no_rows(body):
    parsed = parse_report(body, Report.SUMMARY)
    assert parsed.rows == []
    assert not parsed.available_for(dt.date(2026, 4, 5))


def test_other_as_of_in_footer_is_unavailable():
    body = csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"]], footer="Month of Mar, As of 04/03/2026")
    parsed = parse_report(body, Report.SUMMARY)
    assert parsed.rows and not parsed.available_for(dt.date(2026, 4, 5))


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Error</body></html>",
        b"\r\n  <html><head><title>Runtime Error</title></head></html>",
    ],
)
def test_html_is_the_maintenance_page_and_retryable(body):
    # The dashboard's "being updated" page comes with status 200: it goes away (docs/dashboard.md §7).
    with pytest.raises(MaintenancePage, match="HTML") as info:
        parse_report(body, Report.SUMMARY)
    assert info.value.retryable


def test_csv_without_the_key_column_is_not_the_report_and_permanent():
    body = csv_body(["District", "Club Number"], [["61", "00001666"]])
    with pytest.raises(NotACsv, match="DISTRICT") as info:
        parse_report(body, Report.SUMMARY)
    assert not info.value.retryable and "Club Number" in str(info.value)


def test_truncated_mid_row_is_an_error_not_zero_rows():
    body = csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"], ["02", "61", "5%", "9"]])
    cut = body[: body.index(b'"61"') + 2]
    with pytest.raises(TruncatedCsv):
        parse_report(cut, Report.SUMMARY)


def test_rows_without_footer_are_truncated():
    body = csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"]], footer=None)
    with pytest.raises(TruncatedCsv, match="no footer"):
        parse_report(body, Report.SUMMARY)


def test_invalid_utf8_is_retryable_naming_the_byte():
    # Unsure what a body in another encoding means, the parser prefers "try again later".
    with pytest.raises(UndecodableBody, match="UTF-8") as info:
        parse_report(b'"DISTRICT"\r\n"\xff\xfe"\r\n', Report.SUMMARY)
    assert info.value.retryable and "byte 13" in str(info.value)


@pytest.mark.parametrize(
    ("line", "month", "as_of"),
    [
        ("Month of Mar, As of 04/05/2026", 3, dt.date(2026, 4, 5)),
        ("Month of March, As of 04/05/2026", 3, dt.date(2026, 4, 5)),
        ("MONTH OF SEPT, AS OF 10/02/2025", 9, dt.date(2025, 10, 2)),
        ("month of dec,as of 1/09/2026", 12, dt.date(2026, 1, 9)),
        ('"Month of Jun","As of 07/15/2025"', 6, dt.date(2025, 7, 15)),
    ],
)
def test_footer_forms(line, month, as_of):
    assert parse_footer(line) == Footer(month=month, as_of=as_of)


@pytest.mark.parametrize(
    "line",
    ["Month of Foo, As of 04/05/2026", "As of 04/05/2026", '"42","x"', "Month of Mar, As of 13/45/2026"],
)
def test_not_footers(line):
    assert parse_footer(line) is None


def test_december_data_read_in_january_belongs_to_the_previous_year():
    assert Footer(month=12, as_of=dt.date(2026, 1, 9)).data_month == (2025, 12)
    assert Footer(month=1, as_of=dt.date(2026, 1, 20)).data_month == (2026, 1)
    assert Footer(month=6, as_of=dt.date(2025, 7, 12)).data_month == (2025, 6)


@given(
    st.dates(dt.date(2008, 7, 1), dt.date(2100, 12, 31)),
    st.integers(0, 11),
    st.booleans(),
    st.sampled_from([str.lower, str.upper, str.title]),
)
def test_footer_round_trip(as_of, month_index, full, case):
    name = MONTH_NAMES[month_index] if full else MONTH_NAMES[month_index][:3]
    line = case(f"Month of {name}, As of {as_of:%m/%d/%Y}")
    assert parse_footer(line) == Footer(month=month_index + 1, as_of=as_of)


# -- what is retryable, what is not (docs/dashboard.md §7) -------------------------------------


def test_every_truncation_is_retryable():
    body = csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"], ["02", "61", "5%", "9"]])
    for cut in (body[: body.index(b'"61"') + 2], csv_body(SUMMARY_HEADER, [["01", "42", "0%", "1"]], None)):
        with pytest.raises(TruncatedCsv) as info:
            parse_report(cut, Report.SUMMARY)
        assert info.value.retryable and not isinstance(info.value, NotACsv)


def test_a_body_cut_inside_a_character_is_truncated():
    body = csv_body(["DISTRICT", "Club Name"], [["42", "Café"]], footer=None)
    cut = body[: body.index("é".encode()) + 1]
    with pytest.raises(TruncatedCsv, match="inside a UTF-8 character") as info:
        parse_report(cut, Report.SUMMARY)
    assert info.value.retryable


def test_one_line_of_text_is_no_csv_table_and_retryable():
    with pytest.raises(UnrecognisedBody, match="Service Unavailable") as info:
        parse_report(b"Service Unavailable\r\n", Report.SUMMARY)
    assert info.value.retryable


# -- absurd numbers: refused in bounded time, before anything is written -----------------------

ABSURD = ["1e30000000", "1e400%", "-1e999999999", "9" * 5000, "1" + "0" * 31, "0." + "0" * 40 + "1", "1E-31"]
SANE = ["0", "-7.69%", "12.50%", "00001666", "1234567", "1,234", "N/A", "", "1e3", "Club 1e400", "9" * 30]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ABSURD, ids=lambda v: v[:16])
def test_an_absurd_number_is_refused_within_a_second_naming_row_column_and_value(value):
    rows = [["01", "42", "0%", "1"], ["02", "61", value, "9"]]
    started = time.monotonic()
    with pytest.raises(AbsurdNumber) as info:
        parse_report(csv_body(SUMMARY_HEADER, rows), Report.SUMMARY)
    assert time.monotonic() - started < 1.0
    error = info.value
    assert not error.retryable and error.row == 3 and error.column == "% Club Growth"
    assert error.value == value[:200]
    message = str(error)
    assert "row 3" in message and "'% Club Growth'" in message and value[:20] in message
    assert len(message) < 300  # the value is quoted cut short


@pytest.mark.parametrize("value", SANE)
def test_sane_numbers_and_text_are_not_absurd(value):
    assert not absurd_number(value)
    parse_report(csv_body(SUMMARY_HEADER, [["01", "42", value, "1"]]), Report.SUMMARY)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ABSURD, ids=lambda v: v[:16])
def test_bounded_decimal_refuses_absurd_numbers_quickly(value):
    started = time.monotonic()
    assert absurd_number(value) and bounded_decimal(number_text(value)) is None
    assert time.monotonic() - started < 1.0
