"""Pydantic models for every JSON file of the snapshot store (docs/design.md §7)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ..district_ids import normalise_district_id

SCHEMA_VERSION: Literal[1] = 1

DistrictStatus = Literal["success", "failed", "unavailable"]
DateStatus = Literal["success", "partial", "failed", "unavailable"]
Detail = Literal["summary", "detailed"]
Source = Literal["refresh", "backfill"]
Scope = Literal["system-wide", "targeted", "single-district"]
CollectionMethod = Literal["all-districts-csv", "per-district-csvs"]

_DATA_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _data_month(value: Any) -> Any:
    # Accept the client's (year, month) tuples and dates as well as "YYYY-MM".
    if isinstance(value, tuple | list) and len(value) == 2:
        return f"{int(value[0]):04d}-{int(value[1]):02d}"
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str) and not _DATA_MONTH.fullmatch(value):
        raise ValueError(f"data month must look like YYYY-MM, got {value!r}")
    return value


def _district_id(value: Any) -> Any:
    if isinstance(value, str) and normalise_district_id(value) != value:
        raise ValueError(f"district id {value!r} is not normalised")
    return value


DataMonth = Annotated[str, BeforeValidator(_data_month)]
DistrictId = Annotated[str, BeforeValidator(_district_id)]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


class CamelModel(BaseModel):
    """Base of every JSON model of the project (stored files, the API's bodies, the backfill request):
    camelCase JSON, snake_case Python, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


# ----------------------------------------------------------------------------- derived figures


class SummaryPayments(CamelModel):
    """Payment columns of the all-districts summary; payments are not member counts."""

    new: int | None = None
    april: int | None = None
    october: int | None = None
    late: int | None = None
    charter: int | None = None
    total_ytd: int | None = None
    base: int | None = None


class SummaryDistinguished(CamelModel):
    """Distinguished club counts as the summary states them."""

    distinguished: int | None = None
    select: int | None = None
    presidents: int | None = None
    smedley: int | None = None
    total: int | None = None


class SummaryFigures(CamelModel):
    """Figures of one district's row in the all-districts summary."""

    region: str | None = None
    payments: SummaryPayments = Field(default_factory=SummaryPayments)
    payment_growth_pct: float | None = None
    paid_club_base: int | None = None
    paid_clubs: int | None = None
    club_growth_pct: float | None = None
    active_clubs: int | None = None
    distinguished_clubs: SummaryDistinguished = Field(default_factory=SummaryDistinguished)
    distinguished_pct: float | None = None


class ClubsByStatus(CamelModel):
    """Club counts by `Club Status`; any other value is counted under its raw text."""

    active: int = 0
    low: int = 0
    suspended: int = 0
    ineligible: int = 0
    other: dict[str, int] = Field(default_factory=dict)


class DistinguishedByTier(CamelModel):
    """Clubs by `Club Distinguished Status` letter; unknown letters (Smedley?) counted apart."""

    distinguished: int = 0
    select: int = 0
    presidents: int = 0
    total: int = 0
    none: int = 0
    unknown: dict[str, int] = Field(default_factory=dict)


class DistrictPayments(CamelModel):
    """Sums of the district performance report's payment columns; not member counts."""

    new: int | None = None
    late_renewals: int | None = None
    october_renewals: int | None = None
    april_renewals: int | None = None
    total_renewals: int | None = None
    charter: int | None = None
    total_to_date: int | None = None


class DetailedFigures(CamelModel):
    """Figures from the three per-district reports."""

    clubs: int = 0
    divisions: int = 0
    areas: int = 0
    members: int | None = None
    member_base: int | None = None
    clubs_by_status: ClubsByStatus = Field(default_factory=ClubsByStatus)
    distinguished_by_tier: DistinguishedByTier = Field(default_factory=DistinguishedByTier)
    payments: DistrictPayments = Field(default_factory=DistrictPayments)


class DistrictFigures(CamelModel):
    """Derived figures of a district file: from the summary row and/or the detailed reports."""

    summary: SummaryFigures | None = None
    detailed: DetailedFigures | None = None


# ----------------------------------------------------------------------------- district file


class SourceReport(CamelModel):
    """One CSV a district file was built from."""

    report: str
    url: str | None = None
    sha256: str | None = None
    rows: int = 0

    @classmethod
    def from_fetch(cls, result: Any) -> SourceReport:
        """From the dashboard client's FetchResult (duck-typed: report, url, sha256, rows)."""
        report = getattr(result.report, "value", result.report)
        return cls(report=report, url=result.url, sha256=result.sha256, rows=len(result.rows))


class RawRows(CamelModel):
    """The CSV rows exactly as parsed: header name -> raw string."""

    summary: dict[str, str] | None = None
    district_performance: list[dict[str, str]] = Field(default_factory=list)
    division_performance: list[dict[str, str]] = Field(default_factory=list)
    club_performance: list[dict[str, str]] = Field(default_factory=list)


class AttemptError(CamelModel):
    """One failed attempt at something the dashboard was asked for, with the context an operator needs."""

    error_class: str
    retryable: bool
    message: str
    attempt: int = 1
    timestamp: dt.datetime = Field(default_factory=utc_now)
    run_id: str | None = None
    backfill_id: str | None = None
    # When the dashboard asked us to come back (Retry-After, an open breaker): not before then.
    retry_not_before: dt.datetime | None = None

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        retryable: bool | None = None,
        attempt: int = 1,
        run_id: str | None = None,
        backfill_id: str | None = None,
        **fields: Any,
    ) -> Self:
        """From an exception; `retryable` defaults to the exception's own `retryable` flag."""
        if retryable is None:
            retryable = bool(getattr(exc, "retryable", False))
        return cls(
            **error_fields(exc, retryable=retryable),
            attempt=attempt,
            run_id=run_id,
            backfill_id=backfill_id,
            **fields,
        )


