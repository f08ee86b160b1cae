"""`backfill-pipeline fetch`: fetch one as-of date from the dashboard and print what came back."""

from __future__ import annotations

import argparse
import json
import sys

from ..district_ids import InvalidDistrictId, normalise_district_id
from ..settings import SettingsError, load_settings
from .calendar import parse_as_of
from .client import DashboardClient
from .errors import DashboardError

COLUMNS = ("report", "available", "asOf", "dataMonth", "closingPeriod", "rows", "cacheHit", "sha256", "url")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `fetch` sub-command."""
    p = sub.add_parser("fetch", help="fetch the summary (and a district's reports) for one date")
    p.add_argument("--as-of", required=True, help="as-of date, YYYY-MM-DD")
    p.add_argument("--district", help="also fetch this district's three reports (e.g. 61, F)")
    p.add_argument("--base-url", help="dashboard base URL (default $BACKFILL_DASHBOARD_URL or the real one)")
    p.add_argument("--root", help="data root holding the raw cache (default $BACKFILL_DATA_ROOT or ./data)")
    p.add_argument("--rate", type=float, help="requests per second (default $BACKFILL_RATE or 2)")
    p.add_argument("--force", action="store_true", help="ignore the raw cache and ask the dashboard")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    """Validate everything first, then fetch; exit 0 on success, 1 on a dashboard error, 2 on bad input."""
    try:
        as_of = parse_as_of(args.as_of)
        district = normalise_district_id(args.district) if args.district is not None else None
        deployment = load_settings(
            {"dashboard_url": "--base-url", "rate": "--rate", "data_root": "--root"},
            dashboard_url=args.base_url,
            rate=args.rate,
            data_root=args.root,
        )
    except (ValueError, InvalidDistrictId, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    with DashboardClient(deployment.client(), deployment.root) as client:
        try:
            fetched = client.fetch_date(as_of, district, force=args.force)
        except DashboardError as exc:
            kind = "retryable" if exc.retryable else "permanent"
            print(f"error: {type(exc).__name__} ({kind}): {exc}", file=sys.stderr)
            return 1
        stats = client.stats()

    reports = [r.summary() for r in fetched.results]
    if args.json:
        print(
            json.dumps(
                {"asOf": as_of.isoformat(), "district": district, "reports": reports, "stats": stats},
                indent=2,
            )
        )
        return 0
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in reports)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for r in reports:
        print("  ".join(_cell(r[c]).ljust(widths[c]) for c in COLUMNS))
    print(
        f"\n{stats['requests']} HTTP requests, {stats['cacheHits']} cache hits, "
        f"{stats['rateLimitWaitSeconds']}s waited on the rate limiter, breaker {stats['breakerState']}"
    )
    return 0


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
