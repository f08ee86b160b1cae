"""Start the local stack as real processes: the sandbox dashboard and `backfill-pipeline dev`
(`dagster dev` with the brisk backfill daemon) for the demo, the benchmarks and the tests.

Every process starts in its own session (a Ctrl-C at the terminal reaches only the command that
started it), and is stopped with its whole process group: `backfill-pipeline dev` (like `dagster
dev`) spawns a code server, a webserver, a daemon and run workers, all in its group. A command
that starts processes runs inside `StopSignals()`, so SIGTERM and SIGHUP stop them exactly as
Ctrl-C does (Python's default for those two ends the process on the spot and leaves every child
running).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import ClassVar, NamedTuple

import requests

from .dashboard.budget import dagster_postgres_url

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_YAML = REPO_ROOT / "dagster.yaml"
# Dagster's storage in PostgreSQL, appended to the instance file when DAGSTER_PG_HOST is set.
POSTGRES_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
# The code location as a deployment loads it: a gRPC code server at BACKFILL_CODE_SERVER_HOST:PORT.
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"
# The code location's name, whichever process serves it (runs re-execute under the same name).
LOCATION = "backfill_pipeline.definitions"


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instance_yaml(env: Mapping[str, str] | None = None) -> str:
    """The instance file: the repo's dagster.yaml, with Dagster's storage in PostgreSQL when
    `env` (default: this process's) sets DAGSTER_PG_HOST; SQLite under DAGSTER_HOME otherwise."""
    for path in (INSTANCE_YAML, POSTGRES_YAML):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run from a checkout (pip install -e .)")
    env = os.environ if env is None else env
    text = INSTANCE_YAML.read_text()
    # The same check of the DAGSTER_PG_* variables as the budget's (ValueError naming them).
    if dagster_postgres_url(env) is None:
        return text
    return text + "\n" + POSTGRES_YAML.read_text()


def prepare_dagster_home(home: Path | str, env: Mapping[str, str] | None = None) -> Path:
    """Make `home` a Dagster instance directory holding the instance file (`instance_yaml`)."""
    home = Path(home).resolve()
    text = instance_yaml(env)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(text)
    return home


def wait_for(
    url: str, timeout: float, process: subprocess.Popen | Sequence[subprocess.Popen] | None = None
) -> None:
    """Poll `url` until it answers 200; fail early if `process` (or any of several) died."""
    watched = [] if process is None else [process] if isinstance(process, subprocess.Popen) else process
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for child in watched:
            if child.poll() is not None:
                raise ProcessExited(child, url)
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


class ProcessExited(RuntimeError):
    """A process that was to serve a URL exited before the URL answered."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        super().__init__(f"process exited with {process.returncode} before {url} answered")
        self.process = process


# The signals that stop a command that started processes: Ctrl-C, `kill`, a closing terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived: unwinds like KeyboardInterrupt, so every `finally` that stops a
    child process runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports it: 130 SIGINT, 129 SIGHUP, 143 SIGTERM."""
        return 128 + self.signum


class StopSignals:
    """`with StopSignals():` SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread.

    Only the first one raises; a later one (Ctrl-C pressed again, a closing terminal's SIGHUP
    then SIGTERM) is remembered and the stopping goes on. Inside `held()` the exception waits
    until the section ends, so a child just started is recorded before anything unwinds, and a
    stop is never cut short. The previous handlers are back when the block ends, unless a stop
    signal came: then the process is on its way out, and later ones are ignored.
    """

    active: ClassVar[StopSignals | None] = None

    def __init__(self) -> None:
        self.received: int | None = None
        self._raised = False
        self._held = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        StopSignals.active = self
        return self

    def __exit__(self, *exc: object) -> None:
        StopSignals.active = None
        if self.received is not None:
            # On the way out: a later signal must not end the process before its exit status.
            # Ignored rather than handled, as Python puts back the default of a signal it
            # handles while it shuts down.
            for stop in STOP_SIGNALS:
                signal.signal(stop, signal.SIG_IGN)
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if not self._held and not self._raised:
            self._raised = True
            raise Interrupted(signum)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Delay Interrupted until the section ends (then raise it, if the section did not fail)."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self.received is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.received)


@contextmanager
def held() -> Iterator[None]:
    """`StopSignals.hold()` of the active StopSignals; nothing when none is active."""
    if StopSignals.active is None:
        yield
    else:
        with StopSignals.active.hold():
            yield


class ProcStat(NamedTuple):
    """What /proc/<pid>/stat says of a process that matters here."""

    state: str
    pgrp: int
    cpu_seconds: float  # user + system


def proc_stat(pid: int | str) -> ProcStat | None:
    """/proc/<pid>/stat of a running process (Linux); None once it is gone or unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp ... utime stime: comm may hold spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 13:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcStat(fields[0], int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks)


def pids() -> list[str]:
    """The ids of every process /proc lists."""
    return [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def group_alive(pgid: int) -> bool:
    """True while a process of the group is running (zombies waiting for their parent excluded)."""
    if not Path("/proc").is_dir():  # not Linux: any member, zombie or not
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for pid in pids():
        stat = proc_stat(pid)
        if stat is not None and stat.pgrp == pgid and stat.state not in ("Z", "X"):
            return True
    return False


def stop_all(services: Iterable[Service]) -> None:
    """Stop every service, the last started first; a stop signal waits until all are stopped."""
    with held():
        for service in reversed(list(services)):
            service.stop()


class Service:
    """A child process in its own session and process group, stopped with everything it started."""

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
        ready: Callable[[subprocess.Popen, float], None] | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.url, self.health = name, argv, env, url, health
        self.log_path = log_path
        self.cwd = cwd
        self.ready = ready
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Service:
        """Start the process and wait until its health URL answers; stopped again if that fails
        or a stop signal arrives meanwhile."""
        try:
            with held():  # a signal cannot land between the fork and self.process
                process = self.process = self._spawn()
            if self.ready is not None:
                self.ready(process, timeout)
            elif self.health is not None:
                wait_for(self.url + self.health, timeout, process)
            else:  # no health endpoint (the daemon): alive after a few seconds is started
                time.sleep(3)
                if process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {process.returncode} at start")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> subprocess.Popen:
        log = open(self.log_path, "ab") if self.log_path else None
        try:
            return subprocess.Popen(
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

    def kill(self) -> None:
        """SIGKILL the main process only (what it started lives on, as after a real crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group and wait for all of it (not only the process started),
        then SIGKILL what is left; a stop signal waits until it is done."""
        if self.process is None:
            return
        pgid = self.process.pid  # the session's leader: its pid is the group's id
        if self.process.poll() is not None and not group_alive(pgid):
            return  # stopped already, or ended with everything it started
        with held():
            deadline = time.monotonic() + timeout
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            while group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if group_alive(pgid) or self.process.poll() is None:
                _signal_group(pgid, signal.SIGKILL)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
                deadline = time.monotonic() + 5  # SIGKILL is delivered, not yet done
                while group_alive(pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # nothing of the group is left


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


def dagster_service(
    port: int, *, home: Path, env: dict[str, str], log_path: Path | None = None, brisk: bool = True
) -> Service:
    """`backfill-pipeline dev` (code server, webserver, daemons with the brisk backfill daemon) over
    backfill_pipeline.definitions; with `brisk=False` Dagster's own `dagster dev` (30-s backfill tick)."""
    full_env = _dagster_env(home, env)
    if brisk:
        argv = [
            sys.executable,
            "-m",
            "backfill_pipeline.cli",
            "dev",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    else:
        dagster = str(Path(sys.executable).with_name("dagster"))
        argv = [dagster, "dev", "-m", "backfill_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)]
    return Service(
        "dagster",
        argv,
        env=full_env,
        url=f"http://127.0.0.1:{port}",
        health="/server_info",
        log_path=log_path,
        cwd=REPO_ROOT,
    )


def _dagster_env(home: Path, env: Mapping[str, str]) -> dict[str, str]:
    full_env = {**os.environ, **env}
    return {**full_env, "DAGSTER_HOME": str(prepare_dagster_home(home, full_env))}


def _location(workspace: Path | None) -> list[str]:
    return ["-w", str(workspace)] if workspace is not None else ["-m", LOCATION]


def webserver_service(
    port: int, *, home: Path, env: dict[str, str], log_path: Path | None = None, workspace: Path | None = None
) -> Service:
    """`dagster-webserver` alone (no daemon) over backfill_pipeline.definitions, or the code
    location `workspace` names."""
    full_env = _dagster_env(home, env)
    webserver = Path(sys.executable).with_name("dagster-webserver")
    argv = [str(webserver), *_location(workspace), "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    return Service(
        "webserver", argv, env=full_env, url=url, health="/server_info", log_path=log_path, cwd=REPO_ROOT
    )


def daemon_service(
    *, home: Path, env: dict[str, str], log_path: Path | None = None, workspace: Path | None = None
) -> Service:
    """`backfill-pipeline daemon` alone (schedules, sensors, run queue, the brisk backfill daemon,
    run retries): what a deployment runs instead of `dagster-daemon run`."""
    full_env = _dagster_env(home, env)
    argv = [sys.executable, "-m", "backfill_pipeline.cli", "daemon", *_location(workspace)]
    return Service("daemon", argv, env=full_env, url="", health=None, log_path=log_path, cwd=REPO_ROOT)


def wait_for_code_server(
    port: int, process: subprocess.Popen, timeout: float, host: str = "127.0.0.1"
) -> None:
    """Until the code server on `port` answers a ping (its definitions loaded); RuntimeError if
    it exits first, TimeoutError if it does not answer in time."""
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host=host)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the code server exited with {process.returncode} while loading {LOCATION}")
        try:
            client.ping("ready?")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the code server did not load {LOCATION} within {timeout:.0f}s") from None
            time.sleep(0.5)


def code_server_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The code location's gRPC server (`backfill_pipeline.codeserver`: `dagster api grpc` whose
    runs fork from a preloaded process), as `dev`, the tests and the deployment files start it."""
    return [sys.executable, "-m", "backfill_pipeline.codeserver", "-m", LOCATION, "-h", host,
            "-p", str(port), "--location-name", LOCATION]  # fmt: skip


def code_server_service(
    port: int, *, home: Path, env: dict[str, str], log_path: Path | None = None
) -> Service:
    """The code location's gRPC server (`backfill_pipeline.codeserver`: `dagster api grpc` whose
    runs fork from a preloaded process) on `port`; started once it answers a ping."""
    return Service(
        "code server",
        code_server_argv(port),
        env=_dagster_env(home, env),
        url=f"grpc://127.0.0.1:{port}",
        health=None,
        log_path=log_path,
        cwd=REPO_ROOT,
        ready=lambda process, timeout: wait_for_code_server(port, process, timeout),
    )


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
    """The sandbox, `dagster-webserver` and `backfill-pipeline daemon` as separate processes over one
    instance (so a test can kill and restart the daemon alone); returned once the districts are
    partitions."""
    from .scope import DistrictConfig

    root = base / "data"
    DistrictConfig(root).set(districts)
    sandbox = sandbox_service(free_port(), today=today, log_path=base / "sandbox.log")
    settings_env = {"BACKFILL_DATA_ROOT": str(root), "BACKFILL_DASHBOARD_URL": sandbox.url, **env}
    home = base / "dagster_home"
    webserver = webserver_service(free_port(), home=home, env=settings_env, log_path=base / "webserver.log")
    daemon = daemon_service(home=home, env=settings_env, log_path=base / "daemon.log")
    try:
        sandbox.start()
        webserver.start(timeout=180)
        daemon.start()
        wait_for_districts(webserver.url, districts)
    except BaseException:
        stop_all([sandbox, webserver, daemon])
        raise
    return sandbox, webserver, daemon


class ProductionStack(NamedTuple):
    """The processes of `start_production_stack`, started in this order."""

    sandbox: Service
    code_server: Service
    webserver: Service
    daemon: Service

    def stop(self) -> None:
        """Stop them all, the last started first."""
        stop_all(self)


def start_production_stack(
    base: Path, *, today: str, districts: list[str], env: dict[str, str]
) -> ProductionStack:
    """The sandbox and Dagster as a deployment runs it: a gRPC code server, `dagster-webserver` and
    `backfill-pipeline daemon` as separate processes, the two last loading the repo's
    workspace.yaml; Dagster's storage in PostgreSQL when `env` sets DAGSTER_PG_HOST. Returned once
    the districts are partitions."""
    from .scope import DistrictConfig

    root = base / "data"
    DistrictConfig(root).set(districts)
    sandbox = sandbox_service(free_port(), today=today, log_path=base / "sandbox.log")
    code_port = free_port()
    settings_env = {
        "BACKFILL_DATA_ROOT": str(root),
        "BACKFILL_DASHBOARD_URL": sandbox.url,
        "BACKFILL_CODE_SERVER_HOST": "127.0.0.1",
        "BACKFILL_CODE_SERVER_PORT": str(code_port),
        **env,
    }
    home = base / "dagster_home"
    stack = ProductionStack(
        sandbox,
        code_server_service(code_port, home=home, env=settings_env, log_path=base / "code-server.log"),
        webserver_service(
            free_port(),
            home=home,
            env=settings_env,
            log_path=base / "webserver.log",
            workspace=WORKSPACE_YAML,
        ),
        daemon_service(home=home, env=settings_env, log_path=base / "daemon.log", workspace=WORKSPACE_YAML),
    )
    try:
        for service in stack:
            service.start(timeout=180)
        wait_for_districts(stack.webserver.url, districts)
    except BaseException:
        stack.stop()
        raise
    return stack


def start_configured_stack(
    base: Path, *, today: str, districts: list[str], env: dict[str, str], brisk: bool = True
) -> tuple[Service, Service]:
    """The sandbox and `dagster dev` over `<base>/data` with `districts` configured, returned once
    the district_discovery sensor has turned them into partitions (tests use it)."""
    from .scope import DistrictConfig

    root = base / "data"
    DistrictConfig(root).set(districts)
    sandbox = sandbox_service(free_port(), today=today, log_path=base / "sandbox.log")
    dagster = dagster_service(
        free_port(),
        home=base / "dagster_home",
        log_path=base / "dagster.log",
        env={"BACKFILL_DATA_ROOT": str(root), "BACKFILL_DASHBOARD_URL": sandbox.url, **env},
        brisk=brisk,
    )
    try:
        sandbox.start()
        dagster.start(timeout=180)
        wait_for_districts(dagster.url, districts)
    except BaseException:
        stop_all([sandbox, dagster])
        raise
    return sandbox, dagster