class SummaryError(AttemptError):
    """One failed attempt at a date's all-districts summary."""


def _report_name(value: Any) -> Any:
    return getattr(value, "value", value)  # a Report, or its name


class DistrictError(AttemptError):
    """One failed attempt at a district (`report`: the report that failed)."""

    district: DistrictId
    report: Annotated[str | None, BeforeValidator(_report_name)] = None


def error_fields(exc: BaseException, *, retryable: bool) -> dict[str, Any]:
    """Class, message and come-back time of an exception, as stored."""
    wait = getattr(exc, "retry_after", None) or getattr(exc, "retry_in", None)
    not_before = None
    if isinstance(wait, int | float) and 0 < wait < MAX_DEFER_SECONDS:
        not_before = utc_now() + dt.timedelta(seconds=float(wait))
    return {
        "error_class": type(exc).__name__,
        "retryable": retryable,
        "message": (str(exc) or type(exc).__name__)[:2000],
        "retry_not_before": not_before,
    }


# A wait asked for beyond this is not believed: the key is simply retried later as usual.
MAX_DEFER_SECONDS = 7 * 24 * 3600.0

# A cell's attempt history keeps this many errors, newest last.
MAX_ERRORS_KEPT = 20

# Errors that are not attempts at the cell: no request was made (the breaker failed fast).
NOT_AN_ATTEMPT = frozenset({"CircuitOpen", "BudgetUnavailable", "BreakerUnavailable"})


def counted_attempts(errors: Iterable[AttemptError]) -> int:
    """Failed attempts that asked the dashboard (fast failures of an open breaker do not count)."""
    return sum(1 for e in errors if e.error_class not in NOT_AN_ATTEMPT)


class CollectionInfo(CamelModel):
    """Which collection wrote a file: source, scope, method and Dagster ids."""

    source: Source
    scope: Scope
    collection_method: CollectionMethod
    run_id: str | None = None
    backfill_id: str | None = None


class WriteContext(CollectionInfo):
    """What the caller says about a write; the store records it per district and per date."""

    configured_districts: list[DistrictId] = Field(default_factory=list)

    def info(self) -> CollectionInfo:
        """The part stored in each district file."""
        return CollectionInfo.model_validate(self.model_dump(exclude={"configured_districts"}))


class DistrictSnapshot(CamelModel):
    """`district_<id>.json`: one district on one as-of date."""

    schema_version: Literal[1] = SCHEMA_VERSION
    district_id: DistrictId
    as_of_date: dt.date
    data_month: DataMonth | None = None
    is_closing_period: bool = False
    collected_at: dt.datetime = Field(default_factory=utc_now)
    status: DistrictStatus
    detail: Detail
    sources: list[SourceReport] = Field(default_factory=list)
    raw: RawRows = Field(default_factory=RawRows)
    figures: DistrictFigures = Field(default_factory=DistrictFigures)
    # Every failed attempt since the last success, oldest first (at most MAX_ERRORS_KEPT).
    errors: list[DistrictError] = Field(default_factory=list)
    unavailable_reason: str | None = None
    # "Unavailable" is final only on evidence (seen twice, 24 h apart, after the month closed);
    # until then the cell is pending and is asked again.
    unavailable_final: bool = False
    collection: CollectionInfo | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DistrictSnapshot:
        if self.status == "failed" and not self.errors:
            raise ValueError("a failed district file must carry at least one error")
        if any(e.district != self.district_id for e in self.errors):
            raise ValueError(f"errors of district {self.district_id} name another district")
        if self.status == "success" and self.data_month is None:
            raise ValueError("a successful district file must say its data month")
        if self.status == "success" and self.detail == "summary" and self.raw.summary is None:
            raise ValueError("a successful summary file must carry its summary row")
        return self


# ----------------------------------------------------------------------------- per-date files


class ManifestEntry(CamelModel):
    """One district file as found on disk."""

    file: str
    district_id: DistrictId
    status: DistrictStatus
    detail: Detail
    bytes: int
    sha256: str
    collected_at: dt.datetime
    data_month: DataMonth | None = None
    is_closing_period: bool = False
    unavailable_final: bool = False
    # Failed attempts since the last success, and the newest one, so gaps need only manifests.
    attempts: int = 0
    last_error: DistrictError | None = None
    # Stat of the file when hashed; lets a rebuild skip re-reading unchanged files. Not data.
    fingerprint: str = ""


