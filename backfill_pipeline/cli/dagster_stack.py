"""`backfill-pipeline daemon` and `backfill-pipeline dev`: Dagster's daemons and webserver with
a backfill daemon that starts a backfill's runs within a second (backfill_pipeline/daemon.py).

`daemon` replaces `dagster-daemon run` (same workspace options: `-m`, `-w`, `--grpc-port`...).
`dev` replaces `dagster dev`: one code server (`backfill_pipeline.codeserver`: `dagster api grpc`
whose runs fork from a preloaded process), `dagster-webserver` and `daemon` over it, stopped
together; `dagster dev` itself cannot be given another daemon (its
daemon command line is fixed), so with it a backfill waits for Dagster's 30-s tick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from dagster_shared.cli import WorkspaceOpts, workspace_options

from .. import devstack
from ..devstack import (
    LOCATION,
    Interrupted,
    ProcessExited,
    StopSignals,
    code_server_argv,
    free_port,
    held,
    wait_for,
)
from .common import AsciiInt, CliError, json_option, print_json_line
from .exit_codes import ExitCode

# The code location's name (devstack.LOCATION) is the module's, as under `dagster dev -m
# backfill_pipeline.definitions` too, so runs made under either re-execute under the other.
MODULE = LOCATION
CODE_SERVER_TIMEOUT = 180.0
WEBSERVER_TIMEOUT = 180.0
# Not 0: the webserver would bind a port `dev` could not announce or wait for.
LISTEN_PORT = AsciiInt(1, 65535)


def require_dagster_home() -> Path:
    """DAGSTER_HOME, which must name an existing directory (one instance for every process)."""
    value = os.environ.get("DAGSTER_HOME", "")
    if not value:
        raise CliError(
            "DAGSTER_HOME is not set: the webserver and the daemon must share one instance "
            "(README: mkdir -p $DAGSTER_HOME && cp dagster.yaml $DAGSTER_HOME/)",
            ExitCode.BAD_INPUT,
        )
    home = Path(value)
    if not home.is_dir():
        raise CliError(f"DAGSTER_HOME={value!r} is not a directory", ExitCode.BAD_INPUT)
    return home


@click.command("daemon")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False),
    default="info",
    show_default=True,
)
@json_option
@workspace_options
def daemon(log_level: str, as_json: bool, **workspace: object) -> None:
    """Dagster's daemons, the backfill daemon acting within a second (replaces `dagster-daemon run`)."""
    from dagster import DagsterInstance
    from dagster._cli.workspace.cli_target import workspace_opts_to_load_target

    from ..daemon import brisk_daemon_controller

    require_dagster_home()
    opts = WorkspaceOpts.extract_from_cli_options(dict(workspace))
    if not (opts.workspace or opts.module_name or opts.python_file or opts.package_name or opts.grpc_port):
        opts = WorkspaceOpts.extract_from_cli_options({**workspace, "module_name": (MODULE,)})
    with StopSignals():
        try:
            with DagsterInstance.get() as instance:
                target = workspace_opts_to_load_target(opts)
                with brisk_daemon_controller(instance, target, log_level=log_level) as controller:
                    running = sorted(type(d).__name__ for d in controller.daemons)
                    if as_json:
                        print_json_line({"daemons": running})
                    else:
                        click.echo(f"daemons running: {', '.join(running)}", err=True)
                    controller.check_daemon_loop()
        except Interrupted as stop:
            raise click.exceptions.Exit(stop.exit_code) from None


def workspace_file(directory: Path, port: int) -> Path:
    """A workspace.yaml naming the code server on `port` as the project's code location."""
    path = directory / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {port}\n"
        f"      location_name: {LOCATION}\n"
    )
    return path


def wait_for_code_server(port: int, process: subprocess.Popen, timeout: float = CODE_SERVER_TIMEOUT) -> None:
    """Until the code server on `port` answers a ping (its definitions loaded)."""
    try:
        devstack.wait_for_code_server(port, process, timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise CliError(str(exc)) from None


def stop_children(children: list[subprocess.Popen], timeout: float = 20) -> None:
    """SIGTERM every child (the last started first), then SIGKILL what is left after `timeout`."""
    with held():
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + timeout
        for child in reversed(children):
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="address the webserver binds")
@click.option("--port", type=LISTEN_PORT, default=3000, show_default=True, help="port the webserver binds")
@json_option
def dev(host: str, port: int, as_json: bool) -> None:
    """`dagster dev` for this project: code server, webserver and `daemon`, runs started warm."""
    require_dagster_home()
    code_port = free_port()
    bin_dir = Path(sys.executable).parent
    children: list[subprocess.Popen] = []
    names: dict[int, str] = {}

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        with held():  # recorded before a signal can unwind
            child = subprocess.Popen(argv)
            children.append(child)
            names[child.pid] = name
        return child

    with StopSignals(), tempfile.TemporaryDirectory(prefix="backfill-dev-") as tmp:
        try:
            workspace = workspace_file(Path(tmp), code_port)
            code_server = start(
                "the code server",
                [*code_server_argv(code_port), "--log-level", "warning"],
            )
            wait_for_code_server(code_port, code_server)
            start(
                "the webserver",
                [str(bin_dir / "dagster-webserver"), "-w", str(workspace), "-h", host, "-p", str(port)],
            )
            start(
                "the daemon", [sys.executable, "-m", "backfill_pipeline.cli", "daemon", "-w", str(workspace)]
            )
            url = f"http://{host}:{port}"
            try:
                wait_for(url + "/server_info", WEBSERVER_TIMEOUT, children)
            except ProcessExited as exc:
                raise CliError(
                    f"{names[exc.process.pid]} exited with {exc.process.returncode} at start"
                    f" (is {host}:{port} free and an address of this machine?)"
                ) from None
            except TimeoutError:
                waited = f"{WEBSERVER_TIMEOUT:.0f}s"
                raise CliError(f"the webserver did not answer at {url} within {waited}") from None
            if as_json:
                print_json_line({"dagsterUrl": url, "codeServerPort": code_port, "pid": os.getpid()})
            else:
                click.echo(f"Dagster at {url} (Ctrl-C stops it all)", err=True)
            while True:
                for child in children:
                    if child.poll() is not None:
                        raise CliError(f"{names[child.pid]} exited with {child.returncode}")
                time.sleep(1)
        except Interrupted as stop:
            stop_children(children)
            raise click.exceptions.Exit(stop.exit_code) from None
        finally:
            stop_children(children)
