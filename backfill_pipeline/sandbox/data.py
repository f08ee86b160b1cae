"""Deterministic rows of the four reports, with the columns of each program year."""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache

from .calendar import program_year
from .population import Club, clubs_in_program_year, district_first_year, districts_for, region_of
from .publication import DEFAULT_SEED, rng_for, unit

SUMMARY = "districtsummary"
DISTRICT = "districtperformance"
DIVISION = "divisionperformance"
CLUB = "clubperformance"
REPORTS = (SUMMARY, DISTRICT, DIVISION, CLUB)

_PAYMENTS = ["New Payments", "April Payments", "October Payments", "Late Payments", "Charter Payments"]


def summary_columns(py_start: int) -> list[str]:
    """districtsummary columns of a program year (Y/N goals grew over the years)."""
    yes_no = []
    if py_start >= 2012:
        yes_no += ["DSP", "Training"]
    if py_start >= 2016:
        yes_no += ["Market Analysis", "Communication Plan"]
    if py_start >= 2020:
        yes_no += ["Region Advisor Visit"]
    cols = [
        "REGION",
        "DISTRICT",
        *yes_no,
        *_PAYMENTS,
        "Total YTD Payments",
        "Payment Base",
        "% Payment Growth",
        "Paid Club Base",
        "Paid Clubs",
        "% Club Growth",
        "Active Clubs",
        "Distinguished Clubs",
        "Select Distinguished Clubs",
        "Presidents Distinguished Clubs",
    ]
    if py_start >= 2025:
        cols.append("Smedley Distinguished Clubs")
    return cols + ["Total Distinguished Clubs", "% Distinguished Clubs"]


def _education_columns(py_start: int) -> list[str]:
    if py_start < 2018:
        return ["CCs", "Add. CCs", "ACs", "Add. ACs", "CL/AL/DTMs", "Add. CL/AL/DTMs"]
    if py_start < 2023:
        return ["Level 1s", "Level 2s or EOM", "Add. Level 2s or EOM", "Level 3s", "Level 4s", "Level 5s"]
    if py_start < 2025:
        return [
            "Level 1s",
            "Level 2s",
            "Add. Level 2s",
            "Level 3s",
            "Level 4s, Level 5s, or DTM award",
            "Add. Level 4s, Level 5s, or DTM award",
        ]
    return [
        "Level 1s",
        "Level 2s",
        "Add. Level 2s",
        "Level 3s",
        "Level 4s, Path Completions, or DTM Awards",
        "Add. Level 4s, Path Completions, or DTM award",
    ]


# Goal thresholds of the six education columns, pre-Pathways and Pathways.
_EDU_GOALS_CC = (2, 2, 1, 1, 1, 1)
_EDU_GOALS_PATHWAYS = (4, 2, 2, 2, 1, 1)


def club_columns(py_start: int) -> list[str]:
    """clubperformance columns of a program year."""
    new = py_start >= 2025
    cols = ["District", "Division", "Area", "Club Number", "Club Name", "Club Status"]
    if new:
        cols.append("CSP")
    cols += ["Mem. Base", "Active Members"]
    if new:
        cols.append("Net Growth")
    cols += [
        "Goals Met",
        *_education_columns(py_start),
        "New Members",
        "Add. New Members",
        "Off. Trained Round 1",
        "Off. Trained Round 2",
    ]
    if py_start < 2023:
        cols.append("Mem. dues on time Oct & Apr")
    else:
        cols += ["Mem. dues on time Oct", "Mem. dues on time Apr"]
    return cols + ["Off. List On Time", "Club Distinguished Status"]


DISTRICT_COLUMNS = [
    "District",
    "Division",
    "Area",
    "Club",
    "Club Name",
    "New",
    "Late Ren.",
    "Oct. Ren.",
    "Apr. Ren.",
    "Total Ren.",
    "Total Chart",
    "Total to Date",
    "Distinguished Status",
    "Charter Date/Suspend Date",
]


