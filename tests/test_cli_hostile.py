"""Hostile command-line arguments, command by command: exit 2 with a message naming what was wrong,
no traceback, nothing written under the data root and no call to Dagster (its URL points at a
closed port, so reaching it would exit 3 instead)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from backfill_pipeline.cli import main
from backfill_pipeline.devstack import free_port

CASES = [
    (["list", "--limit", "²"], "--limit"),
    (["list", "--limit", "０"], "--limit"),
    (["list", "--limit", "-1"], "--limit"),
    (["backfill", "--start", "２０２５-01-01"], "start"),
    (["backfill", "--start", "2025-01-01", "--end", "2025-0١-02"], "end"),
    (["backfill", "--start", "2025-01-01", "--concurrency", "²"], "--concurrency"),
    (["backfill", "--start", "2025-01-01", "--concurrency", "4"], "concurrency"),
    (["backfill", "--start", "2025-01-01", "--rate", "nan"], "rate"),
    (["backfill", "--start", "2025-01-01", "--rate", "inf"], "rate"),
    (["backfill", "--start", "2025-01-01", "--rate", "0"], "rate"),
    (["backfill", "--start", "2025-01-01", "--rate", "-2"], "rate"),
    (["backfill", "--start", "2025-01-01", "--rate", "0.0004"], "rate"),
    (["backfill", "--start", "2025-01-01", "--districts", "42,,61"], "district"),
    (["backfill", "--start", "2025-01-01", "--districts", "٤٢"], "district"),
    (["backfill", "--start", "2025-01-01", "--districts", " "], "district"),
    (["backfill", "--start", "2025-01-01", "--plan-hash", "not-a-hash"], "plan"),
    (["heal", "--start", "2025-01-01", "--end", "2025-01-02", "--rate", "nan"], "rate"),
    (["heal", "--start", "2025-01-01", "--end", "2025-01-02", "--districts", "４２"], "district"),
    (["heal", "--start", "", "--end", "2025-01-02"], "start"),
    (["gaps", "--start", "²", "--end", "2025-01-02"], "--start"),
    (["gaps", "--start", "2025-01-01", "--end", "2025-01-02", "--districts", "42,"], "district"),
    (["gaps", "--start", "2025-01-01", "--end", "2025-01-02", "--state", "lost"], "state"),
    (["districts", "add", "٤٢"], "district"),
    (["districts", "add", ""], "district"),
    (["districts", "set", "42", " "], "district"),
    (["fetch", "--as-of", "2025-09-08", "--district", "４２"], "district"),
    (["fetch", "--as-of", "2025-09-08", "--rate", "inf"], "--rate"),
    (["fetch", "--as-of", "２０２５-09-08"], "calendar date"),
    (["sandbox", "--port", "²"], "--port"),
    (["api", "--port", "²"], "--port"),
    (["api", "--port", "70000"], "--port"),
    (["dev", "--port", "0"], "--port"),  # a port the webserver would pick and `dev` not know
    (["dev", "--port", "²"], "--port"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_hostile_argument_exits_2_naming_it_and_changes_nothing(tmp_path, monkeypatch, argv, named):
    root = tmp_path / "root"
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(root))
    monkeypatch.setenv("BACKFILL_DAGSTER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("BACKFILL_DASHBOARD_URL", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert named.lower() in result.output.lower(), result.output
    written = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert written == [], written
