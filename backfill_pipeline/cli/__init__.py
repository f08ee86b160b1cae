"""The `backfill-pipeline` command: one click group, a module per family of sub-commands."""

from __future__ import annotations

import importlib

import click

from .exit_codes import ExitCode, summary

__all__ = ["ExitCode", "main"]

# name -> (module, attribute). A command's module is imported only when that command runs (or
# `--help` lists them all), so `districts list` does not pay for the API and rich's tables.
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("backfill_pipeline.cli.fetch", "fetch"),
    "sandbox": ("backfill_pipeline.sandbox.command", "sandbox"),
    "verify": ("backfill_pipeline.cli.store", "verify"),
    "districts": ("backfill_pipeline.cli.store", "districts"),
    "backfill": ("backfill_pipeline.cli.backfills", "backfill"),
    "status": ("backfill_pipeline.cli.backfills", "status"),
    "cancel": ("backfill_pipeline.cli.backfills", "cancel"),
    "retry": ("backfill_pipeline.cli.backfills", "retry"),
    "list": ("backfill_pipeline.cli.backfills", "list_backfills"),
    "gaps": ("backfill_pipeline.cli.coverage", "gaps"),
    "heal": ("backfill_pipeline.cli.coverage", "heal"),
    "export": ("backfill_pipeline.cli.export", "export"),
    "api": ("backfill_pipeline.cli.serve", "api"),
    "api-token": ("backfill_pipeline.cli.token", "api_token"),
    "demo": ("backfill_pipeline.cli.demo", "demo"),
    "dev": ("backfill_pipeline.cli.dagster_stack", "dev"),
    "daemon": ("backfill_pipeline.cli.dagster_stack", "daemon"),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"Exit codes: {summary()}.",
)
def main() -> None:
    """Collect Toastmasters district statistics into per-date snapshots."""
