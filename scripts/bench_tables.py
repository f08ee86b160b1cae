"""Benchmark: building the analyst tables (issue 13) from existing snapshots.

Usage: python scripts/bench_tables.py [--districts 128] [--days 366] [--root DIR] [--json FILE]

Seeds (once, kept under --root) a store of `--days` dates x `--districts` districts, every one
collected in detail from the sandbox's generated reports (about 89 clubs a district), then measures,
each phase in a fresh process so its peak memory is its own:
  one-date     rebuilding one date's two tables (median of 3)
  year         rebuilding every date, one after the other, as the tables' single-run backfill does
  incremental  one date collected again (its 128 districts written anew), then that date alone
               rebuilt (the time of the rebuild only)
  dagster      the year through Dagster: the tables' multi-asset materialized over the whole range
               in one run (an in-process instance), with its metadata per date
  read         an analyst's pandas reads of the club table: one district with every column,
               and every district with four columns
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FIRST = dt.date(2024, 7, 1)


def district_ids(n: int) -> list[str]:
    """The sandbox's first n districts of the program year (numeric order)."""
    from backfill_pipeline.district_ids import sort_district_ids
    from backfill_pipeline.sandbox import data

    listed = sort_district_ids(data.districts_for(data.program_year(FIRST.year, FIRST.month)))
    if n > len(listed):
        raise SystemExit(f"the sandbox has {len(listed)} districts, not {n}")
    return listed[:n]


def seed_date(root: str, as_of_text: str, n: int) -> int:
    """Write one date: every district detailed, its summary row, the rankings; returns clubs."""
    from backfill_pipeline.sandbox import data
    from backfill_pipeline.sandbox.calendar import program_year, program_year_start
    from backfill_pipeline.snapshots import (
        PerDistrictFileSnapshotStore,
        SourceReport,
        WriteContext,
        compute_borda_rankings,
        detailed_district,
    )

    as_of = dt.date.fromisoformat(as_of_text)
    month = (as_of.year, as_of.month)
    year = program_year_start(program_year(*month))
    context = WriteContext(
        source="backfill",
        scope="targeted",
        collection_method="per-district-csvs",
        configured_districts=[],
        run_id="bench",
    )
    header = data.columns(data.SUMMARY, year)
    summary = {r[1]: dict(zip(header, r, strict=True)) for r in data.rows(data.SUMMARY, None, month, as_of)}
    snapshots, clubs = [], 0
    for district in district_ids(n):
        reports = {
            report: [
                dict(zip(data.columns(report, year), r, strict=True))
                for r in data.rows(report, district, month, as_of)
            ]
            for report in (data.CLUB, data.DISTRICT, data.DIVISION)
        }
        clubs += len(reports[data.CLUB])
        snapshots.append(
            detailed_district(
                district_id=district,
                as_of=as_of,
                data_month=month,
                is_closing_period=False,
                club_rows=reports[data.CLUB],
                district_rows=reports[data.DISTRICT],
                division_rows=reports[data.DIVISION],
                sources=[SourceReport(report=data.CLUB, url="http://sandbox/", sha256="ab" * 32, rows=clubs)],
                summary_row=summary.get(district),
            )
        )
    store = PerDistrictFileSnapshotStore(root, durable=False)
    store.write_districts(as_of, snapshots, context=context)
    store.write_rankings(as_of, compute_borda_rankings(list(summary.values())), data_month=month)
    return clubs


def seed(root: Path, n: int, days: int) -> None:
    """The store, unless --root already holds it."""
    marker = root / f".seeded-{n}x{days}"
    if marker.exists():
        return
    dates = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(days)]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        clubs = list(pool.map(seed_date, [str(root)] * days, dates, [n] * days, chunksize=4))
    marker.write_text(json.dumps({"clubs": sum(clubs)}))
    print(
        f"seeded {days} dates x {n} districts ({sum(clubs)} club rows) in {time.monotonic() - started:.0f} s"
    )


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the phases, each run in its own process ------------------------------------------------------


