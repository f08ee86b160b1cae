"""BackfillRequest and HealRequest: what a caller asks for, validated field by field (no Dagster here)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ..dashboard.calendar import EARLIEST_AS_OF, iso_date_text
from ..district_ids import InvalidDistrictId, normalise_district_id
from ..snapshots.models import CamelModel

MAX_TARGETS = 200
# Dagster's launch validation walks every partition of the asset plus each selected one:
# measured (scripts/bench_partitions.py), a year x 128 districts launches in ~3.5 s, the whole
# history in ~8 s from 2024-07-01 and ~80 s from 2008. Longer spans: one request per year.
MAX_DAYS = 366
MAX_CONCURRENCY = 3
MIN_RATE = 0.01  # slower would round the pace per run to 0; a date a minute is slow enough
MAX_RATE = 8.0  # docs/dashboard.md §7: public scrapers ran at 2-8 requests/s without trouble

# The planHash of a dry run, sent back to launch only if the plan is still the same.
PLAN_HASH_PATTERN = "^[0-9a-f]{16,64}$"

CollectionType = Literal["auto", "system-wide", "per-district"]


def normalised_targets(value: list[str] | None) -> list[str] | None:
    """District ids normalised (`District 42` -> `42`), duplicates dropped, order kept; ValueError
    naming the first bad item."""
    if value is None:
        return None
    out: list[str] = []
    for i, raw in enumerate(value):
        try:
            district = normalise_district_id(raw)
        except InvalidDistrictId as exc:
            raise ValueError(f"item {i}: {exc}") from None
        if district not in out:
            out.append(district)
    return out


def check_span(start: dt.date, end: dt.date, *, what: str = "a backfill") -> None:
    """The rules every date range of a request follows; ValueError naming the field at fault."""
    if start < EARLIEST_AS_OF:
        raise ValueError(f"startDate: {start} is before {EARLIEST_AS_OF}, the first exported date")
    if end < start:
        raise ValueError(f"endDate: {end} is before startDate {start}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"endDate: {what} spans at most {MAX_DAYS} days; launch one per program year")


class RangeRequest(CamelModel):
    """What every request over a date range shares: the range, the districts, the pace, the dry run
    and the plan hash to confirm. Unknown fields are rejected; every error names its field."""

    model_config = ConfigDict(frozen=True)
    # How the span rule names this kind of request.
    WHAT: ClassVar[str] = "a backfill"

    start_date: dt.date
    end_date: dt.date | None = None
    target_districts: list[str] | None = Field(default=None, max_length=MAX_TARGETS)
    # Three runs at once, so that one starting up (a process, ~3 s) overlaps two fetching
    # (measured by scripts/bench_backfill.py, issue 11); they draw from one share of the budget.
    concurrency: int = Field(default=MAX_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)
    # A share of the deployment's budget (BACKFILL_RATE); none means the whole budget.
    rate: float | None = Field(default=None, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    dry_run: bool = False
    plan_hash: str | None = Field(default=None, pattern=PLAN_HASH_PATTERN)

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _iso_only(cls, value):
        return iso_date_text(value)

    @field_validator("target_districts")
    @classmethod
    def _districts(cls, value: list[str] | None) -> list[str] | None:
        return normalised_targets(value)

    @model_validator(mode="after")
    def _dates(self) -> Self:
        check_span(self.start_date, self.last_date, what=self.WHAT)
        return self

    @property
    def last_date(self) -> dt.date:
        """endDate, defaulting to startDate."""
        return self.end_date or self.start_date

    def dates(self) -> list[dt.date]:
        """Every as-of date asked for."""
        n = (self.last_date - self.start_date).days + 1
        return [self.start_date + dt.timedelta(days=i) for i in range(n)]


class BackfillRequest(RangeRequest):
    """A backfill request: the range's partitions, collected system-wide or per district."""

    collection_type: CollectionType = "auto"
    skip_existing: bool = True
    retry_failures: bool = True
    # Ask again where "not published" is final on evidence too (the run tag RECHECK_TAG): with it,
    # skipExisting skips no unavailable cell, and the cost counts their requests.
    recheck_unavailable: bool = False


class HealRequest(RangeRequest):
    """A heal: collect again exactly the cells of a date range that may give more than they hold
    (planning/gaps.py), as one backfill."""

    WHAT: ClassVar[str] = "a heal"

    end_date: dt.date
    include_missing: bool = True


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{field, message}] with the request's own (camelCase) field names."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        message = err["msg"].removeprefix("Value error, ")
        field = ".".join(loc) if loc else ""
        if not field and ":" in message:
            # Model-level checks name their field at the start of the message.
            field, message = message.split(":", 1)
            message = message.strip()
        out.append({"field": field or "body", "message": message})
    return out
