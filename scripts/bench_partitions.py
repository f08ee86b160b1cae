"""Benchmark partition counts, asset-page GraphQL time and backfill launch time per start date x districts."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from backfill_pipeline.api.graphql import BACKFILL, CANCEL, LAUNCH, PARTITION_STATUSES
from backfill_pipeline.devstack import dagster_service, free_port

HEADER = """Dagster at scale: partition counts, asset-page GraphQL time, backfill launch time.

For each configuration it starts a real `dagster dev` (fresh DAGSTER_HOME, BACKFILL_START_DATE,
an empty BACKFILL_DATA_ROOT, BACKFILL_DASHBOARD_URL=http://127.0.0.1:9 so any run fails fast),
adds N `districts` dynamic partitions to the instance and measures, median of --repeat:

- the partition counts of all_districts_summary and district_snapshot (partitionStats);
- the asset-page query (partitionStats, assetPartitionStatuses, partitionKeysByDimension)
  of each asset, after reporting materializations of the last --materialized-days (every
  district, a few gaps), so that the statuses are not empty;
- launchPartitionBackfill over every partition of both assets (summary: one range; districts:
  one range per district), time to the mutation's answer, and the same over only the last
  --window-days ("launch 1y"); each backfill is canceled at once
  (cancelPartitionBackfill) and its partitionBackfillOrError query is timed once;
- how long the daemon takes to reach CANCELED, and the peak memory (VmHWM) of the webserver,
  the daemon and the code servers, read from /proc.

A query slower than --query-timeout or a launch slower than --launch-timeout is recorded as a
timeout and not repeated. Every process started is stopped (process group) before moving on.
"""

SUMMARY = ["all_districts_summary"]
DISTRICT = ["district_snapshot"]

# What the asset page needs: partitionStats, assetPartitionStatuses (as in
# DagsterGraphQL.partition_statuses) plus partitionKeysByDimension.
ASSET_PAGE = PARTITION_STATUSES.replace(
    "partitionStats {", "partitionKeysByDimension { name partitionKeys }\n      partitionStats {", 1
)

BACKFILL_STATUS_ONLY = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions }
    ... on Error { message }
  }
}"""

BACKFILL_IDS = """
query Backfills { partitionBackfillsOrError(limit: 20) {
  ... on PartitionBackfills { results { id title status } } } }"""

TERMINAL = {"CANCELED", "COMPLETED", "FAILED", "COMPLETED_SUCCESS", "COMPLETED_FAILED"}


@dataclass(frozen=True)
class Config:
    key: str
    districts: int
    start: dt.date

    @property
    def label(self) -> str:
        return f"({self.key}) {self.districts} x {self.start}"


CONFIGS = {
    "a": Config("a", 128, dt.date(2008, 7, 1)),
    "b": Config("b", 128, dt.date(2024, 7, 1)),
    "c": Config("c", 128, dt.date(2025, 7, 1)),
    "d": Config("d", 10, dt.date(2008, 7, 1)),
    "e": Config("e", 10, dt.date(2024, 7, 1)),
    # Extra points between (a) and (b), for choosing the default start date.
    "f": Config("f", 128, dt.date(2016, 7, 1)),
    "g": Config("g", 128, dt.date(2020, 7, 1)),
    "h": Config("h", 128, dt.date(2022, 7, 1)),
    "i": Config("i", 128, dt.date(2023, 7, 1)),
}


class Timeout(Exception):
    """A request took longer than its limit."""


def district_ids(n: int) -> list[str]:
    """n plausible district ids: 01..(n-2) plus F and U (as in bench_coverage)."""
    numeric = [f"{i:02d}" for i in range(1, max(n - 2, 0) + 1)]
    return (numeric + ["F", "U"])[:n]


class Client:
    """A raw GraphQL poster that times each request and knows its answer's size."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/graphql"
        self.session = requests.Session()

    def post(self, query: str, variables: dict, timeout: float) -> tuple[float, dict, int]:
        began = time.perf_counter()
        try:
            r = self.session.post(self.url, json={"query": query, "variables": variables}, timeout=timeout)
        except requests.Timeout as exc:
            raise Timeout(f"no answer within {timeout:.0f}s") from exc
        elapsed = time.perf_counter() - began
        body = r.json()
        if body.get("errors"):
            raise RuntimeError("; ".join(e.get("message", "?") for e in body["errors"]))
        return elapsed, body["data"], len(r.content)


def _ok(result: dict, typename: str) -> dict:
    if result.get("__typename") != typename:
        raise RuntimeError(f"{result.get('__typename')}: {result.get('message')}")
    return result


def process_memory(session_id: int) -> dict[str, dict[str, float]]:
    """Peak and current RSS (MB) of every process in the session, by role."""
    out: dict[str, dict[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != session_id:  # field 6 of stat: session id
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except (OSError, ValueError):
            continue
        mem = {
            k: int(line.split()[1]) / 1024
            for line in status.splitlines()
            for k in ("VmHWM", "VmRSS")
            if line.startswith(k + ":")
        }
        role = _role(cmd)
        prev = out.get(role)
        if prev is None or mem.get("VmHWM", 0) > prev["VmHWM"]:
            out[role] = {
                "VmHWM": mem.get("VmHWM", 0.0),
                "VmRSS": mem.get("VmRSS", 0.0),
                "pid": int(entry.name),
            }
    return out


def _role(cmd: str) -> str:
    if "dagster-webserver" in cmd or "dagster_webserver" in cmd:
        return "webserver"
    if "dagster-daemon" in cmd or "dagster_daemon" in cmd or "daemon run" in cmd:
        return "daemon"
    if "api grpc" in cmd:
        return "code-server"
    if "code-server start" in cmd:
        return "code-proxy"
    if " dev " in cmd:
        return "dagster-dev"
    return "other"


@dataclass
class Result:
    config: Config
    days: int = 0
    summary_partitions: int | None = None
    district_partitions: int | None = None
    expected_district_partitions: int = 0
    startup_s: float | None = None
    page_cold: dict = field(default_factory=dict)  # asset -> seconds (first query)
    page: dict = field(default_factory=dict)  # asset -> [seconds]
    page_bytes: dict = field(default_factory=dict)
    launch: list = field(default_factory=list)
    launch_window: list = field(default_factory=list)
    materialized: int = 0
    seed_s: float | None = None
    cancel: list = field(default_factory=list)
    status_query: list = field(default_factory=list)
    status_bytes: int | None = None
    to_canceled: list = field(default_factory=list)
    runs_seen: int = 0
    timeouts: list = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    load: tuple = ()  # 1-min load average before and after (other processes share the CPU)
    error: str | None = None


def backfill_params(first: str, last: str, districts: list[str], title: str) -> dict:
    """Every partition of both assets, as ranges: summary one range, districts one per district."""
    return {
        "partitionsByAssets": [
            {"assetKey": {"path": SUMMARY}, "partitions": {"ranges": [{"start": first, "end": last}]}},
            {
                "assetKey": {"path": DISTRICT},
                "partitions": {
                    "ranges": [{"start": f"{first}|{d}", "end": f"{last}|{d}"} for d in districts]
                },
            },
        ],
        "tags": [{"key": "bench", "value": "partitions"}],
        "title": title,
    }


def find_backfill(client: Client, title: str, wait: float) -> str | None:
    """The id of the backfill titled `title`, waiting up to `wait` s for it to appear."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            _, data, _ = client.post(BACKFILL_IDS, {}, timeout=30)
            for b in data["partitionBackfillsOrError"].get("results", []):
                if b["title"] == title:
                    return b["id"]
        except (Timeout, RuntimeError, requests.RequestException):
            pass
        time.sleep(2)
    return None


def wait_terminal(client: Client, backfill_id: str, wait: float) -> tuple[float | None, str]:
    """Seconds until the backfill reaches a terminal status (None if not within `wait`)."""
    began = time.perf_counter()
    status = "?"
    while time.perf_counter() - began < wait:
        try:
            _, data, _ = client.post(BACKFILL_STATUS_ONLY, {"id": backfill_id}, timeout=30)
            status = data["partitionBackfillOrError"].get("status", "?")
            if status in TERMINAL:
                return time.perf_counter() - began, status
        except (Timeout, RuntimeError, requests.RequestException):
            pass
        time.sleep(1)
    return None, status


def seed_materializations(instance, districts: list[str], first: dt.date, last: dt.date) -> int:
    """Runless materializations of every partition of both assets from `first` to `last`,
    one district left out every 7th day (gaps, as after a partial failure): what the asset page
    shows after some collecting. Returns how many were reported."""
    import dagster as dg

    n = 0
    day = first
    while day <= last:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=SUMMARY, partition=day.isoformat())
        )
        n += 1
        for j, d in enumerate(districts):
            if day.toordinal() % 7 == 0 and j == day.toordinal() % len(districts):
                continue
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=DISTRICT,
                    partition=dg.MultiPartitionKey({"date": day.isoformat(), "district": d}),
                )
            )
            n += 1
        day += dt.timedelta(days=1)
    return n


