"""`backfill-pipeline verify` and `backfill-pipeline districts list|add|remove|set`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_root() -> Path:
    """`BACKFILL_DATA_ROOT`, read when the command runs; `./data` when unset."""
    return Path(os.environ.get("BACKFILL_DATA_ROOT") or "data")


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if getattr(args, "root", None) else default_root()


def _add_root(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS lets `districts --root X list` and `districts list --root X` both work.
    parser.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        help="data root (default: $BACKFILL_DATA_ROOT or ./data)",
    )


def split_ids(values: list[str]) -> list[str]:
    """`["42,61", "F"]` -> `["42", "61", "F"]`: commas and separate arguments split ids; spaces
    never do, so `District 4 2` stays one (invalid) id instead of becoming 4 and 2."""
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def register(subparsers) -> None:
    """Add the `verify` and `districts` sub-commands to an argparse sub-parser set."""
    verify = subparsers.add_parser(
        "verify",
        help="check every snapshot: manifest, files, sha256, schemas, pointer",
        description="Check every snapshot; exit 1 listing each problem (0 when clean or repaired).",
    )
    _add_root(verify)
    verify.add_argument(
        "--repair", action="store_true", help="fix what can be fixed (rebuild, remove temp files)"
    )
    verify.set_defaults(handler=run_verify)

    districts = subparsers.add_parser(
        "districts",
        help="list or change the configured districts",
        description="The configured districts; none configured means every available district.",
    )
    _add_root(districts)
    actions = districts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="print the configured districts, one per line")
    _add_root(listing)
    listing.set_defaults(handler=run_districts)
    for name, help_text, nargs in (
        ("add", "add districts", "+"),
        ("remove", "remove districts", "+"),
        ("set", "replace the configuration (no ids: every available district)", "*"),
    ):
        action = actions.add_parser(name, help=help_text)
        _add_root(action)
        action.add_argument("ids", nargs=nargs, help="district ids: 42 61, 42,61 or 'District 42'")
        action.set_defaults(handler=run_districts)


def run_verify(args: argparse.Namespace) -> int:
    """Handler of `verify`: print each problem; exit 1 when any is left unrepaired."""
    from .store import PerDistrictFileSnapshotStore
    from .verify import verify_store

    root = _root(args)
    store = PerDistrictFileSnapshotStore(root)
    problems = verify_store(store, repair=args.repair)
    for problem in problems:
        print(problem)
    left = [p for p in problems if not p.repaired]
    dates = len(store.root.dates())
    if not problems:
        print(f"ok: {dates} snapshot(s) under {root} are consistent")
        return 0
    if left:
        print(f"{len(left)} problem(s) found under {root}", file=sys.stderr)
        return 1
    print(f"repaired {len(problems)} problem(s) under {root}", file=sys.stderr)
    return 0


def run_districts(args: argparse.Namespace) -> int:
    """Handler of `districts list|add|remove|set`."""
    from ..district_ids import InvalidDistrictId
    from ..scope import DistrictConfig, DistrictConfigError, normalise_ids

    config = DistrictConfig(_root(args))
    try:
        if args.action == "list":
            current = config.list()
        else:
            ids = normalise_ids(split_ids(args.ids))
            current = getattr(config, args.action)(ids)
    except InvalidDistrictId as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DistrictConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for district in current:
        print(district)
    if not current:
        print("no districts configured: every available district is in scope", file=sys.stderr)
    return 0
