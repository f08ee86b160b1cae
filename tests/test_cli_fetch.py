"""`backfill-pipeline fetch` against the sandbox: the report table, --json, the raw cache, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import published_dates

from backfill_pipeline.cli import main

NORMAL = published_dates(dt.date(2025, 2, 1), closing=False)[0]
CLOSING = published_dates(dt.date(2025, 2, 1), closing=True)[0]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill_pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def fetch(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["fetch", *args], env=env)


def requests_made(server) -> int:
    return server.stats()["exportRequests"]


def test_fetch_json_then_again_from_the_raw_cache(fresh_sandbox, tmp_path):
    args = [
        "--as-of",
        CLOSING.isoformat(),
        "--base-url",
        fresh_sandbox.url,
        "--root",
        str(tmp_path),
        "--rate",
        "50",
        "--json",
    ]
    p = run_cli("fetch", *args, "--district", "District 61")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["district"] == "61" and out["asOf"] == CLOSING.isoformat()
    assert [r["report"] for r in out["reports"]] == [
        "districtsummary",
        "districtperformance",
        "divisionperformance",
        "clubperformance",
    ]
    for r in out["reports"]:
        assert r["available"] and r["closingPeriod"] is True and r["asOf"] == CLOSING.isoformat()
        assert len(r["sha256"]) == 64 and r["rows"] > 0 and r["cacheHit"] is False
        assert r["url"].startswith(fresh_sandbox.url)
    again = json.loads(run_cli("fetch", *args, "--district", "61").stdout)
    assert all(r["cacheHit"] for r in again["reports"]) and again["stats"]["requests"] == 0


def test_fetch_prints_tables_with_whole_values(fresh_sandbox, tmp_path):
    result = fetch("--as-of", NORMAL.isoformat(), "--base-url", fresh_sandbox.url, "--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    facts, where, stats = result.stdout.split("\n\n")
    facts_lines, where_lines = facts.splitlines(), where.splitlines()
    assert facts_lines[0].split() == [
        "report",
        "available",
        "asOf",
        "dataMonth",
        "closingPeriod",
        "rows",
        "cacheHit",
    ]
    assert facts_lines[2].split()[:3] == ["districtsummary", "yes", NORMAL.isoformat()]
    assert where_lines[0].split() == ["report", "sha256", "url"]
    report, sha256, url = where_lines[2].split()  # nothing cut or wrapped on a pipe
    assert report == "districtsummary" and len(sha256) == 64
    assert url.startswith(fresh_sandbox.url + "/") and url.count("~") == 3
    assert stats.startswith("1 HTTP requests, 0 cache hits")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2025-9-8"], "YYYY-MM-DD"),
        (["--as-of", "2008-06-30"], "before 2008-07-01"),
        (["--as-of", "2999-01-01"], "future"),
        (["--as-of", "2025-09-08", "--district", "2a"], "invalid district"),
        (["--as-of", "2025-09-08", "--district", "../x"], "invalid district"),
        (["--as-of", "2025-09-08", "--district", ""], "invalid district"),
        (["--as-of", "2025-09-08", "--district", "District 4 2"], "invalid district"),
        (["--as-of", "2025-09-08", "--rate", "0"], "--rate=0.0"),
        (["--as-of", "2025-09-08", "--rate", "nan"], "--rate=nan"),
        (["--as-of", "2025-09-08", "--rate", "fast"], "'--rate'"),
        (["--district", "61"], "'--as-of'"),
    ],
)
def test_bad_input_exits_2_before_any_request(fresh_sandbox, tmp_path, args, message):
    result = fetch(*args, "--base-url", fresh_sandbox.url, "--root", str(tmp_path))
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert requests_made(fresh_sandbox) == 0
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BACKFILL_RATE", "nan"), ("BACKFILL_READ_TIMEOUT", "0"), ("BACKFILL_CACHE", "maybe")],
)
def test_a_bad_backfill_variable_exits_2_naming_it(fresh_sandbox, tmp_path, variable, value):
    result = fetch(
        "--as-of",
        NORMAL.isoformat(),
        "--base-url",
        fresh_sandbox.url,
        "--root",
        str(tmp_path),
        env={variable: value},
    )
    assert result.exit_code == 2 and f"{variable}={value!r}" in result.stderr
    assert requests_made(fresh_sandbox) == 0


def test_settings_come_from_the_environment(fresh_sandbox, tmp_path):
    env = {"BACKFILL_DASHBOARD_URL": fresh_sandbox.url, "BACKFILL_DATA_ROOT": str(tmp_path)}
    result = fetch("--as-of", NORMAL.isoformat(), "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reports"][0]["url"].startswith(fresh_sandbox.url)
    assert (tmp_path / "raw").is_dir()


def test_a_dashboard_error_exits_1_naming_its_class(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "html"}])
    p = run_cli(
        "fetch", "--as-of", NORMAL.isoformat(), "--base-url", fresh_sandbox.url, "--root", str(tmp_path)
    )
    assert p.returncode == 1 and "NotACsv (permanent)" in p.stderr and p.stdout == ""
