"""The exit codes of every `backfill-pipeline` command, defined once.

0  OK                   done: a followed backfill succeeded, `verify` left no problem; the
                        sandbox stopped on Ctrl-C, SIGTERM or SIGHUP (a test server: stopping it
                        is its normal end)
1  FAILED               a dashboard error (`fetch`), a backfill that ended other than succeeded,
                        Dagster refused a request, problems left in the store (`verify`), the
                        district configuration could not be changed, a server could not listen,
                        the demo could not start a process or its API answered an error; `gaps
                        --fail-on-gaps` listed cells; Ctrl-C in any other command (click's
                        "Aborted!"); any unexpected error
2  BAD_INPUT            an unknown command or option, a bad option value or argument (click's
                        usage errors), an invalid district id, a backfill request that does not
                        validate, an invalid `BACKFILL_*` variable (the message names it)
3  DAGSTER_UNREACHABLE  Dagster's webserver does not answer (`--dagster-url`, `BACKFILL_DAGSTER_URL`)
4  NOT_FOUND            no such backfill
5  WRONG_STATE          not cancellable (already ended), nothing to retry (no failed partition), or
                        still running (retry once it ends)
6  PLAN_CHANGED         `--plan-hash` no longer matches the plan (the current plan is printed)

Interrupted, `demo` and `api` exit 128 + the signal's number once they have stopped (the demo:
every process it started; the API: uvicorn's graceful shutdown): on Ctrl-C (SIGINT) 130, on
`kill` (SIGTERM) 143, when the terminal closes (SIGHUP) 129. Not an ExitCode: it depends on the
signal (devstack.Interrupted.exit_code).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means (the table above)."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    DAGSTER_UNREACHABLE = 3
    NOT_FOUND = 4
    WRONG_STATE = 5
    PLAN_CHANGED = 6


def summary() -> str:
    """The codes on one line, for `--help`: `0 ok, 1 failed, 2 bad input, ...`."""
    return ", ".join(f"{c.value} {c.name.lower().replace('_', ' ')}" for c in ExitCode)
