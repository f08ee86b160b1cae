"""Rebuilding a date's tables and `backfill-pipeline export`: real files under a temp root, the
extract read back with pandas, and every bad argument refused with nothing written."""

from __future__ import annotations

import datetime as dt
import io
import json
import os

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import AS_OF

from backfill_pipeline.cli import main
from backfill_pipeline.tables import (
    CLUB_STATISTICS,
    DISTRICT_STATISTICS,
    ExportError,
    export_table,
    partition_dir,
    read_table,
    rebuild_date,
)
from backfill_pipeline.tables import export as export_module

NEXT = AS_OF + dt.timedelta(days=1)
GAP = AS_OF - dt.timedelta(days=1)


@pytest.fixture
def built(small_store):
    """small_store's two dates rebuilt: AS_OF (42, 61 summary, 09 failed), NEXT (42 detailed)."""
    root = small_store.root.path
    for day in (AS_OF, NEXT):
        rebuild_date(root, day, durable=False)
    return root


@pytest.fixture
def outdir(tmp_path_factory):
    """Where extracts go: outside the data root (small_store's is tmp_path)."""
    return tmp_path_factory.mktemp("extracts")


def run(*argv: str):
    return CliRunner().invoke(main, list(argv), catch_exceptions=False)


def test_rebuilding_a_date_writes_both_tables_from_its_files(small_store):
    rebuilt = rebuild_date(small_store.root.path, AS_OF)
    assert rebuilt.has_snapshot
    writes = {w.table: w for w in rebuilt.writes}
    assert set(writes) == {DISTRICT_STATISTICS.name, CLUB_STATISTICS.name}
    districts = writes[DISTRICT_STATISTICS.name]
    assert districts.rows == 3 and list(districts.frame["district"]) == ["09", "42", "61"]
    assert (
        districts.path
        == partition_dir(small_store.root.path, DISTRICT_STATISTICS.name, AS_OF) / "part-0.parquet"
    )
    assert writes[CLUB_STATISTICS.name].rows == 0 and writes[CLUB_STATISTICS.name].path.is_file()
    assert len(read_table(small_store.root.path, DISTRICT_STATISTICS.name, AS_OF, AS_OF)) == 3


def test_a_date_that_lost_its_snapshot_loses_its_table_files(built, small_store):
    stale = partition_dir(built, DISTRICT_STATISTICS.name, NEXT) / "part-0.parquet"
    assert stale.is_file()
    for f in (small_store.root.path / "snapshots" / NEXT.isoformat()).iterdir():
        f.unlink()
    (small_store.root.path / "snapshots" / NEXT.isoformat()).rmdir()
    rebuilt = rebuild_date(built, NEXT)
    assert not rebuilt.has_snapshot
    assert all(w.path is None and w.rows == 0 for w in rebuilt.writes)
    assert not stale.exists(), "a table must not hold rows the store no longer has"
    assert read_table(built, DISTRICT_STATISTICS.name, NEXT, NEXT).empty


def test_export_parquet_holds_every_row_of_the_range_with_its_date(built, outdir):
    out = outdir / "districts.parquet"
    result = export_table(built, DISTRICT_STATISTICS.name, GAP, NEXT, str(out), "parquet")
    back = pd.read_parquet(out)
    assert list(back.columns) == DISTRICT_STATISTICS.names
    assert result.rows == len(back) == 4 and result.dates == 2
    assert sorted(set(back["as_of"])) == [AS_OF, NEXT]
    assert back[back["as_of"] == NEXT]["detail_level"].tolist() == ["detailed"]
    assert (result.missing, result.first_missing) == (1, [GAP])
    expected = read_table(built, DISTRICT_STATISTICS.name, AS_OF, NEXT)
    pd.testing.assert_frame_equal(DISTRICT_STATISTICS.typed(back), expected)


def test_export_csv_of_some_districts(built, outdir):
    out = outdir / "clubs.csv"
    result = export_table(built, CLUB_STATISTICS.name, AS_OF, NEXT, str(out), "csv", ["42"])
    back = pd.read_csv(out, dtype={"district": str, "club_number": str})
    assert result.rows == len(back) > 0 and set(back["district"]) == {"42"}
    assert list(back.columns) == CLUB_STATISTICS.names
    assert set(back["as_of"]) == {NEXT.isoformat()}


