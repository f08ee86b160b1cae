"""The `sandbox` sub-command: serve the sandbox dashboard until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading

from .faults import FaultRule
from .publication import DEFAULT_SEED, latest_published, open_program_year


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is within 0..1, got {text}")
    return value


def _rule(text: str) -> dict:
    try:
        raw = json.loads(text)
        FaultRule.from_dict(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad fault rule {text!r}: {exc}") from None
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox options, shared by the sub-command and `python -m backfill_pipeline.sandbox`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any free one (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of all generated data (default %(default)s)"
    )
    parser.add_argument(
        "--today", type=_iso_date, default=None, help="pretend today is YYYY-MM-DD (default: the real date)"
    )
    parser.add_argument("--bom", action="store_true", help="start CSV bodies with a UTF-8 BOM")
    faults = parser.add_argument_group("fault injection (export requests only)")
    faults.add_argument(
        "--error-rate", type=_rate, default=0.0, help="share of requests answered with an HTTP error"
    )
    faults.add_argument(
        "--error-status", type=int, default=500, help="status of --error-rate answers (default %(default)s)"
    )
    faults.add_argument(
        "--rate-429", type=_rate, default=0.0, help="share of requests answered 429 Too Many Requests"
    )
    faults.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds of 429 answers (default %(default)s)"
    )
    faults.add_argument("--latency-ms", type=int, default=0, help="delay added to every request")
    faults.add_argument(
        "--truncate-rate", type=_rate, default=0.0, help="share of bodies cut mid-row, without footer"
    )
    faults.add_argument(
        "--html-rate", type=_rate, default=0.0, help="share of requests answered with an HTML page"
    )
    faults.add_argument(
        "--wrong-as-of-rate", type=_rate, default=0.0, help="share of footers given another as-of date"
    )
    faults.add_argument(
        "--reset-rate", type=_rate, default=0.0, help="share of connections closed without an answer"
    )
    faults.add_argument(
        "--fault",
        type=_rule,
        action="append",
        default=[],
        metavar="JSON",
        help='an extra fault rule, e.g. \'{"kind": "error", "status": 503}\'',
    )


def faults_from_args(args: argparse.Namespace) -> list[dict]:
    """The fault rules the options describe."""
    rules: list[dict] = []
    if args.latency_ms:
        rules.append({"kind": "latency", "latencyMs": args.latency_ms})
    for rate, rule in (
        (args.reset_rate, {"kind": "reset"}),
        (args.error_rate, {"kind": "error", "status": args.error_status}),
        (args.rate_429, {"kind": "429", "retryAfter": args.retry_after}),
        (args.html_rate, {"kind": "html"}),
        (args.truncate_rate, {"kind": "truncate"}),
        (args.wrong_as_of_rate, {"kind": "wrong_as_of"}),
    ):
        if rate:
            rules.append({**rule, "rate": rate})
    return rules + list(args.fault)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; print the base URL first."""
    from .server import SandboxServer

    server = SandboxServer(
        host=args.host,
        port=args.port,
        seed=args.seed,
        today=args.today,
        faults=faults_from_args(args),
        bom=args.bom,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    today = server.today
    latest = latest_published(today, server.seed)
    print(server.url, flush=True)
    print(
        f"sandbox dashboard: seed {server.seed}, today {today.isoformat()}, latest as-of "
        f"{latest.isoformat() if latest else 'none'}, open program year "
        f"{open_program_year(today, server.seed)}, {len(server.faults())} fault rule(s)",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `sandbox` sub-command to a `add_subparsers()` object."""
    parser = subparsers.add_parser(
        "sandbox",
        help="serve a local dashboard with deterministic data (offline use, tests, benchmarks)",
        description="Serve a local Toastmasters dashboard that speaks the real export protocol.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m backfill_pipeline.sandbox`."""
    parser = argparse.ArgumentParser(
        prog="python -m backfill_pipeline.sandbox", description="Serve the sandbox dashboard."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
