"""`backfill-pipeline demo`: the sandbox, Dagster and the API, a small backfill, and the result."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests

from ..dashboard.calendar import utc_today
from ..devstack import Service, dagster_service, free_port, sandbox_service
from ..sandbox import publication
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
    base = Path(directory).resolve()
    root, home, logs = base / "data", base / "dagster_home", base / "logs"
    today = utc_today()
    dates = demo_dates(today, days)
    sandbox_port = sandbox_port or free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    dagster_url, api_url = f"http://127.0.0.1:{dagster_port}", f"http://127.0.0.1:{api_port}"
    settings: dict[str, Any] = {
        "data_root": root,
        "dashboard_url": sandbox_url,
        "rate": 10,
        "batch_size": 10,
        "start_date": dates[0] - dt.timedelta(days=60),
        "dagster_url": dagster_url,
    }
    load(**settings)  # the processes below inherit every other BACKFILL_* variable: check them first
    env = {variable(name): str(value) for name, value in settings.items()}

    def say(text: str) -> None:
        # With --json, stdout carries only the final status.
        click.echo(text, err=as_json)

    logs.mkdir(parents=True, exist_ok=True)
    services: list[Service] = []
    code = ExitCode.OK
    try:
        say(f"[1/5] sandbox dashboard (logs in {logs})")
        sandbox = sandbox_service(sandbox_port, today=today.isoformat(), log_path=logs / "sandbox.log")
        services.append(sandbox.start())
        say(f"      {sandbox_url}")

        say("[2/5] Dagster (webserver + daemon), about 20 s")
        dagster = dagster_service(dagster_port, home=home, env=env, log_path=logs / "dagster.log")
        services.append(dagster.start(timeout=180))
        say(f"      {dagster_url}")

        say("[3/5] the backfill REST API")
        argv = [sys.executable, "-m", "backfill_pipeline.cli", "api", "--port", str(api_port)]
        argv += ["--dagster-url", dagster_url, "--root", str(root)]
        api = Service(
            "api",
            argv,
            env={**os.environ, **env},
            url=api_url,
            health="/api/health",
            log_path=logs / "api.log",
        )
        services.append(api.start(timeout=60))
        say(f"      {api_url}/api/backfills  (OpenAPI: {api_url}/api/openapi.json)")

        say(f"[4/5] POST {api_url}/api/backfills")
        body = {
            "startDate": dates[0].isoformat(),
            "endDate": dates[-1].isoformat(),
            "targetDistricts": districts.split(","),
            "rate": 8,
            "concurrency": 2,
        }
        r = requests.post(
            f"{api_url}/api/backfills", json=body, timeout=60, headers={"X-Requested-By": "demo"}
        )
        if r.status_code != 202:
            raise CliError(f"the API answered {r.status_code}: {r.text}")
        answer = r.json()
        if not as_json:
            print_plan(answer["plan"])
        location = f"{api_url}{r.headers['Location']}"
        say(f"      202 Accepted, backfill {answer['backfillId']}: {location}")
        status = watch(
            lambda: requests.get(location, timeout=30).json(),
            lambda s: f"runs {s['runs']['byStatus']}",
            interval=FOLLOW_INTERVAL,
            indent="      ",
            quiet=as_json,
        )
        if as_json:
            print_json(status)
        else:
            print_status(status)
            say(f"[5/5] the snapshot tree under {root / 'snapshots'}")
            print_tree(root / "snapshots", status["plan"]["districts"])
        say(f"\nDagster UI: {dagster_url}/runs/b/{answer['backfillId']}   assets: {dagster_url}/assets")
        say(f"REST API:   {location}")
        if exit_when_done:
            code = ExitCode.OK if status["state"] == "succeeded" else ExitCode.FAILED
        else:
            say("Everything keeps running; press Ctrl-C to stop.")
            while all(s.process and s.process.poll() is None for s in services):
                time.sleep(1)
            raise CliError(f"a process of the demo stopped (logs in {logs})")
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, TimeoutError, requests.RequestException) as exc:
        raise CliError(f"{exc} (logs in {logs})") from None
    finally:
        for service in reversed(services):
            service.stop()
    finish(code)


def print_tree(path: Path, detailed: list[str]) -> None:
    """Each snapshot directory: its date files, and the detailed district files."""
    for day in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f.name for f in day.iterdir() if not f.name.startswith("."))
        district_files = [f for f in files if f.startswith("district_")]
        click.echo(
            f"  {day.name}/  {len(district_files)} district files (summary detail, "
            f"detailed for {', '.join(detailed)})"
        )
        for name in [f for f in files if not f.startswith("district_")]:
            click.echo(f"    {name}")
        for district in detailed:
            if f"district_{district}.json" in files:
                click.echo(f"    district_{district}.json")
    pointer = path / "latest-successful.json"
    if pointer.exists():
        click.echo(f"  {pointer.name}")