def test_an_empty_range_still_writes_the_columns(built, outdir):
    for fmt in ("csv", "parquet"):
        out = outdir / f"none.{fmt}"
        result = export_table(built, CLUB_STATISTICS.name, GAP, GAP, str(out), fmt)
        back = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
        assert result.rows == 0 and back.empty and list(back.columns) == CLUB_STATISTICS.names


def test_a_failed_export_leaves_the_old_file_and_no_temporary_one(built, outdir, monkeypatch):
    out = outdir / "keep.parquet"
    out.write_bytes(b"the analyst's old extract")
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return read_table(*args[:3], args[2], args[3])

    monkeypatch.setattr(export_module, "_rows", failing)
    with pytest.raises(OSError, match="disk full"):
        export_table(built, DISTRICT_STATISTICS.name, AS_OF, NEXT, str(out), "parquet", overwrite=True)
    assert out.read_bytes() == b"the analyst's old extract"
    assert os.listdir(outdir) == ["keep.parquet"]


def test_the_command_writes_and_reports_json(built, outdir):
    out = outdir / "x.parquet"
    args = ["export", "--root", str(built), "--start", str(GAP), "--end", str(NEXT), "--table", "district"]
    result = run(*args, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "path": str(out),
        "table": "district_statistics",
        "rows": 4,
        "dates": 2,
        "datesWithoutTable": 1,
        "firstDatesWithoutTable": [GAP.isoformat()],
    }
    text = run(*args, "--out", str(out), "--overwrite")
    assert text.exit_code == 0 and "wrote 4 rows" in text.stderr and "1 date(s) of the range" in text.stderr


def test_the_command_writes_csv_to_stdout(built):
    result = run(
        "export", "--root", str(built), "--start", str(AS_OF), "--end", str(AS_OF),
        "--table", "district", "--districts", "61,42", "--format", "csv", "--out", "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    back = pd.read_csv(io.StringIO(result.stdout), dtype={"district": str})
    assert back["district"].tolist() == ["42", "61"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "{exists}"], "exists"),
        (["--out", "{dir}"], "is a directory"),
        (["--out", "{missing}/x.csv"], "does not exist"),
        (["--out", "-", "--format", "parquet"], "only CSV"),
        (["--out", "-", "--format", "csv", "--json"], "--json"),
        (["--out", "{new}", "--districts", "42,../etc"], "--districts"),
        (["--out", "{new}", "--districts", "42,,61"], "empty district id"),
        (["--out", "{new}", "--end", "2025-01-01"], "--end: 2025-01-01 is before the start"),
        (["--out", "{inside}"], "inside the data root"),
        (["--out", "{new}", "--start", "2025-13-01"], "YYYY-MM-DD"),
        (["--out", "{new}", "--format", "xlsx"], "xlsx"),
        (["--out", "{new}", "--table", "members"], "members"),
    ],
)
def test_bad_arguments_exit_2_naming_them_and_write_nothing(built, outdir, extra, message):
    places = {
        "exists": outdir / "old.csv",
        "dir": outdir,
        "missing": outdir / "nowhere",
        "new": outdir / "new.csv",
        "inside": built / "extract.csv",
    }
    places["exists"].write_text("old")
    args = ["export", "--root", str(built), "--start", str(AS_OF), "--end", str(NEXT), "--table", "club"]
    extra = [e.format(**places) for e in extra]
    # The last of a repeated option wins in click: the test's value overrides the default ones.
    result = run(*args, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert places["exists"].read_text() == "old" and not places["new"].exists()
    assert sorted(p.name for p in outdir.iterdir()) == ["old.csv"]
    assert not places["inside"].exists()


def test_a_library_caller_gets_the_same_refusals(built, outdir):
    with pytest.raises(ExportError, match="before the start") as caught:
        export_table(built, CLUB_STATISTICS.name, NEXT, AS_OF, str(outdir / "x.csv"), "csv")
    assert caught.value.subject == "end"
    with pytest.raises(ValueError, match="unknown table"):
        export_table(built, "../secrets", AS_OF, NEXT, str(outdir / "x.csv"), "csv")