def launch_and_cancel(
    client: Client, args: argparse.Namespace, res: Result, kind: str, into: list, title: str, params: dict
) -> str | None:
    """Launch (timed into `into`), cancel at once (timed); the backfill's id, None if none."""
    try:
        secs, data, _ = client.post(LAUNCH, {"params": params}, args.launch_timeout)
        backfill_id = _ok(data["launchPartitionBackfill"], "LaunchBackfillSuccess")["backfillId"]
        into.append(secs)
    except Timeout:
        res.timeouts.append(f"launch {kind}: > {args.launch_timeout:.0f}s")
        into.append("timeout")
        # The webserver goes on: find the backfill once it exists, to cancel it.
        backfill_id = find_backfill(client, title, wait=args.launch_timeout * 2)
    if backfill_id is None:
        return None
    try:
        secs, data, _ = client.post(CANCEL, {"id": backfill_id}, args.query_timeout)
        _ok(data["cancelPartitionBackfill"], "CancelBackfillSuccess")
        if kind == "all":
            res.cancel.append(secs)
    except Timeout:
        res.timeouts.append(f"cancel {kind}: > {args.query_timeout:.0f}s")
        res.cancel.append("timeout")
    return backfill_id


def run_config(cfg: Config, args: argparse.Namespace, workdir: Path) -> Result:
    """One configuration on Dagster's storage of `args.storage`: SQLite, or a throwaway
    PostgreSQL (DAGSTER_PG_* for the started Dagster and this process's instance)."""
    if args.storage != "postgres":
        return _run_config(cfg, args, workdir, {})
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pg_server import dagster_postgres_env, postgres_server  # the tests' throwaway server

    with postgres_server() as url:
        pg = dagster_postgres_env(url)
        saved = {k: os.environ.get(k) for k in pg}
        os.environ.update(pg)  # this process reads the same instance
        try:
            return _run_config(cfg, args, workdir, pg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _run_config(cfg: Config, args: argparse.Namespace, workdir: Path, extra_env: dict[str, str]) -> Result:
    today = dt.date.today()
    last = today - dt.timedelta(days=1)  # DailyPartitionsDefinition ends yesterday
    res = Result(cfg)
    load_before = os.getloadavg()[0]
    res.days = (last - cfg.start).days + 1
    res.expected_district_partitions = res.days * cfg.districts
    districts = district_ids(cfg.districts)

    home = workdir / f"home-{cfg.key}"
    data_root = workdir / f"data-{cfg.key}"
    data_root.mkdir(parents=True)
    port = free_port()
    log = workdir / f"dagster-{cfg.key}.log"
    service = dagster_service(
        port,
        home=home,
        env={
            "BACKFILL_START_DATE": cfg.start.isoformat(),
            "BACKFILL_DATA_ROOT": str(data_root),
            "BACKFILL_DASHBOARD_URL": "http://127.0.0.1:9",
            "BACKFILL_MAX_ATTEMPTS": "1",
            "BACKFILL_CONNECT_TIMEOUT": "1",
            **extra_env,
        },
        log_path=log,
    )
    began = time.perf_counter()
    try:
        service.start(timeout=300)
        res.startup_s = time.perf_counter() - began
        sid = os.getsid(service.process.pid)

        import dagster as dg  # only the benchmark process needs an instance

        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("districts", districts)
            assert len(instance.get_dynamic_partitions("districts")) == cfg.districts
            seed_began = time.perf_counter()
            res.materialized = (
                seed_materializations(
                    instance,
                    districts,
                    max(cfg.start, last - dt.timedelta(days=args.materialized_days - 1)),
                    last,
                )
                if args.materialized_days > 0
                else 0
            )
            res.seed_s = time.perf_counter() - seed_began

        client = Client(service.url)
        client.post("{ version }", {}, timeout=60)

        # Asset-page query of each asset: one cold query, then --repeat timed ones.
        for asset in (SUMMARY, DISTRICT):
            name = asset[0]
            res.page[name] = []
            for i in range(args.repeat + 1):
                try:
                    secs, data, size = client.post(ASSET_PAGE, {"path": asset}, args.query_timeout)
                except Timeout:
                    res.timeouts.append(f"page {name}: > {args.query_timeout:.0f}s")
                    res.page[name] = ["timeout"]
                    break
                node = _ok(data["assetNodeOrError"], "AssetNode")
                n = node["partitionStats"]["numPartitions"]
                if name == SUMMARY[0]:
                    res.summary_partitions = n
                else:
                    res.district_partitions = n
                res.page_bytes[name] = size
                if i == 0:
                    res.page_cold[name] = secs
                else:
                    res.page[name].append(secs)

        # Launch, cancel at once, time the status query once, wait for CANCELED. Each repetition
        # launches the whole history and, for comparison, only the last --window-days.
        window_start = max(cfg.start, last - dt.timedelta(days=args.window_days - 1))
        launches = [("all", cfg.start, res.launch), ("window", window_start, res.launch_window)]
        for i in range(args.repeat):
            launched = []
            for kind, first, into in launches:
                if "timeout" in into:
                    continue
                title = f"bench {cfg.key} {kind} #{i} {time.time():.0f}"
                backfill_id = launch_and_cancel(
                    client,
                    args,
                    res,
                    kind,
                    into,
                    title,
                    backfill_params(first.isoformat(), last.isoformat(), districts, title),
                )
                if backfill_id is None:
                    continue
                launched.append(backfill_id)
                if i == 0 and kind == "all":
                    try:
                        secs, data, size = client.post(BACKFILL, {"id": backfill_id}, args.query_timeout)
                        b = _ok(data["partitionBackfillOrError"], "PartitionBackfill")
                        res.status_query.append(secs)
                        res.status_bytes = size
                        res.runs_seen = max(res.runs_seen, len(b.get("runs") or []))
                    except Timeout:
                        res.timeouts.append(f"backfill status: > {args.query_timeout:.0f}s")
                        res.status_query.append("timeout")
            # The daemon must be idle again before the next repetition measures anything.
            began_wait = time.perf_counter()
            for backfill_id in launched:
                secs, status = wait_terminal(client, backfill_id, args.cancel_wait)
                if secs is None:
                    res.to_canceled.append(f"> {args.cancel_wait:.0f}s ({status})")
                    break
            else:
                if launched:
                    res.to_canceled.append(time.perf_counter() - began_wait)
        res.memory = process_memory(sid)
        res.load = (round(load_before, 2), round(os.getloadavg()[0], 2))
    except Exception as exc:  # record it and go on with the next configuration
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        service.stop()
    return res


# ---------------------------------------------------------------------------------------------
# Reporting


def med(values) -> float | str | None:
    nums = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return None
    if len(nums) < len(values):
        return next(v for v in values if not isinstance(v, (int, float)))
    return statistics.median(nums)


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}f}"


