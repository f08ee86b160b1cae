"""`backfill-pipeline fetch`: fetch one as-of date from the dashboard and show what came back.

Every report gets an outcome, and one report's failure never hides the others: `available` and
`unavailable` (the dashboard answered), `failed` (a dashboard error, shown with its class, whether
it is retryable, its message and URL) or `not-attempted` (the summary failed, so the district
reports' data month is unknown). Everything is printed first; the command then exits 1 when any
report failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import click

from ..dashboard.budget import Lane, check_rate
from ..dashboard.calendar import parse_as_of
from ..dashboard.client import DashboardClient, FetchResult
from ..dashboard.errors import DashboardError
from ..dashboard.reports import DISTRICT_REPORTS, Report
from ..district_ids import InvalidDistrictId, normalise_district_id
from .common import AsciiFloat, CliError, console, json_option, load, print_json, root_option, table
from .exit_codes import ExitCode

COLUMNS = ("report", "outcome", "available", "asOf", "dataMonth", "closingPeriod", "rows", "cacheHit")


@dataclass
class Outcome:
    """What became of one report: a result, an error, or neither (not attempted)."""

    report: Report
    district: str | None
    as_of: dt.date
    result: FetchResult | None = None
    error: DashboardError | None = None
    requests: int = 0

    @property
    def name(self) -> str:
        if self.error is not None:
            return "failed"
        if self.result is None:
            return "not-attempted"
        return "available" if self.result.available else "unavailable"

    def to_json(self) -> dict:
        """The result's summary (the same keys for every outcome) with `outcome`, and `error` when failed."""
        if self.result is not None:
            return {**self.result.summary(), "outcome": self.name}
        out: dict = {
            "report": self.report.value,
            "district": self.district,
            "url": self.error.url if self.error is not None else None,
            "available": None,
            "asOf": self.as_of.isoformat(),
            "dataMonth": None,
            "closingPeriod": None,
            "rows": None,
            "sha256": None,
            "bytes": None,
            "cacheHit": False,
            "requests": self.requests,
            "outcome": self.name,
        }
        if self.error is not None:
            out["error"] = {
                "class": type(self.error).__name__,
                "retryable": self.error.retryable,
                "message": str(self.error),
                "url": self.error.url,
            }
        return out

    def error_text(self) -> str:
        """`NotACsv (permanent): expected a CSV, ...` for a failed report."""
        if self.error is None:
            return ""
        kind = "retryable" if self.error.retryable else "permanent"
        return f"{type(self.error).__name__} ({kind}): {self.error}"


def fetch_share(rate: float | None, budget: float) -> float | None:
    """`--rate` as a share of the deployment's budget; CliError (exit 2) when it cannot be one."""
    if rate is None:
        return None
    try:
        check_rate(rate)
    except ValueError:
        raise CliError(f"--rate={rate!r}: must be a finite number above 0", ExitCode.BAD_INPUT) from None
    if rate > budget:
        raise CliError(
            f"--rate={rate:g} is above the deployment's budget of {budget:g} requests/s "
            "(BACKFILL_RATE), which every process shares",
            ExitCode.BAD_INPUT,
        )
    return rate


@click.command("fetch")
@click.option("--as-of", required=True, help="as-of date, YYYY-MM-DD")
@click.option("--district", help="also fetch this district's three reports (e.g. 61, F)")
@click.option("--base-url", help="dashboard base URL (default $BACKFILL_DASHBOARD_URL or the real one)")
@root_option
@click.option(
    "--rate",
    type=AsciiFloat(),
    help="requests per second, a share of the budget (default: all of $BACKFILL_RATE)",
)
@click.option("--force", is_flag=True, help="ignore the raw cache and ask the dashboard")
@json_option
def fetch(
    as_of: str,
    district: str | None,
    base_url: str | None,
    root: str | None,
    rate: float | None,
    force: bool,
    as_json: bool,
) -> None:
    """Fetch the summary (and a district's reports) for one date; exit 1 when any report failed."""
    # Every report's outcome is printed (available, unavailable, failed with its error, or not
    # attempted) before the exit status says a report failed.
    # Everything is validated before the first request.
    try:
        day = parse_as_of(as_of)
        district_id = normalise_district_id(district) if district is not None else None
    except (ValueError, InvalidDistrictId) as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    settings = load(
        {"dashboard_url": "--base-url", "data_root": "--root"}, dashboard_url=base_url, data_root=root
    )
    share = fetch_share(rate, settings.rate)
    # The deployment's one budget, in the lane ahead of backfills: someone waits at a terminal.
    with DashboardClient(settings.client(share=share, lane=Lane.FETCH), settings.root) as client:
        outcomes = fetch_outcomes(client, day, district_id, force=force)
        stats = client.stats()

    if as_json:
        reports = [o.to_json() for o in outcomes]
        print_json({"asOf": day.isoformat(), "district": district_id, "reports": reports, "stats": stats})
    else:
        _print_tables(outcomes, stats)
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        lines = "; ".join(f"{o.report.value}: {o.error_text()}" for o in failed)
        raise CliError(f"{len(failed)} of {len(outcomes)} reports failed: {lines}", ExitCode.FAILED)


def fetch_outcomes(
    client: DashboardClient, day: dt.date, district: str | None, *, force: bool
) -> list[Outcome]:
    """The summary, then each of the district's reports at the summary's data month, one by one.

    As `DashboardClient.fetch_date` does, an unavailable summary makes the district reports
    unavailable without a request; a failed summary leaves them not attempted.
    """
    summary = _attempt(client, Outcome(Report.SUMMARY, None, day), force=force)
    outcomes = [summary]
    if district is None:
        return outcomes
    for report in DISTRICT_REPORTS:
        outcome = Outcome(report, district, day)
        if summary.result is None:
            pass  # the summary failed: the data month is unknown
        elif not summary.result.available:
            outcome.result = FetchResult(report=report, district=district, as_of=day, available=False)
        else:
            outcome = _attempt(client, outcome, data_month=summary.result.data_month, force=force)
        outcomes.append(outcome)
    return outcomes


def _attempt(
    client: DashboardClient,
    outcome: Outcome,
    *,
    data_month: tuple[int, int] | None = None,
    force: bool,
) -> Outcome:
    requests_before = client.stats()["requests"]
    try:
        outcome.result = client.fetch(
            outcome.report, outcome.as_of, outcome.district, data_month=data_month, force=force
        )
    except DashboardError as exc:
        outcome.error = exc
        outcome.requests = client.stats()["requests"] - requests_before
    return outcome


def _print_tables(outcomes: list[Outcome], stats: dict) -> None:
    # Separate tables: the hash, the URL and an error are too long to share a line with the rest.
    facts = table(*COLUMNS)
    where = table("report", "sha256", "url", wrapping=("url",))
    errors = table("report", "error", wrapping=("error",))
    for outcome in outcomes:
        report = outcome.to_json()
        facts.add_row(*(_cell(report[c]) for c in COLUMNS))
        where.add_row(report["report"], _cell(report["sha256"]), _cell(report["url"]))
        if outcome.error is not None:
            errors.add_row(report["report"], outcome.error_text())
    out = console()
    out.print(facts)
    out.print()
    out.print(where)
    if errors.row_count:
        out.print()
        out.print(errors)
    out.print(
        f"\n{stats['requests']} HTTP requests, {stats['cacheHits']} cache hits, "
        f"{stats['rateLimitWaitSeconds']}s waited on the rate limiter, breaker {stats['breakerState']}"
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
