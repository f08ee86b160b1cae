"""`backfill-pipeline api`: serve the REST API with uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ..dashboard.calendar import utc_today
from ..settings import SettingsError, load_settings


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is within 0..65535, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The API options, shared by the sub-command and `python -m backfill_pipeline.api.command`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=_port, default=8080, help="port to bind (default %(default)s)")
    parser.add_argument(
        "--dagster-url", help="Dagster's webserver (default $BACKFILL_DAGSTER_URL or http://127.0.0.1:3000)"
    )
    parser.add_argument("--root", help="data root (default $BACKFILL_DATA_ROOT or ./data)")
    parser.add_argument(
        "--today",
        type=_iso_date,
        default=None,
        help="pretend today is YYYY-MM-DD, as the sandbox's --today (default: the real date)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default %(default)s)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `api` sub-command."""
    p = sub.add_parser("api", help="serve the REST API (launch, watch, cancel, retry backfills)")
    add_arguments(p)
    p.set_defaults(handler=run_api)


def run_api(args: argparse.Namespace) -> int:
    """Serve the API on --host:--port, talking to Dagster at --dagster-url; 0 after a clean stop."""
    # Imported here so `backfill-pipeline --help` stays fast.
    import uvicorn

    from .app import create_app
    from .service import BackfillService

    try:
        settings = load_settings(
            {"dagster_url": "--dagster-url", "data_root": "--root"},
            dagster_url=args.dagster_url,
            data_root=args.root,
        )
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dagster_url, root = settings.dagster_url, settings.data_root
    fixed = args.today
    today = (lambda: fixed) if fixed else utc_today

    def service() -> BackfillService:
        return BackfillService(settings, today=today)

    print(
        f"backfill API on http://{args.host}:{args.port}/api (Dagster at {dagster_url}, data root {root})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m backfill_pipeline.api.command`."""
    parser = argparse.ArgumentParser(
        prog="python -m backfill_pipeline.api.command", description="Serve the backfill REST API."
    )
    add_arguments(parser)
    return run_api(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
