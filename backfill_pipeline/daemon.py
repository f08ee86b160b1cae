"""Dagster's daemons, with a backfill daemon that notices new work within a second (issue 11).

Dagster's backfill daemon evaluates backfills every 30 s, a constant no setting changes
(`DEFAULT_DAEMON_INTERVAL_SECONDS`; dagster-io/dagster#11649): a backfill of one date waits up to
that long before its first run exists, and each cancel or completion as long again. This daemon
runs Dagster's own iteration (`execute_backfill_iteration`, the same code, the same threads and the
same one-evaluation-per-backfill guard) but wakes when there is something to do: a backfill
requested, cancelling or failing that the last iteration did not see, or a run that changed state
while backfills are in progress; and at least every 30 s, as Dagster does. Between iterations it
looks once a second with two indexed queries. Every other daemon is Dagster's, built from the
instance as `dagster-daemon run` builds them. As with Dagster's, one backfill daemon per instance:
two would evaluate the same backfill twice and submit its runs twice.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

from dagster import DagsterInstance, RunsFilter
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus
from dagster._core.workspace.context import IWorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.controller import (
    DEFAULT_DAEMON_INTERVAL_SECONDS,
    DagsterDaemonController,
    create_daemons_from_instance,
    daemon_controller_from_instance,
)
from dagster._daemon.daemon import BackfillDaemon, DaemonIterator, DagsterDaemon, SpanMarker
from dagster._daemon.utils import DaemonErrorCapture

# How often the daemon looks for new work between iterations.
POLL_SECONDS = 1.0
# The longest it goes without an iteration: Dagster's own interval.
IDLE_SECONDS = float(DEFAULT_DAEMON_INTERVAL_SECONDS)
# An iteration that takes long (a huge backfill evaluated in the calling thread) is followed by a
# rest this many times its length, so evaluation never takes more than a third of a core.
REST_PER_WORK = 2.0

IN_FLIGHT = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]


def in_flight_backfills(instance: DagsterInstance) -> frozenset[tuple[str, str]]:
    """(id, status) of every backfill the daemon still has to act on."""
    backfills = instance.get_backfills(filters=BulkActionsFilter(statuses=IN_FLIGHT))
    return frozenset((b.backfill_id, b.status.value) for b in backfills)


def runs_changed_since(instance: DagsterInstance, since: dt.datetime) -> bool:
    """Whether any run changed state (queued, started, finished...) after `since`."""
    return bool(instance.get_run_records(filters=RunsFilter(updated_after=since), limit=1))


def should_wake(
    seen: frozenset[tuple[str, str]], now_in_flight: frozenset[tuple[str, str]], runs_changed: bool
) -> bool:
    """The wake rule: a backfill appeared or changed status, or a run moved while backfills are
    in flight (a finished run may complete a backfill or free the next level)."""
    if now_in_flight - seen:
        return True
    return bool(now_in_flight) and runs_changed


class BriskBackfillDaemon(BackfillDaemon):
    """Dagster's backfill daemon, evaluating a backfill within about a second of it needing it."""

    def core_loop(
        self, workspace_process_context: IWorkspaceProcessContext, shutdown_event: threading.Event
    ) -> DaemonIterator:
        instance = workspace_process_context.instance
        futures: dict[str, Future] = {}
        while not shutdown_event.is_set():
            started = time.monotonic()
            started_at = dt.datetime.now(dt.UTC)
            seen = in_flight_backfills(instance)
            yield SpanMarker.START_SPAN
            try:
                yield from execute_backfill_iteration(
                    workspace_process_context,
                    self._logger,
                    threadpool_executor=self._threadpool_executor,
                    submit_threadpool_executor=self._submit_threadpool_executor,
                    backfill_futures=futures,
                )
            except Exception:
                yield DaemonErrorCapture.process_exception(
                    exc_info=sys.exc_info(), logger=self._logger, log_message="BackfillDaemon caught an error"
                )
            yield SpanMarker.END_SPAN
            worked = time.monotonic() - started
            shutdown_event.wait(max(POLL_SECONDS, REST_PER_WORK * worked))
            yield from self._wait_for_work(instance, shutdown_event, seen, started_at, started)

    def _wait_for_work(
        self,
        instance: DagsterInstance,
        shutdown_event: threading.Event,
        seen: frozenset[tuple[str, str]],
        since: dt.datetime,
        started: float,
    ) -> Iterator[None]:
        while not shutdown_event.is_set() and time.monotonic() - started < IDLE_SECONDS:
            try:
                if should_wake(seen, in_flight_backfills(instance), runs_changed_since(instance, since)):
                    return
            except Exception:
                # The storage hiccuped: fall back to an iteration, which reports its own errors.
                self._logger.warning("Looking for backfill work failed", exc_info=True)
                return
            yield None  # a heartbeat between looks, as Dagster's loops do
            shutdown_event.wait(POLL_SECONDS)


def brisk_daemons(instance: DagsterInstance) -> Sequence[DagsterDaemon]:
    """The daemons `dagster-daemon run` would start, the backfill daemon replaced by ours."""
    daemons: list[DagsterDaemon] = []
    for daemon in create_daemons_from_instance(instance):
        if isinstance(daemon, BackfillDaemon):
            daemon.__exit__(None, None, None)  # its thread pools, which ours replaces
            daemon = BriskBackfillDaemon(settings=instance.get_backfill_settings())
        daemons.append(daemon)
    return daemons


@contextmanager
def brisk_daemon_controller(
    instance: DagsterInstance, target: WorkspaceLoadTarget, *, log_level: str = "info"
) -> Iterator[DagsterDaemonController]:
    """Dagster's daemon controller over `target`, running `brisk_daemons`."""
    with daemon_controller_from_instance(
        instance,
        workspace_load_target=target,
        gen_daemons=brisk_daemons,
        log_level=log_level,
        code_server_log_level="warning",
    ) as controller:
        yield controller
