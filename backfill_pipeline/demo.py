"""`backfill-pipeline demo`: the sandbox, Dagster and the API, a small backfill, and the result."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import requests

from .api.cli_commands import FINAL_STATES, print_plan, print_status, progress_bar
from .dashboard.calendar import utc_today
from .devstack import Service, dagster_service, free_port, sandbox_service
from .sandbox import publication


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` sub-command."""
    p = sub.add_parser("demo", help="run the whole thing offline: sandbox, Dagster, API, a backfill")
    p.add_argument("--dir", default=".demo", help="where the demo keeps its data and Dagster home")
    p.add_argument("--dagster-port", type=int, default=3000)
    p.add_argument("--api-port", type=int, default=8080)
    p.add_argument("--sandbox-port", type=int, default=0, help="0: any free port")
    p.add_argument("--districts", default="42,61", help="districts to collect in detail")
    p.add_argument("--days", type=int, default=3, help="how many recent dates to backfill")
    p.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop everything once the backfill ends (default: keep the UI running)",
    )
    p.set_defaults(handler=run_demo)


def demo_dates(today: dt.date, days: int) -> list[dt.date]:
    """`days` consecutive dates the sandbox has published, ending a week or so before today."""
    end = today - dt.timedelta(days=8)
    while True:
        run = [end - dt.timedelta(days=i) for i in reversed(range(days))]
        if all(publication.is_published(d, today=today) for d in run):
            return run
        end -= dt.timedelta(days=1)


def run_demo(args: argparse.Namespace) -> int:
    """Start everything, launch a backfill through the REST API, follow it, show the snapshots."""
    base = Path(args.dir).resolve()
    root, home, logs = base / "data", base / "dagster_home", base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    today = utc_today()
    dates = demo_dates(today, args.days)
    services: list[Service] = []
    try:
        say(f"[1/5] sandbox dashboard (logs in {logs})")
        sandbox = sandbox_service(
            args.sandbox_port or free_port(), today=today.isoformat(), log_path=logs / "sandbox.log"
        )
        services.append(sandbox.start())
        say(f"      {sandbox.url}")

        say("[2/5] Dagster (webserver + daemon), about 20 s")
        env = {
            "BACKFILL_DATA_ROOT": str(root),
            "BACKFILL_DASHBOARD_URL": sandbox.url,
            "BACKFILL_RATE": "10",
            "BACKFILL_BATCH_SIZE": "10",
            "BACKFILL_START_DATE": (dates[0] - dt.timedelta(days=60)).isoformat(),
        }
        dagster = dagster_service(args.dagster_port, home=home, env=env, log_path=logs / "dagster.log")
        services.append(dagster.start(timeout=180))
        say(f"      {dagster.url}")

        say("[3/5] the backfill REST API")
        api_url = f"http://127.0.0.1:{args.api_port}"
        api = Service(
            "api",
            [
                sys.executable,
                "-m",
                "backfill_pipeline.cli",
                "api",
                "--port",
                str(args.api_port),
                "--dagster-url",
                dagster.url,
                "--root",
                str(root),
            ],
            env={**os.environ, **env, "BACKFILL_DAGSTER_URL": dagster.url},
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
            "targetDistricts": args.districts.split(","),
            "rate": 8,
            "concurrency": 2,
        }
        r = requests.post(
            f"{api_url}/api/backfills", json=body, timeout=60, headers={"X-Requested-By": "demo"}
        )
        if r.status_code != 202:
            say(f"      the API answered {r.status_code}: {r.text}")
            return 1
        answer = r.json()
        print_plan(answer["plan"])
        location = f"{api_url}{r.headers['Location']}"
        say(f"      202 Accepted, backfill {answer['backfillId']}: {location}")
        status = follow_over_http(location)
        print_status(status)

        say(f"[5/5] the snapshot tree under {root / 'snapshots'}")
        print_tree(root / "snapshots", status["plan"]["districts"])
        say(f"\nDagster UI: {dagster.url}/runs/b/{answer['backfillId']}   assets: {dagster.url}/assets")
        say(f"REST API:   {location}")
        if args.exit_when_done:
            return 0 if status["state"] == "succeeded" else 1
        say("Everything keeps running; press Ctrl-C to stop.")
        while all(s.process and s.process.poll() is None for s in services):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for service in reversed(services):
            service.stop()


def follow_over_http(location: str, interval: float = 3.0) -> dict:
    """Poll the API's status of a backfill until it ends, printing each change of progress."""
    last = None
    while True:
        status = requests.get(location, timeout=30).json()
        c = status["counts"]
        line = (
            f"      {status['state']:<12} {progress_bar(c['materialized'] + c['failed'], c['targeted'])}"
            f"  runs {status['runs']['byStatus']}"
        )
        if line != last:
            say(line)
            last = line
        if status["state"] in FINAL_STATES:
            return status
        time.sleep(interval)


def print_tree(path: Path, detailed: list[str]) -> None:
    """Each snapshot directory: its date files, and the detailed district files."""
    for day in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f.name for f in day.iterdir() if not f.name.startswith("."))
        districts = [f for f in files if f.startswith("district_")]
        print(
            f"  {day.name}/  {len(districts)} district files (summary detail, "
            f"detailed for {', '.join(detailed)})"
        )
        for name in [f for f in files if not f.startswith("district_")]:
            print(f"    {name}")
        for district in detailed:
            if f"district_{district}.json" in files:
                print(f"    district_{district}.json")
    pointer = path / "latest-successful.json"
    if pointer.exists():
        print(f"  {pointer.name}")


def say(text: str) -> None:
    print(text, flush=True)
