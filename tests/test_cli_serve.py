"""`backfill-pipeline api` as a real process: it announces itself, serves the REST API, stops on
Ctrl-C; bad settings and a port in use end it at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from backfill_pipeline.cli import main
from backfill_pipeline.devstack import free_port, wait_for


def start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "backfill_pipeline.cli", "api", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_announces_itself_as_json_and_serves(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    proc = start("--port", "0", "--json", "--dagster-url", closed, "--root", str(tmp_path))
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:") and info["url"].endswith("/api")
        assert info["openapi"] == info["url"] + "/openapi.json"
        assert info["dagsterUrl"] == closed and info["dataRoot"] == str(tmp_path)
        assert requests.get(info["openapi"], timeout=10).json()["openapi"].startswith("3.")
        # Dagster is down: the API says so (503), it does not fall over.
        r = requests.get(info["url"] + "/backfills", timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "dagster-unreachable"
    finally:
        assert interrupt(proc) == 0
    assert proc.stdout.read() == ""  # the access log went to stderr


def test_api_without_json_tells_where_on_stderr(tmp_path):
    # Port 0: the command binds a free port itself and names it (no race with other processes).
    proc = start("--port", "0", "--root", str(tmp_path), "--today", "2026-11-29")
    try:
        line = proc.stderr.readline()
        assert line.startswith("backfill API on http://127.0.0.1:"), line
        assert "/api (Dagster at http://127.0.0.1:3000" in line
        url = line.split()[3]
        wait_for(f"{url}/openapi.json", timeout=30, process=proc)
    finally:
        assert interrupt(proc) == 0


def test_a_port_in_use_exits_1(sandbox):  # the session's sandbox holds its port
    result = CliRunner().invoke(main, ["api", "--port", str(sandbox.port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{sandbox.port}" in result.stderr


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--dagster-url", "localhost:3000"], {}, "--dagster-url='localhost:3000'"),
        ([], {"BACKFILL_DAGSTER_URL": "localhost:3000"}, "BACKFILL_DAGSTER_URL='localhost:3000'"),
        ([], {"BACKFILL_RATE": "nan"}, "BACKFILL_RATE='nan'"),
        (["--port", "65536"], {}, "'--port'"),
        (["--today", "2026-11-31"], {}, "'--today'"),
        (["--log-level", "loud"], {}, "'--log-level'"),
    ],
)
def test_bad_settings_and_options_exit_2_naming_them(argv, env, named):
    result = CliRunner().invoke(main, ["api", "--port", "0", *argv], env=env)
    assert result.exit_code == 2 and named in result.stderr
