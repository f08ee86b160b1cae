"""The shared budget's own cost per request, against the spacing it enforces.

Prints ratios measured in one run: the time one acquisition spends in the limiter itself (the
SQLite bucket under its file lock, the lane check), excluding the sleeps that pace requests, as a
share of the spacing at the default budget (2 requests/s) and at the highest a backfill may ask
(8 requests/s); and the same with several processes contending for the file.

    python scripts/bench_budget.py [--acquisitions 2000] [--processes 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from backfill_pipeline.dashboard.budget import Lane, SharedBudget, SqliteBudgetStore, spacing_ms

# So fast that pacing never sleeps long: what is left is the limiter's own work.
BENCH_RATE = 100_000.0


def limiter_time(path: Path, rate: float, lane: Lane, *, n: int = 0, seconds: float = 0) -> tuple[float, int]:
    """(seconds spent in the limiter outside the pacing sleeps, requests granted), for n requests
    or as many as `seconds` allows."""
    slept = [0.0]

    def sleep(s: float) -> None:
        slept[0] += s
        time.sleep(s)

    store = SqliteBudgetStore(path, rate)
    budget = SharedBudget(store, lane, sleep=sleep)
    started = time.perf_counter()
    granted = 0
    while (n and granted < n) or (seconds and time.perf_counter() - started < seconds):
        budget.acquire()
        granted += 1
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed - slept[0], granted


def _worker(path: str, rate: float, lane: int, seconds: float, out) -> None:
    out.put(limiter_time(Path(path), rate, Lane(lane), seconds=seconds))


def contended(tmp: str, rate: float, processes: int, seconds: float) -> float:
    """Limiter time per granted request, all processes together, with `processes` drawing from
    one file at `rate` as fast as it lets them, one in the refresh lane (the others yield to it)."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    path = str(Path(tmp) / f"shared-{rate:g}.sqlite")
    lanes = [Lane.REFRESH] + [Lane.BACKFILL] * (processes - 1)
    procs = [ctx.Process(target=_worker, args=(path, rate, int(lane), seconds, out)) for lane in lanes]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(t for t, _ in results) / sum(n for _, n in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--acquisitions", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spent, granted = limiter_time(
            Path(tmp) / "alone.sqlite", BENCH_RATE, Lane.BACKFILL, n=args.acquisitions
        )
        alone = spent / granted
        print(f"one process, never waiting: {alone * 1e3:.3f} ms of limiter per request")
        for rate in (2.0, 8.0):
            shared = contended(tmp, rate, args.processes, args.seconds)
            spacing = spacing_ms(rate) / 1000
            print(
                f"{args.processes} processes at {rate:g} requests/s (spacing {spacing * 1e3:.0f} ms): "
                f"{shared * 1e3:.3f} ms of limiter per request; overhead / spacing = {shared / spacing:.4f} "
                f"(never waiting: {alone / spacing:.4f})"
            )


if __name__ == "__main__":
    main()
