"""`backfill-pipeline demo` before it starts anything: its dates, and bad input exiting 2 at once.
The demo itself, end to end, is in test_demo.py."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from conftest import TODAY

from backfill_pipeline.cli import main
from backfill_pipeline.cli.demo import demo_dates
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
    ],
)
def test_bad_input_exits_2_before_starting_anything(tmp_path, argv, env, named):
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "demo"), *argv], env=env)
    assert result.exit_code == 2 and named in result.stderr
    assert not (tmp_path / "demo").exists()
