"""Shared fixtures and helpers: the one "today", the sandbox dashboard on loopback, dates it
published, settings that do not depend on the developer's environment, snapshot builders and a
planner's world."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from backfill_pipeline.dashboard.client import ClientSettings
from backfill_pipeline.planning.planner import World
from backfill_pipeline.sandbox import SandboxServer, publication
from backfill_pipeline.settings import ENV_PREFIX, Settings
from backfill_pipeline.snapshots import (
    DistrictError,
    PerDistrictFileSnapshotStore,
    SourceReport,
    WriteContext,
    detailed_district,
    failed_district,
    summary_district,
    unavailable_district,
)

# The date every test pretends is today: the sandbox answers as it would on this day.
TODAY = dt.date(2026, 11, 29)


@pytest.fixture(autouse=True)
def no_backfill_environment(monkeypatch) -> None:
    """Tests see the settings they give, never a BACKFILL_* variable of the developer's shell."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the whole session (seed 42, today TODAY); never give it faults."""
    with SandboxServer(seed=42, today=TODAY) as server:
        yield server


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxServer]:
    """A new sandbox per test, free to take faults and to count requests."""
    with SandboxServer(seed=42, today=TODAY) as server:
        yield server


def published_dates(start: dt.date, n: int = 1, *, closing: bool | None = None) -> list[dt.date]:
    """The first n consecutive dates from `start` on that the sandbox published, inside a closing
    window or not as asked (None: either), so one date range covers exactly them."""

    def fits(day: dt.date) -> bool:
        ok = publication.is_published(day, today=TODAY)
        return ok and (closing is None or publication.is_closing_period(day) == closing)

    day = start
    while not all(fits(day + dt.timedelta(days=i)) for i in range(n)):
        day += dt.timedelta(days=1)
        assert day < TODAY, f"no {n} published dates after {start}"
    return [day + dt.timedelta(days=i) for i in range(n)]


def unpublished_date(start: dt.date) -> dt.date:
    """The first date from `start` on that the sandbox never published."""
    day = start
    while not publication.is_unpublished(day):
        day += dt.timedelta(days=1)
        assert day < TODAY, f"no unpublished date after {start}"
    return day


def settings(**values) -> Settings:
    """Settings from these values and the defaults (the environment is cleared for every test)."""
    return Settings(**values)


def client_settings(base_url: str, **overrides) -> ClientSettings:
    """The dashboard client's settings against `base_url`, with fast backoff unless overridden."""
    return settings(dashboard_url=base_url).client(**{"backoff_base": 0.05, "backoff_max": 0.2, **overrides})


# -- the planner's view of a deployment ----------------------------------------------------------

# The districts partitions of the planner tests, in Dagster's order.
ALL_DISTRICTS = ["01", "09", "42", "61", "109", "F", "U"]


def planner_world(**overrides) -> World:
    """A deployment from 2025-01-01 with ALL_DISTRICTS, nothing materialized, batches of 10."""
    base = dict(
        today=TODAY,
        partition_start=dt.date(2025, 1, 1),
        configured=[],
        available=ALL_DISTRICTS,
        district_partitions=ALL_DISTRICTS,
        materialized={},
        failed={},
        batch_size=10,
    )
    base.update(overrides)
    return World(**base)  # type: ignore[arg-type]


# -- snapshot builders -----------------------------------------------------------------------------

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


@pytest.fixture
def small_store(tmp_path) -> PerDistrictFileSnapshotStore:
    """A store with one date: 42 and 61 in summary, 09 failed, and 42 detailed the day after."""
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH)
    store.write_district(a_failure("09"), context=BACKFILL)
    store.write_district(a_detailed("42", dt.date(2025, 9, 9)), context=BACKFILL)
    return store


# The e2e groups, longest first: `--dist loadgroup` hands work out in collection order, so these
# start at once, each on its own worker, and the fast tests fill in around them.
GROUP_ORDER = ["faults-outage", "faults", "dagster", "api-stack", "production", "budget"]


def _group(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("xdist_group")
    if marker is None:
        return None
    return marker.args[0] if marker.args else marker.kwargs.get("name")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Give each schemathesis operation its own test id, as pytest's parametrize does."""
    # schemathesis names its items `test[GET /api/health]` but keeps the bare function's id;
    # pytest-xdist schedules by id, so seven of the eight operations silently never ran.
    if item.name.endswith("]") and not item.nodeid.endswith("]"):
        item._nodeid = f"{item.nodeid.rpartition('::')[0]}::{item.name}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long e2e groups first (a stable sort: each file keeps its random order)."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    twice = sorted(nodeid for nodeid, count in seen.items() if count > 1)
    if twice:
        raise pytest.UsageError(f"tests collected twice under one id (xdist would run one): {twice}")
    rank = {name: i for i, name in enumerate(GROUP_ORDER)}
    items.sort(key=lambda item: rank.get(_group(item) or "", len(GROUP_ORDER)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run grouped tests that pytest-xdist would not keep together."""
    # xdist tells its scheduler a test's group by suffixing its id; when a pytest release stops
    # honouring that (pytest-xdist#1386), the groups silently spread over the workers and the
    # long e2e tests that must not overlap (the budget's windows) run at once.
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist's workers
        return
    lost = [item.nodeid for item in session.items if _group(item) and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"xdist_group marks not applied to the test ids, e.g. {lost[:3]}")