def phase_one_date(root: Path, days: int) -> dict:
    from backfill_pipeline.tables import rebuild_date

    day = FIRST + dt.timedelta(days=days // 2)
    times, rows = [], {}
    for _ in range(3):
        started = time.perf_counter()
        writes = rebuild_date(root, day).writes
        times.append(time.perf_counter() - started)
        rows = {w.table: w.rows for w in writes}
    return {"seconds": sorted(times)[1], "rows": rows}


def phase_year(root: Path, days: int) -> dict:
    from backfill_pipeline.tables import rebuild_date

    rows = {"district_statistics": 0, "club_statistics": 0}
    started = time.perf_counter()
    for i in range(days):
        for w in rebuild_date(root, FIRST + dt.timedelta(days=i)).writes:
            rows[w.table] += w.rows
    return {"seconds": time.perf_counter() - started, "rows": rows}


def phase_incremental(root: Path, days: int) -> dict:
    from backfill_pipeline.tables import partition_dir, rebuild_date

    day = FIRST + dt.timedelta(days=days - 1)
    n = len(list((root / "snapshots" / day.isoformat()).glob("district_*.json")))
    seed_date(str(root), day.isoformat(), n)  # the refresh: the date collected again
    others = [partition_dir(root, "club_statistics", FIRST + dt.timedelta(days=i)) for i in range(days - 1)]
    before = {p: (p / "part-0.parquet").stat().st_mtime_ns for p in others}
    started = time.perf_counter()
    rebuild_date(root, day)
    seconds = time.perf_counter() - started
    untouched = all((p / "part-0.parquet").stat().st_mtime_ns == t for p, t in before.items())
    return {"seconds": seconds, "other_dates_untouched": untouched}


def phase_dagster(root: Path, days: int) -> dict:
    import warnings

    import dagster as dg

    warnings.simplefilter("ignore")
    from backfill_pipeline.defs.partitions import daily_partitions
    from backfill_pipeline.defs.resources import SnapshotStore
    from backfill_pipeline.defs.tables import build_tables_asset

    last = FIRST + dt.timedelta(days=days - 1)
    tables = build_tables_asset(daily_partitions(FIRST))
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        started = time.perf_counter()
        result = dg.materialize(
            [tables],
            instance=instance,
            resources={"store": SnapshotStore(data_root=str(root))},
            tags={
                "dagster/asset_partition_range_start": FIRST.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )
        seconds = time.perf_counter() - started
        events = len(result.get_asset_materialization_events())
    return {"seconds": seconds, "materializations": events}


def phase_read(root: Path, days: int) -> dict:
    import pandas as pd

    dataset = root / "tables" / "club_statistics"
    started = time.perf_counter()
    one = pd.read_parquet(dataset, filters=[("district", "==", "42")])
    one_district = time.perf_counter() - started
    started = time.perf_counter()
    narrow = pd.read_parquet(dataset, columns=["as_of", "district", "club_number", "active_members"])
    every_district = time.perf_counter() - started
    return {
        "one_district_all_columns_seconds": one_district,
        "one_district_rows": len(one),
        "all_districts_4_columns_seconds": every_district,
        "all_districts_rows": len(narrow),
        "frame_mb": round(narrow.memory_usage(deep=True).sum() / 2**20, 1),
    }


PHASES = {
    "one-date": phase_one_date,
    "year": phase_year,
    "incremental": phase_incremental,
    "dagster": phase_dagster,
    "read": phase_read,
}


def run_phase(name: str, root: Path, days: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--root", str(root), "--days", str(days)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--districts", type=int, default=128)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--root", type=Path, help="keep the seeded store here (reused when present)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](args.root, args.days)
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-tables-"))
    root.mkdir(parents=True, exist_ok=True)
    seed(root, args.districts, args.days)
    results = {}
    for name in PHASES:
        results[name] = run_phase(name, root, args.days)
        print(f"{name:12} {json.dumps(results[name])}", flush=True)
    year, one = results["year"], results["one-date"]
    print(
        f"\nyear / (days x one date) = {year['seconds'] / (args.days * one['seconds']):.2f}; "
        f"incremental / year = {results['incremental']['seconds'] / year['seconds']:.4f}; "
        f"dagster / year = {results['dagster']['seconds'] / year['seconds']:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"districts": args.districts, "days": args.days, **results}, indent=2)
        )


if __name__ == "__main__":
    main()
