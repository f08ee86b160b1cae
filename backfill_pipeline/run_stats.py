"""Per-run dashboard statistics on disk (`<root>/state/runs/<run id>.json`), read by the status API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .files import atomic_write_bytes


def runs_dir(root: Path) -> Path:
    """Where the per-run statistics live."""
    return Path(root) / "state" / "runs"


def record_run_stats(root: Path, run_id: str, backfill_id: str | None, stats: dict) -> Path:
    """Write one run's request counts, cache hits and waits, atomically."""
    path = runs_dir(root) / f"{run_id}.json"
    record = {
        "runId": run_id,
        "backfillId": backfill_id,
        "finishedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **stats,
    }
    atomic_write_bytes(path, json.dumps(record).encode())
    return path


def read_run_stats(root: Path, run_ids: list[str]) -> list[dict]:
    """The statistics of those runs that recorded some."""
    out = []
    for run_id in run_ids:
        try:
            out.append(json.loads((runs_dir(root) / f"{run_id}.json").read_text()))
        except (FileNotFoundError, ValueError):
            continue
    return out
