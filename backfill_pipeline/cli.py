"""The `backfill-pipeline` command: one sub-command per verb, each defined next to its code."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backfill-pipeline",
        description="Collect Toastmasters district statistics into per-date snapshots.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Imported here so `--help` stays fast and each module owns its own arguments.
    from . import demo
    from .api import cli_commands as backfill_commands
    from .api import command as api_command
    from .dashboard import command as dashboard_command
    from .sandbox import command as sandbox_command
    from .snapshots import commands as snapshot_commands

    dashboard_command.register(sub)
    sandbox_command.register(sub)
    snapshot_commands.register(sub)
    backfill_commands.register(sub)
    api_command.register(sub)
    demo.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
