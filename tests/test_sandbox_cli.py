"""The sandbox command: its options, and real subprocesses serving until SIGTERM, alone and in the CLI."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from backfill_pipeline.sandbox import command


def params(argv: list[str]) -> dict:
    return command.sandbox.make_context("sandbox", argv).params


def test_defaults():
    p = params([])
    assert (p["host"], p["port"], p["seed"], p["today"], p["as_json"]) == ("127.0.0.1", 8765, 42, None, False)
    assert command.fault_rules(p) == []


def test_fault_flags_become_rules():
    p = params(
        [
            "--today",
            "2026-11-29",
            "--error-rate",
            "0.1",
            "--error-status",
            "503",
            "--rate-429",
            "0.2",
            "--retry-after",
            "3",
            "--latency-ms",
            "20",
            "--truncate-rate",
            "0.01",
            "--html-rate",
            "0.02",
            "--wrong-as-of-rate",
            "0.03",
            "--reset-rate",
            "0.04",
            "--fault",
            '{"kind": "error", "times": 1}',
        ]
    )
    assert p["today"] == dt.date(2026, 11, 29)
    assert command.fault_rules(p) == [
        {"kind": "latency", "latencyMs": 20},
        {"kind": "reset", "rate": 0.04},
        {"kind": "error", "status": 503, "rate": 0.1},
        {"kind": "429", "retryAfter": 3, "rate": 0.2},
        {"kind": "html", "rate": 0.02},
        {"kind": "truncate", "rate": 0.01},
        {"kind": "wrong_as_of", "rate": 0.03},
        {"kind": "error", "times": 1},
    ]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--today", "2026-13-01"], "--today"),
        (["--error-rate", "1.5"], "--error-rate"),
        (["--fault", '{"kind": "nope"}'], "--fault"),
        (["--fault", "not json"], "--fault"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_options_exit_2_naming_the_option(argv, named):
    result = CliRunner().invoke(command.sandbox, argv)
    assert result.exit_code == 2 and named in result.stderr


def test_a_port_in_use_exits_1(sandbox):  # the session's sandbox holds its port
    result = CliRunner().invoke(command.sandbox, ["--port", str(sandbox.port)])
    assert result.exit_code == 1 and "cannot listen" in result.stderr


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_subprocess_serves_until_sigterm():
    proc = start(
        [
            sys.executable,
            "-m",
            "backfill_pipeline.sandbox",
            "--port",
            "0",
            "--today",
            "2026-11-29",
            "--fault",
            '{"kind": "429", "times": 1}',
        ]
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        health = requests.get(url + "/_sandbox/health", timeout=10).json()
        assert health["today"] == "2026-11-29" and health["openProgramYear"] == "2026-2027"
        export = url + "/export.aspx?type=CSV&report=districtsummary~11/30/2026~11/20/2026~2026-2027"
        assert requests.get(export, timeout=10).status_code == 429
        r = requests.get(export, timeout=10)
        assert r.status_code == 200 and r.content.endswith(b"As of 11/20/2026\r\n")
    finally:
        assert stop(proc) == 0


def test_a_closing_terminal_stops_it_as_ctrl_c_does():
    proc = start([sys.executable, "-m", "backfill_pipeline.sandbox", "--port", "0"])
    try:
        url = proc.stdout.readline().strip()
        assert requests.get(url + "/_sandbox/health", timeout=10).status_code == 200
    finally:
        assert stop(proc, signal.SIGHUP) == 0


def test_the_cli_serves_it_and_announces_it_as_json():
    proc = start(
        [
            sys.executable,
            "-m",
            "backfill_pipeline.cli",
            "sandbox",
            "--port",
            "0",
            "--today",
            "2026-11-29",
            "--json",
        ]
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:") and info["seed"] == 42
        assert info["today"] == "2026-11-29" and info["openProgramYear"] == "2026-2027"
        assert info["latestAsOf"] <= "2026-11-29" and info["faultRules"] == 0
        assert requests.get(info["url"] + "/_sandbox/health", timeout=10).status_code == 200
    finally:
        assert stop(proc) == 0
