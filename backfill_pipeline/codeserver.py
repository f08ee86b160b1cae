"""`dagster api grpc` whose runs start from a warm process instead of a new interpreter (issue 11).

Dagster's code server starts each run with multiprocessing's "spawn": a new interpreter that
imports Dagster and the definitions again, about 2.5 s of CPU, and the run queue launches runs one
after another because each launch waits until its run has started. A backfill of 10 districts
then spends half a minute starting runs. Here the server uses multiprocessing's "forkserver"
with Dagster and backfill_pipeline preloaded, the way Dagster's own multiprocess executor offers
(`start_method: forkserver`): the forkserver imports once, single-threaded, and each run is a
fork of it that only builds the definitions (they read the settings then, as before). Everything
else is `dagster api grpc`, its options included.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import dagster._grpc.server as grpc_server
from dagster._cli.api import grpc_command
from dagster._grpc.server import DagsterApiServer

# What every run imports anyway: done once, in the forkserver.
PRELOAD = ["backfill_pipeline.codeserver_preload"]


class ForkingApiServer(DagsterApiServer):
    """Dagster's gRPC API server whose runs are forks of a preloaded forkserver."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._mp_ctx = context  # type: ignore[assignment]  # spawn in Dagster: the one thing changed


def main() -> None:
    """`python -m backfill_pipeline.codeserver [dagster api grpc options]`."""
    # `dagster api grpc` looks the servicer class up in its module when it starts serving.
    grpc_server.DagsterApiServer = ForkingApiServer  # type: ignore[misc]
    grpc_command(prog_name="python -m backfill_pipeline.codeserver")


if __name__ == "__main__":
    main()
