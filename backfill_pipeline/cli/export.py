"""`backfill-pipeline export`: a table over a range of dates (and districts) as one Parquet or CSV
file, for ad-hoc analysis outside the dataset."""

from __future__ import annotations

import datetime as dt
from typing import cast

import click

from ..district_ids import InvalidDistrictId
from ..scope import normalise_ids
from ..settings import Settings
from ..tables import CLUB_STATISTICS, DISTRICT_STATISTICS, FORMATS, ExportError, export_table
from ..tables.export import STDOUT, Format
from .common import CliError, IsoDate, json_option, load, print_json, root_option
from .exit_codes import ExitCode
from .store import given_ids

TABLES = {"district": DISTRICT_STATISTICS.name, "club": CLUB_STATISTICS.name}


@click.command("export")
@click.option("--start", required=True, type=IsoDate(), help="first as-of date, YYYY-MM-DD")
@click.option("--end", required=True, type=IsoDate(), help="last as-of date, YYYY-MM-DD")
@click.option("--districts", help="comma-separated district ids (default: every district)")
@click.option(
    "--table",
    "table_name",
    required=True,
    type=click.Choice(sorted(TABLES)),
    help="district: district_statistics; club: club_statistics",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet", show_default=True)
@click.option("--out", required=True, help="the file to write (`-`: stdout, CSV only)")
@click.option("--overwrite", is_flag=True, help="replace --out if it exists")
@root_option
@json_option
def export(
    start: dt.date,
    end: dt.date,
    districts: str | None,
    table_name: str,
    fmt: str,
    out: str,
    overwrite: bool,
    root: str | None,
    as_json: bool,
) -> None:
    """Write an analyst table over a range of dates to one Parquet or CSV file."""
    settings: Settings = load({"data_root": "--root"}, data_root=root)
    if out == STDOUT and as_json:
        raise CliError("--json prints a summary on stdout: give --out a file name", ExitCode.BAD_INPUT)
    try:
        ids = normalise_ids(given_ids((districts,))) if districts is not None else None
    except InvalidDistrictId as exc:
        raise CliError(f"--districts: {exc}", ExitCode.BAD_INPUT) from None
    try:
        result = export_table(
            settings.data_root,
            TABLES[table_name],
            start,
            end,
            out,
            cast(Format, fmt),
            ids,
            overwrite=overwrite,
        )
    except ExportError as exc:
        option, hint = (
            ("--out", " (pass --overwrite)") if exc.subject == "overwrite" else (f"--{exc.subject}", "")
        )
        raise CliError(f"{option}: {exc}{hint}", ExitCode.BAD_INPUT) from None
    if as_json:
        print_json(result.to_dict())
        return
    where = "stdout" if out == STDOUT else out
    click.echo(f"wrote {result.rows} rows of {result.table} for {result.dates} date(s) to {where}", err=True)
    if result.missing:
        shown = ", ".join(d.isoformat() for d in result.first_missing)
        more = " ..." if result.missing > len(result.first_missing) else ""
        click.echo(
            f"warning: {result.missing} date(s) of the range have no {result.table} partition "
            f"(not collected, or not built yet): {shown}{more}",
            err=True,
        )
