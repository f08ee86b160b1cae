"""`backfill-pipeline gaps` and `backfill-pipeline heal`: the store's gaps with their causes, and one
backfill that collects again exactly the cells that may give more (planning/gaps.py)."""

from __future__ import annotations

import getpass
from typing import Any

import click
from pydantic import BaseModel, ValidationError

from ..api.models import DEFAULT_COVERAGE_DAYS, CoverageQuery, coverage_dict
from ..district_ids import InvalidDistrictId
from ..planning.gaps import STATES, Cell, Gaps
from ..planning.planner import PlanError
from ..planning.request import HealRequest, field_errors
from .backfills import dagster_options, idempotency_key, idempotency_option, launch_and_report, service_for
from .common import AsciiFloat, AsciiInt, CliError, console, finish, json_option, root_option, show, table
from .exit_codes import ExitCode
from .store import given_ids, split_ids

# The command-line option of each field of the coverage query and the heal request.
OPTIONS = {
    "start": "--start",
    "end": "--end",
    "districts": "--districts",
    "state": "--state",
    "startDate": "--start",
    "endDate": "--end",
    "targetDistricts": "--districts",
    "rate": "--rate",
    "concurrency": "--concurrency",
    "planHash": "--plan-hash",
}
DEFAULT_LIMIT = 200


def _option(field: str) -> str:
    return OPTIONS.get(field.split(".")[0], field)


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """`data` (None values left out) as `model`; exit 2 naming every option at fault."""
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        for e in field_errors(exc):
            click.echo(f"error: {_option(e['field'])}: {e['message']}", err=True)
        raise click.exceptions.Exit(int(ExitCode.BAD_INPUT)) from None


def _plan_error(exc: PlanError) -> CliError:
    return CliError(f"{_option(exc.field)}: {exc.message}", ExitCode.BAD_INPUT)


def _query(
    start: str | None, end: str | None, districts: str | None, states: tuple[str, ...]
) -> CoverageQuery:
    try:
        ids = given_ids((districts,)) if districts is not None else None
    except InvalidDistrictId as exc:
        raise CliError(f"--districts: {exc}", ExitCode.BAD_INPUT) from None
    return _validated(
        CoverageQuery,
        {
            "start": start,
            "end": end,
            "districts": ids or None,
            "state": split_ids(states) or None,
        },
    )


dates_options = [
    click.option(
        "--start",
        help=f"first as-of date, YYYY-MM-DD (default: {DEFAULT_COVERAGE_DAYS} days before --end)",
    ),
    click.option("--end", help="last as-of date, YYYY-MM-DD (default: yesterday, UTC)"),
    click.option(
        "--districts",
        help="comma-separated district ids (default: the configured ones, else every district "
        "the collected summaries list)",
    ),
]


def with_dates(command: Any) -> Any:
    """--start, --end and --districts, which `gaps` and `heal` take."""
    for option in reversed(dates_options):
        command = option(command)
    return command


@click.command("gaps")
@with_dates
@click.option(
    "--state",
    "states",
    multiple=True,
    help=f"list only the cells in this state (repeat it or separate with commas): {', '.join(STATES)}",
)
@click.option(
    "--limit",
    type=AsciiInt(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="cells shown in the table at most (0: all); --json lists every one",
)
@click.option("--fail-on-gaps", is_flag=True, help="exit 1 when any cell is listed")
@root_option
@json_option
def gaps(
    start: str | None,
    end: str | None,
    districts: str | None,
    states: tuple[str, ...],
    limit: int,
    fail_on_gaps: bool,
    root: str | None,
    as_json: bool,
) -> None:
    """Show the store's gaps: cells per state, and those not complete with their last error."""
    query = _query(start, end, districts, states)
    service = service_for(None, root)
    try:
        found = service.gaps(query)
    except PlanError as exc:
        raise _plan_error(exc) from None
    listed = [c for c in found.cells if query.listed(c)]
    show(coverage_dict(found, query), as_json, lambda _: _print_gaps(found, listed, limit))
    if fail_on_gaps and listed:
        finish(ExitCode.FAILED)


def _print_gaps(found: Gaps, listed: list[Cell], limit: int) -> None:
    shown = ", ".join(found.districts[:20]) + (" ..." if len(found.districts) > 20 else "")
    click.echo(
        f"{found.start} .. {found.end}: {len(found.cells)} cell(s) of "
        f"{len(found.districts)} district(s) ({shown or 'none in scope'})"
    )
    totals = table("state", "cells")
    for state, n in found.totals().items():
        totals.add_row(state, str(n))
    console().print(totals)
    if listed:
        rows = table(
            "asOf", "district", "state", "attempts", "last error", "retryNotBefore", wrapping=("last error",)
        )
        for cell in listed[: limit or None]:
            e = cell.last_error
            retry = cell.retry_not_before
            rows.add_row(
                cell.as_of.isoformat(),
                cell.district,
                cell.state + (" (detail wanted)" if cell.detail_wanted else ""),
                str(cell.attempts) if cell.attempts else "",
                f"{e.error_class}: {e.message}" if e is not None else "",
                retry.isoformat(timespec="seconds") if retry is not None else "",
            )
        console().print(rows)
        if limit and len(listed) > limit:
            click.echo(f"... and {len(listed) - limit} more (--limit 0 or --json lists them all)")
    healable = len(found.healable())
    if healable:
        click.echo(
            f"{healable} cell(s) may give more if collected again: "
            f"backfill-pipeline heal --start {found.start} --end {found.end}"
        )


@click.command("heal")
@with_dates
@click.option(
    "--missing/--no-missing",
    default=True,
    show_default=True,
    help="also collect the cells never collected",
)
@click.option(
    "--rate",
    type=AsciiFloat(),
    help="dashboard requests per second, a share of the budget (default: all of it)",
)
@click.option("--concurrency", type=AsciiInt(), help="runs at once for the heal, 1 to 3 (default 3)")
@click.option("--dry-run", is_flag=True, help="print the plan and cost only")
@click.option("--plan-hash", help="launch only if the plan still has this hash")
@click.option("--follow", "follow_it", is_flag=True, help="follow progress until the end")
@idempotency_option
@dagster_options
def heal(
    start: str | None,
    end: str | None,
    districts: str | None,
    missing: bool,
    rate: float | None,
    concurrency: int | None,
    dry_run: bool,
    plan_hash: str | None,
    follow_it: bool,
    key: str | None,
    dagster_url: str | None,
    root: str | None,
    as_json: bool,
) -> None:
    """Collect again, as one backfill, exactly the cells that may give more (see `gaps`)."""
    # A key of its own per invocation: a retried launch after a lost answer launches once.
    key = idempotency_key(key)
    query = _query(start, end, districts, ())
    service = service_for(dagster_url, root)
    try:
        first, last = query.span(service.today())
    except PlanError as exc:
        raise _plan_error(exc) from None
    request: HealRequest = _validated(
        HealRequest,
        {
            "startDate": first.isoformat(),
            "endDate": last.isoformat(),
            "targetDistricts": query.districts,
            "includeMissing": missing,
            "rate": rate,
            "concurrency": concurrency,
            "dryRun": dry_run,
            "planHash": plan_hash,
        },
    )
    launch_and_report(
        service,
        lambda: service.heal(request, requester=f"cli:{getpass.getuser()}", idempotency_key=key),
        plan_error=_plan_error,
        label="heal backfill",
        nothing="nothing to heal",
        dry_run=dry_run,
        follow_it=follow_it,
        as_json=as_json,
        idempotency_key=None if dry_run else key,
    )