COLUMNS = [
    ("config", 20),
    ("days", 6),
    ("summary", 8),
    ("date x district", 15),
    ("start s", 8),
    ("page sum s", 10),
    ("page dist s", 11),
    ("page dist cold", 14),
    ("launch s", 9),
    ("launch 1y s", 11),
    ("cancel s", 8),
    ("bf query s", 10),
    ("to CANCELED s", 13),
    ("web MB", 7),
    ("daemon MB", 9),
    ("code MB", 8),
]


def row(r: Result) -> list[str]:
    mem = r.memory
    return [
        r.config.label,
        str(r.days),
        fmt(r.summary_partitions, 0),
        f"{r.district_partitions:,}" if isinstance(r.district_partitions, int) else "-",
        fmt(r.startup_s, 1),
        fmt(med(r.page.get(SUMMARY[0], []))),
        fmt(med(r.page.get(DISTRICT[0], []))),
        fmt(r.page_cold.get(DISTRICT[0])),
        fmt(med(r.launch)),
        fmt(med(r.launch_window)),
        fmt(med(r.cancel)),
        fmt(med(r.status_query)),
        fmt(med(r.to_canceled), 1),
        fmt(mem.get("webserver", {}).get("VmHWM"), 0),
        fmt(mem.get("daemon", {}).get("VmHWM"), 0),
        fmt(max((m["VmHWM"] for k, m in mem.items() if k == "code-server"), default=None), 0),
    ]


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(headers: list[str], widths: list[int], rows: list[list[str]]) -> None:
    print(_line(headers, widths))
    print("  ".join("-" * w for w in widths))
    for cells in rows:
        print(_line(cells, widths))


