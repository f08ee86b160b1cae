"""Dagster's daemons, with a backfill daemon that notices new work within a second (issue 11).

Dagster's backfill daemon evaluates backfills every 30 s, a constant no setting changes
(`DEFAULT_DAEMON_INTERVAL_SECONDS`; dagster-io/dagster#11649): a backfill of one date waits up to
that long before its first run exists, and each cancel or completion as long again. This daemon
runs Dagster's own iteration (`execute_backfill_iteration`, the same code, the same threads and the
same one-evaluation-per-backfill guard) but wakes when there is something to do: a backfill
requested, cancelling or failing that the last iteration did not see, or a run that ended while
backfills are in progress; and at least every 30 s, as Dagster does. Between iterations it
looks once a second with two indexed queries. Every other daemon is Dagster's, built from the
instance as `dagster-daemon run` builds them. As with Dagster's, one backfill daemon per instance:
two would evaluate the same backfill twice and submit its runs twice.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
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
# After evaluations that took t seconds, a run's end wakes the daemon only once it has rested
# REST_PER_WORK x t: evaluating backfills then takes at most a quarter of a core (new and
# cancelled backfills are acted on at once).
REST_PER_WORK = 3.0

IN_FLIGHT = [BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING]
ENDED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def in_flight_backfills(instance: DagsterInstance) -> frozenset[tuple[str, str]]:
    """(id, status) of every backfill the daemon still has to act on."""
    backfills = instance.get_backfills(filters=BulkActionsFilter(statuses=IN_FLIGHT))
    return frozenset((b.backfill_id, b.status.value) for b in backfills)


def runs_ended_since(instance: DagsterInstance, since: dt.datetime) -> bool:
    """Whether any run ended (succeeded, failed, was canceled) after `since`: what can complete a
    backfill or let its next level start. A run queued or started needs no evaluation."""
    ended = RunsFilter(statuses=ENDED, updated_after=since)
    return bool(instance.get_run_records(filters=ended, limit=1))


def should_wake(
    seen: frozenset[tuple[str, str]], now_in_flight: frozenset[tuple[str, str]], runs_ended: bool
) -> bool:
    """The wake rule: a backfill appeared or changed status, or a run ended while backfills are
    in flight (it may complete a backfill or free the next level)."""
    if now_in_flight - seen:
        return True
    return bool(now_in_flight) and runs_ended


@dataclass(frozen=True)
class Iteration:
    """When an iteration began (the monotonic clock for resting, the wall clock for the run
    storage's `updated_after`) and the backfills in flight then."""

    started: float
    started_at: dt.datetime
    seen: frozenset[tuple[str, str]]

    @classmethod
    def begin(cls, instance: DagsterInstance) -> Iteration:
        return cls(time.monotonic(), dt.datetime.now(dt.UTC), in_flight_backfills(instance))

    def rested(self, evaluations_ended: float | None, now: float) -> bool:
        """Whether the evaluations it started have ended and rested REST_PER_WORK x their time."""
        if evaluations_ended is None:
            return False
        return now - evaluations_ended >= REST_PER_WORK * (evaluations_ended - self.started)


class BriskBackfillDaemon(BackfillDaemon):
    """Dagster's backfill daemon, evaluating a backfill within about a second of it needing it."""

    def core_loop(
        self, workspace_process_context: IWorkspaceProcessContext, shutdown_event: threading.Event
    ) -> DaemonIterator:
        instance = workspace_process_context.instance
        futures: dict[str, Future] = {}
        while not shutdown_event.is_set():
            iteration = Iteration.begin(instance)
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
            yield from self._wait_for_work(instance, shutdown_event, iteration, futures)

    def _wait_for_work(
        self,
        instance: DagsterInstance,
        shutdown_event: threading.Event,
        iteration: Iteration,
        futures: dict[str, Future],
    ) -> Iterator[None]:
        ended = EvaluationsEnded(futures.values())
        while not shutdown_event.is_set() and time.monotonic() - iteration.started < IDLE_SECONDS:
            shutdown_event.wait(POLL_SECONDS)
            yield None  # a heartbeat between looks, as Dagster's loops do
            # A run's end waits until the evaluations have rested; a new or cancelled backfill
            # does not wait.
            rested = iteration.rested(ended.at, time.monotonic())
            try:
                in_flight = in_flight_backfills(instance)
                ran = rested and runs_ended_since(instance, iteration.started_at)
                if should_wake(iteration.seen, in_flight, ran):
                    return
            except Exception:
                # The storage hiccuped: fall back to an iteration, which reports its own errors.
                self._logger.warning("Looking for backfill work failed", exc_info=True)
                return


class EvaluationsEnded:
    """When the last of some backfill evaluations (futures) ended: None while any runs."""

    def __init__(self, futures: Iterable[Future]) -> None:
        self._pending = {f for f in futures if not f.done()}
        self._lock = threading.Lock()
        self.at: float | None = None if self._pending else time.monotonic()
        for future in list(self._pending):
            future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)
            if not self._pending and self.at is None:
                self.at = time.monotonic()


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
