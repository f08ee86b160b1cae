"""Every era's raw header names -> the tables' stable columns, by name, never by position
(docs/dashboard.md §6). A header no alias knows is never dropped: it goes to the catch-all.

Sources of the aliases (`Alias.source`): `docs` is docs/dashboard.md §6, whose 2024-2025 and
2025-2026 layouts are known facts; `sandbox` is sandbox/data.py, whose older era boundaries are
guesses (docs/dashboard.md §9); `docs+sandbox`: the header is in the docs, its years are the
sandbox's; `derived`: the spare spellings snapshots/derived.py accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from .schema import UNMAPPED

SUMMARY = "districtsummary"
CLUB = "clubperformance"
DISTRICT = "districtperformance"
DIVISION = "divisionperformance"
REPORTS = (SUMMARY, CLUB, DISTRICT, DIVISION)


@dataclass(frozen=True)
class Alias:
    """One raw header of one report and the stable column it fills; `eras`: the program years
    that write it, `source`: who says so."""

    report: str
    header: str
    column: str
    eras: str = "all"
    source: str = "docs"


def _all(
    report: str, pairs: Iterable[tuple[str, str]], eras: str = "all", source: str = "docs"
) -> tuple[Alias, ...]:
    return tuple(Alias(report, header, column, eras, source) for header, column in pairs)


ALIASES: tuple[Alias, ...] = (
    *_all(
        SUMMARY,
        [
            ("REGION", "region"),
            ("DISTRICT", "district"),
            ("New Payments", "new_payments"),
            ("April Payments", "april_payments"),
            ("October Payments", "october_payments"),
            ("Late Payments", "late_payments"),
            ("Charter Payments", "charter_payments"),
            ("Total YTD Payments", "total_ytd_payments"),
            ("Payment Base", "payment_base"),
            ("% Payment Growth", "payment_growth_pct"),
            ("Paid Club Base", "paid_club_base"),
            ("Paid Clubs", "paid_clubs"),
            ("% Club Growth", "club_growth_pct"),
            ("Active Clubs", "active_clubs"),
            ("Distinguished Clubs", "distinguished_clubs"),
            ("Select Distinguished Clubs", "select_distinguished_clubs"),
            ("Presidents Distinguished Clubs", "presidents_distinguished_clubs"),
            ("Total Distinguished Clubs", "total_distinguished_clubs"),
            ("% Distinguished Clubs", "distinguished_clubs_pct"),
        ],
    ),
    *_all(SUMMARY, [("DSP", "dsp_met"), ("Training", "training_met")], "2012-2013 on", "docs+sandbox"),
    *_all(
        SUMMARY,
        [("Market Analysis", "market_analysis_met"), ("Communication Plan", "communication_plan_met")],
        "2016-2017 on",
        "docs+sandbox",
    ),
    Alias(SUMMARY, "Region Advisor Visit", "region_advisor_visit_met", "2020-2021 on", "docs+sandbox"),
    Alias(SUMMARY, "Smedley Distinguished Clubs", "smedley_distinguished_clubs", "2025-2026 on"),
    *_all(
        CLUB,
        [
            ("District", "district"),
            ("Division", "division"),
            ("Area", "area"),
            ("Club Number", "club_number"),
            ("Club Name", "club_name"),
            ("Club Status", "club_status"),
            ("Mem. Base", "membership_base"),
            ("Active Members", "active_members"),
            ("Goals Met", "goals_met"),
            ("New Members", "new_members"),
            ("Add. New Members", "add_new_members"),
            ("Off. Trained Round 1", "officers_trained_round_1"),
            ("Off. Trained Round 2", "officers_trained_round_2"),
            ("Off. List On Time", "officer_list_on_time"),
            ("Club Distinguished Status", "club_distinguished_status"),
        ],
    ),
    *_all(
        CLUB,
        [("Level 1s", "level_1s"), ("Level 2s", "level_2s"), ("Add. Level 2s", "add_level_2s")],
        "2023-2024 on (`Level 1s`: Pathways, 2018-2019 on)",
        "docs+sandbox",
    ),
    Alias(CLUB, "Level 3s", "level_3s", "Pathways (2018-2019 on)", "docs+sandbox"),
    *_all(
        CLUB,
        [("Level 2s or EOM", "level_2s"), ("Add. Level 2s or EOM", "add_level_2s")],
        "early Pathways (2018-2019 to 2022-2023)",
        "docs+sandbox",
    ),
    *_all(
        CLUB,
        [("Level 4s", "level_4s"), ("Level 5s", "level_5s")],
        "early Pathways (2018-2019 to 2022-2023)",
        "docs+sandbox",
    ),
    *_all(
        CLUB,
        [
            ("Level 4s, Level 5s, or DTM award", "level_4s_path_or_dtm"),
            ("Add. Level 4s, Level 5s, or DTM award", "add_level_4s_path_or_dtm"),
        ],
        "2023-2024 to 2024-2025",
        "docs+sandbox",
    ),
    *_all(
        CLUB,
        [
            ("Level 4s, Path Completions, or DTM Awards", "level_4s_path_or_dtm"),
            ("Add. Level 4s, Path Completions, or DTM award", "add_level_4s_path_or_dtm"),
        ],
        "2025-2026 on",
    ),
    *_all(
        CLUB,
        [
            ("CCs", "ccs"),
            ("Add. CCs", "add_ccs"),
            ("ACs", "acs"),
            ("Add. ACs", "add_acs"),
            ("CL/AL/DTMs", "cl_al_dtms"),
            ("Add. CL/AL/DTMs", "add_cl_al_dtms"),
        ],
        "before Pathways (to 2017-2018)",
        "docs+sandbox",
    ),
    *_all(
        CLUB,
        [("Mem. dues on time Oct", "dues_on_time_october"), ("Mem. dues on time Apr", "dues_on_time_april")],
        "2023-2024 on",
        "docs+sandbox",
    ),
    Alias(CLUB, "Mem. dues on time Oct & Apr", "dues_on_time_october_april", "to 2022-2023", "docs+sandbox"),
    *_all(CLUB, [("CSP", "csp"), ("Net Growth", "net_growth")], "2025-2026 on"),
    *_all(
        DISTRICT,
        [
            ("District", "district"),
            ("Division", "division"),
            ("Area", "area"),
            ("Club", "club_number"),
            ("Club Name", "club_name"),
            ("New", "dp_new"),
            ("Late Ren.", "dp_late_renewals"),
            ("Oct. Ren.", "dp_october_renewals"),
            ("Apr. Ren.", "dp_april_renewals"),
            ("Total Ren.", "dp_total_renewals"),
            ("Total Chart", "dp_total_charter"),
            ("Total to Date", "dp_total_to_date"),
            ("Distinguished Status", "dp_distinguished_status"),
            ("Charter Date/Suspend Date", "charter_suspend_date"),
        ],
    ),
    *_all(
        DISTRICT,
        [
            ("Late Ren", "dp_late_renewals"),
            ("Oct Ren.", "dp_october_renewals"),
            ("Apr Ren.", "dp_april_renewals"),
            ("Total Ren", "dp_total_renewals"),
            ("Charter", "dp_total_charter"),
        ],
        "never seen",
        "derived",
    ),
    *_all(
        DIVISION,
        [
            ("District", "district"),
            ("Division", "division"),
            ("Area", "area"),
            ("Club", "club_number"),
            ("Club Name", "club_name"),
            ("Division Club Base", "division_club_base"),
            ("Area Club Base", "area_club_base"),
            ("Area Paid Club Goal for Dist.", "area_paid_club_goal_distinguished"),
            ("Area Paid Club Goal for Select Dist.", "area_paid_club_goal_select"),
            ("Area Paid Club Goal for Pres. Dist.", "area_paid_club_goal_presidents"),
            ("Total Paid Area Clubs", "area_paid_clubs"),
            ("Area Dist. Club Goal for Dist.", "area_distinguished_club_goal_distinguished"),
            ("Area Dist. Club Goal for Select Dist.", "area_distinguished_club_goal_select"),
            ("Area Dist. Club Goal for Pres. Dist.", "area_distinguished_club_goal_presidents"),
            ("Total Dist. Area Clubs", "area_distinguished_clubs"),
            ("Distinguished Area", "distinguished_area"),
            ("October Renewals", "dv_october_renewals"),
            ("April Renewals", "dv_april_renewals"),
            ("Nov Visit award", "nov_visit_award"),
            ("May Visit award", "may_visit_award"),
            ("Membership to date", "membership_to_date"),
            ("Club Goals Met", "dv_club_goals_met"),
            ("Distinguished Club", "dv_distinguished_club"),
            ("Total Paid Division Clubs", "division_paid_clubs"),
        ],
    ),
    Alias(DIVISION, "May visit award", "may_visit_award", "2013-2014 to 2019-2020", "docs+sandbox"),
)


def normalise_header(header: str) -> str:
    """A header for the lenient lookup: whitespace runs collapsed, case folded."""
    return " ".join(header.split()).casefold()


_EXACT: dict[str, dict[str, str]] = {r: {} for r in REPORTS}
_LOOSE: dict[str, dict[str, str]] = {r: {} for r in REPORTS}
for _alias in ALIASES:
    _EXACT[_alias.report][_alias.header] = _alias.column
    _LOOSE[_alias.report][normalise_header(_alias.header)] = _alias.column


def stable_column(report: str, header: str) -> str | None:
    """The stable column a raw header of `report` fills, or None when no era knows it."""
    column = _EXACT[report].get(header)
    if column is None:
        # A case or spacing variant of a known header (`May visit award`) is the same column.
        column = _LOOSE[report].get(normalise_header(header))
    return column


@dataclass
class MappedRow:
    """One raw row by stable column, and the cells no alias knows, by their raw header."""

    values: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)


def map_row(report: str, row: Mapping[str, str]) -> MappedRow:
    """A raw row's cells by stable column; unknown headers (and a second header of a column
    already filled) are kept in `unmapped`, never dropped."""
    mapped = MappedRow()
    for header, value in row.items():
        column = stable_column(report, header)
        if column is None or column in mapped.values:
            mapped.unmapped[header] = value
        else:
            mapped.values[column] = value
    return mapped


def unmapped_json(by_report: Mapping[str, Mapping[str, str]]) -> str | None:
    """The catch-all cell: JSON {report: {header: raw value}}, None when nothing is unmapped."""
    kept = {report: dict(cells) for report, cells in by_report.items() if cells}
    return json.dumps(kept, ensure_ascii=False, sort_keys=True) if kept else None


def unknown_headers(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The raw headers a table's catch-all column holds, by report, sorted."""
    seen: dict[str, set[str]] = {}
    if UNMAPPED not in frame.columns:
        return {}
    for cell in frame[UNMAPPED].dropna().unique():
        for report, cells in json.loads(cell).items():
            seen.setdefault(report, set()).update(cells)
    return {report: sorted(headers) for report, headers in sorted(seen.items())}
