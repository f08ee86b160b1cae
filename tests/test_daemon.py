"""The brisk backfill daemon's wake rule, the daemons it runs, and the refusals of `daemon`/`dev`."""

import datetime as dt
import subprocess
import sys
import time
from concurrent.futures import Future

import pytest
from dagster import DagsterInstance
from dagster._daemon.daemon import BackfillDaemon

from backfill_pipeline.daemon import (
    BriskBackfillDaemon,
    EvaluationsEnded,
    Iteration,
    brisk_daemons,
    should_wake,
)
from backfill_pipeline.devstack import prepare_dagster_home

A_REQUESTED = frozenset({("a", "REQUESTED")})


@pytest.mark.parametrize(
    ("seen", "now", "runs_changed", "wake"),
    [
        (frozenset(), frozenset(), False, False),  # idle
        (frozenset(), frozenset(), True, False),  # a run ended, but no backfill waits on it
        (frozenset(), A_REQUESTED, False, True),  # a new backfill
        (A_REQUESTED, A_REQUESTED, False, False),  # nothing new
        (A_REQUESTED, A_REQUESTED, True, True),  # one of its runs ended
        (A_REQUESTED, frozenset({("a", "CANCELING")}), False, True),  # cancelled
        (A_REQUESTED, frozenset(), False, False),  # it ended: nothing left to do
    ],
)
def test_wake_rule(seen, now, runs_changed, wake):
    assert should_wake(seen, now, runs_changed) is wake


def test_every_daemon_of_the_instance_runs_with_ours_for_backfills(tmp_path):
    home = prepare_dagster_home(tmp_path / "home")  # the project's dagster.yaml
    with DagsterInstance.from_config(str(home)) as instance:
        expected = set(instance.get_required_daemon_types())
        daemons = brisk_daemons(instance)
        try:
            assert {d.daemon_type() for d in daemons} == expected
            backfill = [d for d in daemons if isinstance(d, BackfillDaemon)]
            assert len(backfill) == 1 and isinstance(backfill[0], BriskBackfillDaemon)
        finally:
            for d in daemons:
                d.__exit__(None, None, None)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["dev", "daemon"])
@pytest.mark.parametrize("home", ["", "/nonexistent/dagster-home"])
def test_refuses_to_start_without_a_shared_instance(command, home, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if home:
        env["DAGSTER_HOME"] = home
    result = subprocess.run(
        [sys.executable, "-m", "backfill_pipeline.cli", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "DAGSTER_HOME" in result.stderr


@pytest.mark.slow
def test_the_code_server_starts_runs_from_a_preloaded_forkserver():
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from logging import getLogger

    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from backfill_pipeline.codeserver import PRELOAD, ForkingApiServer

    server = ForkingApiServer(
        server_termination_event=threading.Event(),
        logger=getLogger("test"),
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable, module_name="backfill_pipeline.definitions"
        ),
        lazy_load_user_code=True,
        server_threadpool_executor=ThreadPoolExecutor(max_workers=1),
    )
    assert server._mp_ctx.get_start_method() == "forkserver"
    # The forkserver ignores a preload that fails to import: it would quietly start runs cold.
    for module in PRELOAD:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr


def test_evaluations_ended_waits_for_the_last_of_them():
    first, second = Future(), Future()
    ended = EvaluationsEnded([first, second])
    assert ended.at is None
    first.set_result(None)
    assert ended.at is None
    before = time.monotonic()
    second.set_exception(RuntimeError("an evaluation that failed has ended too"))
    assert ended.at is not None and before <= ended.at <= time.monotonic()


def test_evaluations_ended_at_once_when_none_runs():
    done = Future()
    done.set_result(None)
    assert EvaluationsEnded([]).at is not None
    assert EvaluationsEnded([done]).at is not None


@pytest.mark.parametrize(
    ("ended", "now", "rested"),
    [
        (None, 100.0, False),  # still evaluating
        (12.0, 12.5, False),  # took 2 s, rested 0.5 s
        (12.0, 17.9, False),  # rested just under 3 x 2 s
        (12.0, 18.0, True),  # rested 3 x 2 s
        (10.0, 10.0, True),  # took nothing, rests nothing
    ],
)
def test_a_run_end_wakes_the_daemon_once_its_evaluations_rested(ended, now, rested):
    iteration = Iteration(10.0, dt.datetime.now(dt.UTC), frozenset())
    assert iteration.rested(ended, now) is rested
