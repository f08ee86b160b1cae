"""`backfill-pipeline demo`: the sandbox, Dagster and the API, a small backfill, and the result."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

from ..dashboard.calendar import utc_today
from ..dataroot import DataRoot
from ..devstack import (
    Interrupted,
    Service,
    StopSignals,
    dagster_service,
    free_port,
    sandbox_service,
    stop_all,
)
from ..district_ids import InvalidDistrictId
from ..sandbox import publication
from ..scope import DistrictConfig, normalise_ids
from ..settings import variable
from .common import PORT, CliError, finish, json_option, load, print_json
from .exit_codes import ExitCode
from .render import print_plan, print_status, watch

FOLLOW_INTERVAL = 3.0  # seconds between two status polls


def demo_dates(today: dt.date, days: int) -> list[dt.date]:
    """`days` consecutive dates the sandbox has published, ending a week or so before today."""
    end = today - dt.timedelta(days=8)
    while True:
        run = [end - dt.timedelta(days=i) for i in reversed(range(days))]
        if all(publication.is_published(d, today=today) for d in run):
            return run
        end -= dt.timedelta(days=1)


@dataclass(frozen=True)
class DemoStack:
    """Where the demo's processes listen and keep their files."""

    base: Path
    today: dt.date
    dates: list[dt.date]
    sandbox_url: str
    dagster_url: str
    api_url: str

    @property
    def root(self) -> DataRoot:
        """The demo's data root."""
        return DataRoot(self.base / "data")

    @property
    def logs(self) -> Path:
        """Where each process writes its log."""
        return self.base / "logs"

    def env(self) -> dict[str, str]:
        """The BACKFILL_* variables of the demo's processes, checked first (exit 2 when bad)."""
        settings: dict[str, Any] = {
            "data_root": self.root.path,
            "dashboard_url": self.sandbox_url,
            "rate": 10,
            "batch_size": 10,
            "start_date": self.dates[0] - dt.timedelta(days=60),
            "dagster_url": self.dagster_url,
        }
        # The processes inherit every other BACKFILL_* variable too: load() checks them all.
        load(**settings)
        return {variable(name): str(value) for name, value in settings.items()}

    def start(self, say: Callable[[str], None], services: list[Service], districts: list[str]) -> None:
        """The sandbox, `dagster dev` and the API as processes, each appended to `services` before
        it starts (so whatever stops the demo stops it too), over a data root where `districts`
        are the configured ones (only known districts become partitions)."""
        env = self.env()
        self.logs.mkdir(parents=True, exist_ok=True)
        DistrictConfig(self.root).set(districts)
        say(f"[1/5] sandbox dashboard (logs in {self.logs})")
        port = int(self.sandbox_url.rsplit(":", 1)[1])
        sandbox = sandbox_service(port, today=self.today.isoformat(), log_path=self.logs / "sandbox.log")
        services.append(sandbox)
        sandbox.start()
        say(f"      {self.sandbox_url}")
        say("[2/5] Dagster (webserver + daemon), about 20 s")
        port = int(self.dagster_url.rsplit(":", 1)[1])
        dagster = dagster_service(
            port, home=self.base / "dagster_home", env=env, log_path=self.logs / "dagster.log"
        )
        services.append(dagster)
        dagster.start(timeout=180)
        say(f"      {self.dagster_url}")
        say("[3/5] the backfill REST API")
        argv = [
            sys.executable,
            "-m",
            "backfill_pipeline.cli",
            "api",
            "--port",
            self.api_url.rsplit(":", 1)[1],
        ]
        argv += ["--dagster-url", self.dagster_url, "--root", str(self.root)]
        api = Service(
            "api",
            argv,
            env={**os.environ, **env},
            url=self.api_url,
            health="/api/health",
            log_path=self.logs / "api.log",
        )
        services.append(api)
        api.start(timeout=60)
        say(f"      {self.api_url}/api/backfills  (OpenAPI: {self.api_url}/api/openapi.json)")

    def headers(self) -> dict[str, str]:
        """What every call to the demo's API sends: its bearer token (BACKFILL_API_TOKEN, else the
        one the API generated under the demo's data root on its first start)."""
        from ..api.auth import TokenError, client_token

        try:
            token = client_token(load(data_root=self.root.path))
        except TokenError as exc:
            raise CliError(str(exc), ExitCode.BAD_INPUT) from None
        headers = {"X-Requested-By": "demo"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        return headers

    def launch(self, districts: list[str]) -> tuple[dict[str, Any], str]:
        """POST the backfill to the API; its answer and the URL of its status."""
        body = {
            "startDate": self.dates[0].isoformat(),
            "endDate": self.dates[-1].isoformat(),
            "targetDistricts": districts,
            "rate": 8,
            "concurrency": 2,
        }
        url = f"{self.api_url}/api/backfills"
        r = requests.post(url, json=body, timeout=60, headers=self.headers())
        if r.status_code != 202:
            raise CliError(f"the API answered {r.status_code}: {r.text}")
        return r.json(), f"{self.api_url}{r.headers['Location']}"


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    default=".demo",
    show_default=True,
    help="where the demo keeps its data and Dagster home",
)
@click.option("--dagster-port", type=PORT, default=3000, show_default=True)
@click.option("--api-port", type=PORT, default=8080, show_default=True)
@click.option("--sandbox-port", type=PORT, default=0, help="0: any free port")
@click.option("--districts", default="42,61", show_default=True, help="districts to collect in detail")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="how many recent dates to backfill",
)
@click.option(
    "--exit-when-done",
    is_flag=True,
    help="stop everything once the backfill ends (default: keep the UI running)",
)
@json_option
def demo(
    directory: str,
    dagster_port: int,
    api_port: int,
    sandbox_port: int,
    districts: str,
    days: int,
    exit_when_done: bool,
    as_json: bool,
) -> None:
    """Run the whole thing offline: sandbox, Dagster, API, a backfill."""
    try:
        targets = normalise_ids(districts.split(","))
    except InvalidDistrictId as exc:
        raise CliError(f"--districts: {exc}", ExitCode.BAD_INPUT) from None
    today = utc_today()
    stack = DemoStack(
        base=Path(directory).resolve(),
        today=today,
        dates=demo_dates(today, days),
        sandbox_url=f"http://127.0.0.1:{sandbox_port or free_port()}",
        dagster_url=f"http://127.0.0.1:{dagster_port}",
        api_url=f"http://127.0.0.1:{api_port}",
    )

    def say(text: str) -> None:
        click.echo(text, err=as_json)  # with --json, stdout carries only the final status

    # SIGTERM and SIGHUP stop every process of the demo as Ctrl-C does, and the demo exits 128 +
    # the signal's number (130 on Ctrl-C, 143 on `kill`, 129 when its terminal closes).
    with StopSignals():
        try:
            code = run(stack, say, targets, exit_when_done=exit_when_done, as_json=as_json)
        except Interrupted as stop:
            note(f"{stop}: the sandbox, Dagster and the API are stopped")
            raise click.exceptions.Exit(stop.exit_code) from None
    finish(code)


