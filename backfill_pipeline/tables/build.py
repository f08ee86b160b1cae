"""One as-of date's rows of the two tables, from the date's snapshot files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..district_ids import district_sort_key
from ..snapshots.models import DetailedFigures, DistrictSnapshot, Rankings
from ..snapshots.store import PerDistrictFileSnapshotStore
from .headers import CLUB, DISTRICT, DIVISION, SUMMARY, MappedRow, map_row, unmapped_json
from .schema import CLUB_STATISTICS, DISTRICT_STATISTICS, UNMAPPED, Table
from .values import BadValue, BuildReport, read_cell

Record = dict[str, Any]

# Filled from the snapshot, not from a cell: the file names its district, the join its club.
_KEYS = frozenset({"district", "club_number"})
_CLUB_NUMBER_DIGITS = 8
_DTYPES = {t.name: {c.name: c.dtype for c in t.columns} for t in (DISTRICT_STATISTICS, CLUB_STATISTICS)}


def district_rows(
    store: PerDistrictFileSnapshotStore, as_of: dt.date, report: BuildReport | None = None
) -> pd.DataFrame:
    """district_statistics of one date: a row per district file; empty when the date has none.
    Unreadable cells and unknown headers are logged, and added to `report` when given."""
    return date_tables(store, as_of, report)[DISTRICT_STATISTICS.name]


def club_rows(
    store: PerDistrictFileSnapshotStore, as_of: dt.date, report: BuildReport | None = None
) -> pd.DataFrame:
    """club_statistics of one date: a row per club of each detailed district; empty when none.
    Unreadable cells and unknown headers are logged, and added to `report` when given."""
    return date_tables(store, as_of, report)[CLUB_STATISTICS.name]


def date_tables(
    store: PerDistrictFileSnapshotStore, as_of: dt.date, report: BuildReport | None = None
) -> dict[str, pd.DataFrame]:
    """Both tables of one date by name, from one read of its snapshot files; each empty when the
    date has none. Unreadable cells and unknown headers are logged per table, and added to
    `report` when given."""
    built = build_date(store, as_of)
    if report is not None:
        for found in built.reports.values():
            report.extend(found)
    return built.frames


@dataclass(frozen=True)
class DateBuild:
    """Both tables of one date, what each build met, and whether the date has a snapshot."""

    as_of: dt.date
    frames: dict[str, pd.DataFrame]
    reports: dict[str, BuildReport]
    has_snapshot: bool


def build_date(store: PerDistrictFileSnapshotStore, as_of: dt.date) -> DateBuild:
    """Both tables of one date from one read of its snapshot files, with a report per table
    (logged too); empty frames when the date has no snapshot."""
    snapshot = store.read_snapshot(as_of)
    names = (DISTRICT_STATISTICS.name, CLUB_STATISTICS.name)
    reports = {name: BuildReport() for name in names}
    if snapshot is None:
        frames = {t.name: t.empty_frame() for t in (DISTRICT_STATISTICS, CLUB_STATISTICS)}
        return DateBuild(as_of, frames, reports, has_snapshot=False)
    frames = {
        DISTRICT_STATISTICS.name: district_frame(
            snapshot.districts.values(), snapshot.rankings, reports[DISTRICT_STATISTICS.name]
        ),
        CLUB_STATISTICS.name: club_frame(snapshot.districts.values(), reports[CLUB_STATISTICS.name]),
    }
    for name in names:
        reports[name].log(name, as_of)
    return DateBuild(as_of, frames, reports, has_snapshot=True)


def district_frame(
    snapshots: Iterable[DistrictSnapshot],
    rankings: Rankings | None = None,
    report: BuildReport | None = None,
) -> pd.DataFrame:
    """district_statistics rows of district files (of one date)."""
    report = report if report is not None else BuildReport()
    ranks = {r.district_id: r for r in rankings.rankings} if rankings is not None else {}
    records = []
    for snap in _in_order(snapshots):
        record = _common(snap)
        record["status"] = snap.status
        if snap.status == "success" and snap.raw.summary is not None:
            mapped = map_row(SUMMARY, snap.raw.summary)
            _fill(record, DISTRICT_STATISTICS, SUMMARY, mapped, report, snap)
            report.unknown(SUMMARY, mapped.unmapped)
            record[UNMAPPED] = unmapped_json({SUMMARY: mapped.unmapped})
        rank = ranks.get(snap.district_id)
        if rank is not None:
            record["overall_rank"] = rank.overall_rank
            record["aggregate_score"] = rank.aggregate_score
        if snap.status == "success" and snap.figures.detailed is not None:
            record.update(_detailed_totals(snap.figures.detailed))
        records.append(record)
    return _frame(DISTRICT_STATISTICS, records)


def club_frame(snapshots: Iterable[DistrictSnapshot], report: BuildReport | None = None) -> pd.DataFrame:
    """club_statistics rows of the successful detailed files among `snapshots`: the three reports
    joined by club number (leading zeros ignored, padded to 8 digits)."""
    report = report if report is not None else BuildReport()
    records = []
    for snap in _in_order(snapshots):
        if snap.status != "success" or snap.detail != "detailed":
            continue
        records += _club_records(snap, report)
    return _frame(CLUB_STATISTICS, records)


def _in_order(snapshots: Iterable[DistrictSnapshot]) -> list[DistrictSnapshot]:
    return sorted(snapshots, key=lambda s: district_sort_key(s.district_id))


def _common(snap: DistrictSnapshot) -> Record:
    return {
        "as_of": snap.as_of_date,
        "district": snap.district_id,
        "data_month": snap.data_month,
        "is_closing_period": snap.is_closing_period,
        "detail_level": snap.detail,
        "collected_at": snap.collected_at,
    }


def _fill(
    record: Record,
    table: Table,
    report_name: str,
    mapped: MappedRow,
    report: BuildReport,
    snap: DistrictSnapshot,
    club_number: str | None = None,
) -> None:
    # The first report that has a value for a shared column (club name, division, area) wins.
    for column, raw in mapped.values.items():
        if column in _KEYS or record.get(column) not in (None, ""):
            continue
        value, readable = read_cell(_DTYPES[table.name][column], raw)
        if not readable:
            report.bad(BadValue(snap.as_of_date, snap.district_id, report_name, column, raw, club_number))
        record[column] = value


def _detailed_totals(detailed: DetailedFigures) -> Record:
    status, tiers, pay = detailed.clubs_by_status, detailed.distinguished_by_tier, detailed.payments
    return {
        "clubs": detailed.clubs,
        "divisions": detailed.divisions,
        "areas": detailed.areas,
        "members": detailed.members,
        "member_base": detailed.member_base,
        "clubs_active": status.active,
        "clubs_low": status.low,
        "clubs_suspended": status.suspended,
        "clubs_ineligible": status.ineligible,
        "clubs_other_status": sum(status.other.values()),
        "clubs_tier_distinguished": tiers.distinguished,
        "clubs_tier_select": tiers.select,
        "clubs_tier_presidents": tiers.presidents,
        "clubs_tier_unknown": sum(tiers.unknown.values()),
        "clubs_tier_none": tiers.none,
        "dp_new": pay.new,
        "dp_late_renewals": pay.late_renewals,
        "dp_october_renewals": pay.october_renewals,
        "dp_april_renewals": pay.april_renewals,
        "dp_total_renewals": pay.total_renewals,
        "dp_total_charter": pay.charter,
        "dp_total_to_date": pay.total_to_date,
    }


def club_number(raw: str | None) -> str | None:
    """`9905` and `00009905` -> `00009905`; None for anything that is not a club number."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return digits.zfill(_CLUB_NUMBER_DIGITS) if len(digits) <= _CLUB_NUMBER_DIGITS else None


