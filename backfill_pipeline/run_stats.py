"""Per-run dashboard statistics on disk (`<root>/state/runs/<run id>.json`), read by the status API."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path


def runs_dir(root: Path) -> Path:
    """Where the per-run statistics live."""
    return Path(root) / "state" / "runs"


def record_run_stats(root: Path, run_id: str, backfill_id: str | None, stats: dict) -> Path:
    """Write one run's request counts, cache hits and waits, atomically."""
    path = runs_dir(root) / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"runId": run_id, "backfillId": backfill_id,
              "finishedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **stats}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
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
