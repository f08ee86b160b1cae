"""Overhead of our client and collection over a bare `requests` loop, against the same sandbox.

Prints ratios measured in one run (not absolute times): the client (limiter effectively off,
cache off) fetching N reports vs a bare loop fetching the same URLs; the full detailed
collection into the store vs the bare loop; and a second, cached collection vs the bare loop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import requests

from backfill_pipeline.collecting.collect import collect_district
from backfill_pipeline.dashboard.client import DashboardClient
from backfill_pipeline.dashboard.reports import DISTRICT_REPORTS, Report
from backfill_pipeline.sandbox import SandboxServer, publication
from backfill_pipeline.settings import Settings
from backfill_pipeline.snapshots.models import WriteContext
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore

TODAY = dt.date(2026, 11, 29)


def dates(n: int) -> list[dt.date]:
    out, d = [], dt.date(2025, 2, 1)
    while len(out) < n:
        if publication.is_published(d, today=TODAY) and not publication.is_closing_period(d):
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dates", type=int, default=10)
    parser.add_argument("--districts", default="42,61,109")
    args = parser.parse_args()
    districts = args.districts.split(",")
    days = dates(args.dates)
    with SandboxServer(today=TODAY) as sandbox, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(dashboard_url=sandbox.url, rate=10_000, cache=False).client()
        client = DashboardClient(settings, Path(tmp) / "nocache", today=lambda: TODAY)

        def client_pass() -> list[str]:
            urls = []
            for d in days:
                summary = client.fetch(Report.SUMMARY, d)
                urls.append(summary.url)
                for district in districts:
                    for report in DISTRICT_REPORTS:
                        urls.append(client.fetch(report, d, district, data_month=summary.data_month).url)
            return urls

        # A first pass warms the sandbox's own caches, so neither side pays for data generation.
        urls = client_pass()
        session = requests.Session()
        t0 = time.perf_counter()
        for url in urls:
            _ = session.get(url, timeout=30).content
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        client_pass()
        ours = time.perf_counter() - t0

        root = Path(tmp) / "store"
        store = PerDistrictFileSnapshotStore(root)
        collector = DashboardClient(
            Settings(dashboard_url=sandbox.url, rate=10_000).client(), root, today=lambda: TODAY
        )
        ctx = WriteContext(source="backfill", scope="targeted", collection_method="per-district-csvs")
        t0 = time.perf_counter()
        for d in days:
            for district in districts:
                collect_district(collector, store, d, district, context=ctx)
        collect = time.perf_counter() - t0
        t0 = time.perf_counter()
        for d in days:
            for district in districts:
                collect_district(collector, store, d, district, context=ctx, force=True)
        cached = time.perf_counter() - t0

    n = len(urls)
    print(f"{n} requests ({len(days)} dates x (1 summary + {len(districts)} districts x 3 reports))")
    print(f"client fetch / bare requests loop:              {ours / bare:5.2f}x")
    print(f"detailed collection into the store / bare loop: {collect / bare:5.2f}x")
    print(f"same collection again, from the raw cache / bare: {cached / bare:5.2f}x")


if __name__ == "__main__":
    main()
