"""Upkeep of the service's own records under the data root: they are deleted with the same
retention as Dagster's runs, never while a backfill still running refers to them.

Each kind of record is one directory of `<name>.json` files (`RECORDS`): the request record of
each backfill (`backfills/<id>.json`), the statistics of each run (`state/runs/<run id>.json`) and
each launch asked with an Idempotency-Key (`state/idempotency/<sha256>.json`, with its lock).
A record is old when both the time it holds and its file's modification time are before the
cutoff (a restored backup or a rewritten record counts as new: pruning errs on keeping). An old
record is still kept while it is referenced: it names a backfill the caller keeps (one still
running; the prune job also keeps the record of every backfill Dagster still shows), a backfill
such a backfill's record retries, or a run not finished. What to keep is the caller's to say:
the Dagster layer (defs/jobs.py, the weekly `prune_old_runs` job) reads it from the instance;
this module never imports Dagster. Another directory under the same rule is one more
`RecordKind` in `RECORDS`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataroot import DataRoot


@dataclass(frozen=True)
class RecordKind:
    """One directory of JSON records: where a record lives, which field holds its time, and the
    backfills and runs it belongs to (read from its name and its content)."""

    name: str
    directory: Callable[[DataRoot], Path]
    path: Callable[[DataRoot, str], Path]  # the record named `name` (DataRoot checks the name)
    time_field: str
    backfills: Callable[[str, dict[str, Any]], Iterable[str]] = lambda name, data: ()
    runs: Callable[[str, dict[str, Any]], Iterable[str]] = lambda name, data: ()
    # A file that goes with each record (its lock), deleted with it.
    companion_suffix: str | None = None


def _ids(*values: Any) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


BACKFILL_RECORDS = RecordKind(
    name="backfill records",
    directory=lambda root: root.backfills_dir,
    path=DataRoot.backfill_record,
    time_field="createdAt",
    backfills=lambda name, data: _ids(name),
)
RUN_STATS = RecordKind(
    name="run statistics",
    directory=lambda root: root.run_stats_dir,
    path=DataRoot.run_stats,
    time_field="finishedAt",
    backfills=lambda name, data: _ids(data.get("backfillId")),
    runs=lambda name, data: _ids(name, data.get("runId")),
)
IDEMPOTENCY_RECORDS = RecordKind(
    name="idempotency records",
    directory=lambda root: root.idempotency_dir,
    path=DataRoot.idempotency_record,
    time_field="startedAt",
    backfills=lambda name, data: _ids(data.get("backfillId"), data.get("retryOf")),
    companion_suffix=".lock",
)
RECORDS: tuple[RecordKind, ...] = (BACKFILL_RECORDS, RUN_STATS, IDEMPOTENCY_RECORDS)


@dataclass
class Pruned:
    """What pruning did to one kind of record: the names deleted, the old ones kept because
    something live refers to them, and how many were recent enough to keep."""

    kind: str
    deleted: list[str] = field(default_factory=list)
    kept_referenced: list[str] = field(default_factory=list)
    kept_recent: int = 0

    def summary(self) -> str:
        """One line: how many were deleted, kept as referenced, kept as recent."""
        return (
            f"{self.kind}: {len(self.deleted)} deleted, {len(self.kept_referenced)} old kept "
            f"(of a backfill kept or a run not finished), {self.kept_recent} recent kept"
        )


def _read(path: Path) -> dict[str, Any]:
    """The record's JSON object; empty when it cannot be read (its time is then its mtime)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _time(data: dict[str, Any], field_name: str) -> dt.datetime | None:
    value = data.get(field_name)
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def referenced_backfills(root: DataRoot, backfills: Set[str]) -> set[str]:
    """`backfills` and, through their records, the backfills they retry (and so on)."""
    found = set(backfills)
    todo = list(backfills)
    while todo:
        backfill_id = todo.pop()
        try:
            path = root.backfill_record(backfill_id)
        except ValueError:
            continue
        parent = _read(path).get("parent")
        if isinstance(parent, str) and parent and parent not in found:
            found.add(parent)
            todo.append(parent)
    return found


def prune_records(
    root: DataRoot,
    cutoff: dt.datetime,
    *,
    keep_backfills: Set[str],
    live_runs: Set[str],
    kinds: Iterable[RecordKind] = RECORDS,
) -> list[Pruned]:
    """Delete every record of `kinds` older than `cutoff` that refers to none of `keep_backfills`
    (the backfills still running, and any other the caller keeps), to no backfill their records
    retry, and to none of `live_runs`; what was deleted and kept, per kind. A name that cannot be
    a record, a temporary file of a writer and anything not `.json` are left alone."""
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    backfills = referenced_backfills(root, keep_backfills)
    report = []
    for kind in kinds:
        pruned = Pruned(kind.name)
        report.append(pruned)
        directory = kind.directory(root)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        for file_name in names:
            name, suffix = os.path.splitext(file_name)
            if suffix != ".json" or file_name.startswith("."):
                continue
            try:
                path = kind.path(root, name)
            except ValueError:
                continue  # not a name this kind gives its records
            try:
                mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            except FileNotFoundError:
                continue
            data = _read(path)
            recorded = _time(data, kind.time_field)
            if max(mtime, recorded or mtime) >= cutoff:
                pruned.kept_recent += 1
            elif not backfills.isdisjoint(kind.backfills(name, data)) or not live_runs.isdisjoint(
                kind.runs(name, data)
            ):
                pruned.kept_referenced.append(name)
            else:
                path.unlink(missing_ok=True)
                if kind.companion_suffix:
                    path.with_suffix(kind.companion_suffix).unlink(missing_ok=True)
                pruned.deleted.append(name)
    return report
