"""Start the local stack as real processes: the sandbox dashboard and `dagster dev` (demo and tests)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_YAML = REPO_ROOT / "dagster.yaml"


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_dagster_home(home: Path | str) -> Path:
    """Make `home` a Dagster instance directory holding the repo's dagster.yaml."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not INSTANCE_YAML.exists():
        raise FileNotFoundError(f"{INSTANCE_YAML} not found: run from a checkout (pip install -e .)")
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    return home


def wait_for(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


class Service:
    """A child process in its own process group, stopped with everything it started."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict,
        url: str,
        health: str | None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.url, self.health = name, argv, env, url, health
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Service:
        """Start the process and wait until its health URL answers."""
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own copy
        try:
            if self.health is not None:
                wait_for(self.url + self.health, timeout, self.process)
            else:  # no health endpoint (the daemon): alive after a few seconds is started
                time.sleep(3)
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode} at start")
        except Exception:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the main process only (what it started lives on, as after a real crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def sandbox_service(port: int, *, today: str | None = None, log_path: Path | None = None) -> Service:
    """The sandbox dashboard as a process."""
    argv = [sys.executable, "-m", "backfill_pipeline.sandbox", "--port", str(port)]
    if today:
        argv += ["--today", today]
    return Service(
        "sandbox",
        argv,
        env=dict(os.environ),
        url=f"http://127.0.0.1:{port}",
        health="/_sandbox/health",
        log_path=log_path,
    )


def dagster_service(port: int, *, home: Path, env: dict[str, str], log_path: Path | None = None) -> Service:
    """`dagster dev` (webserver, daemon, code server) over backfill_pipeline.definitions."""
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(prepare_dagster_home(home))}
    dagster = Path(sys.executable).with_name("dagster")
    argv = [str(dagster), "dev", "-m", "backfill_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)]
    return Service(
        "dagster",
        argv,
        env=full_env,
        url=f"http://127.0.0.1:{port}",
        health="/server_info",
        log_path=log_path,
        cwd=REPO_ROOT,
    )


def webserver_service(port: int, *, home: Path, env: dict[str, str], log_path: Path | None = None) -> Service:
    """`dagster-webserver` alone (no daemon) over backfill_pipeline.definitions."""
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(prepare_dagster_home(home))}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    argv = [str(webserver), "-m", "backfill_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Service(
        "webserver", argv, env=full_env, url=url, health="/server_info", log_path=log_path, cwd=REPO_ROOT
    )


def daemon_service(*, home: Path, env: dict[str, str], log_path: Path | None = None) -> Service:
    """`dagster-daemon run` alone (schedules, sensors, run queue, backfills, run retries)."""
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(prepare_dagster_home(home))}
    daemon = Path(sys.executable).with_name("dagster-daemon")
    argv = [str(daemon), "run", "-m", "backfill_pipeline.definitions"]
    return Service("daemon", argv, env=full_env, url="", health=None, log_path=log_path, cwd=REPO_ROOT)


def wait_for_districts(dagster_url: str, districts: list[str], timeout: float = 150) -> None:
    """Wait until the district_discovery sensor has made `districts` the districts partitions."""
    from .api.graphql import DagsterGraphQL

    graphql = DagsterGraphQL(dagster_url)
    deadline = time.monotonic() + timeout
    while graphql.partition_keys(["district_snapshot"])["district"] != districts:
        if time.monotonic() > deadline:
            raise TimeoutError("district_discovery never synced the districts partitions")
        time.sleep(2)


def start_split_stack(
    base: Path, *, today: str, districts: list[str], env: dict[str, str]
) -> tuple[Service, Service, Service]:
    """The sandbox, `dagster-webserver` and `dagster-daemon` as separate processes over one
    instance (so a test can kill and restart the daemon alone); returned once the districts are
    partitions."""
    from .scope import DistrictConfig

    root = base / "data"
    DistrictConfig(root).set(districts)
    sandbox = sandbox_service(free_port(), today=today, log_path=base / "sandbox.log").start()
    settings_env = {"BACKFILL_DATA_ROOT": str(root), "BACKFILL_DASHBOARD_URL": sandbox.url, **env}
    home = base / "dagster_home"
    webserver = webserver_service(free_port(), home=home, env=settings_env, log_path=base / "webserver.log")
    daemon = daemon_service(home=home, env=settings_env, log_path=base / "daemon.log")
    try:
        webserver.start(timeout=180)
        daemon.start()
        wait_for_districts(webserver.url, districts)
    except BaseException:
        daemon.stop()
        webserver.stop()
        sandbox.stop()
        raise
    return sandbox, webserver, daemon


def start_configured_stack(
    base: Path, *, today: str, districts: list[str], env: dict[str, str]
) -> tuple[Service, Service]:
    """The sandbox and `dagster dev` over `<base>/data` with `districts` configured, returned once
    the district_discovery sensor has turned them into partitions (tests use it)."""
    from .scope import DistrictConfig

    root = base / "data"
    DistrictConfig(root).set(districts)
    sandbox = sandbox_service(free_port(), today=today, log_path=base / "sandbox.log").start()
    dagster = dagster_service(
        free_port(),
        home=base / "dagster_home",
        log_path=base / "dagster.log",
        env={"BACKFILL_DATA_ROOT": str(root), "BACKFILL_DASHBOARD_URL": sandbox.url, **env},
    )
    try:
        dagster.start(timeout=180)
        wait_for_districts(dagster.url, districts)
    except BaseException:
        dagster.stop()
        sandbox.stop()
        raise
    return sandbox, dagster
