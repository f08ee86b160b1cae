"""The sandbox command: argument parsing and a real subprocess serving until SIGTERM."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import subprocess
import sys

import requests

from backfill_pipeline.sandbox import command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sandbox", *argv])


def test_register_defaults():
    args = parse([])
    assert (args.host, args.port, args.seed, args.today) == ("127.0.0.1", 8765, 42, None)
    assert args.handler is command.run
    assert command.faults_from_args(args) == []


def test_fault_flags_become_rules():
    args = parse(
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
    assert args.today == dt.date(2026, 11, 29)
    assert command.faults_from_args(args) == [
        {"kind": "latency", "latencyMs": 20},
        {"kind": "reset", "rate": 0.04},
        {"kind": "error", "status": 503, "rate": 0.1},
        {"kind": "429", "retryAfter": 3, "rate": 0.2},
        {"kind": "html", "rate": 0.02},
        {"kind": "truncate", "rate": 0.01},
        {"kind": "wrong_as_of", "rate": 0.03},
        {"kind": "error", "times": 1},
    ]


def test_subprocess_serves_until_sigterm():
    proc = subprocess.Popen(
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
