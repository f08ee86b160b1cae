"""`backfill-pipeline api` as a real process, for the tests that need one (the CLI's own tests and
the browser's): started with a clean environment (no BACKFILL_* variable of the caller leaks in),
stopped by a signal and waited for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backfill_pipeline.devstack import wait_for


def start(*argv: str, env: dict | None = None) -> subprocess.Popen:
    """`backfill-pipeline api ARGV` with only `env`'s BACKFILL_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "backfill_pipeline.cli", "api", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **(env or {})},
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> int:
    """Send `sig`, wait up to 20 s (then kill); the exit status."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def running_api(
    root: Path, *, token: str, dagster_url: str, today: str, env: dict | None = None
) -> Iterator[str]:
    """The API over `root` on a free loopback port, talking to Dagster at `dagster_url`; yields
    its base URL (the console's `/`), once it answers."""
    argv = ["--port", "0", "--json", "--root", str(root), "--today", today, "--dagster-url", dagster_url]
    proc = start(*argv, env={"BACKFILL_API_TOKEN": token, **(env or {})})
    try:
        line = proc.stdout.readline()
        assert line, f"the API did not start: {proc.stderr.read()[-2000:]}"
        api = json.loads(line)["url"]
        wait_for(f"{api}/openapi.json", 30, proc)
        yield api.removesuffix("/api")
    finally:
        stop(proc)
