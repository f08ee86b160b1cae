"""`backfill-pipeline api`: serve the REST API with uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import copy
import datetime as dt
import socket
from typing import Any

import click

from ..dashboard.calendar import utc_today
from .common import PORT, CliError, IsoDate, json_option, load, print_json_line, root_option


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
    log_level: str,
    as_json: bool,
) -> None:
    """Serve the REST API (launch, watch, cancel, retry backfills)."""
    # Imported here so that the other commands do not load the web stack.
    import uvicorn

    from ..api.app import create_app
    from ..api.service import BackfillService

    settings = load(
        {"dagster_url": "--dagster-url", "data_root": "--root"}, dagster_url=dagster_url, data_root=root
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
    bound = listener.getsockname()[1]
    info = {
        "url": f"http://{host}:{bound}/api",
        "openapi": f"http://{host}:{bound}/api/openapi.json",
        "dagsterUrl": settings.dagster_url,
        "dataRoot": str(settings.data_root),
    }

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and as_json:
                print_json_line(info)

    if not as_json:
        where = f"Dagster at {settings.dagster_url}, data root {settings.data_root}"
        click.echo(f"backfill API on {info['url']} ({where})", err=True)
    logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if as_json:  # stdout carries the announcement only; the access log (stdout by default) joins stderr
        logging["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config = uvicorn.Config(
        create_app(service), host=host, port=bound, log_level=log_level, log_config=logging
    )
    try:
        Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        # uvicorn re-raises the signal it stopped on once it has shut down, as uvicorn.run expects:
        # Ctrl-C ends here with 0; SIGTERM ends the process by that signal.
        pass