def report(results: list[Result]) -> None:
    print()
    print("Medians (seconds unless stated); page = asset-page query; bf query = partitionBackfillOrError;")
    print("MB = peak RSS (VmHWM) after the measurements.")
    print_table([c for c, _ in COLUMNS], [w for _, w in COLUMNS], [row(r) for r in results])

    ok = [r for r in results if r.error is None and isinstance(r.district_partitions, int)]
    if len(ok) > 1:
        base = min(ok, key=lambda r: (r.district_partitions, r.days))
        print()
        print(f"Ratios against the smallest configuration {base.config.label}:")
        metrics = [
            ("partitions", lambda r: r.district_partitions),
            ("page dist", lambda r: med(r.page.get(DISTRICT[0], []))),
            ("page sum", lambda r: med(r.page.get(SUMMARY[0], []))),
            ("launch", lambda r: med(r.launch)),
            ("launch 1y", lambda r: med(r.launch_window)),
            ("bf query", lambda r: med(r.status_query)),
            ("web MB", lambda r: r.memory.get("webserver", {}).get("VmHWM")),
        ]
        headers = ["config"] + [m for m, _ in metrics]
        widths = [20] + [11] * len(metrics)
        rows = []
        for r in results:
            cells = [r.config.label]
            for _, get in metrics:
                v, b = get(r), get(base)
                cells.append(
                    f"{v / b:.1f}x"
                    if isinstance(v, (int, float)) and isinstance(b, (int, float)) and b
                    else "-"
                )
            rows.append(cells)
        print_table(headers, widths, rows)

    for r in results:
        notes = []
        if r.error:
            notes.append(f"error: {r.error}")
        if r.timeouts:
            notes.append("timeouts: " + "; ".join(r.timeouts))
        if r.district_partitions is not None and r.district_partitions != r.expected_district_partitions:
            notes.append(f"expected {r.expected_district_partitions:,} date x district partitions")
        if r.materialized:
            notes.append(f"{r.materialized:,} materializations reported in {r.seed_s:.0f}s")
        if r.load:
            notes.append(f"load average {r.load[0]} before, {r.load[1]} after ({os.cpu_count()} CPUs)")
        if r.runs_seen:
            notes.append(f"{r.runs_seen} run(s) launched before the cancel took effect")
        if notes:
            print(f"{r.config.label}: " + " | ".join(notes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs",
        default="a,b,c,d,e",
        help="comma-separated keys of "
        + ", ".join(f"{k}={c.districts}x{c.start}" for k, c in CONFIGS.items()),
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--query-timeout", type=float, default=60.0)
    parser.add_argument("--launch-timeout", type=float, default=120.0)
    parser.add_argument(
        "--cancel-wait",
        type=float,
        default=90.0,
        help="seconds to wait for the daemon to mark each backfill CANCELED",
    )
    parser.add_argument(
        "--window-days",
        type=int,
        default=365,
        help="also launch a backfill over only the last N days (default 365)",
    )
    parser.add_argument(
        "--materialized-days",
        type=int,
        default=14,
        help="report materializations of the last N days before the page queries (0: none)",
    )
    parser.add_argument(
        "--storage",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Dagster's storage: SQLite under DAGSTER_HOME, or a throwaway PostgreSQL",
    )
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--keep", type=Path, help="work directory to keep (logs, instances)")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; known: {sorted(CONFIGS)}")

    print(HEADER.strip())
    print(
        f"Configurations: {', '.join(CONFIGS[k].label for k in keys)}; repeat {args.repeat}; "
        f"dagster dev per configuration; today {dt.date.today()}."
    )
    sys.stdout.flush()

    # A SIGTERM (e.g. from `timeout`) unwinds through the finally blocks that stop dagster dev.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench-partitions-")
    workdir = args.keep or Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for k in keys:
            began = time.perf_counter()
            r = run_config(CONFIGS[k], args, workdir)
            results.append(r)
            print(
                f"  done {r.config.label} in {time.perf_counter() - began:.0f}s"
                + (f" ({r.error})" if r.error else "")
            )
            sys.stdout.flush()
    finally:
        if tmp is not None:
            tmp.cleanup()
    report(results)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        **{k: v for k, v in r.__dict__.items() if k != "config"},
                        "config": {
                            "key": r.config.key,
                            "districts": r.config.districts,
                            "start": r.config.start.isoformat(),
                        },
                    }
                    for r in results
                ],
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