def run(
    stack: DemoStack, say: Callable[[str], None], districts: list[str], *, exit_when_done: bool, as_json: bool
) -> ExitCode:
    """Start the stack, run the backfill and show it; every process started is stopped on the way
    out, however it goes (the end of the backfill with --exit-when-done, an error, a stop signal)."""
    services: list[Service] = []
    try:
        stack.start(say, services, districts)
        say(f"[4/5] POST {stack.api_url}/api/backfills")
        answer, location = stack.launch(districts)
        if not as_json:
            print_plan(answer["plan"])
        say(f"      202 Accepted, backfill {answer['backfillId']}: {location}")
        headers = stack.headers()
        status = watch(
            lambda: requests.get(location, timeout=30, headers=headers).json(),
            lambda s: f"runs {s['runs']['byStatus']}",
            interval=FOLLOW_INTERVAL,
            indent="      ",
            quiet=as_json,
        )
        if as_json:
            print_json(status)
        else:
            print_status(status)
            say(f"[5/5] the snapshot tree under {stack.root.snapshots}")
            print_tree(stack.root, status["plan"]["districts"])
        dagster = stack.dagster_url
        say(f"\nDagster UI: {dagster}/runs/b/{answer['backfillId']}   assets: {dagster}/assets")
        say(f"REST API:   {location}")
        if exit_when_done:
            return ExitCode.OK if status["state"] == "succeeded" else ExitCode.FAILED
        say("Everything keeps running; press Ctrl-C to stop.")
        while all(s.process and s.process.poll() is None for s in services):
            time.sleep(1)
        raise CliError(f"a process of the demo stopped (logs in {stack.logs})")
    except (OSError, RuntimeError, TimeoutError, requests.RequestException) as exc:
        raise CliError(f"{exc} (logs in {stack.logs})") from None
    finally:
        stop_all(services)


def note(text: str) -> None:
    """A line on stderr, unless stderr is gone (the terminal that closed and sent SIGHUP)."""
    try:
        click.echo(text, err=True)
    except OSError:
        pass


def print_tree(root: DataRoot, detailed: list[str]) -> None:
    """Each snapshot directory: its date files, and the detailed district files."""
    for day in root.dates():
        files = sorted(f.name for f in root.date_dir(day).iterdir() if not f.name.startswith("."))
        district_files = [f for f in files if f.startswith("district_")]
        click.echo(
            f"  {day.isoformat()}/  {len(district_files)} district files (summary detail, "
            f"detailed for {', '.join(detailed)})"
        )
        for name in [f for f in files if not f.startswith("district_")]:
            click.echo(f"    {name}")
        for district in detailed:
            if root.district(day, district).name in files:
                click.echo(f"    {root.district(day, district).name}")
    if root.pointer.exists():
        click.echo(f"  {root.pointer.name}")
