"""The tables on disk: hive-partitioned Parquet, `tables/<table>/as_of=YYYY-MM-DD/part-0.parquet`,
one file per date, replaced atomically; read back over a range of dates."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..dataroot import DataRoot
from ..district_ids import normalise_district_id, sort_district_ids
from ..files import atomic_write_bytes
from .schema import Table, table

PART = "part-0.parquet"
PARTITION_COLUMN = "as_of"
_PARTITION = re.compile(r"^as_of=(\d{4}-\d{2}-\d{2})$")


def partition_dir(root: DataRoot | Path | str, name: str, as_of: dt.date) -> Path:
    """`tables/<table>/as_of=YYYY-MM-DD/` (the table name is checked: it becomes a path)."""
    return DataRoot.of(root).tables / table(name).name / f"{PARTITION_COLUMN}={as_of.isoformat()}"


def write_date(
    root: DataRoot | Path | str, name: str, as_of: dt.date, frame: pd.DataFrame, *, durable: bool = True
) -> Path:
    """Write one date's rows as its partition's Parquet file, replacing the old one atomically
    (readers see the old file or the new one, never a torn one); returns the file's path."""
    schema = table(name)
    typed = schema.typed(frame)
    if len(typed) and not (typed[PARTITION_COLUMN] == as_of).all():
        raise ValueError(f"{name}: rows of another date than {as_of} in its partition")
    # The date lives in the path only, as hive partitioning has it: readers that infer the
    # partition (pandas, DuckDB) refuse a column that is both in the files and in the path.
    arrow = pa.Table.from_pandas(
        typed.drop(columns=[PARTITION_COLUMN]), schema=_file_schema(schema), preserve_index=False
    )
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    path = partition_dir(root, name, as_of) / PART
    # One date's file is a few MB: built in memory, then written by the store's atomic writer.
    atomic_write_bytes(path, sink.getvalue().to_pybytes(), durable=durable)
    return path


def partition_dates(root: DataRoot | Path | str, name: str) -> list[dt.date]:
    """The dates that have a partition file, oldest first."""
    directory = DataRoot.of(root).tables / table(name).name
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        m = _PARTITION.fullmatch(child.name)
        if m and (child / PART).is_file():
            try:
                found.append(dt.date.fromisoformat(m.group(1)))
            except ValueError:
                continue
    return sorted(found)


def read_table(
    root: DataRoot | Path | str,
    name: str,
    start: dt.date,
    end: dt.date,
    districts: list[str] | None = None,
) -> pd.DataFrame:
    """The rows of [start, end] (of `districts`, default all), typed as the schema says."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    schema = table(name)
    directory = DataRoot.of(root).tables / schema.name
    # Only the well-named partitions of the range are opened (a stray directory is not read).
    if start == end:  # one date (an export reads date after date): no listing of the table
        days = [start] if (partition_dir(root, name, start) / PART).is_file() else []
    else:
        days = [d for d in partition_dates(root, name) if start <= d <= end]
    files = [str(partition_dir(root, name, d) / PART) for d in days]
    if not files:
        return schema.empty_frame()
    dataset = ds.dataset(
        files,
        schema=schema.arrow_schema(),
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive"),
        partition_base_dir=str(directory),
    )
    wanted = None
    if districts is not None:
        wanted = ds.field("district").isin([normalise_district_id(d) for d in districts])
    # Nullable pandas types straight from Arrow: through float64 an integer column with a null
    # would lose every value above 2**53.
    frame = dataset.to_table(filter=wanted).to_pandas(types_mapper=_NULLABLE.get)
    return _sorted(schema, schema.typed(frame))


_NULLABLE = {
    pa.int64(): pd.Int64Dtype(),
    pa.float64(): pd.Float64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    pa.string(): pd.StringDtype(),
}


def _file_schema(schema: Table) -> pa.Schema:
    return pa.schema([f for f in schema.arrow_schema() if f.name != PARTITION_COLUMN])


def _sorted(schema: Table, frame: pd.DataFrame) -> pd.DataFrame:
    # Districts in their numeric order (`09, 42, 109, F`), as the build writes them.
    rank = {d: i for i, d in enumerate(sort_district_ids(frame["district"].dropna().unique()))}
    return frame.sort_values(
        list(schema.key),
        key=lambda column: column.map(rank) if column.name == "district" else column,
        kind="stable",
        ignore_index=True,
    )