def division_columns(py_start: int) -> list[str]:
    """divisionperformance columns; `May visit award` is spelled in lower case in 2013-2019."""
    may = "May visit award" if 2013 <= py_start <= 2019 else "May Visit award"
    return [
        "District",
        "Division",
        "Area",
        "Club",
        "Club Name",
        "Division Club Base",
        "Area Club Base",
        "Area Paid Club Goal for Dist.",
        "Area Paid Club Goal for Select Dist.",
        "Area Paid Club Goal for Pres. Dist.",
        "Total Paid Area Clubs",
        "Area Dist. Club Goal for Dist.",
        "Area Dist. Club Goal for Select Dist.",
        "Area Dist. Club Goal for Pres. Dist.",
        "Total Dist. Area Clubs",
        "Distinguished Area",
        "October Renewals",
        "April Renewals",
        "Nov Visit award",
        may,
        "Membership to date",
        "Club Goals Met",
        "Distinguished Club",
        "Total Paid Division Clubs",
    ]


def columns(report: str, py_start: int) -> list[str]:
    """The header of a report in the program year starting 1 July `py_start`."""
    if report == SUMMARY:
        return summary_columns(py_start)
    if report == CLUB:
        return club_columns(py_start)
    if report == DISTRICT:
        return list(DISTRICT_COLUMNS)
    if report == DIVISION:
        return division_columns(py_start)
    raise ValueError(f"unknown report {report!r}")


# ---------------------------------------------------------------- shared helpers


def _ramp(day: int, start: int, stop: int) -> float:
    if day <= start:
        return 0.0
    if day >= stop:
        return 1.0
    return (day - start) / (stop - start)


def percent(numerator: float, denominator: float) -> str:
    """`12.50%`, `-7.69%`, `0%`, or `N/A` without a base."""
    if denominator == 0:
        return "N/A"
    text = f"{numerator / denominator * 100:.2f}"
    return "0%" if text in ("0.00", "-0.00") else f"{text}%"


def _py_start(data_month: tuple[int, int]) -> int:
    year, month = data_month
    return year if month >= 7 else year - 1


def _recognition(data_month: tuple[int, int]) -> bool:
    # Distinguished recognition starts 1 April: only April..June data shows it.
    return data_month[1] in (4, 5, 6)


# ---------------------------------------------------------------- summary


@lru_cache(maxsize=32)
def _district_years(py_start: int, seed: int) -> dict[str, tuple]:
    """Per-district parameters of one program year, drawn once."""
    out = {}
    py = f"{py_start}-{py_start + 1}"
    for district in districts_for(py, seed):
        r = rng_for(seed, "district-year", district, py_start)
        clubs = clubs_in_program_year(district, py_start, seed)
        begin = dt.date(py_start, 7, 1)
        base_clubs = sum(1 for c in clubs if c.charter < begin)
        first_year = district_first_year(district, seed) == py_start and py_start > 2008
        members = base_clubs * r.uniform(15, 24)
        goal_days = [r.randint(20, 300) if r.random() < 0.85 else None for _ in range(5)]
        out[district] = (
            clubs,
            0 if first_year else base_clubs,
            members,
            0 if first_year else int(members * 2 * r.uniform(0.9, 1.1)),
            (
                r.uniform(0.25, 0.45),
                r.uniform(0.55, 0.85),
                r.uniform(0.7, 0.85),
                r.uniform(0.03, 0.08),
                r.randint(0, 120),
            ),
            goal_days,
            r.uniform(0.15, 0.55),
            r.randint(0, 3),
        )
    return out


