"""Whatever starts processes stops all of them, their process groups included, on SIGTERM and
SIGHUP exactly as on Ctrl-C, and exits 128 + the signal's number: the devstack mechanism with small
processes (fast), and `backfill-pipeline demo` itself with Dagster (e2e)."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from backfill_pipeline.devstack import Service, free_port

# A child that starts a grandchild (in the child's process group, as `dagster dev` starts its
# webserver, daemon and code server), then answers HTTP on the port it is given (argv[1]). The
# grandchild sleeps; it ignores SIGTERM when argv[2] is "stubborn".
CHILD = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if sys.argv[2] == "stubborn" else ""
    subprocess.Popen([sys.executable, "-c", "import signal, time; " + ignore + "time.sleep(600)"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
    server.serve_forever()
    """
)


def child_service(name: str, *, stubborn: bool = False, health_port: int | None = None) -> Service:
    """A Service of CHILD; its health URL on another port (`health_port`) never answers."""
    port = free_port()
    argv = [sys.executable, "-c", CHILD, str(port), "stubborn" if stubborn else "-"]
    url = f"http://127.0.0.1:{health_port or port}"
    return Service(name, argv, env={}, url=url, health="/", cwd=Path(__file__).parent)


# A command like the demo: a CHILD service, then waits for ever; or, with "starting", a second
# one whose health URL never answers, so the signal lands while it starts.
DRIVER = textwrap.dedent(
    """
    import sys, time
    from backfill_pipeline.devstack import Interrupted, StopSignals, free_port, stop_all
    from test_process_cleanup import child_service
    services = []
    with StopSignals():
        try:
            try:
                services.append(child_service("one"))
                services[-1].start()
                if sys.argv[1] == "starting":
                    services.append(child_service("slow", health_port=free_port()))
                    print("starting", flush=True)
                    services[-1].start(timeout=120)
                print("up", flush=True)
                time.sleep(600)
            finally:
                stop_all(services)
        except Interrupted as stop:
            sys.exit(stop.exit_code)
    """
)


def processes() -> dict[int, tuple[int, str]]:
    """Every process of the machine: pid -> (parent pid, state)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            out[int(entry.name)] = (int(fields[1]), fields[0])
    return out


def tree(pid: int) -> set[int]:
    """`pid` and every process it started, and they started, and so on."""
    table = processes()
    found, todo = {pid}, [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, (ppid, _) in table.items() if ppid == parent} - found
        found |= children
        todo += children
    return found


def running(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie waiting for its parent to reap it is not)."""
    table = processes()
    return {p for p in pids if p in table and table[p][1] not in ("Z", "X")}


def marked(marker: str) -> set[int]:
    """The running processes whose environment holds `marker` (every descendant inherits it)."""
    found = set()
    for pid in running(set(processes())):
        try:
            if marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


class Output:
    """A process's merged output, read line by line in a thread (a read never blocks a test)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
        threading.Thread(target=self._pump, args=(proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the process closed its output: it ended

    def _take(self, timeout: float) -> str | None:
        line = self.lines.get(timeout=timeout)
        if line is None:
            self.ended = True
        else:
            self.seen.append(line)
        return line

    def wait_for(self, wanted: str, timeout: float) -> None:
        """Until a line contains `wanted`; fails at once when the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.ended:
            try:
                line = self._take(min(1.0, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if line is not None and wanted in line:
                return
        raise AssertionError(f"{wanted!r} never came: {self.text()[-3000:]}")

    def text(self, settle: float = 0.0) -> str:
        """Everything read so far (after `settle` seconds for the last lines)."""
        time.sleep(settle)
        while not self.lines.empty():
            self._take(0)
        return "".join(self.seen)


def kill_tree(pids: set[int]) -> None:
    """After a failed test: nothing of it left behind."""
    for pid in running(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_closed(port: int) -> None:
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


@pytest.mark.parametrize(("sig", "when"), [(signal.SIGINT, "up"), (signal.SIGTERM, "starting")])
def test_a_stop_signal_stops_every_process_and_exits_128_plus_its_number(sig, when):
    # SIGTERM and SIGHUP once the demo is up are tested on the demo itself (below).
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, when],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).parent,  # DRIVER imports child_service from here
    )
    pids: set[int] = set()
    try:
        Output(proc).wait_for(when, 30)
        time.sleep(0.5)  # the slow service has started its grandchild and polls its health URL
        pids = tree(proc.pid)
        assert len(pids) == (3 if when == "up" else 5)  # the command, children, grandchildren
        proc.send_signal(sig)
        time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)  # a second signal (a closing terminal) changes nothing
        assert proc.wait(30) == 128 + sig
        deadline = time.monotonic() + 5
        while running(pids) and time.monotonic() < deadline:  # reparented zombies are reaped
            time.sleep(0.1)
        assert not running(pids)
    finally:
        proc.kill()
        kill_tree(pids)


def test_stop_waits_for_the_whole_group_and_kills_what_ignores_sigterm():
    # The process started exits on SIGTERM at once; the grandchild it started ignores SIGTERM.
    # Waiting for the first alone (as before) left the second running.
    service = child_service("stubborn", stubborn=True).start()
    assert service.process is not None
    pids = tree(service.process.pid)
    try:
        assert len(pids) == 2
        started = time.monotonic()
        service.stop(timeout=1)
        assert time.monotonic() - started < 8
        assert not running(pids)
        service.stop()  # again: nothing to do
    finally:
        kill_tree(pids)


@pytest.mark.e2e
@pytest.mark.xdist_group("dagster")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_demo_stops_everything_it_started_on_a_stop_signal(tmp_path, sig):
    # The lightest demo (one date, one district); the signal lands once the backfill is launched,
    # when the demo is at its fullest: sandbox, `dagster dev` (webserver, daemon, code server) and
    # the API, each in its own session.
    marker = f"CLEANUP_TEST_MARKER={uuid.uuid4().hex}"
    name, value = marker.split("=")
    dagster_port, api_port = free_port(), free_port()
    argv = [sys.executable, "-m", "backfill_pipeline.cli", "demo", "--dir", str(tmp_path)]
    argv += ["--dagster-port", str(dagster_port), "--api-port", str(api_port), "--days", "1"]
    argv += ["--districts", "61", "--json"]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, name: value},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # as from its own terminal: the signal reaches the demo alone
    )
    output = Output(proc)
    pids: set[int] = set()
    try:
        output.wait_for("202 Accepted", 300)
        pids = tree(proc.pid) | marked(marker)
        ports = {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", output.text())}
        assert {dagster_port, api_port} < ports and len(ports) == 3  # and the sandbox's
        assert len(pids) >= 6, pids  # demo, sandbox, API, dagster dev, webserver, daemon, ...
        started = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(90)
        stopped_in = time.monotonic() - started
        text = output.text(settle=0.5)
        assert code == 128 + sig, text[-3000:]
        assert f"stopped by {signal.Signals(sig).name}" in text
        print(f"{signal.Signals(sig).name}: the demo stopped everything in {stopped_in:.1f} s")
        deadline = time.monotonic() + 5
        while (running(pids) or marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(pids) and not marked(marker)
        for port in ports:
            assert_closed(port)
    finally:
        proc.kill()
        kill_tree(pids | marked(marker))