class FileEntry(CamelModel):
    """A non-district file listed in the manifest (the rankings)."""

    file: str
    bytes: int
    sha256: str
    fingerprint: str = ""


class Manifest(CamelModel):
    """`manifest.json`: every district file of a date with status, size and sha256."""

    schema_version: Literal[1] = SCHEMA_VERSION
    as_of_date: dt.date
    # The date's status, the same as metadata.json's, so coverage needs only manifests.
    status: DateStatus
    # For a date the dashboard did not publish: whether that is final (see DistrictSnapshot).
    unavailable_final: bool = False
    # The summary's failed attempts since its last success (newest last).
    summary_errors: list[SummaryError] = Field(default_factory=list)
    districts: list[ManifestEntry] = Field(default_factory=list)
    rankings: FileEntry | None = None
    updated_at: dt.datetime = Field(default_factory=utc_now)


class Collection(CollectionInfo):
    """One collection (source, scope, method, run, backfill) that wrote to a date."""

    configured_districts: list[DistrictId] = Field(default_factory=list)
    first_write_at: dt.datetime
    last_write_at: dt.datetime
    districts_written: list[DistrictId] = Field(default_factory=list)
    # Districts this collection tried to write whose better existing file was kept instead.
    districts_kept: list[DistrictId] = Field(default_factory=list)
    # Errors of those attempts: they are in no district file, so they are kept here.
    errors: list[DistrictError] = Field(default_factory=list)
    date_unavailable: bool = False
    unavailable_final: bool = False
    # Failed attempts at the date's summary (the date's files are left as they were).
    summary_errors: list[SummaryError] = Field(default_factory=list)
    # When this collection last had an answer to the summary (data, or "not published").
    summary_answered_at: dt.datetime | None = None

    def key(self) -> tuple[str | None, ...]:
        """What identifies a collection: source, scope, method, run id, backfill id."""
        return (self.source, self.scope, self.collection_method, self.run_id, self.backfill_id)


class Collections(CamelModel):
    """`collections.json`: every collection that wrote to a date, oldest first."""

    schema_version: Literal[1] = SCHEMA_VERSION
    as_of_date: dt.date
    collections: list[Collection] = Field(default_factory=list)


class Metadata(CamelModel):
    """`metadata.json`: what a date holds, how it was collected and with which errors."""

    schema_version: Literal[1] = SCHEMA_VERSION
    as_of_date: dt.date
    status: DateStatus
    data_month: DataMonth | None = None
    is_closing_period: bool | None = None
    source: Source | None = None
    scope: Scope | None = None
    collection_method: CollectionMethod | None = None
    configured_districts: list[DistrictId] = Field(default_factory=list)
    run_id: str | None = None
    backfill_id: str | None = None
    collections: list[Collection] = Field(default_factory=list)
    districts: list[DistrictId] = Field(default_factory=list)
    successful_districts: list[DistrictId] = Field(default_factory=list)
    failed_districts: list[DistrictId] = Field(default_factory=list)
    unavailable_districts: list[DistrictId] = Field(default_factory=list)
    detailed_districts: list[DistrictId] = Field(default_factory=list)
    district_errors: list[DistrictError] = Field(default_factory=list)
    errors_with_data_kept: list[DistrictError] = Field(default_factory=list)
    unavailable_final: bool = False
    summary_errors: list[SummaryError] = Field(default_factory=list)
    has_rankings: bool = False
    updated_at: dt.datetime = Field(default_factory=utc_now)


class LatestPointer(CamelModel):
    """`snapshots/latest-successful.json`: the newest date with successful districts."""

    schema_version: Literal[1] = SCHEMA_VERSION
    as_of_date: dt.date
    status: DateStatus
    updated_at: dt.datetime = Field(default_factory=utc_now)


# ----------------------------------------------------------------------------- rankings


class RankingEntry(CamelModel):
    """One district's Borda ranking (docs/dashboard.md §8)."""

    district_id: DistrictId
    region: str | None = None
    club_growth_pct: float | None = None
    payment_growth_pct: float | None = None
    distinguished_pct: float | None = None
    club_growth_rank: int | None = None
    payment_growth_rank: int | None = None
    distinguished_rank: int | None = None
    club_growth_points: int = 0
    payment_growth_points: int = 0
    distinguished_points: int = 0
    aggregate_score: int = 0
    overall_rank: int


class Rankings(CamelModel):
    """`all-districts-rankings.json`: the Borda ranking of every district of a date."""

    schema_version: Literal[1] = SCHEMA_VERSION
    as_of_date: dt.date
    data_month: DataMonth | None = None
    method: Literal["borda"] = "borda"
    district_count: int = Field(ge=0)
    rankings: list[RankingEntry]
    generated_at: dt.datetime = Field(default_factory=utc_now)