def _summary_rows(data_month: tuple[int, int], as_of: dt.date, seed: int) -> list[list[str]]:
    py_start = _py_start(data_month)
    begin = dt.date(py_start, 7, 1)
    day = (as_of - begin).days
    f = min(max(day / 365, 0.0), 1.1)
    n_yes_no = len(summary_columns(py_start)) - len(summary_columns(2008))
    smedley = py_start >= 2025
    rows = []
    for district, params in _district_years(py_start, seed).items():
        clubs, base_clubs, members, pay_base, rates, goal_days, dist_share, unpaid = params
        active = sum(1 for c in clubs if c.charter <= as_of and (c.end is None or c.end > as_of))
        paid = max(0, active - (unpaid if day < 92 else 0))
        r_new, r_apr, r_oct, r_late, charter_total = rates
        payments = [
            int(members * r_new * f),
            int(members * r_apr * _ramp(day, 229, 303)),
            int(members * r_oct * _ramp(day, 45, 122)),
            int(members * r_late * (0.5 * _ramp(day, 122, 183) + 0.5 * _ramp(day, 303, 365))),
            int(charter_total * f),
        ]
        total = sum(payments)
        yes_no = ["Y" if g is not None and day >= g else "N" for g in goal_days[:n_yes_no]]
        dist = [0, 0, 0, 0]
        if _recognition(data_month):
            n = int(active * dist_share * (0.35 + 0.65 * _ramp(day, 274, 380)))
            pres, select = int(n * 0.4), int(n * 0.25)
            sme = int(n * 0.05) if smedley else 0
            dist = [n - pres - select - sme, select, pres, sme]
        club_growth = percent(paid - base_clubs, base_clubs)
        if unit(seed, "na", district, as_of.toordinal()) < 0.01:
            club_growth = "N/A"
        row = [
            region_of(district),
            district,
            *yes_no,
            *map(str, payments),
            str(total),
            str(pay_base),
            percent(total - pay_base, pay_base),
            str(base_clubs),
            str(paid),
            club_growth,
            str(active),
            str(dist[0]),
            str(dist[1]),
            str(dist[2]),
        ]
        if smedley:
            row.append(str(dist[3]))
        row += [str(sum(dist)), percent(sum(dist), active)]
        rows.append(row)
    rows.sort(key=lambda row: (int(row[0]) if row[0] else 99, row[1]))
    return rows


# ---------------------------------------------------------------- clubs


