"""`backfill-pipeline verify` and `backfill-pipeline districts list|add|remove|set`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..district_ids import InvalidDistrictId
from ..scope import DistrictConfig, DistrictConfigError, normalise_ids
from ..snapshots.rootcheck import check_data_root
from ..snapshots.store import PerDistrictFileSnapshotStore
from ..snapshots.verify import Problem, verify_store
from .common import CliError, console, finish, json_option, load, print_json, root_option, table
from .exit_codes import ExitCode

ROOT_OPTION = {"data_root": "--root"}


@click.command("verify")
@root_option
@click.option("--repair", is_flag=True, help="fix what can be fixed (rebuild, remove temp files)")
@json_option
def verify(root: str | None, repair: bool, as_json: bool) -> None:
    """Check the data root's filesystem and every snapshot: files, hashes, schemas, pointer."""
    data_root = load(ROOT_OPTION, data_root=root).data_root
    problems = root_problems(Path(data_root))
    store = PerDistrictFileSnapshotStore(data_root)
    problems += verify_store(store, repair=repair) if not problems else []
    left = [p for p in problems if not p.repaired]
    dates = len(store.root.dates())
    if as_json:
        print_json(
            {
                "root": str(data_root),
                "dates": dates,
                "problems": [p.to_dict() for p in problems],
                "unrepaired": len(left),
            }
        )
    elif problems:
        rows = table("asOf", "kind", "path", "message", "repaired", wrapping=("path", "message"))
        for p in problems:
            as_of = p.as_of.isoformat() if p.as_of else "-"
            rows.add_row(as_of, p.kind, p.path, p.message, "yes" if p.repaired else "no")
        console().print(rows)
    if not problems:
        if not as_json:
            click.echo(f"ok: {dates} snapshot(s) under {data_root} are consistent")
        return
    if left:
        click.echo(f"{len(left)} problem(s) found under {data_root}", err=True)
        finish(ExitCode.FAILED)
    else:
        click.echo(f"repaired {len(problems)} problem(s) under {data_root}", err=True)


def root_problems(data_root: Path) -> list[Problem]:
    """The data root's filesystem, checked as runs check it; a root that does not exist is not
    created (nothing to verify there)."""
    if not data_root.is_dir():
        return []
    try:
        messages = check_data_root(data_root).problems
    except OSError as exc:
        messages = [f"its filesystem cannot be probed ({exc.strerror or exc})"]
    return [Problem(None, str(data_root), "data-root", message) for message in messages]


def split_ids(values: tuple[str, ...] | list[str]) -> list[str]:
    """`["42,61", "F"]` -> `["42", "61", "F"]`: commas and separate arguments split ids; spaces
    never do, so `District 4 2` stays one (invalid) id instead of becoming 4 and 2."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def given_ids(values: tuple[str, ...]) -> list[str]:
    """`split_ids` for ids the user typed to change the configuration: an empty or blank id (`''`,
    `42,,61`, a trailing comma) is a mistake to name, not something to drop silently."""
    ids = [t.strip() for v in values for t in v.split(",")]
    if any(not t for t in ids):
        shown = " ".join(repr(v) for v in values)
        raise InvalidDistrictId(f"empty district id in {shown}: give ids like 42, 09 or F")
    return ids


@click.group("districts")
@root_option
@json_option
def districts(root: str | None, as_json: bool) -> None:
    """List or change the configured districts (none: every district)."""


@districts.command("list")
@root_option
@json_option
@click.pass_context
def list_districts(ctx: click.Context, root: str | None, as_json: bool) -> None:
    """Print the configured districts, one per line."""
    _apply(ctx, root, as_json, lambda config: config.list())


@districts.command("add")
@click.argument("ids", nargs=-1, required=True)
@root_option
@json_option
@click.pass_context
def add(ctx: click.Context, ids: tuple[str, ...], root: str | None, as_json: bool) -> None:
    """Add districts (ids: 42 61, 42,61 or 'District 42')."""
    _apply(ctx, root, as_json, lambda config: config.add(normalise_ids(given_ids(ids))))


@districts.command("remove")
@click.argument("ids", nargs=-1, required=True)
@root_option
@json_option
@click.pass_context
def remove(ctx: click.Context, ids: tuple[str, ...], root: str | None, as_json: bool) -> None:
    """Remove districts."""
    _apply(ctx, root, as_json, lambda config: config.remove(normalise_ids(given_ids(ids))))


@districts.command("set")
@click.argument("ids", nargs=-1)
@root_option
@json_option
@click.pass_context
def set_districts(ctx: click.Context, ids: tuple[str, ...], root: str | None, as_json: bool) -> None:
    """Replace the configuration (no ids: every available district)."""
    _apply(ctx, root, as_json, lambda config: config.set(normalise_ids(given_ids(ids))))


def _apply(
    ctx: click.Context, root: str | None, as_json: bool, action: Callable[[DistrictConfig], list[str]]
) -> None:
    # --root and --json may be given before the action too: `districts --root X list`.
    group = ctx.parent.params if ctx.parent else {}
    data_root = load(ROOT_OPTION, data_root=root or group.get("root")).data_root
    try:
        current = action(DistrictConfig(data_root))
    except InvalidDistrictId as exc:
        raise CliError(str(exc), ExitCode.BAD_INPUT) from None
    except DistrictConfigError as exc:
        raise CliError(str(exc)) from None
    if as_json or group.get("as_json"):
        print_json({"districts": current})
    else:
        for district in current:
            click.echo(district)
    if not current:
        click.echo("no districts configured: every available district is in scope", err=True)
