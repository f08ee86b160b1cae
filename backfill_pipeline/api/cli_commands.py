"""`backfill-pipeline backfill|status|cancel|retry|list`: the BackfillService from the terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time

from pydantic import ValidationError

from ..planning.planner import PlanError
from ..planning.request import BackfillRequest, field_errors
from ..settings import load_settings
from .graphql import BackfillNotFound, DagsterGraphQLError, DagsterUnreachable
from .service import BackfillService, NotCancellable, NothingToRetry, PlanConflict, StillRunning

FINAL_STATES = {"succeeded", "completed-with-failures", "failed", "canceled"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the backfill sub-commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dagster-url", help="Dagster webserver (default $BACKFILL_DAGSTER_URL)")
    common.add_argument("--root", help="data root (default $BACKFILL_DATA_ROOT or ./data)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("backfill", parents=[common], help="plan, launch and follow a backfill")
    p.add_argument("--start", required=True, help="first as-of date, YYYY-MM-DD")
    p.add_argument("--end", help="last as-of date (default: --start)")
    p.add_argument("--districts", help="comma-separated district ids (default: the scope)")
    p.add_argument("--type", default="auto", choices=["auto", "system-wide", "per-district"])
    p.add_argument("--rate", type=float, default=2.0, help="dashboard requests per second")
    p.add_argument("--concurrency", type=int, default=2, help="runs at once for this backfill")
    p.add_argument("--no-skip-existing", action="store_true", help="re-collect what exists")
    p.add_argument("--no-retry-failures", action="store_true", help="leave failed partitions out")
    p.add_argument("--dry-run", action="store_true", help="print the plan and cost only")
    p.add_argument("--plan-hash", help="launch only if the plan still has this hash")
    p.add_argument("--no-follow", action="store_true", help="return once launched")
    p.set_defaults(handler=run_backfill)

    for name, handler, text in [
        ("status", run_status, "show a backfill's progress"),
        ("cancel", run_cancel, "cancel a running backfill"),
        ("retry", run_retry, "re-execute only what failed"),
    ]:
        q = sub.add_parser(name, parents=[common], help=text)
        q.add_argument("backfill_id")
        if name != "cancel":
            q.add_argument("--follow", action="store_true", help="follow progress until the end")
        q.set_defaults(handler=handler)
    q = sub.add_parser("list", parents=[common], help="list the latest backfills")
    q.add_argument("--limit", type=int, default=20)
    q.set_defaults(handler=run_list)


def _service(args) -> BackfillService:
    return BackfillService(
        load_settings(
            {"dagster_url": "--dagster-url", "data_root": "--root"},
            dagster_url=args.dagster_url,
            data_root=args.root,
        )
    )


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _guarded(fn):
    """Turn the service's errors into clear messages and exit codes."""

    def wrapper(args) -> int:
        try:
            return fn(args)
        except DagsterUnreachable as exc:
            return _fail(f"{exc} (is `dagster dev` running? set --dagster-url)", 3)
        except BackfillNotFound as exc:
            return _fail(str(exc), 4)
        except (NotCancellable, NothingToRetry, StillRunning) as exc:
            return _fail(str(exc), 5)
        except DagsterGraphQLError as exc:
            return _fail(f"Dagster refused: {exc}", 1)

    return wrapper


def _request(args) -> BackfillRequest:
    body = {
        "startDate": args.start,
        "endDate": args.end,
        "collectionType": args.type,
        "targetDistricts": [d for d in args.districts.split(",")] if args.districts else None,
        "rate": args.rate,
        "concurrency": args.concurrency,
        "skipExisting": not args.no_skip_existing,
        "retryFailures": not args.no_retry_failures,
        "dryRun": args.dry_run,
        "planHash": args.plan_hash,
    }
    return BackfillRequest.model_validate({k: v for k, v in body.items() if v is not None})


@_guarded
def run_backfill(args) -> int:
    """Validate, plan, print the plan and cost, launch, and follow progress."""
    try:
        request = _request(args)
    except ValidationError as exc:
        for e in field_errors(exc):
            print(f"error: {e['field']}: {e['message']}", file=sys.stderr)
        return 2
    service = _service(args)
    try:
        launched = service.launch(request, requester=f"cli:{getpass.getuser()}")
    except PlanError as exc:
        return _fail(f"{exc.field}: {exc.message}", 2)
    except PlanConflict as exc:
        print_plan(exc.plan.to_dict())
        return _fail(str(exc), 6)
    plan = launched.plan.to_dict()
    if args.json and (request.dry_run or launched.backfill_id is None or args.no_follow):
        print(json.dumps({"backfillId": launched.backfill_id, "plan": plan}, indent=2))
        return 0
    print_plan(plan)
    if launched.backfill_id is None:
        print("\nnothing launched" + (" (dry run)" if request.dry_run else ": nothing left to collect"))
        return 0
    print(f"\nlaunched backfill {launched.backfill_id}")
    if args.no_follow:
        return 0
    return follow(service, launched.backfill_id, as_json=args.json)


