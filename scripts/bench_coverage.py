"""Benchmark: how long `coverage` takes for 128 districts x 1 year of summary snapshots.

Usage: python scripts/bench_coverage.py [--districts 128] [--days 365] [--runs 5] [--keep DIR]
Prints the build time, the median coverage time and its ratio to merely listing the directories.
Target: under 1 s for 128 x 365.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backfill_pipeline.snapshots import (
    PerDistrictFileSnapshotStore,
    SourceReport,
    WriteContext,
    summary_district,
)


def district_ids(n: int) -> list[str]:
    """n plausible district ids: 01..(n-2) plus F and U."""
    numeric = [f"{i:02d}" for i in range(1, max(n - 2, 0) + 1)]
    return (numeric + ["F", "U"])[:n]


def summary_row(district: str, i: int) -> dict[str, str]:
    """A realistic all-districts summary row."""
    return {
        "REGION": f"{i % 14 + 1:02d}",
        "DISTRICT": district,
        "DSP": "Y",
        "Training": "Y",
        "New Payments": str(100 + i),
        "April Payments": "0",
        "October Payments": str(900 + i),
        "Late Payments": "12",
        "Charter Payments": "20",
        "Total YTD Payments": str(1032 + 2 * i),
        "Payment Base": "2000",
        "% Payment Growth": f"{(i % 21) - 10}.25%",
        "Paid Club Base": "100",
        "Paid Clubs": str(95 + i % 10),
        "% Club Growth": f"{(i % 11) - 5}.00%",
        "Active Clubs": str(95 + i % 10),
        "Distinguished Clubs": "0",
        "Select Distinguished Clubs": "0",
        "Presidents Distinguished Clubs": "0",
        "Total Distinguished Clubs": "0",
        "% Distinguished Clubs": "0%",
    }


def build(root: Path, districts: list[str], start: dt.date, days: int) -> float:
    """Write `days` dates of summary files through the store (no fsync); returns seconds."""
    store = PerDistrictFileSnapshotStore(root, durable=False)
    context = WriteContext(source="backfill", scope="system-wide", collection_method="all-districts-csv")
    source = SourceReport(report="districtsummary", url="http://bench", sha256="0" * 64, rows=128)
    templates = [
        summary_district(
            district_id=d,
            as_of=start,
            data_month=(start.year, start.month),
            is_closing_period=False,
            summary_row=summary_row(d, i),
            source=source,
        )
        for i, d in enumerate(districts)
    ]
    began = time.perf_counter()
    for n in range(days):
        as_of = start + dt.timedelta(days=n)
        month = (as_of.year, as_of.month)
        snapshots = [
            t.model_copy(update={"as_of_date": as_of, "data_month": f"{month[0]}-{month[1]:02d}"})
            for t in templates
        ]
        store.write_districts(as_of, snapshots, context=context)
    return time.perf_counter() - began


def list_directories(root: Path) -> int:
    """The floor: list the snapshot directories and each one's files."""
    count = 0
    with os.scandir(root / "snapshots") as entries:
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                count += len(os.listdir(entry.path))
    return count


def timed(fn, runs: int) -> float:
    """Median wall time of `runs` calls."""
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    """Build the store, time coverage and listing, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--districts", type=int, default=128)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", help="build the store in this directory and keep it")
    args = parser.parse_args(argv)

    districts = district_ids(args.districts)
    start = dt.date(2024, 7, 1)
    end = start + dt.timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory(prefix="bench-coverage-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        build_s = build(root, districts, start, args.days)
        store = PerDistrictFileSnapshotStore(root)
        matrix = store.coverage(start, end)
        cells = sum(len(row) for row in matrix.cells.values())
        assert cells == args.districts * args.days, cells
        coverage_s = timed(lambda: store.coverage(start, end), args.runs)
        filtered_s = timed(lambda: store.coverage(start, end, districts[:10]), args.runs)
        listing_s = timed(lambda: list_directories(root), args.runs)
        print(f"store: {args.districts} districts x {args.days} dates = {cells} cells")
        print(f"build (write_districts, no fsync): {build_s:.2f} s")
        print(f"coverage, all districts: median {coverage_s * 1000:.1f} ms of {args.runs} runs")
        print(f"coverage, 10 districts:  median {filtered_s * 1000:.1f} ms")
        print(f"listing the directories: median {listing_s * 1000:.1f} ms")
        print(f"ratio coverage / listing: {coverage_s / listing_s:.1f}x")
        print(f"target < 1 s: {'met' if coverage_s < 1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
