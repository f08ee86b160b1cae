"""`backfill-pipeline api`: serve the REST API with uvicorn until SIGINT, SIGTERM or SIGHUP.

Every call that changes something needs the API's bearer token (BACKFILL_API_TOKEN, or on
loopback the token generated once into the data root, printed on stderr when it is made); off
loopback reads need it too, and the variable must be set. A signal stops the server cleanly (open
requests are finished) and the command exits 128 + the signal's number, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import click

from ..dashboard.calendar import utc_today
from .common import PORT, CliError, IsoDate, json_option, load, print_json_line, root_option
from .exit_codes import ExitCode

# The signals that stop the server: Ctrl-C, `kill`, and the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", type=PORT, default=8080, show_default=True, help="port to bind, 0 for any free one")
@click.option(
    "--dagster-url", help="Dagster's webserver (default $BACKFILL_DAGSTER_URL or http://127.0.0.1:3000)"
)
@root_option
@click.option(
    "--today",
    type=IsoDate(),
    help="pretend today is YYYY-MM-DD, as the sandbox's --today (default: the real date)",
)
@click.option(
    "--reads-need-token",
    is_flag=True,
    help="ask for the token on reads too, on loopback (behind a proxy); off loopback they always do",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level",
)
@json_option
def api(
    host: str,
    port: int,
    dagster_url: str | None,
    root: str | None,
    today: dt.date | None,
    reads_need_token: bool,
    log_level: str,
    as_json: bool,
) -> None:
    """Serve the REST API (launch, watch, cancel, retry backfills)."""
    # Imported here so that the other commands do not load the web stack.
    import uvicorn

    from ..api.app import create_app
    from ..api.auth import READ_AGAIN, TOKEN_VARIABLE, TokenError, is_loopback, server_token
    from ..api.security import Security
    from ..api.service import BackfillService

    settings = load(
        {"dagster_url": "--dagster-url", "data_root": "--root"}, dagster_url=dagster_url, data_root=root
    )
    if not is_loopback(host) and settings.api_token is None:
        raise CliError(
            f"--host {host} is not loopback: set {TOKEN_VARIABLE} (every client then sends it as "
            "`Authorization: Bearer <token>`); the generated token file serves loopback only",
            ExitCode.BAD_INPUT,
        )

    def service() -> BackfillService:
        return BackfillService(settings, today=(lambda: today) if today else utc_today)

    # Bound here rather than by uvicorn: a port in use is our error (exit 1), and port 0 gets its number.
    try:
        listener = socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        token = server_token(settings, host)
    except TokenError as exc:
        listener.close()
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    security = Security.for_server(
        token.value, host, extra_hosts=settings.allowed_hosts, reads_need_token=reads_need_token
    )
    bound = listener.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    info = {
        "url": f"http://{shown_host}:{bound}/api",
        "openapi": f"http://{shown_host}:{bound}/api/openapi.json",
        "dagsterUrl": settings.dagster_url,
        "dataRoot": str(settings.data_root),
        "tokenFrom": token.source if token.source != "file" else str(token.file),
        "readsNeedToken": security.reads_need_token,
        "allowedHosts": sorted(security.hosts),
    }
    if token.generated:
        # Once, on the start that made it; never on stdout (which --json keeps for the announcement).
        click.echo(
            f"generated the API's token into {token.file} (readable by you only): {token.value}\n"
            f"clients send `Authorization: Bearer <token>`; `{READ_AGAIN}` prints it again",
            err=True,
        )
    if host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        click.echo(
            "warning: BACKFILL_ALLOWED_HOSTS is empty: only requests addressed to a loopback name "
            "are answered (421 for any other Host); set it to the names clients use",
            err=True,
        )

    stopped_by: list[int] = []

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and as_json:
                print_json_line(info)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's, with SIGHUP too, and without re-raising the signal afterwards: the
            # command exits with its own status once the server has shut down.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            stopped_by.append(sig)
            super().handle_exit(sig, frame)

    if not as_json:
        where = f"Dagster at {settings.dagster_url}, data root {settings.data_root}"
        click.echo(f"backfill API on {info['url']} ({where})", err=True)
    logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if as_json:  # stdout carries the announcement only; the access log (stdout by default) joins stderr
        logging["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config = uvicorn.Config(
        create_app(service, security=security),
        host=host,
        port=bound,
        log_level=log_level,
        log_config=logging,
    )
    Server(config).run(sockets=[listener])
    if stopped_by:
        # Interrupted: not a success for whoever started it (128 + the signal, as a shell says).
        raise click.exceptions.Exit(128 + stopped_by[0])
