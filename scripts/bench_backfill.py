"""Backfills against the polite floor: how close a backfill gets to N requests / rate seconds.

Starts the sandbox and `backfill-pipeline dev` (the stack a new user runs; `--dagster-dev` for
Dagster's own, whose backfill daemon ticks every 30 s), configures 20 districts, and for
each rate and size launches a backfill with the project's CLI as an operator would, then measures
from one run:

- requests: what reached the sandbox while the backfill ran (its own request log);
- wall: from the CLI's launch to the end of the backfill's last run (every partition's data is
  in the store then; Dagster marks the backfill completed on its daemon's next tick, shown apart);
- floor: requests / rate, the least time a polite client needs; ratio: wall / floor;
- utilisation: requests / (rate x seconds between the first and the last request), and the share
  of those seconds in which no request was made;
- rerun: the same range again with skipExisting off (0 requests: the raw cache answers), as a
  share of the first run's wall time.

Prints a Markdown table (the README carries one). Each size uses its own dates, so no case
finds another's data. Usage: `python scripts/bench_backfill.py [--rates 2,8] [--cases ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from backfill_pipeline.devstack import StopSignals, pids, proc_stat, start_configured_stack, stop_all

TODAY = "2026-11-29"
FIRST_DATE = dt.date(2025, 7, 1)
# Districts the sandbox lists in every program year the dates fall in.
DISTRICTS = [str(d) for d in (*range(10, 21), *range(22, 31))]
# (kind, dates, districts): the smallest backfill to a month x 20 districts.
DEFAULT_CASES = "per-district:1x1,per-district:7x5,per-district:16x10,per-district:30x20,system-wide:30"
RUNS_QUERY = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { id status runs { runId status startTime endTime } }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
  }
}"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class Case:
    """One backfill to measure."""

    kind: str
    dates: int
    districts: int

    @classmethod
    def parse(cls, text: str) -> Case:
        kind, _, size = text.partition(":")
        if kind not in ("per-district", "system-wide"):
            raise SystemExit(f"case {text!r}: the kind is per-district or system-wide")
        dates, _, districts = size.partition("x")
        wanted = [dates] if kind == "system-wide" else [dates, districts]
        if not all(n.isascii() and n.isdigit() and int(n) > 0 for n in wanted):
            raise SystemExit(f"case {text!r}: give per-district:DATESxDISTRICTS or system-wide:DATES")
        return cls(kind, int(dates), int(districts or 0))

    @property
    def label(self) -> str:
        if self.kind == "system-wide":
            return f"system-wide, {self.dates} dates"
        return f"per-district, {self.dates} dates x {self.districts} districts"


@dataclass
class Measured:
    """What one backfill took."""

    backfill_id: str
    requests: int
    wall: float
    completed: float
    runs: int
    times: list[float]
    failed_runs: int
    # Seconds after the launch: the first run started, the first and last requests were made.
    first_run: float
    first_request: float
    last_request: float
    # (start, end) of each run, seconds after the launch.
    run_spans: list[tuple[float, float]]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("backfill-pipeline")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=600)


def graphql(url: str, query: str, variables: dict) -> dict:
    r = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


class RequestLog:
    """The sandbox's export requests since a moment, read while the backfill runs: the sandbox
    keeps only its last 1,000, fewer than a large backfill makes."""

    def __init__(self, sandbox_url: str) -> None:
        self.url = sandbox_url
        self.seen: dict[tuple, float] = {}
        self.total_before = self.total()

    def total(self) -> int:
        """Export requests the sandbox has answered since it started."""
        return requests.get(f"{self.url}/_sandbox/stats", timeout=30).json()["exportRequests"]

    def poll(self, since: float) -> None:
        log = requests.get(f"{self.url}/_sandbox/requests?limit=300", timeout=30).json()["requests"]
        for r in log:
            if r.get("report") and r["t"] >= since:
                self.seen[(r["t"], r.get("path"), r.get("report"), r.get("district"))] = r["t"]

    def times(self) -> list[float]:
        return sorted(self.seen.values())


def run_backfill(
    case: Case, start: dt.date, *, force: bool, env: dict, dagster_url: str, sandbox_url: str
) -> Measured:
    """Launch one backfill with the CLI and follow it in Dagster until it is completed."""
    end = start + dt.timedelta(days=case.dates - 1)
    args = ["backfill", "--start", start.isoformat(), "--end", end.isoformat(), "--no-follow", "--json"]
    args += ["--type", case.kind]
    if case.kind == "per-district":
        args += ["--districts", ",".join(DISTRICTS[: case.districts])]
    if force:
        args += ["--no-skip-existing"]
    log = RequestLog(sandbox_url)
    t0 = time.time()
    done = cli(*args, env=env)
    if done.returncode != 0:
        raise SystemExit(f"backfill {args} failed ({done.returncode}): {done.stderr or done.stdout}")
    backfill_id = json.loads(done.stdout)["backfillId"]
    last_end = None
    while True:
        log.poll(t0)
        b = graphql(dagster_url, RUNS_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        runs = b.get("runs") or []
        if runs and last_end is None and all(r["status"] in FINISHED for r in runs):
            # Every run requested so far has ended; with one level there are no more to come,
            # which the daemon confirms by marking the backfill completed.
            last_end = max(r["endTime"] or time.time() for r in runs)
        elif runs and not all(r["status"] in FINISHED for r in runs):
            last_end = None
        if b["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
            completed = time.time()
            break
        time.sleep(0.5)
    if last_end is None:
        last_end = max((r["endTime"] or completed) for r in runs) if runs else completed
    log.poll(t0)
    times = [t for t in log.times() if t <= completed + 1]
    made = log.total() - log.total_before
    if made != len(times):
        raise SystemExit(f"the sandbox counted {made} requests but its log showed {len(times)}")
    return Measured(
        backfill_id=backfill_id,
        requests=made,
        wall=last_end - t0,
        completed=completed - t0,
        runs=len(runs),
        times=times,
        failed_runs=sum(r["status"] != "SUCCESS" for r in runs),
        first_run=min((r["startTime"] or completed for r in runs), default=completed) - t0,
        first_request=(times[0] - t0) if times else 0.0,
        last_request=(times[-1] - t0) if times else 0.0,
        run_spans=sorted(
            (round((r["startTime"] or completed) - t0, 2), round((r["endTime"] or completed) - t0, 2))
            for r in runs
        ),
    )


def utilisation(times: list[float], rate: float) -> tuple[float, float]:
    """(requests / (rate x seconds from the first to the last), share of those seconds idle)."""
    if len(times) < 2:
        return 1.0, 0.0
    span = times[-1] - times[0]
    # n requests spaced 1/rate apart span (n - 1) / rate seconds: that is full use.
    used = (len(times) - 1) / (rate * span) if span > 0 else 1.0
    seconds = int(span) + 1
    busy = {int(t - times[0]) for t in times}
    return used, 1 - len(busy) / seconds


def daemon_cpu_seconds(group: int) -> float:
    """CPU seconds used so far by the daemon process(es) of a process group (Linux /proc)."""
    total = 0.0
    for pid in pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        stat = proc_stat(pid)
        is_daemon = b"backfill_pipeline.cli daemon" in cmdline or b"dagster._daemon run" in cmdline
        if stat is not None and stat.pgrp == group and is_daemon:
            total += stat.cpu_seconds
    return total


def bench_rate(
    rate: float, cases: list[Case], base: Path, rerun: bool, brisk: bool, storage: str = "sqlite"
) -> list[dict]:
    """Every case at one budget, on a stack of its own (Dagster's storage in SQLite, or in a
    throwaway PostgreSQL: the budget and the breaker then live there too)."""
    with contextlib.ExitStack() as stack:
        env_extra = {"BACKFILL_RATE": str(rate), "BACKFILL_START_DATE": "2025-01-01"}
        if storage == "postgres":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from pg_server import dagster_postgres_env, postgres_server  # the tests' throwaway server

            env_extra.update(dagster_postgres_env(stack.enter_context(postgres_server())))
        rows = _bench_rate(rate, cases, base, rerun, brisk, env_extra)
        for row in rows:
            row["storage"] = storage
            row["case"] = f"{row['case']} ({storage})"
        return rows


def _bench_rate(
    rate: float, cases: list[Case], base: Path, rerun: bool, brisk: bool, env_extra: dict[str, str]
) -> list[dict]:
    sandbox, dagster = start_configured_stack(
        base, today=TODAY, districts=DISTRICTS, env=env_extra, brisk=brisk
    )
    group = dagster.process.pid if dagster.process else 0
    rows = []
    try:
        env = {
            **os.environ,
            **env_extra,
            "BACKFILL_DATA_ROOT": str(base / "data"),
            "BACKFILL_DASHBOARD_URL": sandbox.url,
            "BACKFILL_DAGSTER_URL": dagster.url,
        }
        start = FIRST_DATE
        for case in cases:
            cpu_before = daemon_cpu_seconds(group)
            first = run_backfill(
                case, start, force=False, env=env, dagster_url=dagster.url, sandbox_url=sandbox.url
            )
            again = (
                run_backfill(
                    case, start, force=True, env=env, dagster_url=dagster.url, sandbox_url=sandbox.url
                )
                if rerun
                else None
            )
            daemon_cpu = daemon_cpu_seconds(group) - cpu_before
            floor = first.requests / rate
            used, idle = utilisation(first.times, rate)
            row = {
                "case": case.label,
                "rate": rate,
                "requests": first.requests,
                "runs": first.runs,
                "failedRuns": first.failed_runs,
                "wall": round(first.wall, 1),
                "floor": round(floor, 1),
                "ratio": round(first.wall / floor, 2) if floor else None,
                "completedInDagster": round(first.completed, 1),
                "firstRunStarted": round(first.first_run, 1),
                "firstRequest": round(first.first_request, 1),
                "lastRequest": round(first.last_request, 1),
                "utilisation": round(used, 3),
                "daemonCpuShare": round(daemon_cpu / first.wall, 3) if first.wall else None,
                "idleSeconds": round(idle, 3),
                "rerunWall": round(again.wall, 1) if again else None,
                "rerunRequests": again.requests if again else None,
                "rerunShare": round(again.wall / first.wall, 2) if again else None,
            }
            print(json.dumps(row), flush=True)
            # The timeline, for the --json file: each run's span and the gaps in the requests.
            t0 = first.times[0] - first.first_request if first.times else 0.0
            gaps = sorted(
                (
                    (round(b - a, 2), round(a - t0, 2))
                    for a, b in zip(first.times, first.times[1:], strict=False)
                ),
                reverse=True,
            )
            row["timeline"] = {"runs": first.run_spans, "largestGaps": gaps[:10]}
            if again:
                row["rerunTimeline"] = {"runs": again.run_spans, "firstRunStarted": round(again.first_run, 1)}
            rows.append(row)
            start += dt.timedelta(days=case.dates + 3)
    finally:
        stop_all([dagster, sandbox])
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| backfill | rate | requests | runs | wall s | floor s | ratio | utilisation | idle s | "
        "Dagster marks it done s | rerun s (share) |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['case']} | {r['rate']:g} | {r['requests']} | {r['runs']} | {r['wall']} | {r['floor']} | "
        f"{r['ratio']} | {r['utilisation']:.0%} | {r['idleSeconds']:.0%} | {r['completedInDagster']} | "
        + (
            f"{r['rerunWall']} ({r['rerunShare']:.0%}, {r['rerunRequests']} requests) |"
            if r["rerunWall"]
            else "- |"
        )
        for r in rows
    ]
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="2,8", help="budgets to measure at, comma-separated")
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"default {DEFAULT_CASES}")
    parser.add_argument("--no-rerun", action="store_true", help="skip the re-runs with skipExisting off")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep", type=Path, help="keep the work directory (logs, data, instance) here")
    parser.add_argument(
        "--storage",
        default="sqlite",
        help="Dagster's storage, comma-separated: sqlite, postgres (a throwaway server; the tests' one)",
    )
    parser.add_argument(
        "--dagster-dev",
        action="store_true",
        help="Dagster's own `dagster dev` (30-s backfill tick) instead of `backfill-pipeline dev`",
    )
    args = parser.parse_args()
    cases = [Case.parse(c) for c in args.cases.split(",")]
    storages = args.storage.split(",")
    if unknown := [s for s in storages if s not in ("sqlite", "postgres")]:
        parser.error(f"--storage: {unknown} are neither sqlite nor postgres")
    rows: list[dict] = []
    with StopSignals(), contextlib.ExitStack() as kept:
        tmp = (
            str(args.keep)
            if args.keep
            else kept.enter_context(tempfile.TemporaryDirectory(prefix="bench-backfill-"))
        )
        for storage in storages:
            for rate in (float(r) for r in args.rates.split(",")):
                base = Path(tmp) / f"{storage}-rate-{rate:g}"
                rows += bench_rate(
                    rate, cases, base, rerun=not args.no_rerun, brisk=not args.dagster_dev, storage=storage
                )
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
