"""Per-run dashboard statistics on disk (`state/runs/<run id>.json`), read by the status API."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from ..dataroot import DataRoot
from ..files import atomic_write_bytes


def record_run_stats(root: DataRoot, run_id: str, backfill_id: str | None, stats: dict) -> None:
    """Write one run's request counts, cache hits and waits, atomically."""
    record = {
        "runId": run_id,
        "backfillId": backfill_id,
        "finishedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **stats,
    }
    atomic_write_bytes(root.run_stats(run_id), json.dumps(record).encode())


def read_run_stats(root: DataRoot, run_ids: Iterable[str]) -> list[dict]:
    """The statistics of those runs that recorded some."""
    out = []
    for run_id in run_ids:
        try:
            out.append(json.loads(root.run_stats(run_id).read_text()))
        except (FileNotFoundError, ValueError):
            continue
    return out
