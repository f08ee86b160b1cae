"""The `backfill-pipeline` group: its commands, the documented exit codes, the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from backfill_pipeline.cli import ExitCode, exit_codes, main

COMMANDS = [
    "api",
    "api-token",
    "backfill",
    "cancel",
    "daemon",
    "demo",
    "dev",
    "districts",
    "export",
    "fetch",
    "gaps",
    "heal",
    "list",
    "retry",
    "sandbox",
    "status",
    "verify",
]


def test_every_command_is_there_with_its_help_and_json():
    context = click.Context(main)
    assert sorted(main.list_commands(context)) == COMMANDS
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None, name
        assert command.help and "\n" not in command.help.strip(), name
        json_owner = command.commands["list"] if name == "districts" else command
        assert "--json" in [opt for p in json_owner.params for opt in p.opts], name


def test_exit_codes_are_documented_once():
    assert [(c.name, c.value) for c in ExitCode] == [
        ("OK", 0),
        ("FAILED", 1),
        ("BAD_INPUT", 2),
        ("DAGSTER_UNREACHABLE", 3),
        ("NOT_FOUND", 4),
        ("WRONG_STATE", 5),
        ("PLAN_CHANGED", 6),
    ]
    documented = [line.split()[:2] for line in exit_codes.__doc__.splitlines() if line[:1].isdigit()]
    assert documented == [[str(c.value), c.name] for c in ExitCode]
    help_text = CliRunner().invoke(main, ["--help"]).stdout
    assert "Exit codes: 0 ok, 1 failed, 2 bad input, 3 dagster unreachable" in help_text


def test_usage_errors_exit_2():
    runner = CliRunner()
    assert runner.invoke(main, []).exit_code == 2  # no command: the help, as a usage error
    assert runner.invoke(main, ["nonsense"]).exit_code == 2
    assert runner.invoke(main, ["verify", "--nonsense"]).exit_code == 2
    assert runner.invoke(main, ["-h"]).exit_code == 0


def test_the_console_script_and_python_dash_m():
    script = Path(sys.executable).with_name("backfill-pipeline")
    for argv in ([str(script), "--help"], [sys.executable, "-m", "backfill_pipeline.cli", "--help"]):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.startswith("Usage: backfill-pipeline ")
        assert all(name in p.stdout for name in COMMANDS)
