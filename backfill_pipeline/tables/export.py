"""Ad-hoc extracts of a table: a range of dates (and districts) as one Parquet or CSV file,
streamed a date at a time so a year of clubs never sits in memory at once, and written
atomically (the old file, or the whole new one)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..dataroot import DataRoot
from ..files import atomic_writer
from .parquet import partition_dates, read_table
from .schema import table

Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")
STDOUT = "-"


class ExportError(ValueError):
    """An export that cannot be made as asked; `subject` names the option at fault (`out`,
    `overwrite`, `format`, `end`) and the message why. Nothing was written."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject


SHOWN_MISSING = 10


@dataclass
class ExportResult:
    """What an export wrote: rows, dates with a partition, and the dates of the range without one
    (their number, and the first few)."""

    path: str
    table: str
    rows: int = 0
    dates: int = 0
    missing: int = 0
    first_missing: list[dt.date] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """As `export --json` prints it."""
        return {
            "path": self.path,
            "table": self.table,
            "rows": self.rows,
            "dates": self.dates,
            "datesWithoutTable": self.missing,
            "firstDatesWithoutTable": [d.isoformat() for d in self.first_missing],
        }


def export_table(
    root: DataRoot | Path | str,
    name: str,
    start: dt.date,
    end: dt.date,
    out: str,
    fmt: Format,
    districts: list[str] | None = None,
    *,
    overwrite: bool = False,
) -> ExportResult:
    """Write the rows of [start, end] (of `districts`, default all) to `out` (`-`: stdout, CSV
    only). Refuses an existing file unless `overwrite`, and a directory always."""
    schema = table(name)
    if fmt not in FORMATS:
        raise ExportError("format", f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if end < start:
        raise ExportError("end", f"{end} is before the start, {start}")
    have = [d for d in partition_dates(root, schema.name) if start <= d <= end]
    result = ExportResult(path=out, table=schema.name, missing=(end - start).days + 1 - len(have))
    result.first_missing = _first_missing(start, end, set(have))
    chunks = (_rows(root, schema.name, d, districts) for d in have)
    if out == STDOUT:
        if fmt != "csv":
            raise ExportError("format", "only CSV can be written to stdout (-)")
        _write_csv(chunks, sys.stdout, result, schema.empty_frame())
        return result
    target = Path(out)
    if target.is_dir():
        raise ExportError("out", f"{out} is a directory: give a file name")
    if target.exists() and not overwrite:
        raise ExportError("overwrite", f"{out} exists: remove it, or overwrite it")
    if not target.parent.is_dir():
        raise ExportError("out", f"its directory {target.parent} does not exist")
    if target.resolve().is_relative_to(DataRoot.of(root).path.resolve()):
        # An extract written over a partition, a snapshot or the budget would corrupt the store.
        raise ExportError("out", f"{out} is inside the data root: write extracts elsewhere")
    with atomic_writer(target) as tmp:
        if fmt == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                _write_csv(chunks, f, result, schema.empty_frame())
        else:
            _write_parquet(chunks, tmp, schema.arrow_schema(), result)
    return result


def _first_missing(start: dt.date, end: dt.date, have: set[dt.date]) -> list[dt.date]:
    # At most len(have) + SHOWN_MISSING steps, however long the range.
    found: list[dt.date] = []
    day = start
    while day <= end and len(found) < SHOWN_MISSING:
        if day not in have:
            found.append(day)
        day += dt.timedelta(days=1)
    return found


def _rows(root: DataRoot | Path | str, name: str, day: dt.date, districts: list[str] | None) -> pd.DataFrame:
    return read_table(root, name, day, day, districts)


def _write_csv(
    chunks: Iterator[pd.DataFrame], sink: IO[str], result: ExportResult, empty: pd.DataFrame
) -> None:
    header = True
    for frame in chunks:
        if header or len(frame):
            frame.to_csv(sink, header=header, index=False)
            header = False
        _count(result, frame)
    if header:
        # An extract with no rows still has the table's columns.
        empty.to_csv(sink, index=False)


def _write_parquet(
    chunks: Iterator[pd.DataFrame], path: Path, schema: pa.Schema, result: ExportResult
) -> None:
    with pq.ParquetWriter(path, schema) as writer:
        for frame in chunks:
            writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
            _count(result, frame)
        if not result.dates:
            # An extract with no rows still has the table's columns.
            writer.write_table(schema.empty_table())


def _count(result: ExportResult, frame: pd.DataFrame) -> None:
    result.dates += 1
    result.rows += len(frame)
