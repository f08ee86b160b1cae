"""The analyst tables' stable schemas: one set of snake_case columns with explicit types, the same
in every program year (the era's raw header names are mapped onto them by `headers.py`).

Prefixes name the report a per-club figure comes from when two reports state a similar one:
`dp_` districtperformance, `dv_` divisionperformance (docs/dashboard.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ..names import CLUB_TABLE, DISTRICT_TABLE

# The column types: pandas dtype name -> (pandas dtype, Arrow type). Nullable pandas types, so an
# empty or unreadable cell is <NA>, never a 0 or a NaN that looks like data.
_TYPES: dict[str, tuple[Any, pa.DataType]] = {
    "string": (pd.StringDtype(), pa.string()),
    "Int64": (pd.Int64Dtype(), pa.int64()),
    "Float64": (pd.Float64Dtype(), pa.float64()),
    "boolean": (pd.BooleanDtype(), pa.bool_()),
    "date32[pyarrow]": (pd.ArrowDtype(pa.date32()), pa.date32()),
    "datetime64[us, UTC]": (pd.DatetimeTZDtype("us", "UTC"), pa.timestamp("us", tz="UTC")),
}

# The catch-all column of both tables.
UNMAPPED = "unmapped_columns"


@dataclass(frozen=True)
class Column:
    """One column of a table: snake_case name, pandas dtype name, one-line description."""

    name: str
    dtype: str
    description: str

    def __post_init__(self) -> None:
        if self.dtype not in _TYPES:
            raise ValueError(f"column {self.name}: unknown dtype {self.dtype!r}")

    @property
    def pandas_dtype(self) -> Any:
        """The pandas dtype of the column."""
        return _TYPES[self.dtype][0]

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow (and Parquet) type of the column."""
        return _TYPES[self.dtype][1]


@dataclass(frozen=True)
class Table:
    """A table: name, description, the columns that identify a row, and every column in order."""

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # What a materialization's preview shows: the key, then a few telling figures.
    preview: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """The column names in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """One column by name (KeyError when the table has none)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema the Parquet files are written with."""
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])

    def empty_frame(self) -> pd.DataFrame:
        """A frame with no rows and every column typed."""
        return pd.DataFrame({c.name: pd.Series([], dtype=c.pandas_dtype) for c in self.columns})

    def typed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with exactly the table's columns, in order, each of its dtype."""
        return pd.DataFrame({c.name: frame[c.name].astype(c.pandas_dtype) for c in self.columns})


def _cols(dtype: str, *pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(name, dtype, description) for name, description in pairs)


def _common() -> tuple[Column, ...]:
    return (
        Column("as_of", "date32[pyarrow]", "The dashboard's as-of date of the data (the partition)."),
        Column("district", "string", "District id as the store names it (`09`, `42`, `F`)."),
        Column("data_month", "string", "The month the data describes, `YYYY-MM` (the footer's `Month of`)."),
        Column("is_closing_period", "boolean", "True when the as-of date shows the previous month's close."),
        Column("detail_level", "string", "`summary` or `detailed`: how the district was collected."),
        Column("collected_at", "datetime64[us, UTC]", "When the district's snapshot file was written."),
    )


_UNMAPPED = Column(
    UNMAPPED,
    "string",
    "JSON {report: {raw header: raw value}} of every column no era mapping knows; null when none.",
)

