"""`backfill-pipeline demo` before it starts anything: its dates, and bad input exiting 2 at once.
The demo itself, end to end, is in test_demo.py."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from conftest import AS_OF, TODAY

from backfill_pipeline.cli import main
from backfill_pipeline.cli.demo import demo_dates, print_tree
from backfill_pipeline.sandbox import publication


def test_demo_dates_are_published_consecutive_and_a_week_old():
    dates = demo_dates(TODAY, 3)
    assert len(dates) == 3 and dates[-1] <= TODAY - dt.timedelta(days=8)
    assert [(b - a).days for a, b in zip(dates, dates[1:], strict=False)] == [1, 1]
    assert all(publication.is_published(d, today=TODAY) for d in dates)


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        ([], {"BACKFILL_READ_TIMEOUT": "nan"}, "BACKFILL_READ_TIMEOUT='nan'"),
        ([], {"BACKFILL_MAX_ATTEMPTS": "0"}, "BACKFILL_MAX_ATTEMPTS='0'"),
        (["--days", "0"], {}, "'--days'"),
        (["--api-port", "99999"], {}, "'--api-port'"),
        (["--districts", "42,4x"], {}, "--districts: invalid district id(s) '4x'"),
    ],
)
def test_bad_input_exits_2_before_starting_anything(tmp_path, argv, env, named):
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "demo"), *argv], env=env)
    assert result.exit_code == 2 and named in result.stderr
    assert not (tmp_path / "demo").exists()


def test_the_snapshot_tree_names_each_date_its_files_and_the_detailed_districts(small_store, capsys):
    print_tree(small_store.root, ["42"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"  {AS_OF}/  3 district files (summary detail, detailed for 42)"
    assert "    metadata.json" in lines and "    manifest.json" in lines
    day_after = lines.index(
        f"  {AS_OF.replace(day=AS_OF.day + 1)}/  1 district files (summary detail, detailed for 42)"
    )
    assert lines[day_after + 1 :].count("    district_42.json") == 1
    assert lines[-1] == "  latest-successful.json"
