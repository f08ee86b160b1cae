"""`backfill-pipeline fetch`: fetch one as-of date from the dashboard and show what came back."""

from __future__ import annotations

import click

from ..dashboard.calendar import parse_as_of
from ..dashboard.client import DashboardClient
from ..dashboard.errors import DashboardError
from ..district_ids import InvalidDistrictId, normalise_district_id
from .common import CliError, console, json_option, load, print_json, root_option, table
from .exit_codes import ExitCode

COLUMNS = ("report", "available", "asOf", "dataMonth", "closingPeriod", "rows", "cacheHit")


@click.command("fetch")
@click.option("--as-of", required=True, help="as-of date, YYYY-MM-DD")
@click.option("--district", help="also fetch this district's three reports (e.g. 61, F)")
@click.option("--base-url", help="dashboard base URL (default $BACKFILL_DASHBOARD_URL or the real one)")
@root_option
@click.option("--rate", type=float, help="requests per second (default $BACKFILL_RATE or 2)")
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
    """Fetch the summary (and a district's reports) for one date."""
    # Everything is validated before the first request.
    try:
        day = parse_as_of(as_of)
        district_id = normalise_district_id(district) if district is not None else None
    except (ValueError, InvalidDistrictId) as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    settings = load(
        {"dashboard_url": "--base-url", "rate": "--rate", "data_root": "--root"},
        dashboard_url=base_url,
        rate=rate,
        data_root=root,
    )
    with DashboardClient(settings.client(), settings.root) as client:
        try:
            fetched = client.fetch_date(day, district_id, force=force)
        except DashboardError as exc:
            kind = "retryable" if exc.retryable else "permanent"
            raise CliError(f"{type(exc).__name__} ({kind}): {exc}") from None
        stats = client.stats()

    reports = [r.summary() for r in fetched.results]
    if as_json:
        print_json({"asOf": day.isoformat(), "district": district_id, "reports": reports, "stats": stats})
        return
    # Two tables: the hash and the URL are too long to share a terminal line with the rest.
    facts = table(*COLUMNS)
    where = table("report", "sha256", "url", wrapping=("url",))
    for report in reports:
        facts.add_row(*(_cell(report[c]) for c in COLUMNS))
        where.add_row(report["report"], _cell(report["sha256"]), report["url"])
    out = console()
    out.print(facts)
    out.print()
    out.print(where)
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
