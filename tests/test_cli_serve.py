"""`backfill-pipeline api` as a real process: it announces itself, serves the REST API behind its
token and Host allow-list, stops cleanly on Ctrl-C, SIGTERM and SIGHUP and exits 128 + the signal;
bad settings, a port in use and a non-loopback address without BACKFILL_API_TOKEN end it at once.
And `backfill-pipeline api-token`, which prints the token its clients send."""

from __future__ import annotations

import json
import signal
import stat

import pytest
import requests
from api_process import start, stop
from click.testing import CliRunner

from backfill_pipeline.cli import main
from backfill_pipeline.devstack import free_port, wait_for

TOKEN = "a-token-from-the-environment-0123"
REQUEST = {"startDate": "2025-04-14", "dryRun": True}


def test_api_announces_itself_as_json_and_serves(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    proc = start("--port", "0", "--json", "--dagster-url", closed, "--root", str(tmp_path))
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:") and info["url"].endswith("/api")
        assert info["openapi"] == info["url"] + "/openapi.json"
        assert info["dagsterUrl"] == closed and info["dataRoot"] == str(tmp_path)
        assert info["tokenFrom"] == str(tmp_path / "state" / "api-token")
        assert info["readsNeedToken"] is False
        assert set(info["allowedHosts"]) == {"127.0.0.1", "localhost", "::1"}
        assert requests.get(info["openapi"], timeout=10).json()["openapi"].startswith("3.")
        # Dagster is down: the API says so (503), it does not fall over; reads on loopback are open.
        r = requests.get(info["url"] + "/backfills", timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "dagster-unreachable"
    finally:
        assert stop(proc) == 128 + signal.SIGINT
    assert proc.stdout.read() == ""  # the access log went to stderr, and the token too


@pytest.mark.slow
def test_the_first_start_generates_the_token_prints_it_once_and_requires_it(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    argv = ("--port", "0", "--json", "--dagster-url", closed, "--root", str(tmp_path))
    proc = start(*argv)
    try:
        url = json.loads(proc.stdout.readline())["url"]
        generated = proc.stderr.readline()
        assert generated.startswith(f"generated the API's token into {tmp_path / 'state' / 'api-token'}")
        token = generated.rstrip().rsplit(" ", 1)[1]
        assert "backfill-pipeline api-token" in proc.stderr.readline()
        path = tmp_path / "state" / "api-token"
        assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
        r = requests.post(url + "/backfills", json=REQUEST, timeout=30)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="backfill_pipeline"'
        r = requests.post(
            url + "/backfills",
            json=REQUEST,
            headers={"Authorization": "Bearer wrong-token-0123456789"},
            timeout=30,
        )
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        # With the token the request goes through to Dagster (which is down here).
        r = requests.post(
            url + "/backfills", json=REQUEST, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 503
        # The same token, from the command a client uses.
        printed = CliRunner().invoke(main, ["api-token", "--root", str(tmp_path)])
        assert printed.exit_code == 0 and printed.stdout == token + "\n"
    finally:
        assert stop(proc, signal.SIGTERM) == 128 + signal.SIGTERM
    err = proc.stderr.read()
    assert token not in err  # printed once only
    # The next start reuses it and prints nothing of it.
    proc = start(*argv)
    try:
        json.loads(proc.stdout.readline())
    finally:
        assert stop(proc) == 128 + signal.SIGINT
    assert token not in proc.stderr.read() and (tmp_path / "state" / "api-token").read_text().strip() == token


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_shuts_down_cleanly_and_exits_non_zero(tmp_path, sig):
    proc = start("--port", "0", "--json", "--root", str(tmp_path), env={"BACKFILL_API_TOKEN": TOKEN})
    try:
        info = json.loads(proc.stdout.readline())
        assert requests.get(info["openapi"], timeout=10).status_code == 200
    finally:
        code = stop(proc, sig)
    err = proc.stderr.read()
    assert code == 128 + sig, err
    # uvicorn's own shutdown ran (lifespan ended, sockets closed), not the signal's default action.
    assert "Shutting down" in err and "Finished server process" in err
    with pytest.raises(requests.ConnectionError):
        requests.get(info["openapi"], timeout=5)


def test_api_without_json_tells_where_on_stderr(tmp_path):
    # Port 0: the command binds a free port itself and names it (no race with other processes).
    proc = start(
        "--port", "0", "--root", str(tmp_path), "--today", "2026-11-29", env={"BACKFILL_API_TOKEN": TOKEN}
    )
    try:
        line = proc.stderr.readline()
        assert line.startswith("backfill API on http://127.0.0.1:"), line
        assert "/api (Dagster at http://127.0.0.1:3000" in line
        url = line.split()[3]
        wait_for(f"{url}/openapi.json", timeout=30, process=proc)
    finally:
        assert stop(proc) == 128 + signal.SIGINT
    assert not (tmp_path / "state" / "api-token").exists()  # the variable was set


def test_off_loopback_the_variable_is_required(tmp_path):
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.org"):
        result = CliRunner().invoke(main, ["api", "--host", host, "--port", "0", "--root", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert f"--host {host} is not loopback: set BACKFILL_API_TOKEN" in result.stderr
    assert not (tmp_path / "state").exists()


def test_off_loopback_reads_need_the_token_and_only_allowed_hosts_are_answered(tmp_path):
    env = {"BACKFILL_API_TOKEN": TOKEN, "BACKFILL_ALLOWED_HOSTS": "api.example.org"}
    proc = start("--host", "0.0.0.0", "--port", "0", "--json", "--root", str(tmp_path), env=env)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["readsNeedToken"] is True and "api.example.org" in info["allowedHosts"]
        assert info["tokenFrom"] == "BACKFILL_API_TOKEN"
        port = info["url"].split(":")[2].split("/")[0]
        base = f"http://127.0.0.1:{port}/api"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = requests.get(f"{base}/backfills", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert requests.get(f"{base}/backfills", headers=auth, timeout=30).status_code == 503  # Dagster down
        r = requests.get(f"{base}/coverage", headers={**auth, "Host": f"api.example.org:{port}"}, timeout=30)
        assert r.status_code == 200
        r = requests.get(f"{base}/coverage", headers={**auth, "Host": "attacker.example"}, timeout=30)
        assert r.status_code == 421
        assert requests.get(f"{base}/openapi.json", timeout=30).status_code == 200
    finally:
        assert stop(proc, signal.SIGHUP) == 128 + signal.SIGHUP
    assert TOKEN not in proc.stderr.read()


def test_a_token_file_others_may_read_stops_the_start(tmp_path):
    path = tmp_path / "state" / "api-token"
    path.parent.mkdir(parents=True)
    path.write_text("a-token-anyone-could-read-0123456789")
    path.chmod(0o644)
    result = CliRunner().invoke(main, ["api", "--port", "0", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert f"the API token file {path} may be read by others (mode 0644)" in result.stderr
    assert "a-token-anyone-could-read" not in result.output


def test_a_port_in_use_exits_1(sandbox):  # the session's sandbox holds its port
    result = CliRunner().invoke(main, ["api", "--port", str(sandbox.port)])
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{sandbox.port}" in result.stderr


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--dagster-url", "localhost:3000"], {}, "--dagster-url='localhost:3000'"),
        ([], {"BACKFILL_DAGSTER_URL": "localhost:3000"}, "BACKFILL_DAGSTER_URL='localhost:3000'"),
        ([], {"BACKFILL_RATE": "nan"}, "BACKFILL_RATE='nan'"),
        ([], {"BACKFILL_API_TOKEN": "short"}, "BACKFILL_API_TOKEN='**********'"),
        ([], {"BACKFILL_ALLOWED_HOSTS": "a.example, evil/x"}, "BACKFILL_ALLOWED_HOSTS"),
        (["--port", "65536"], {}, "'--port'"),
        (["--today", "2026-11-31"], {}, "'--today'"),
        (["--log-level", "loud"], {}, "'--log-level'"),
    ],
)
def test_bad_settings_and_options_exit_2_naming_them(argv, env, named):
    result = CliRunner().invoke(main, ["api", "--port", "0", *argv], env=env)
    assert result.exit_code == 2 and named in result.stderr


# -- api-token ----------------------------------------------------------------------------------------


def test_api_token_prints_the_variable_or_the_file(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["api-token", "--root", str(tmp_path)], env={"BACKFILL_API_TOKEN": TOKEN})
    assert result.exit_code == 0 and result.stdout == TOKEN + "\n"
    as_json = runner.invoke(
        main, ["api-token", "--root", str(tmp_path), "--json"], env={"BACKFILL_API_TOKEN": TOKEN}
    )
    assert json.loads(as_json.stdout) == {
        "token": TOKEN,
        "source": "BACKFILL_API_TOKEN",
        "file": str(tmp_path / "state" / "api-token"),
    }


def test_api_token_without_one_says_where_it_would_be_and_exits_1(tmp_path):
    result = CliRunner().invoke(main, ["api-token", "--root", str(tmp_path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        f"no API token yet: `backfill-pipeline api` generates one into {tmp_path / 'state' / 'api-token'}"
        in (result.stderr)
    )
    as_json = CliRunner().invoke(main, ["api-token", "--root", str(tmp_path), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["token"] is None
    assert not (tmp_path / "state").exists()  # reading never generates one


def test_api_token_refuses_a_file_others_may_read(tmp_path):
    path = tmp_path / "state" / "api-token"
    path.parent.mkdir(parents=True)
    path.write_text("a-token-anyone-could-read-0123456789")
    path.chmod(0o640)
    result = CliRunner().invoke(main, ["api-token", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "may be read by others" in result.stderr and result.stdout == ""
