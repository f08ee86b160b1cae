"""The `sandbox` command: serve the sandbox dashboard until SIGINT, SIGTERM or SIGHUP.

A click command of its own (the sandbox imports nothing of the product): `python -m
backfill_pipeline.sandbox` runs it alone, and `backfill-pipeline sandbox` adds it to the CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

import click

from .faults import FaultRule
from .publication import DEFAULT_SEED, latest_published, open_program_year, parse_held_back

RATE = click.FloatRange(0.0, 1.0)


def _iso_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None


def _held_back(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[dt.date]:
    try:
        return sorted(parse_held_back(values))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rules(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[dict]:
    rules = []
    for text in values:
        try:
            raw = json.loads(text)
            FaultRule.from_dict(raw)
        except ValueError as exc:
            raise click.BadParameter(f"bad fault rule {text!r}: {exc}") from None
        rules.append(raw)
    return rules


def fault_rules(options: Mapping[str, Any]) -> list[dict]:
    """The fault rules the command's options describe (its parameters, as click passes them)."""
    rules: list[dict] = []
    if options["latency_ms"]:
        rules.append({"kind": "latency", "latencyMs": options["latency_ms"]})
    for rate, rule in (
        (options["reset_rate"], {"kind": "reset"}),
        (options["error_rate"], {"kind": "error", "status": options["error_status"]}),
        (options["rate_429"], {"kind": "429", "retryAfter": options["retry_after"]}),
        (options["html_rate"], {"kind": "html"}),
        (options["truncate_rate"], {"kind": "truncate"}),
        (options["wrong_as_of_rate"], {"kind": "wrong_as_of"}),
    ):
        if rate:
            rules.append({**rule, "rate": rate})
    return rules + list(options["fault"])


@click.command("sandbox", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="port to bind, 0 for any free one",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="seed of all generated data")
@click.option("--today", callback=_iso_date, help="pretend today is YYYY-MM-DD (default: the real date)")
@click.option("--bom", is_flag=True, help="start CSV bodies with a UTF-8 BOM")
@click.option(
    "--error-rate", type=RATE, default=0.0, help="share of export requests answered with an HTTP error"
)
@click.option(
    "--error-status", type=int, default=500, show_default=True, help="status of --error-rate answers"
)
@click.option(
    "--rate-429", type=RATE, default=0.0, help="share of export requests answered 429 Too Many Requests"
)
@click.option(
    "--retry-after", type=int, default=1, show_default=True, help="Retry-After seconds of 429 answers"
)
@click.option("--latency-ms", type=int, default=0, help="delay added to every export request")
@click.option("--truncate-rate", type=RATE, default=0.0, help="share of bodies cut mid-row, without footer")
@click.option(
    "--html-rate", type=RATE, default=0.0, help="share of export requests answered with an HTML page"
)
@click.option("--wrong-as-of-rate", type=RATE, default=0.0, help="share of footers given another as-of date")
@click.option("--reset-rate", type=RATE, default=0.0, help="share of connections closed without an answer")
@click.option(
    "--fault",
    multiple=True,
    callback=_rules,
    metavar="JSON",
    help='an extra fault rule, e.g. \'{"kind": "error", "status": 503}\' (repeatable)',
)
@click.option(
    "--hold-back",
    multiple=True,
    callback=_held_back,
    metavar="YYYY-MM-DD",
    help="a date not published yet, until released through PUT/DELETE /_sandbox/publication (repeatable)",
)
@click.option("--json", "as_json", is_flag=True, help="announce the server as one JSON line")
def sandbox(host: str, port: int, seed: int, today: dt.date | None, bom: bool, **options: Any) -> None:
    """Serve a local dashboard that speaks the real export protocol."""
    from .server import SandboxServer

    server = SandboxServer(
        host=host,
        port=port,
        seed=seed,
        today=today,
        faults=fault_rules(options),
        bom=bom,
        held_back=options["hold_back"],
    )
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    held = frozenset(server.held_back())
    latest = latest_published(server.today, server.seed, held)
    info = {
        "url": server.url,
        "seed": server.seed,
        "today": server.today.isoformat(),
        "latestAsOf": latest.isoformat() if latest else None,
        "openProgramYear": open_program_year(server.today, server.seed, held),
        "faultRules": len(server.faults()),
        "heldBack": [d.isoformat() for d in sorted(held)],
    }
    if options["as_json"]:
        click.echo(json.dumps(info))
    else:
        click.echo(server.url)
        click.echo(
            f"sandbox dashboard: seed {info['seed']}, today {info['today']}, latest as-of "
            f"{info['latestAsOf'] or 'none'}, open program year {info['openProgramYear']}, "
            f"{info['faultRules']} fault rule(s)",
            err=True,
        )
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m backfill_pipeline.sandbox`."""
    sandbox.main(argv, prog_name="python -m backfill_pipeline.sandbox")
