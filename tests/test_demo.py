"""The main job: `backfill-pipeline demo` starts everything, backfills through the REST API, shows
the snapshot tree, and (with --exit-when-done) stops everything it started."""

import json
import socket
import subprocess
import sys

import pytest

from backfill_pipeline.devstack import free_port

# The e2e files with their own `dagster dev` run on one xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dagster")]


def run_demo(tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, list[int]]:
    dagster_port, api_port = free_port(), free_port()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "backfill_pipeline.cli",
            "demo",
            "--dir",
            str(tmp_path),
            "--dagster-port",
            str(dagster_port),
            "--api-port",
            str(api_port),
            "--days",
            "2",
            "--districts",
            "61",
            "--exit-when-done",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p, [dagster_port, api_port]


def assert_stopped(ports: list[int]) -> None:
    """Nothing left running: Dagster and the API no longer answer."""
    for port in ports:
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(2)
            s.connect(("127.0.0.1", port))


def test_demo_runs_a_backfill_end_to_end(tmp_path):
    # One real run (it costs minutes of daemon ticks): --json, so stdout is the final status and
    # the story goes to stderr. The text rendering is tested in-process (test_cli_demo.py).
    p, ports = run_demo(tmp_path, "--json")
    status = json.loads(p.stdout)  # the whole of stdout is one JSON document
    assert status["state"] == "succeeded" and status["districts"]["61"]["done"] == 2
    assert status["plan"]["districts"] == ["61"]
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]"):
        assert step in p.stderr
    assert "202 Accepted" in p.stderr and "Dagster UI: http://127.0.0.1:" in p.stderr
    days = [
        d for d in (tmp_path / "data" / "snapshots").iterdir() if d.is_dir() and not d.name.startswith(".")
    ]
    assert len(days) == 2
    for day in days:
        snap = json.loads((day / "district_61.json").read_text())
        assert snap["detail"] == "detailed" and snap["status"] == "success"
        assert json.loads((day / "metadata.json").read_text())["status"] == "success"
    assert_stopped(ports)