def _joined(snap: DistrictSnapshot, report: BuildReport) -> dict[object, dict[str, MappedRow]]:
    """The three reports' rows of each club, by padded club number."""
    clubs: dict[object, dict[str, MappedRow]] = {}
    sources = (
        (CLUB, snap.raw.club_performance),
        (DISTRICT, snap.raw.district_performance),
        (DIVISION, snap.raw.division_performance),
    )
    for report_name, rows in sources:
        for n, row in enumerate(rows):
            mapped = map_row(report_name, row)
            raw_number = mapped.values.get("club_number")
            key: object = club_number(raw_number)
            if key is None:
                # Not a club number: the row stands alone rather than merging with others.
                key = (report_name, n)
                report.bad(
                    BadValue(snap.as_of_date, snap.district_id, report_name, "club_number", raw_number or "")
                )
            # Duplicate rows of a club: the last one wins (docs/dashboard.md §3).
            clubs.setdefault(key, {})[report_name] = mapped
    return clubs


def _club_records(snap: DistrictSnapshot, report: BuildReport) -> list[Record]:
    records = []
    for key, by_report in _joined(snap, report).items():
        number = key if isinstance(key, str) else None
        record = _common(snap)
        record["club_number"] = number
        unmapped = {}
        for report_name in (CLUB, DISTRICT, DIVISION):
            mapped = by_report.get(report_name)
            if mapped is not None:
                _fill(record, CLUB_STATISTICS, report_name, mapped, report, snap, number)
                report.unknown(report_name, mapped.unmapped)
                unmapped[report_name] = mapped.unmapped
        record[UNMAPPED] = unmapped_json(unmapped)
        records.append(record)
    records.sort(key=lambda r: r["club_number"] or "~")
    return records


def _frame(table: Table, records: list[Record]) -> pd.DataFrame:
    return pd.DataFrame(
        {c.name: pd.array([r.get(c.name) for r in records], dtype=c.pandas_dtype) for c in table.columns}
    )
