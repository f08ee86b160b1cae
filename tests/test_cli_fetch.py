"""`backfill-pipeline fetch` against the sandbox: the report table, --json, the raw cache, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import published_dates, unpublished_date

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


@pytest.fixture(autouse=True)
def budget(monkeypatch):
    """A budget the tests' `--rate 50` is a share of (the CLI and its subprocesses read it)."""
    monkeypatch.setenv("BACKFILL_RATE", "100")


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
        assert r["outcome"] == "available" and "error" not in r
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
        "outcome",
        "available",
        "asOf",
        "dataMonth",
        "closingPeriod",
        "rows",
        "cacheHit",
    ]
    assert facts_lines[2].split()[:4] == ["districtsummary", "available", "yes", NORMAL.isoformat()]
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
        (["--as-of", "2025-09-08", "--rate", "inf"], "--rate=inf"),
        (["--as-of", "2025-09-08", "--rate", "-1"], "--rate=-1.0"),
        (["--as-of", "2025-09-08", "--rate", "101"], "above the deployment's budget of 100"),
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


# One HTTP attempt per request: a fault that happens to be retryable fails at once, no backoff.
ONE_ATTEMPT = {"BACKFILL_MAX_ATTEMPTS": "1"}
DISTRICT_REPORT_NAMES = ["districtperformance", "divisionperformance", "clubperformance"]


def fetch_district(server, root, *extra: str):
    return fetch(
        "--as-of",
        NORMAL.isoformat(),
        "--district",
        "61",
        "--base-url",
        server.url,
        "--root",
        str(root),
        "--rate",
        "50",
        *extra,
        env=ONE_ATTEMPT,
    )


def by_report(out: dict) -> dict[str, dict]:
    return {r["report"]: r for r in out["reports"]}


def test_all_four_reports_available_exits_0(fresh_sandbox, tmp_path):
    result = fetch_district(fresh_sandbox, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["report"] for r in out["reports"]] == ["districtsummary", *DISTRICT_REPORT_NAMES]
    assert all(r["outcome"] == "available" and "error" not in r for r in out["reports"])
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("fault", "failing", "error_class"),
    [
        ({"kind": "html", "report": "clubperformance"}, "clubperformance", None),
        (
            {"kind": "error", "status": 404, "report": "divisionperformance"},
            "divisionperformance",
            "ClientHttpError",
        ),
    ],
)
def test_a_failed_district_report_keeps_the_others_and_exits_1(
    fresh_sandbox, tmp_path, fault, failing, error_class
):
    fresh_sandbox.add_fault(fault)
    result = fetch_district(fresh_sandbox, tmp_path, "--json")
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)  # the whole document, printed before the exit
    reports = by_report(out)
    assert list(reports) == ["districtsummary", *DISTRICT_REPORT_NAMES]
    for name, r in reports.items():
        if name == failing:
            continue
        assert r["outcome"] == "available" and "error" not in r
        assert r["available"] is True and r["rows"] > 0 and len(r["sha256"]) == 64
        assert r["dataMonth"] == reports["districtsummary"]["dataMonth"]
    failed = reports[failing]
    assert failed["outcome"] == "failed" and failed["available"] is None and failed["sha256"] is None
    error = failed["error"]
    assert error["class"] and isinstance(error["retryable"], bool) and error["message"]
    if error_class is not None:  # HTML's class and retryability may be refined: any class will do
        assert error["class"] == error_class
    if error_class == "ClientHttpError":
        assert error["retryable"] is False and "404" in error["message"]
        assert error["url"].startswith(fresh_sandbox.url) and f"report={failing}~61~" in error["url"]
        assert failed["url"] == error["url"] and failed["requests"] == 1
    assert out["stats"]["requests"] == 4
    assert f"1 of 4 reports failed: {failing}: {error['class']} (" in result.stderr


def test_a_failed_district_report_in_the_tables(fresh_sandbox, tmp_path):
    fresh_sandbox.add_fault({"kind": "error", "status": 404, "report": "divisionperformance"})
    result = fetch_district(fresh_sandbox, tmp_path)
    assert result.exit_code == 1, result.output
    facts, where, errors, stats = result.stdout.split("\n\n")
    rows = {line.split()[0]: line.split() for line in facts.splitlines()[2:]}
    assert [rows[name][1] for name in ["districtsummary", *DISTRICT_REPORT_NAMES]] == [
        "available",
        "available",
        "failed",
        "available",
    ]
    assert rows["clubperformance"][2] == "yes" and rows["divisionperformance"][2] == "-"
    where_rows = {line.split()[0]: line.split() for line in where.splitlines()[2:]}
    assert where_rows["divisionperformance"][1] == "-"
    assert where_rows["divisionperformance"][2].startswith(fresh_sandbox.url)
    assert len(where_rows["clubperformance"][1]) == 64
    error_lines = errors.splitlines()
    assert error_lines[0].split() == ["report", "error"] and len(error_lines) == 3
    assert error_lines[2].split()[:3] == ["divisionperformance", "ClientHttpError", "(permanent):"]
    assert "HTTP 404" in error_lines[2]
    assert stats.startswith("4 HTTP requests")
    assert "divisionperformance: ClientHttpError (permanent): HTTP 404" in result.stderr


def test_a_failed_summary_leaves_the_district_reports_not_attempted(fresh_sandbox, tmp_path):
    fresh_sandbox.add_fault({"kind": "html", "report": "districtsummary"})
    result = fetch_district(fresh_sandbox, tmp_path, "--json")
    assert result.exit_code == 1, result.output
    reports = by_report(json.loads(result.stdout))
    summary = reports.pop("districtsummary")
    # HTML's class and retryability may be refined; that it failed, with its class, is what counts.
    assert summary["outcome"] == "failed" and summary["error"]["class"]
    assert list(reports) == DISTRICT_REPORT_NAMES
    for r in reports.values():
        assert r["outcome"] == "not-attempted" and "error" not in r and r["requests"] == 0
    assert fresh_sandbox.stats()["byReport"].keys() == {"districtsummary"}
    assert f"1 of 4 reports failed: districtsummary: {summary['error']['class']} (" in result.stderr


def test_an_unavailable_summary_makes_the_district_reports_unavailable_without_requests(
    fresh_sandbox, tmp_path
):
    day = unpublished_date(dt.date(2025, 2, 1))
    result = fetch(
        "--as-of",
        day.isoformat(),
        "--district",
        "61",
        "--base-url",
        fresh_sandbox.url,
        "--root",
        str(tmp_path),
        "--rate",
        "50",
        "--json",
        env=ONE_ATTEMPT,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["outcome"] for r in out["reports"]] == ["unavailable"] * 4
    assert all(r["available"] is False for r in out["reports"])
    assert set(fresh_sandbox.stats()["byReport"]) == {"districtsummary"}


def test_a_dashboard_error_on_the_summary_alone_prints_it_and_exits_1(fresh_sandbox, tmp_path):
    fresh_sandbox.set_faults([{"kind": "html"}])
    p = run_cli(
        "fetch",
        "--as-of",
        NORMAL.isoformat(),
        "--base-url",
        fresh_sandbox.url,
        "--root",
        str(tmp_path),
        env={**os.environ, **ONE_ATTEMPT},
    )
    assert p.returncode == 1 and "1 of 1 reports failed: districtsummary: " in p.stderr
    facts, _, errors, _ = p.stdout.split("\n\n")
    assert facts.splitlines()[2].split()[:2] == ["districtsummary", "failed"]
    assert errors.splitlines()[2].split()[0] == "districtsummary"
    assert "HTML" in errors