DISTRICT_STATISTICS = Table(
    name=DISTRICT_TABLE,
    description="One row per district per as-of date: the all-districts summary for every district, "
    "and the detailed reports' totals where collected.",
    key=("as_of", "district"),
    columns=(
        *_common(),
        Column(
            "status",
            "string",
            "`success`, `failed` or `unavailable`; the report's figures are null unless success (the "
            "date's rank and score are filled for every district the rankings list).",
        ),
        Column("region", "string", "Region (`REGION`)."),
        *_cols(
            "boolean",
            ("dsp_met", "District Success Plan goal met (`DSP`; older years lack it)."),
            ("training_met", "Training goal met (`Training`; older years lack it)."),
            ("market_analysis_met", "Market analysis goal met (`Market Analysis`; older years lack it)."),
            (
                "communication_plan_met",
                "Communication plan goal met (`Communication Plan`; older years lack it).",
            ),
            (
                "region_advisor_visit_met",
                "Region advisor visit done (`Region Advisor Visit`; older years lack it).",
            ),
        ),
        *_cols(
            "Int64",
            ("new_payments", "Payments of new members (`New Payments`); payments are not members."),
            ("april_payments", "April renewal payments (`April Payments`)."),
            ("october_payments", "October renewal payments (`October Payments`)."),
            ("late_payments", "Late renewal payments (`Late Payments`)."),
            ("charter_payments", "Charter payments (`Charter Payments`)."),
            ("total_ytd_payments", "All payments of the program year so far (`Total YTD Payments`)."),
            ("payment_base", "Payments a year earlier, the growth base (`Payment Base`)."),
        ),
        Column("payment_growth_pct", "Float64", "Payment growth in percent (`% Payment Growth`)."),
        *_cols(
            "Int64",
            ("paid_club_base", "Paid clubs at the start of the year (`Paid Club Base`)."),
            ("paid_clubs", "Paid clubs now (`Paid Clubs`)."),
        ),
        Column("club_growth_pct", "Float64", "Paid club growth in percent (`% Club Growth`)."),
        *_cols(
            "Int64",
            ("active_clubs", "Active clubs (`Active Clubs`)."),
            ("distinguished_clubs", "Distinguished clubs (`Distinguished Clubs`); 0 before April."),
            ("select_distinguished_clubs", "Select distinguished clubs (`Select Distinguished Clubs`)."),
            (
                "presidents_distinguished_clubs",
                "President's distinguished (`Presidents Distinguished Clubs`).",
            ),
            (
                "smedley_distinguished_clubs",
                "Smedley distinguished (`Smedley Distinguished Clubs`, 2025-2026 on).",
            ),
            ("total_distinguished_clubs", "All distinguished tiers (`Total Distinguished Clubs`)."),
        ),
        Column(
            "distinguished_clubs_pct", "Float64", "Distinguished clubs in percent (`% Distinguished Clubs`)."
        ),
        *_cols(
            "Int64",
            ("overall_rank", "Borda rank of the date over all districts (the date's rankings file)."),
            ("aggregate_score", "Borda points summed over the three categories (the rankings file)."),
            ("clubs", "Detailed: clubs listed in the per-district reports."),
            ("divisions", "Detailed: divisions listed."),
            ("areas", "Detailed: areas listed."),
            ("members", "Detailed: sum of the clubs' `Active Members` (the member count)."),
            ("member_base", "Detailed: sum of the clubs' `Mem. Base`."),
            ("clubs_active", "Detailed: clubs of `Club Status` Active."),
            ("clubs_low", "Detailed: clubs of `Club Status` Low."),
            ("clubs_suspended", "Detailed: clubs of `Club Status` Suspended."),
            ("clubs_ineligible", "Detailed: clubs of `Club Status` Ineligible."),
            ("clubs_other_status", "Detailed: clubs of any other `Club Status` text."),
            ("clubs_tier_distinguished", "Detailed: clubs whose `Club Distinguished Status` is D."),
            ("clubs_tier_select", "Detailed: clubs whose `Club Distinguished Status` is S."),
            ("clubs_tier_presidents", "Detailed: clubs whose `Club Distinguished Status` is P."),
            ("clubs_tier_unknown", "Detailed: clubs of another tier letter (Smedley's is not known)."),
            ("clubs_tier_none", "Detailed: clubs with no distinguished status."),
            ("dp_new", "Detailed: sum of districtperformance `New`."),
            ("dp_late_renewals", "Detailed: sum of districtperformance `Late Ren.`."),
            ("dp_october_renewals", "Detailed: sum of districtperformance `Oct. Ren.`."),
            ("dp_april_renewals", "Detailed: sum of districtperformance `Apr. Ren.`."),
            ("dp_total_renewals", "Detailed: sum of districtperformance `Total Ren.`."),
            ("dp_total_charter", "Detailed: sum of districtperformance `Total Chart`."),
            ("dp_total_to_date", "Detailed: sum of districtperformance `Total to Date`."),
        ),
        _UNMAPPED,
    ),
    preview=("status", "detail_level", "members", "paid_clubs", "overall_rank"),
)