def print_plan(plan: dict) -> None:
    """The plan as a few readable lines."""
    cost, parts = plan["cost"], plan["partitions"]
    print(f"strategy   {plan['strategy']}: {plan['rationale']}")
    print(f"dates      {plan['dates']['start']} .. {plan['dates']['end']} ({plan['dates']['count']})")
    print(f"districts  {', '.join(plan['districts']) or '(all in scope)'}")
    for o in plan["outOfScope"]:
        print(f"  out of scope: {o['id']} ({o['reason']}): {o['message']}")
    print(
        f"partitions {parts['total']} ({parts['all_districts_summary']} summary, "
        f"{parts['district_snapshot']} district); skipped {plan['skipped']}"
    )
    print(
        f"cost       {cost['requests']} HTTP requests (between {cost['lowerBound']} and "
        f"{cost['upperBound']}), {cost['cachedCsvs']} CSVs from cache, {cost['runs']} runs, "
        f"about {cost['seconds']}s at the rate"
    )
    for note in cost["notes"]:
        print(f"  {note}")
    print(f"plan hash  {plan['planHash']}")


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """`[#####.....]  12/40  30%`."""
    total = max(total, 1)
    filled = int(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>4}/{total} {100 * done // total:>3}%"


def print_status(status: dict) -> None:
    """Counts, per-district table, errors and performance."""
    c = status["counts"]
    print(f"backfill {status['id']}  {status['state']}  ({status.get('strategy') or '?'})")
    print(
        f"  {progress_bar(c['materialized'] + c['failed'], c['targeted'])}  "
        f"materialized {c['materialized']}, failed {c['failed']}, in progress {c['inProgress']}, "
        f"unavailable {c['unavailable']}, skipped {c['skipped']}"
    )
    if status["districts"]:
        print(f"  {'district':<9}{'done':>6}{'failed':>8}{'unavail.':>10}  last error")
        for district, row in status["districts"].items():
            print(
                f"  {district:<9}{row['done']:>6}{row['failed']:>8}{row['unavailable']:>10}  "
                f"{row['lastError'] or ''}"
            )
    for e in status["districtErrors"][:10]:
        print(
            f"  error: district {e['district']} {e.get('report') or ''}: {e['errorClass']} "
            f"({'retryable' if e['retryable'] else 'permanent'}): {e['message']}"
        )
    p = status["performance"]
    print(
        f"  requests {p['requestsMade']}, cache hit rate {p['cacheHitRate']}, waited "
        f"{p['rateLimitWaitSeconds']}s on the rate limiter, pool {p['poolSlotsInUse']}/"
        f"{p['poolLimit']} slots, breaker {p['breakerState']}"
    )


def follow(
    service: BackfillService, backfill_id: str, *, as_json: bool = False, interval: float = 3.0
) -> int:
    """Poll until the backfill ends; exit 0 on success, 1 otherwise."""
    tty = sys.stdout.isatty() and not as_json
    last = None
    while True:
        status = service.status(backfill_id)
        c = status["counts"]
        line = (
            f"{status['state']:<12} {progress_bar(c['materialized'] + c['failed'], c['targeted'])}"
            f"  failed {c['failed']}, running {c['inProgress']}"
        )
        if not as_json and line != last:
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            last = line
        if status["state"] in FINAL_STATES:
            break
        time.sleep(interval)
    if tty:
        print()
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        print_status(status)
    return 0 if status["state"] == "succeeded" else 1


@_guarded
def run_status(args) -> int:
    """Print one backfill's status (or follow it)."""
    service = _service(args)
    if args.follow:
        return follow(service, args.backfill_id, as_json=args.json)
    status = service.status(args.backfill_id)
    print(json.dumps(status, indent=2)) if args.json else print_status(status)
    return 0


@_guarded
def run_cancel(args) -> int:
    """Cancel a backfill."""
    status = _service(args).cancel(args.backfill_id)
    print(json.dumps(status, indent=2)) if args.json else print(
        f"backfill {args.backfill_id}: {status['state']}"
    )
    return 0


@_guarded
def run_retry(args) -> int:
    """Re-execute the failed partitions of a backfill as a new backfill."""
    service = _service(args)
    new_id = service.retry(args.backfill_id, requester=f"cli:{getpass.getuser()}")
    print(json.dumps({"backfillId": new_id}) if args.json else f"launched backfill {new_id}")
    if args.follow:
        return follow(service, new_id, as_json=args.json)
    return 0


@_guarded
def run_list(args) -> int:
    """The latest backfills."""
    rows = _service(args).list(limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']:<10} {r['state']:<24} {r['createdAt'] or '':<26} {r.get('title') or ''}")
    return 0
