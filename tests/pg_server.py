"""A throwaway PostgreSQL server for tests: the machine's PostgreSQL binaries, a data directory
under the test's tmp path, loopback only, trust authentication, stopped afterwards. Missing
binaries fail the test (CI installs them); they never make it skip."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from backfill_pipeline.devstack import free_port


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or PG_BIN."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL's server binaries are not installed (apt-get install postgresql); "
            "set PG_BIN to their directory otherwise"
        )
    return Path(found[-1]).parent


def _as_server_user(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server in a new temporary directory; yields its URL
    (`postgresql://postgres@127.0.0.1:PORT/postgres`)."""
    bin_dir = postgres_bin()
    # Not under pytest's tmp_path: its parents are private to us, and the server runs as `postgres`.
    data = Path(tempfile.mkdtemp(prefix="backfill-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
    port = free_port()
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_server_user(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


def dagster_postgres_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads, for the server at `url`
    (what `postgres_server` yields)."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "",
        "DAGSTER_PG_PORT": str(parts.port),
        "DAGSTER_PG_USERNAME": unquote(parts.username or ""),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_DB": unquote(parts.path.lstrip("/")),
    }
