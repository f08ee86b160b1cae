"""Rebuilding one date's tables from its snapshot files: both Parquet partitions written, or
removed when the date no longer has a snapshot, so a table never holds rows the store lost."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..dataroot import DataRoot
from ..files import fsync_dir
from ..snapshots.store import PerDistrictFileSnapshotStore
from .build import build_date
from .parquet import PART, partition_dir, write_date
from .values import BuildReport


@dataclass(frozen=True)
class TableWrite:
    """One table's partition of one date as rebuilt: its file (None: removed), rows and report."""

    table: str
    as_of: dt.date
    path: Path | None
    frame: pd.DataFrame
    report: BuildReport

    @property
    def rows(self) -> int:
        """The number of rows written."""
        return len(self.frame)


@dataclass(frozen=True)
class DateRebuild:
    """Both tables of one date as rebuilt, and whether the date has a snapshot to build from."""

    as_of: dt.date
    has_snapshot: bool
    writes: list[TableWrite]

    def problems(self) -> list[str]:
        """What the build met (unreadable cells, unknown headers), a line per kind and table."""
        return [line for w in self.writes for line in w.report.lines(w.table, self.as_of)]


def rebuild_date(root: DataRoot | Path | str, as_of: dt.date, *, durable: bool = True) -> DateRebuild:
    """Rebuild both tables of `as_of` from one read of its snapshot files. A date without a
    snapshot has its old partition files removed (and none written)."""
    data_root = DataRoot.of(root)
    built = build_date(PerDistrictFileSnapshotStore(data_root), as_of)
    written = []
    for name, frame in built.frames.items():
        path: Path | None
        if built.has_snapshot:
            path = write_date(data_root, name, as_of, frame, durable=durable)
        else:
            path = None
            _remove(partition_dir(data_root, name, as_of) / PART, durable=durable)
        written.append(TableWrite(name, as_of, path, frame, built.reports[name]))
    return DateRebuild(as_of, built.has_snapshot, written)


def _remove(path: Path, *, durable: bool) -> None:
    if path.exists():
        path.unlink()
        if durable:
            fsync_dir(path.parent)
