"""`backfill-pipeline backfill|status|cancel|retry|list`: the BackfillService from the terminal."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError

from ..api.graphql import BackfillNotFound, DagsterGraphQLError, DagsterUnreachable
from ..api.idempotency import IdempotencyConflict, LaunchPending, checked_key
from ..api.models import MAX_LIST, PlanBody
from ..api.service import (
    BackfillService,
    NotCancellable,
    NothingToRetry,
    PlanConflict,
    StillRunning,
)
from ..planning.planner import Plan, PlanError
from ..planning.request import BackfillRequest, field_errors
from .common import (
    AsciiFloat,
    AsciiInt,
    CliError,
    finish,
    json_option,
    load,
    print_json,
    root_option,
    show,
    to_json,
)
from .exit_codes import ExitCode
from .render import print_list, print_plan, print_status, watch

FOLLOW_INTERVAL = 3.0  # seconds between two status polls while following


def dagster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--dagster-url, --root and --json, which every backfill command takes."""
    command = json_option(command)
    command = root_option(command)
    return click.option("--dagster-url", help="Dagster webserver (default $BACKFILL_DAGSTER_URL)")(command)


def service_for(dagster_url: str | None, root: str | None) -> BackfillService:
    """The service over the settings, the options given winning over `BACKFILL_*`."""
    return BackfillService(
        load({"dagster_url": "--dagster-url", "data_root": "--root"}, dagster_url=dagster_url, data_root=root)
    )


@contextmanager
def service_errors(idempotency_key: str | None = None) -> Iterator[None]:
    """The service's errors as messages and their exit codes; with the key of a launch, Dagster
    unreachable says how to finish that launch without launching twice."""
    try:
        yield
    except DagsterUnreachable as exc:
        message = f"{exc} (is `dagster dev` running? set --dagster-url)"
        if idempotency_key is not None:
            message += (
                "; if the launch reached Dagster, the same command with "
                f"--idempotency-key {idempotency_key} shows it instead of launching again"
            )
        raise CliError(message, ExitCode.DAGSTER_UNREACHABLE) from None
    except BackfillNotFound as exc:
        raise CliError(str(exc), ExitCode.NOT_FOUND) from None
    except (NotCancellable, NothingToRetry, StillRunning, LaunchPending) as exc:
        raise CliError(str(exc), ExitCode.WRONG_STATE) from None
    except IdempotencyConflict as exc:
        raise CliError(f"--idempotency-key: {exc}", ExitCode.BAD_INPUT) from None
    except DagsterGraphQLError as exc:
        raise CliError(f"Dagster refused: {exc}", ExitCode.FAILED) from None


def plan_json(plan: Plan | PlanBody) -> dict[str, Any]:
    """The plan as the REST API shows it."""
    return to_json(plan if isinstance(plan, PlanBody) else PlanBody.from_plan(plan))


def idempotency_key(given: str | None) -> str:
    """The key of this invocation's launch: `--idempotency-key`, else a new one; exit 2 naming
    the option for a key that cannot be one."""
    if given is None:
        return uuid.uuid4().hex
    try:
        return checked_key(given)
    except ValueError as exc:
        raise CliError(f"--idempotency-key: {exc}", ExitCode.BAD_INPUT) from None


idempotency_option = click.option(
    "--idempotency-key",
    "key",
    help="launch at most once for this key: the same command again shows the backfill it launched "
    "(default: a new key each time)",
)


def follow(service: BackfillService, backfill_id: str, *, quiet: bool) -> dict[str, Any]:
    """Poll until the backfill ends, showing its progress unless `quiet`; its last status."""
    return watch(
        lambda: to_json(service.status(backfill_id)),
        lambda s: f"failed {s['counts']['failed']}, running {s['counts']['inProgress']}",
        interval=FOLLOW_INTERVAL,
        quiet=quiet,
    )


def outcome(status: dict[str, Any]) -> ExitCode:
    """0 when the backfill succeeded, 1 when it ended otherwise."""
    return ExitCode.OK if status["state"] == "succeeded" else ExitCode.FAILED


@click.command("backfill")
@click.option("--start", required=True, help="first as-of date, YYYY-MM-DD")
@click.option("--end", help="last as-of date (default: --start)")
@click.option("--districts", help="comma-separated district ids (default: the scope)")
@click.option(
    "--type",
    "collection_type",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "system-wide", "per-district"]),
    help="auto: system-wide without --districts, per-district with them",
)
# No defaults here: the request model's are the ones (the whole budget, concurrency 2).
@click.option(
    "--rate",
    type=AsciiFloat(),
    help="dashboard requests per second for the whole backfill, a share of the budget BACKFILL_RATE "
    "(default: all of it)",
)
@click.option("--concurrency", type=AsciiInt(), help="runs at once for this backfill, 1 to 3 (default 3)")
@click.option("--no-skip-existing", is_flag=True, help="re-collect what exists")
@click.option("--no-retry-failures", is_flag=True, help="leave failed partitions out")
@click.option(
    "--recheck-unavailable",
    is_flag=True,
    help='ask again where "not published" is final too (no unavailable cell is skipped)',
)
@click.option("--dry-run", is_flag=True, help="print the plan and cost only")
@click.option("--plan-hash", help="launch only if the plan still has this hash")
@click.option("--no-follow", is_flag=True, help="return once launched")
@idempotency_option
@dagster_options
def backfill(
    start: str,
    end: str | None,
    districts: str | None,
    collection_type: str,
    rate: float | None,
    concurrency: int | None,
    no_skip_existing: bool,
    no_retry_failures: bool,
    recheck_unavailable: bool,
    dry_run: bool,
    plan_hash: str | None,
    no_follow: bool,
    key: str | None,
    dagster_url: str | None,
    root: str | None,
    as_json: bool,
) -> None:
    """Plan, launch and follow a backfill."""
    key = idempotency_key(key)
    body = {
        "startDate": start,
        "endDate": end,
        "collectionType": collection_type,
        "targetDistricts": districts.split(",") if districts else None,
        "rate": rate,
        "concurrency": concurrency,
        "skipExisting": not no_skip_existing,
        "retryFailures": not no_retry_failures,
        "recheckUnavailable": recheck_unavailable,
        "dryRun": dry_run,
        "planHash": plan_hash,
    }
    try:
        request = BackfillRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        for e in field_errors(exc):
            click.echo(f"error: {e['field']}: {e['message']}", err=True)
        raise click.exceptions.Exit(int(ExitCode.BAD_INPUT)) from None
    service = service_for(dagster_url, root)
    launch_and_report(
        service,
        lambda: service.launch(request, requester=f"cli:{getpass.getuser()}", idempotency_key=key),
        plan_error=lambda exc: CliError(f"{exc.field}: {exc.message}", ExitCode.BAD_INPUT),
        label="backfill",
        nothing="nothing left to collect",
        dry_run=dry_run,
        follow_it=not no_follow,
        as_json=as_json,
        idempotency_key=None if dry_run else key,
    )


