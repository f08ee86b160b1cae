"""One date's tables built from snapshot files written through the real store: the rows hold what
the files hold, hostile cells become null and are reported, and the Parquet files read back as
written and are replaced atomically."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random

import pandas as pd
import pytest
from conftest import REFRESH, a_failure, an_unavailable, source

from backfill_pipeline.sandbox import data as sandbox_data
from backfill_pipeline.snapshots import (
    PerDistrictFileSnapshotStore,
    compute_borda_rankings,
    detailed_district,
    summary_district,
)
from backfill_pipeline.snapshots.derived import parse_int, parse_pct
from backfill_pipeline.tables import (
    ALIASES,
    CLUB_STATISTICS,
    DISTRICT_STATISTICS,
    UNMAPPED,
    BuildReport,
    club_rows,
    district_rows,
    partition_dir,
    read_table,
    unknown_headers,
    write_date,
)
from backfill_pipeline.tables.headers import CLUB, DISTRICT, DIVISION, SUMMARY

AS_OF = dt.date(2025, 9, 8)
MONTH = (2025, 8)
SUMMARY_ONLY, DETAILED, FAILED, UNAVAILABLE = "42", "61", "09", "109"
HTML = "<b>12</b><script>alert(1)</script>"
HUGE = "9" * 10_000
# Hostile cells planted in the files: (report, district, row index, header, value).
HOSTILE = [
    (SUMMARY, SUMMARY_ONLY, 0, "Active Clubs", HTML),
    (SUMMARY, SUMMARY_ONLY, 0, "Paid Clubs", "1e309"),
    (SUMMARY, SUMMARY_ONLY, 0, "% Club Growth", "1e309%"),
    (SUMMARY, SUMMARY_ONLY, 0, "Payment Base", HUGE),
    (CLUB, DETAILED, 0, "Active Members", HTML),
    (CLUB, DETAILED, 1, "Goals Met", "1e309"),
    (DISTRICT, DETAILED, 2, "Total to Date", HUGE),
]
NEW_HEADER = "Brand New Column"
ONLY_IN_DISTRICT_PERFORMANCE = "98765432"


def _summary_rows() -> dict[str, dict[str, str]]:
    header = sandbox_data.columns(sandbox_data.SUMMARY, 2025)
    rows = sandbox_data.rows(sandbox_data.SUMMARY, None, MONTH, AS_OF)
    return {row[1]: dict(zip(header, row, strict=True)) for row in rows}


def _report_rows(report: str) -> list[dict[str, str]]:
    header = sandbox_data.columns(report, 2025)
    return [dict(zip(header, row, strict=True)) for row in sandbox_data.rows(report, DETAILED, MONTH, AS_OF)]


@pytest.fixture
def world(tmp_path):
    """A date with a summary-only, a detailed, a failed and an unavailable district, the sandbox's
    rows (2025-2026 columns), hostile cells and an unknown column; and the rows as written."""
    summaries = _summary_rows()
    raw = {
        SUMMARY: {SUMMARY_ONLY: [dict(summaries[SUMMARY_ONLY])], DETAILED: [dict(summaries[DETAILED])]},
        CLUB: {DETAILED: _report_rows(sandbox_data.CLUB)},
        DISTRICT: {DETAILED: _report_rows(sandbox_data.DISTRICT)},
        DIVISION: {DETAILED: _report_rows(sandbox_data.DIVISION)},
    }
    raw[SUMMARY][SUMMARY_ONLY][0][NEW_HEADER] = "7"
    extra = dict(raw[DISTRICT][DETAILED][0], Club=ONLY_IN_DISTRICT_PERFORMANCE, **{"Club Name": "Lone"})
    raw[DISTRICT][DETAILED].append(extra)
    for report, district, i, header, value in HOSTILE:
        raw[report][district][i][header] = value
    store = PerDistrictFileSnapshotStore(tmp_path, durable=False)
    snapshots = [
        summary_district(
            district_id=SUMMARY_ONLY,
            as_of=AS_OF,
            data_month=MONTH,
            is_closing_period=True,
            summary_row=raw[SUMMARY][SUMMARY_ONLY][0],
            source=source("districtsummary"),
        ),
        detailed_district(
            district_id=DETAILED,
            as_of=AS_OF,
            data_month=MONTH,
            is_closing_period=True,
            club_rows=raw[CLUB][DETAILED],
            district_rows=raw[DISTRICT][DETAILED],
            division_rows=raw[DIVISION][DETAILED],
            sources=[source("clubperformance")],
            summary_row=raw[SUMMARY][DETAILED][0],
        ),
        a_failure(FAILED, AS_OF),
        an_unavailable(UNAVAILABLE, AS_OF),
    ]
    store.write_districts(AS_OF, snapshots, context=REFRESH)
    store.write_rankings(AS_OF, compute_borda_rankings(list(summaries.values())), data_month=MONTH)
    return store, raw


def _by(frame: pd.DataFrame, column: str) -> dict:
    return {key: row for key, row in zip(frame[column], frame.to_dict("records"), strict=True)}


def _expected(dtype: str, raw: str):
    if dtype == "Int64":
        return parse_int(raw)
    if dtype == "Float64":
        return parse_pct(raw)
    return raw


def _same(value, expected) -> bool:
    if pd.isna(value):
        return expected is None
    return bool(value == expected)


def _hostile(report: str, district: str) -> set[str]:
    return {h for r, d, _, h, _ in HOSTILE if r == report and d == district}


def test_district_rows_hold_what_the_snapshot_files_hold(world):
    store, raw = world
    frame = district_rows(store, AS_OF)
    assert list(frame.columns) == DISTRICT_STATISTICS.names
    assert list(frame["district"]) == [FAILED, SUMMARY_ONLY, DETAILED, UNAVAILABLE]
    rows = _by(frame, "district")
    for district, status, detail in [
        (SUMMARY_ONLY, "success", "summary"),
        (DETAILED, "success", "detailed"),
        (FAILED, "failed", "detailed"),
        (UNAVAILABLE, "unavailable", "detailed"),
    ]:
        assert (rows[district]["status"], rows[district]["detail_level"]) == (status, detail)
        assert rows[district]["as_of"] == AS_OF
        stored = store.read_district(AS_OF, district)
        assert rows[district]["data_month"] == stored.data_month
        assert bool(rows[district]["is_closing_period"]) == stored.is_closing_period
    # Sampled cells of the summary columns equal the raw cells read as the store reads them.
    sampler = random.Random(13)
    summary_aliases = [a for a in ALIASES if a.report == SUMMARY and a.column != "district"]
    for district in (SUMMARY_ONLY, DETAILED):
        row = raw[SUMMARY][district][0]
        present = [
            a for a in summary_aliases if a.header in row and a.header not in _hostile(SUMMARY, district)
        ]
        for alias in sampler.sample(present, 8):
            dtype = DISTRICT_STATISTICS.column(alias.column).dtype
            if dtype == "boolean":
                expected = {"Y": True, "N": False}[row[alias.header]]
            else:
                expected = _expected(dtype, row[alias.header])
            value = rows[district][alias.column]
            assert _same(value, expected), (district, alias.header, value, expected)
    # The detailed totals are the store's derived figures; rankings come from the date's file.
    detailed = store.read_district(AS_OF, DETAILED).figures.detailed
    assert rows[DETAILED]["members"] == detailed.members
    assert rows[DETAILED]["clubs"] == detailed.clubs == len(raw[CLUB][DETAILED])
    assert rows[DETAILED]["clubs_low"] == detailed.clubs_by_status.low
    rankings = {r.district_id: r for r in store.read_rankings(AS_OF).rankings}
    assert rows[DETAILED]["overall_rank"] == rankings[DETAILED].overall_rank
    assert pd.isna(rows[SUMMARY_ONLY]["members"]), "a summary-only district has no detailed totals"
    for district in (FAILED, UNAVAILABLE):
        assert pd.isna(rows[district]["total_ytd_payments"]) and pd.isna(rows[district]["members"])


def test_club_rows_join_the_three_reports_by_club_number(world):
    store, raw = world
    frame = club_rows(store, AS_OF)
    assert list(frame.columns) == CLUB_STATISTICS.names
    assert set(frame["district"]) == {DETAILED}, "only the detailed district has club rows"
    assert set(frame["detail_level"]) == {"detailed"}
    numbers = {r["Club Number"] for r in raw[CLUB][DETAILED]} | {ONLY_IN_DISTRICT_PERFORMANCE}
    assert sorted(frame["club_number"]) == sorted(numbers) == list(frame["club_number"])
    assert all(len(n) == 8 and n.isdigit() for n in frame["club_number"])
    rows = _by(frame, "club_number")
    by_club = {r["Club Number"]: r for r in raw[CLUB][DETAILED]}
    # districtperformance and divisionperformance write `Club` unpadded: the join pads it.
    by_district = {r["Club"].zfill(8): r for r in raw[DISTRICT][DETAILED]}
    by_division = {r["Club"].zfill(8): r for r in raw[DIVISION][DETAILED]}
    assert any(len(r["Club"]) < 8 for r in raw[DISTRICT][DETAILED]), "the sandbox writes unpadded numbers"
    for number in random.Random(7).sample(sorted(by_club), 6):
        row = rows[number]
        club, district, division = by_club[number], by_district[number], by_division[number]
        assert row["club_name"] == club["Club Name"] and row["club_status"] == club["Club Status"]
        assert row["club_distinguished_status"] == club["Club Distinguished Status"]
        assert row["csp"] == (club["CSP"] == "Y")
        assert _same(row["net_growth"], parse_int(club["Net Growth"]))
        assert _same(
            row["level_4s_path_or_dtm"], parse_int(club["Level 4s, Path Completions, or DTM Awards"])
        )
        assert _same(row["dp_october_renewals"], parse_int(district["Oct. Ren."]))
        assert row["charter_suspend_date"] == district["Charter Date/Suspend Date"]
        assert _same(row["may_visit_award"], parse_int(division["May Visit award"]))
        assert _same(row["division_club_base"], parse_int(division["Division Club Base"]))
        assert pd.isna(row["ccs"]) and pd.isna(row["dues_on_time_october_april"]), "not of this era"
    lone = rows[ONLY_IN_DISTRICT_PERFORMANCE]
    assert lone["club_name"] == "Lone" and pd.isna(lone["club_status"]) and pd.isna(lone["membership_base"])
    assert lone["dp_new"] == parse_int(raw[DISTRICT][DETAILED][0]["New"])


def test_hostile_cells_become_null_and_are_reported(world, caplog):
    store, raw = world
    report = BuildReport()
    with caplog.at_level(logging.WARNING, logger="backfill_pipeline.tables"):
        districts = district_rows(store, AS_OF, report)
        clubs = club_rows(store, AS_OF, report)
    assert "district_statistics 2025-09-08: 4 unreadable cells made null" in caplog.text
    assert "club_statistics 2025-09-08: 3 unreadable cells made null" in caplog.text
    summary = _by(districts, "district")[SUMMARY_ONLY]
    for column in ("active_clubs", "paid_clubs", "club_growth_pct", "payment_base"):
        assert pd.isna(summary[column]), column
    first_club = raw[CLUB][DETAILED][0]["Club Number"]
    second_club = raw[CLUB][DETAILED][1]["Club Number"]
    third_club = raw[DISTRICT][DETAILED][2]["Club"].zfill(8)
    club = _by(clubs, "club_number")
    assert pd.isna(club[first_club]["active_members"]) and pd.isna(club[second_club]["goals_met"])
    assert pd.isna(club[third_club]["dp_total_to_date"])
    reported = {(b.district, b.report, b.column, b.club_number) for b in report.bad_values}
    assert reported == {
        (SUMMARY_ONLY, SUMMARY, "active_clubs", None),
        (SUMMARY_ONLY, SUMMARY, "paid_clubs", None),
        (SUMMARY_ONLY, SUMMARY, "club_growth_pct", None),
        (SUMMARY_ONLY, SUMMARY, "payment_base", None),
        (DETAILED, CLUB, "active_members", first_club),
        (DETAILED, CLUB, "goals_met", second_club),
        (DETAILED, DISTRICT, "dp_total_to_date", third_club),
    }
    assert all(len(b.value) <= 80 and b.as_of == AS_OF for b in report.bad_values)
    # A string column keeps HTML as the text it is: nothing in it is executed or parsed.
    assert club[first_club]["club_name"] == raw[CLUB][DETAILED][0]["Club Name"]


def test_unknown_columns_are_kept_in_the_catch_all_and_reported(world):
    store, _ = world
    report = BuildReport()
    frame = district_rows(store, AS_OF, report)
    assert unknown_headers(frame) == {SUMMARY: [NEW_HEADER]}
    assert report.unknown_headers == {SUMMARY: {NEW_HEADER}}
    cell = _by(frame, "district")[SUMMARY_ONLY][UNMAPPED]
    assert json.loads(cell) == {SUMMARY: {NEW_HEADER: "7"}}
    assert pd.isna(_by(frame, "district")[DETAILED][UNMAPPED])
    assert unknown_headers(club_rows(store, AS_OF)) == {}, "the sandbox's 2025-2026 columns are all known"


def test_a_date_without_snapshots_gives_empty_typed_frames(world):
    store, _ = world
    for build, schema in ((district_rows, DISTRICT_STATISTICS), (club_rows, CLUB_STATISTICS)):
        frame = build(store, dt.date(2025, 9, 9))
        assert frame.empty and list(frame.columns) == schema.names
        assert [str(t) for t in frame.dtypes] == [str(c.pandas_dtype) for c in schema.columns]


def test_parquet_reads_back_what_was_written(world, tmp_path):
    store, _ = world
    for name, build in (("district_statistics", district_rows), ("club_statistics", club_rows)):
        frame = build(store, AS_OF)
        path = write_date(tmp_path, name, AS_OF, frame, durable=False)
        assert path == partition_dir(tmp_path, name, AS_OF) / "part-0.parquet"
        assert path.parent.name == "as_of=2025-09-08" and path.parent.parent.name == name
        back = read_table(tmp_path, name, AS_OF, AS_OF)
        pd.testing.assert_frame_equal(back, frame)
        # pandas alone reads the dataset too, as an analyst would.
        plain = pd.read_parquet(path.parent.parent)
        assert len(plain) == len(frame) and set(plain["district"]) == set(frame["district"])
        only = read_table(tmp_path, name, AS_OF, AS_OF, districts=[f"District {DETAILED}"])
        pd.testing.assert_frame_equal(only, frame[frame["district"] == DETAILED].reset_index(drop=True))
        outside = read_table(tmp_path, name, AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=9))
        assert outside.empty and list(outside.columns) == list(frame.columns)


def test_a_rewrite_replaces_the_file_atomically_and_leaves_no_temp_file(world, tmp_path, monkeypatch):
    store, _ = world
    frame = district_rows(store, AS_OF)
    path = write_date(tmp_path, "district_statistics", AS_OF, frame)
    smaller = frame[frame["status"] == "success"].reset_index(drop=True)
    replaced = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    assert write_date(tmp_path, "district_statistics", AS_OF, smaller) == path
    # Written beside the target under a hidden name, then renamed over it.
    [(src, dst)] = replaced
    assert dst == str(path) and os.path.dirname(src) == str(path.parent)
    assert os.path.basename(src).startswith(".")
    assert os.listdir(path.parent) == ["part-0.parquet"]
    pd.testing.assert_frame_equal(read_table(tmp_path, "district_statistics", AS_OF, AS_OF), smaller)

    # A write that dies before its rename leaves the old file whole and no temporary file.
    def dies(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(OSError, match="disk full"):
        write_date(tmp_path, "district_statistics", AS_OF, frame)
    assert os.listdir(path.parent) == ["part-0.parquet"]
    pd.testing.assert_frame_equal(read_table(tmp_path, "district_statistics", AS_OF, AS_OF), smaller)


def test_a_partition_refuses_rows_of_another_date_and_unknown_tables(world, tmp_path):
    store, _ = world
    frame = district_rows(store, AS_OF)
    with pytest.raises(ValueError, match="another date"):
        write_date(tmp_path, "district_statistics", AS_OF + dt.timedelta(days=1), frame)
    with pytest.raises(ValueError, match="unknown table"):
        write_date(tmp_path, "../etc", AS_OF, frame)
    assert not (tmp_path / "tables").exists()


def test_a_range_reads_each_date_once_in_order_and_skips_strays(world, tmp_path):
    store, _ = world
    first = district_rows(store, AS_OF)
    later = AS_OF + dt.timedelta(days=3)
    second = first.assign(as_of=pd.array([later] * len(first), dtype=first["as_of"].dtype))
    second["members"] = second["members"] + 1
    write_date(tmp_path, "district_statistics", AS_OF, first, durable=False)
    write_date(tmp_path, "district_statistics", later, second, durable=False)
    dataset = tmp_path / "tables" / "district_statistics"
    (dataset / "as_of=garbage").mkdir()
    (dataset / "as_of=garbage" / "part-0.parquet").write_bytes(b"not parquet")
    (dataset / f"as_of={later}" / ".part-0.parquet.tmp-1-dead").write_bytes(b"half a file")
    both = read_table(tmp_path, "district_statistics", AS_OF, later)
    pd.testing.assert_frame_equal(both, pd.concat([first, second], ignore_index=True))
    pd.testing.assert_frame_equal(read_table(tmp_path, "district_statistics", later, later), second)
    with pytest.raises(ValueError, match="before"):
        read_table(tmp_path, "district_statistics", later, AS_OF)


def test_both_tables_of_a_date_come_from_one_read_and_equal_the_single_builds(world, monkeypatch):
    from backfill_pipeline.tables import club_rows, date_tables, district_rows

    store, _ = world
    reads = []
    real = PerDistrictFileSnapshotStore.read_snapshot
    monkeypatch.setattr(
        PerDistrictFileSnapshotStore,
        "read_snapshot",
        lambda self, *a, **k: reads.append(a) or real(self, *a, **k),
    )
    both = date_tables(store, AS_OF)
    assert len(reads) == 1
    assert both["district_statistics"].equals(district_rows(store, AS_OF))
    assert both["club_statistics"].equals(club_rows(store, AS_OF))
    assert len(both["club_statistics"]) > 0


def test_large_integers_beside_nulls_read_back_exactly(world, tmp_path):
    store, _ = world
    frame = district_rows(store, AS_OF)
    big = 2**53 + 1  # the first integer a float64 cannot hold
    frame["payment_base"] = pd.array([big, None, big - 2, None], dtype="Int64")
    write_date(tmp_path, DISTRICT_STATISTICS.name, AS_OF, frame, durable=False)
    back = read_table(tmp_path, DISTRICT_STATISTICS.name, AS_OF, AS_OF)
    assert back["payment_base"].tolist()[:1] + back["payment_base"].tolist()[2:3] == [big, big - 2]
    assert back["payment_base"].isna().sum() == 2
