"""What the commands share: errors that carry an exit code, settings, JSON and rich output, options."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import IO, Any

import click
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table

from ..settings import Settings, SettingsError, load_settings
from .exit_codes import ExitCode


class CliError(click.ClickException):
    """Printed as `error: <message>` on stderr; the command exits with `code`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        # click declares exit_code a class variable but reads it from the raised instance.
        self.exit_code = int(code)  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def finish(code: ExitCode) -> None:
    """End the command with `code`; click turns it into the process's exit status."""
    if code != ExitCode.OK:
        raise click.exceptions.Exit(int(code))


def load(options: dict[str, str] | None = None, **explicit: Any) -> Settings:
    """`load_settings`, a bad value exiting 2 with the message that names its variable or option."""
    try:
        return load_settings(options, **explicit)
    except SettingsError as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None


def to_json(answer: Any) -> Any:
    """A service answer as JSON data: a pydantic model as the REST API shows it, dicts as they are."""
    if isinstance(answer, BaseModel):
        return answer.model_dump(mode="json", by_alias=True)
    if isinstance(answer, list):
        return [to_json(item) for item in answer]
    return answer


def print_json(data: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(data, indent=2))


def show(data: Any, as_json: bool, as_text: Callable[[Any], None]) -> None:
    """`data` as JSON with --json, else as text."""
    if as_json:
        print_json(data)
    else:
        as_text(data)


def print_json_line(data: Any) -> None:
    """One JSON document on one line of stdout, flushed (servers announce themselves so)."""
    click.echo(json.dumps(data))
    sys.stdout.flush()


def console() -> Console:
    """A rich console on stdout that prints values as they are (no markup, no highlighting); on a pipe
    or a file it is wide enough that no table cell is cut."""
    wide = None if sys.stdout.isatty() else 10_000
    return Console(markup=False, highlight=False, emoji=False, width=wide)


def table(*columns: str, wrapping: tuple[str, ...] = ()) -> Table:
    """A table with a header rule and no borders. On a narrow terminal only the `wrapping` columns
    (long values: URLs, hashes, messages) wrap; the short ones keep their width."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        out.add_column(column, overflow="fold", no_wrap=column not in wrapping)
    return out


class IsoDate(click.ParamType):
    """A date written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            self.fail(f"expected YYYY-MM-DD, got {value!r}", param, ctx)


class AsciiInt(click.IntRange):
    """An integer in ASCII digits, optionally in a range: Python's int() also reads `０` and `٣`
    (and click with it), which a typo or a pasted value should not turn into a number."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not (value.isascii() and value.strip().lstrip("+-").isdigit()):
            self.fail(f"{value!r} is not a whole number written in ASCII digits", param, ctx)
        return super().convert(value, param, ctx)


class AsciiFloat(click.ParamType):
    """A number in ASCII characters (float() also reads `１.５`); nan and inf are left to the
    check of what the number is for, which names them."""

    name = "FLOAT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        if not (isinstance(value, str) and value.isascii()):
            self.fail(f"{value!r} is not a number written in ASCII", param, ctx)
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)


PORT = AsciiInt(0, 65535)

json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
root_option = click.option("--root", help="data root (default $BACKFILL_DATA_ROOT or ./data)")
