"""The analyst tables: district_statistics and club_statistics, one stable schema across the
dashboard's eras, built with pandas from a date's snapshot files and kept as hive-partitioned
Parquet under the data root. No Dagster here."""

from .build import DateBuild, build_date, club_frame, club_rows, date_tables, district_frame, district_rows
from .export import FORMATS, ExportError, ExportResult, export_table
from .headers import ALIASES, Alias, map_row, stable_column, unknown_headers
from .parquet import partition_dates, partition_dir, read_table, write_date
from .schema import CLUB_STATISTICS, DISTRICT_STATISTICS, TABLES, UNMAPPED, Column, Table, table
from .update import TableWrite, rebuild_date
from .values import BadValue, BuildReport

__all__ = [
    "ALIASES",
    "FORMATS",
    "DateBuild",
    "ExportError",
    "ExportResult",
    "TableWrite",
    "build_date",
    "export_table",
    "rebuild_date",
    "CLUB_STATISTICS",
    "DISTRICT_STATISTICS",
    "TABLES",
    "UNMAPPED",
    "Alias",
    "BadValue",
    "BuildReport",
    "Column",
    "Table",
    "club_frame",
    "club_rows",
    "date_tables",
    "district_frame",
    "district_rows",
    "map_row",
    "partition_dates",
    "partition_dir",
    "read_table",
    "stable_column",
    "table",
    "unknown_headers",
    "write_date",
]
