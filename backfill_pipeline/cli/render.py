"""A backfill on the terminal: its plan, its status, the list, and its progress while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

from ..api.models import FINAL_STATES
from .common import console, table


def print_plan(plan: dict[str, Any]) -> None:
    """The plan as a few readable lines."""
    cost, parts = plan["cost"], plan["partitions"]
    click.echo(f"strategy   {plan['strategy']}: {plan['rationale']}")
    click.echo(f"dates      {plan['dates']['start']} .. {plan['dates']['end']} ({plan['dates']['count']})")
    click.echo(f"districts  {', '.join(plan['districts']) or '(all in scope)'}")
    for o in plan["outOfScope"]:
        click.echo(f"  out of scope: {o['id']} ({o['reason']}): {o['message']}")
    click.echo(
        f"partitions {parts['total']} ({parts['all_districts_summary']} summary, "
        f"{parts['district_snapshot']} district); skipped {plan['skipped']}"
    )
    click.echo(
        f"cost       {cost['requests']} HTTP requests (between {cost['lowerBound']} and "
        f"{cost['upperBound']}), {cost['cachedCsvs']} CSVs from cache, {cost['runs']} runs, "
        f"about {cost['seconds']}s at the rate"
    )
    for note in cost["notes"]:
        click.echo(f"  {note}")
    if plan.get("recheckUnavailable"):
        click.echo('recheck    "not published" answers are asked again, even final ones')
    click.echo(f"plan hash  {plan['planHash']}")


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """`[#####.....]   12/40  30%`, for output that is not a terminal."""
    total = max(total, 1)
    filled = int(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>4}/{total} {100 * done // total:>3}%"


def done_of(status: dict[str, Any]) -> int:
    """Partitions that have ended, materialized or failed."""
    return status["counts"]["materialized"] + status["counts"]["failed"]


def print_status(status: dict[str, Any]) -> None:
    """Counts, the per-district table, errors and performance."""
    c = status["counts"]
    click.echo(f"backfill {status['id']}  {status['state']}  ({status.get('strategy') or '?'})")
    click.echo(
        f"  {progress_bar(done_of(status), c['targeted'])}  "
        f"materialized {c['materialized']}, failed {c['failed']}, in progress {c['inProgress']}, "
        f"unavailable {c['unavailable']}, skipped {c['skipped']}"
    )
    if status["districts"]:
        rows = table("district", "done", "failed", "unavailable", "last error", wrapping=("last error",))
        for district, row in status["districts"].items():
            rows.add_row(
                district,
                str(row["done"]),
                str(row["failed"]),
                str(row["unavailable"]),
                row["lastError"] or "",
            )
        console().print(Padding(rows, (0, 0, 0, 2), expand=False))
    for e in status["districtErrors"][:10]:
        click.echo(
            f"  error: district {e['district']} {e.get('report') or ''}: {e['errorClass']} "
            f"({'retryable' if e['retryable'] else 'permanent'}): {e['message']}"
        )
    p = status["performance"]
    click.echo(
        f"  requests {p['requestsMade']}, cache hit rate {p['cacheHitRate']}, waited "
        f"{p['rateLimitWaitSeconds']}s on the rate limiter, pool {p['poolSlotsInUse']}/"
        f"{p['poolLimit']} slots, breaker {p['breakerState']}"
    )
    now = p.get("budgetRateNow")
    if p.get("budgetRate") is not None:
        known = "not known" if now is None else f"{now} requests/s"
        click.echo(f"  the whole deployment now: {known} of the budget's {p['budgetRate']}")


def print_list(rows: list[dict[str, Any]]) -> None:
    """The latest backfills, one row each."""
    listing = table("id", "state", "createdAt", "title", wrapping=("title",))
    for r in rows:
        listing.add_row(r["id"], r["state"], r["createdAt"] or "", r.get("title") or "")
    console().print(listing)


def watch(
    poll: Callable[[], dict[str, Any]],
    detail: Callable[[dict[str, Any]], str],
    *,
    interval: float,
    quiet: bool = False,
    indent: str = "",
    out: Console | None = None,
) -> dict[str, Any]:
    """Poll a backfill's status until it ends and return the last one: a rich progress bar on a
    terminal, a plain line for each change otherwise, nothing when `quiet`."""
    out = out or console()
    status: dict[str, Any] = {}
    if quiet or not out.is_terminal:
        last = None
        for status in _until_final(poll, interval):
            shown = progress_bar(done_of(status), status["counts"]["targeted"])
            line = f"{indent}{status['state']:<12} {shown}  {detail(status)}"
            if not quiet and line != last:
                click.echo(line)
                last = line
        return status
    columns = (TextColumn(indent + "{task.description:<12}", markup=False), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns, TaskProgressColumn(), TextColumn("{task.fields[detail]}", markup=False), console=out
    ) as bar:
        task = bar.add_task("", total=None, detail="")
        for status in _until_final(poll, interval):
            targeted = status["counts"]["targeted"]
            bar.update(
                task,
                description=status["state"],
                total=targeted or None,
                completed=done_of(status),
                detail=detail(status),
            )
    return status


def _until_final(poll: Callable[[], dict[str, Any]], interval: float) -> Iterator[dict[str, Any]]:
    while True:
        status = poll()
        yield status
        if status["state"] in FINAL_STATES:
            return
        time.sleep(interval)