CLUB_STATISTICS = Table(
    name=CLUB_TABLE,
    description="One row per club per as-of date for the districts collected in detail: the club, "
    "district and division performance reports joined by club number (null for a row whose number "
    "could not be read: it stands alone, and is reported as an unreadable cell).",
    key=("as_of", "district", "club_number"),
    columns=(
        *_common(),
        *_cols(
            "string",
            ("club_number", "Club number, zero-padded to 8 digits (`Club Number`, `Club`)."),
            ("club_name", "Club name (`Club Name`)."),
            ("division", "Division letter (`Division`)."),
            ("area", "Area, two digits (`Area`)."),
            ("club_status", "Active, Low, Suspended or Ineligible (`Club Status`)."),
        ),
        Column("csp", "boolean", "Club Success Plan submitted (`CSP`, 2025-2026 on)."),
        *_cols(
            "Int64",
            ("membership_base", "Members at the start of the year (`Mem. Base`)."),
            ("active_members", "Active members (`Active Members`)."),
            ("net_growth", "Active members minus base (`Net Growth`, 2025-2026 on)."),
            ("goals_met", "Distinguished Club Program goals met (`Goals Met`)."),
            ("level_1s", "Pathways Level 1 awards (`Level 1s`)."),
            ("level_2s", "Level 2 awards (`Level 2s`; `Level 2s or EOM` in older years)."),
            ("add_level_2s", "Additional Level 2 awards (`Add. Level 2s`, `Add. Level 2s or EOM`)."),
            ("level_3s", "Level 3 awards (`Level 3s`)."),
            ("level_4s", "Level 4 awards, a goal of their own in older years (`Level 4s`)."),
            ("level_5s", "Level 5 awards, a goal of their own in older years (`Level 5s`)."),
            ("level_4s_path_or_dtm", "Goal 5: Level 4s, Level 5s (path completions) or DTM awards."),
            (
                "add_level_4s_path_or_dtm",
                "Goal 6: additional Level 4s, Level 5s (path completions) or DTM awards.",
            ),
            ("ccs", "Competent Communicator awards (`CCs`, before Pathways)."),
            ("add_ccs", "Additional CCs (`Add. CCs`, before Pathways)."),
            ("acs", "Advanced Communicator awards (`ACs`, before Pathways)."),
            ("add_acs", "Additional ACs (`Add. ACs`, before Pathways)."),
            ("cl_al_dtms", "CL, AL or DTM awards (`CL/AL/DTMs`, before Pathways)."),
            ("add_cl_al_dtms", "Additional CL, AL or DTM awards (`Add. CL/AL/DTMs`, before Pathways)."),
            ("new_members", "New members toward the goal (`New Members`)."),
            ("add_new_members", "Additional new members (`Add. New Members`)."),
            ("officers_trained_round_1", "Officers trained in round 1 (`Off. Trained Round 1`)."),
            ("officers_trained_round_2", "Officers trained in round 2 (`Off. Trained Round 2`)."),
            ("dues_on_time_october", "October dues paid on time (`Mem. dues on time Oct`)."),
            ("dues_on_time_april", "April dues paid on time (`Mem. dues on time Apr`)."),
            (
                "dues_on_time_october_april",
                "October and April dues on time, older years' one column (`Mem. dues on time Oct & Apr`).",
            ),
            ("officer_list_on_time", "Officer list submitted on time (`Off. List On Time`)."),
        ),
        Column("club_distinguished_status", "string", "Tier letter as written: D, S, P, another, or empty."),
        *_cols(
            "Int64",
            ("dp_new", "New member payments (districtperformance `New`)."),
            ("dp_late_renewals", "Late renewals (districtperformance `Late Ren.`)."),
            ("dp_october_renewals", "October renewals (districtperformance `Oct. Ren.`)."),
            ("dp_april_renewals", "April renewals (districtperformance `Apr. Ren.`)."),
            ("dp_total_renewals", "All renewals (districtperformance `Total Ren.`)."),
            ("dp_total_charter", "Charter payments (districtperformance `Total Chart`)."),
            ("dp_total_to_date", "All payments to date (districtperformance `Total to Date`)."),
        ),
        *_cols(
            "string",
            ("dp_distinguished_status", "Distinguished status as districtperformance writes it."),
            (
                "charter_suspend_date",
                "`Charter 04/15/26` or `Susp 09/30/25` as written (`Charter Date/Suspend Date`).",
            ),
        ),
        *_cols(
            "Int64",
            ("division_club_base", "Clubs of the division at the start of the year (`Division Club Base`)."),
            ("area_club_base", "Clubs of the area at the start of the year (`Area Club Base`)."),
            ("area_paid_club_goal_distinguished", "`Area Paid Club Goal for Dist.`."),
            ("area_paid_club_goal_select", "`Area Paid Club Goal for Select Dist.`."),
            ("area_paid_club_goal_presidents", "`Area Paid Club Goal for Pres. Dist.`."),
            ("area_paid_clubs", "Paid clubs of the area (`Total Paid Area Clubs`)."),
            ("area_distinguished_club_goal_distinguished", "`Area Dist. Club Goal for Dist.`."),
            ("area_distinguished_club_goal_select", "`Area Dist. Club Goal for Select Dist.`."),
            ("area_distinguished_club_goal_presidents", "`Area Dist. Club Goal for Pres. Dist.`."),
            ("area_distinguished_clubs", "Distinguished clubs of the area (`Total Dist. Area Clubs`)."),
        ),
        Column("distinguished_area", "string", "The area's tier letter as written (`Distinguished Area`)."),
        *_cols(
            "Int64",
            ("dv_october_renewals", "October renewals (divisionperformance `October Renewals`)."),
            ("dv_april_renewals", "April renewals (divisionperformance `April Renewals`)."),
            ("nov_visit_award", "November area director visit, 1 when done (`Nov Visit award`)."),
            (
                "may_visit_award",
                "May area director visit, 1 when done (`May Visit award`, `May visit award`).",
            ),
            ("membership_to_date", "Members to date (divisionperformance `Membership to date`)."),
            ("dv_club_goals_met", "Goals met (divisionperformance `Club Goals Met`)."),
        ),
        Column("dv_distinguished_club", "string", "Tier letter as divisionperformance writes it."),
        Column("division_paid_clubs", "Int64", "Paid clubs of the division (`Total Paid Division Clubs`)."),
        _UNMAPPED,
    ),
    preview=("club_name", "club_status", "active_members", "goals_met", "club_distinguished_status"),
)

TABLES: dict[str, Table] = {t.name: t for t in (DISTRICT_STATISTICS, CLUB_STATISTICS)}


def table(name: str) -> Table:
    """A table by name; ValueError for any other name (a name can become a path)."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}: expected one of {sorted(TABLES)}") from None
