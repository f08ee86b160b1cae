"""The `backfill-pipeline` command: one click group, a module per family of sub-commands."""

from __future__ import annotations

import click

from ..sandbox.command import sandbox
from .backfills import backfill, cancel, list_backfills, retry, status
from .demo import demo
from .exit_codes import ExitCode, summary
from .fetch import fetch
from .serve import api
from .store import districts, verify

__all__ = ["ExitCode", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"Exit codes: {summary()}.",
)
def main() -> None:
    """Collect Toastmasters district statistics into per-date snapshots."""


for command in (
    fetch,
    sandbox,
    verify,
    districts,
    backfill,
    status,
    cancel,
    retry,
    list_backfills,
    api,
    demo,
):
    main.add_command(command)