@lru_cache(maxsize=256)
def _club_years(district: str, py_start: int, seed: int) -> tuple[tuple[Club, tuple], ...]:
    """Per-club parameters of one program year, drawn once from one generator."""
    r = rng_for(seed, "club-year", district, py_start)
    begin = dt.date(py_start, 7, 1)
    out = []
    for club in clubs_in_program_year(district, py_start, seed):
        new_club = club.charter >= begin
        base = 0 if new_club else r.randint(6, 36)
        vigor = r.random()
        edu_max = (10, 5, 4, 4, 2, 2)
        params = (
            base,
            r.randint(20, 28) if new_club else 0,
            r.randint(0, 18),
            r.randint(0, base // 2),
            r.uniform(0.6, 0.95),
            r.uniform(0.55, 0.95),
            r.randint(0, 4),
            tuple(int(m * vigor * r.uniform(0.5, 1.6)) for m in edu_max),
            (r.randint(0, 7), r.randint(0, 7)),
            (r.random() < 0.6, r.random() < 0.55, r.random() < 0.7),
            r.randint(20, 200) if r.random() < 0.8 else None,
            r.randint(30, 150) if r.random() < 0.75 else None,
            r.randint(215, 334) if r.random() < 0.7 else None,
            r.random() < 0.015,
        )
        out.append((club, params))
    return tuple(out)


def _club_states(district: str, data_month: tuple[int, int], as_of: dt.date, seed: int) -> list[dict]:
    """Every club's figures on an as-of date: the common source of the per-district reports."""
    py_start = _py_start(data_month)
    begin = dt.date(py_start, 7, 1)
    recognition = _recognition(data_month)
    smedley = py_start >= 2025
    thresholds = _EDU_GOALS_CC if py_start < 2018 else _EDU_GOALS_PATHWAYS
    states = []
    for club, p in _club_years(district, py_start, seed):
        if club.charter > as_of:
            continue
        (
            base,
            charter_members,
            new_t,
            drop_t,
            oct_rate,
            apr_rate,
            late_t,
            edu_t,
            trained,
            flags,
            csp_day,
            nov_day,
            may_day,
            ineligible,
        ) = p
        suspended = club.end is not None and club.end <= as_of
        last = club.end if club.end is not None and club.end <= as_of else as_of
        day = (last - begin).days
        f = min(max(day / 365, 0.0), 1.1)
        new = int(new_t * f)
        drops = int(drop_t * (0.6 * (day >= 92) + 0.4 * (day >= 274)))
        active = max(0, base + charter_members + new - drops)
        oct_ren = int(base * oct_rate * _ramp(day, 45, 122))
        apr_ren = int((base + new_t / 2) * apr_rate * _ramp(day, 229, 303))
        late = int(late_t * (0.5 * _ramp(day, 122, 183) + 0.5 * _ramp(day, 303, 365)))
        edu = [int(t * f) for t in edu_t]
        tr1 = int(trained[0] * _ramp(day, 0, 92))
        tr2 = int(trained[1] * _ramp(day, 153, 243))
        dues_oct = int(flags[0] and day >= 92)
        dues_apr = int(flags[1] and day >= 274)
        officer_list = int(flags[2] and day >= 92)
        new_first, new_more = min(new, 4), max(0, new - 4)
        goals = sum(e >= t for e, t in zip(edu, thresholds, strict=True))
        goals += (new_first >= 4) + (new_more >= 4) + (tr1 >= 4 and tr2 >= 4)
        goals += bool((dues_oct or dues_apr) and officer_list)
        if suspended:
            status = "Suspended"
        elif ineligible:
            status = "Ineligible"
        elif active < 8:
            status = "Low"
        else:
            status = "Active"
        code = ""
        if recognition and status in ("Active", "Low") and (active >= 20 or active - base >= 3):
            if smedley and goals >= 10 and active >= 25:
                code = "X"
            elif goals >= 9:
                code = "P"
            elif goals >= 7:
                code = "S"
            elif goals >= 5:
                code = "D"
        states.append(
            {
                "club": club,
                "base": base,
                "active": active,
                "new": new,
                "new_first": new_first,
                "new_more": new_more,
                "goals": goals,
                "edu": edu,
                "tr1": tr1,
                "tr2": tr2,
                "dues_oct": dues_oct,
                "dues_apr": dues_apr,
                "officer_list": officer_list,
                "status": status,
                "code": code,
                "oct_ren": oct_ren,
                "apr_ren": apr_ren,
                "late": late,
                "chart": charter_members,
                "suspended": suspended,
                "new_club": club.charter >= begin,
                "csp": "Y" if csp_day is not None and day >= csp_day else "N",
                "nov_visit": int(nov_day is not None and day >= nov_day),
                "may_visit": int(may_day is not None and day >= may_day),
            }
        )
    return states


def _club_rows(district, data_month, as_of, seed) -> list[list[str]]:
    py_start = _py_start(data_month)
    new_layout = py_start >= 2025
    rows = []
    for s in _club_states(district, data_month, as_of, seed):
        c = s["club"]
        row = [district, c.division, c.area, c.number, c.name, s["status"]]
        if new_layout:
            row.append(s["csp"])
        row += [str(s["base"]), str(s["active"])]
        if new_layout:
            row.append(str(s["active"] - s["base"]))
        row += [
            str(s["goals"]),
            *map(str, s["edu"]),
            str(s["new_first"]),
            str(s["new_more"]),
            str(s["tr1"]),
            str(s["tr2"]),
        ]
        if py_start < 2023:
            row.append(str(s["dues_oct"] + s["dues_apr"]))
        else:
            row += [str(s["dues_oct"]), str(s["dues_apr"])]
        row += [str(s["officer_list"]), s["code"]]
        rows.append(row)
    # Now and then the real export repeats a club: an older copy, then the current row.
    if rows and unit(seed, "duplicate", district, as_of.toordinal()) < 0.04:
        i = int(unit(seed, "duplicate-row", district, as_of.toordinal()) * len(rows))
        stale = list(rows[i])
        active_col = 7 if new_layout else 6
        stale[active_col] = str(max(0, int(stale[active_col]) - 1))
        rows.insert(i, stale)
    return rows


def _district_rows(district, data_month, as_of, seed) -> list[list[str]]:
    rows = []
    for s in _club_states(district, data_month, as_of, seed):
        c = s["club"]
        renewals = s["late"] + s["oct_ren"] + s["apr_ren"]
        chart = s["chart"] if s["new_club"] else 0
        if s["suspended"]:
            date_note = f"Susp {c.end:%m/%d/%y}"
        elif s["new_club"]:
            date_note = f"Charter {c.charter:%m/%d/%y}"
        else:
            date_note = ""
        rows.append(
            [
                district,
                c.division,
                c.area,
                str(int(c.number)),
                c.name,
                str(s["new"]),
                str(s["late"]),
                str(s["oct_ren"]),
                str(s["apr_ren"]),
                str(renewals),
                str(chart),
                str(s["new"] + renewals + chart),
                s["code"],
                date_note,
            ]
        )
    return rows


def _division_rows(district, data_month, as_of, seed) -> list[list[str]]:
    states = _club_states(district, data_month, as_of, seed)
    begin = dt.date(_py_start(data_month), 7, 1)
    recognition = _recognition(data_month)
    area_base: dict[str, int] = {}
    div_base: dict[str, int] = {}
    area_paid: dict[str, int] = {}
    div_paid: dict[str, int] = {}
    area_dist: dict[str, int] = {}
    for s in states:
        c = s["club"]
        at_start = c.charter < begin
        paid = s["status"] in ("Active", "Low")
        area_base[c.area] = area_base.get(c.area, 0) + at_start
        div_base[c.division] = div_base.get(c.division, 0) + at_start
        area_paid[c.area] = area_paid.get(c.area, 0) + paid
        div_paid[c.division] = div_paid.get(c.division, 0) + paid
        area_dist[c.area] = area_dist.get(c.area, 0) + bool(s["code"])
    rows = []
    for s in states:
        c = s["club"]
        base = area_base[c.area]
        half = math.ceil(base / 2)
        paid_clubs, dist = area_paid[c.area], area_dist[c.area]
        area_code = ""
        if recognition and paid_clubs >= base and dist >= half:
            area_code = (
                "P"
                if paid_clubs >= base + 2 and dist >= half + 2
                else ("S" if paid_clubs >= base + 1 and dist >= half + 1 else "D")
            )
        rows.append(
            [
                district,
                c.division,
                c.area,
                str(int(c.number)),
                c.name,
                str(div_base[c.division]),
                str(base),
                str(base),
                str(base + 1),
                str(base + 2),
                str(paid_clubs),
                str(half),
                str(half + 1),
                str(half + 2),
                str(dist),
                area_code,
                str(s["oct_ren"]),
                str(s["apr_ren"]),
                str(s["nov_visit"]),
                str(s["may_visit"]),
                str(s["active"]),
                str(s["goals"]),
                s["code"],
                str(div_paid[c.division]),
            ]
        )
    return rows


def rows(
    report: str,
    district: str | None,
    data_month: tuple[int, int],
    as_of: dt.date,
    seed: int = DEFAULT_SEED,
) -> list[list[str]]:
    """Data rows of a report for a data month seen on an as-of date (no header, no footer)."""
    if report == SUMMARY:
        return _summary_rows(data_month, as_of, seed)
    if district is None:
        raise ValueError(f"{report} needs a district")
    if district not in districts_for(program_year(*data_month), seed):
        return []
    builder = {CLUB: _club_rows, DISTRICT: _district_rows, DIVISION: _division_rows}[report]
    return builder(district, data_month, as_of, seed)