def launch_and_report(
    service: BackfillService,
    launch: Callable[[], Any],
    *,
    plan_error: Callable[[PlanError], CliError],
    label: str,
    nothing: str,
    dry_run: bool,
    follow_it: bool,
    as_json: bool,
    idempotency_key: str | None = None,
) -> None:
    """Launch (a backfill, a heal), show its plan and id, then follow it to its end when asked;
    a plan that changed since its hash is shown and exits 6. A launch with a key that already
    has its backfill shows (and follows) that one."""
    with service_errors(idempotency_key):
        try:
            launched = launch()
        except PlanError as exc:
            raise plan_error(exc) from None
        except PlanConflict as exc:
            print_plan(plan_json(exc.plan))
            raise CliError(str(exc), ExitCode.PLAN_CHANGED) from None
        answer: dict[str, Any] = {"backfillId": launched.backfill_id, "plan": plan_json(launched.plan)}
        if idempotency_key is not None:
            answer |= {"idempotencyKey": idempotency_key, "replayed": launched.replayed}
        if not as_json:
            print_plan(answer["plan"])
            if launched.backfill_id is None:
                click.echo("\nnothing launched" + (" (dry run)" if dry_run else f": {nothing}"))
            elif launched.replayed:
                click.echo(f"\nalready launched with this --idempotency-key: {label} {launched.backfill_id}")
            else:
                click.echo(f"\nlaunched {label} {launched.backfill_id}")
        if launched.backfill_id is None or not follow_it:
            if as_json:
                print_json(answer)
            return
        final = follow(service, launched.backfill_id, quiet=as_json)
    show({**answer, "status": final}, as_json, lambda _: print_status(final))
    finish(outcome(final))


@click.command("status")
@click.argument("backfill_id")
@click.option("--follow", "follow_it", is_flag=True, help="follow progress until the end")
@dagster_options
def status(
    backfill_id: str, follow_it: bool, dagster_url: str | None, root: str | None, as_json: bool
) -> None:
    """Show a backfill's progress."""
    service = service_for(dagster_url, root)
    with service_errors():
        if follow_it:
            answer = follow(service, backfill_id, quiet=as_json)
        else:
            answer = to_json(service.status(backfill_id))
    show(answer, as_json, print_status)
    if follow_it:
        finish(outcome(answer))


@click.command("cancel")
@click.argument("backfill_id")
@dagster_options
def cancel(backfill_id: str, dagster_url: str | None, root: str | None, as_json: bool) -> None:
    """Cancel a running backfill."""
    with service_errors():
        answer = to_json(service_for(dagster_url, root).cancel(backfill_id))
    show(answer, as_json, lambda status: click.echo(f"backfill {backfill_id}: {status['state']}"))


@click.command("retry")
@click.argument("backfill_id")
@click.option("--follow", "follow_it", is_flag=True, help="follow progress until the end")
@idempotency_option
@dagster_options
def retry(
    backfill_id: str,
    follow_it: bool,
    key: str | None,
    dagster_url: str | None,
    root: str | None,
    as_json: bool,
) -> None:
    """Re-execute only what failed, as a new backfill."""
    key = idempotency_key(key)
    service = service_for(dagster_url, root)
    with service_errors(key):
        retried = service.retry(backfill_id, requester=f"cli:{getpass.getuser()}", idempotency_key=key)
        new_id = retried.backfill_id
        if not as_json:
            again = "already launched with this --idempotency-key: " if retried.replayed else "launched "
            click.echo(f"{again}backfill {new_id}")
        if not follow_it:
            if as_json:
                print_json({"backfillId": new_id})
            return
        final = follow(service, new_id, quiet=as_json)
    show({"backfillId": new_id, "status": final}, as_json, lambda _: print_status(final))
    finish(outcome(final))


@click.command("list")
@click.option(
    "--limit",
    type=AsciiInt(1, MAX_LIST),
    default=20,
    show_default=True,
    help=f"how many, newest first (1 to {MAX_LIST})",
)
@dagster_options
def list_backfills(limit: int, dagster_url: str | None, root: str | None, as_json: bool) -> None:
    """List the latest backfills."""
    with service_errors():
        rows = to_json(service_for(dagster_url, root).list(limit=limit))
    show(rows, as_json, print_list)
