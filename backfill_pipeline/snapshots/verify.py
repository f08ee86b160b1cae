"""Check a store: manifest vs files vs sha256, JSON schemas, pointer; repair on request."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from ..dataroot import COLLECTIONS, MANIFEST, METADATA, RANKINGS
from .models import Collections, LatestPointer, Manifest, Metadata, utc_now
from .rebuild import (
    build_manifest,
    build_metadata,
    comparable,
    read_json_model,
    reconcile_collections,
    scan_date,
)
from .store import PerDistrictFileSnapshotStore, newest_successful_on_disk


@dataclass
class Problem:
    """One inconsistency found by verify."""

    as_of: dt.date | None
    path: str
    kind: str
    message: str
    repaired: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "asOfDate": self.as_of.isoformat() if self.as_of else None,
            "path": self.path,
            "kind": self.kind,
            "message": self.message,
            "repaired": self.repaired,
        }

    def __str__(self) -> str:
        where = self.as_of.isoformat() if self.as_of else "-"
        tag = " [repaired]" if self.repaired else ""
        return f"{where} {self.kind} {self.path}: {self.message}{tag}"


def verify_store(store: PerDistrictFileSnapshotStore, *, repair: bool = False) -> list[Problem]:
    """Every problem of every date, then of the pointer; with `repair`, fix and mark them."""
    problems: list[Problem] = []
    for as_of in store.root.dates():
        with store.date_lock(as_of):
            problems += _verify_date(store, as_of, repair)
    with store.pointer_lock():
        problems += _verify_pointer(store, repair)
    return problems


def _verify_date(store: PerDistrictFileSnapshotStore, as_of: dt.date, repair: bool) -> list:
    root = store.root
    rel = f"snapshots/{as_of.isoformat()}"
    found: list[Problem] = []

    def problem(name: str, kind: str, message: str) -> Problem:
        p = Problem(as_of, f"{rel}/{name}", kind, message)
        found.append(p)
        return p

    scan = scan_date(root, as_of)  # no previous manifest: every file is read and hashed
    for name in scan.temp_files:
        p = problem(name, "temp-file", "temporary file left by an interrupted write")
        if repair:
            root.date_file(as_of, name).unlink(missing_ok=True)
            p.repaired = True
    for name, message in scan.bad_files:
        p = problem(name, "invalid-file", message)
        if repair:
            stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")
            os.replace(root.date_file(as_of, name), root.quarantine(as_of, name, stamp))
            p.repaired = True
    for name in scan.unexpected_files:
        problem(name, "unexpected-file", "not a file of the snapshot layout (left alone)")

    collections = read_json_model(root.date_file(as_of, COLLECTIONS), Collections)
    collections_changed = False
    if collections is None:
        if (root.date_file(as_of, COLLECTIONS)).exists():
            problem(COLLECTIONS, "invalid-file", "collections.json does not match its schema")
            collections_changed = True
        collections = Collections(as_of_date=as_of)
    for message in reconcile_collections(collections, scan):
        problem(COLLECTIONS, "collection-missing", message)
        collections_changed = True

    manifest = build_manifest(as_of, scan, collections)
    metadata = build_metadata(as_of, scan, collections, manifest)
    stored_manifest = read_json_model(root.date_file(as_of, MANIFEST), Manifest)
    stale = collections_changed or bool(scan.bad_files)
    if stored_manifest is None:
        problem(MANIFEST, "manifest-invalid", "missing or not matching its schema")
        stale = True
    else:
        stale |= _compare_manifest(stored_manifest, manifest, problem)
    stored_metadata = read_json_model(root.date_file(as_of, METADATA), Metadata)
    if stored_metadata is None:
        problem(METADATA, "metadata-invalid", "missing or not matching its schema")
        stale = True
    elif comparable(stored_metadata) != comparable(metadata):
        problem(METADATA, "metadata-stale", "does not match the files on disk")
        stale = True

    if repair and stale:
        if collections_changed:
            store.write_model(root.date_file(as_of, COLLECTIONS), collections)
        store.write_model(root.date_file(as_of, MANIFEST), manifest)
        store.write_model(root.date_file(as_of, METADATA), metadata)
        for p in found:
            if p.kind != "unexpected-file":
                p.repaired = True
    return found


def _compare_manifest(stored: Manifest, rebuilt: Manifest, problem) -> bool:
    stale = False
    listed = {e.file: e for e in stored.districts}
    actual = {e.file: e for e in rebuilt.districts}
    for name in sorted(set(listed) - set(actual)):
        problem(name, "missing-file", "listed in manifest.json but not on disk")
        stale = True
    for name in sorted(set(actual) - set(listed)):
        problem(name, "unlisted-file", "on disk but not in manifest.json")
        stale = True
    for name in sorted(set(listed) & set(actual)):
        a, b = listed[name], actual[name]
        if (a.bytes, a.sha256) != (b.bytes, b.sha256):
            problem(name, "sha256-mismatch", f"manifest says {a.sha256[:12]}, file is {b.sha256[:12]}")
            stale = True
        elif comparable_entry(a) != comparable_entry(b):
            problem(name, "manifest-entry", "status, detail or dates differ from the file")
            stale = True
    stored_r, actual_r = stored.rankings, rebuilt.rankings
    if (stored_r is None) != (actual_r is None) or (
        stored_r is not None
        and actual_r is not None
        and (stored_r.bytes, stored_r.sha256) != (actual_r.bytes, actual_r.sha256)
    ):
        problem(RANKINGS, "sha256-mismatch", "rankings entry of manifest.json differs from the file")
        stale = True
    if stored.status != rebuilt.status:
        problem(MANIFEST, "manifest-entry", f"status {stored.status}, files say {rebuilt.status}")
        stale = True
    return stale


def comparable_entry(entry) -> dict:
    """A manifest entry without its stat fingerprint."""
    return entry.model_dump(exclude={"fingerprint"})


def _verify_pointer(store: PerDistrictFileSnapshotStore, repair: bool) -> list[Problem]:
    root = store.root
    best = newest_successful_on_disk(root)
    found = []
    for stale in root.temp_files():
        p = Problem(None, f"snapshots/{stale.name}", "temp-file", "left by an interrupted write")
        if repair:
            stale.unlink(missing_ok=True)
            p.repaired = True
        found.append(p)
    pointer = read_json_model(root.pointer, LatestPointer)
    message = None
    # Repair only ever moves the pointer forward: a date it named that has lost its data is
    # reported for a human to look at, never silently replaced by an older one.
    movable = True
    if pointer is None and root.pointer.exists():
        message = ("pointer-invalid", "latest-successful.json does not match its schema")
    elif pointer is None and best is not None:
        message = ("pointer-missing", f"no pointer although {best[0]} is {best[1]}")
    elif pointer is not None and (best is None or best[0] < pointer.as_of_date):
        message = (
            "pointer-ahead",
            f"points to {pointer.as_of_date}, which has no successful data"
            + (f" (the newest successful date is {best[0]})" if best else "")
            + "; a pointer never moves back: re-collect that date",
        )
        movable = False
    elif pointer is not None and best is not None and (pointer.as_of_date, pointer.status) != best:
        message = (
            "pointer-stale",
            f"points to {pointer.as_of_date}, latest successful is {best[0]}",
        )
    if message is None:
        return found
    p = Problem(None, f"snapshots/{root.pointer.name}", *message)
    if repair and movable:
        if best is None:
            root.pointer.unlink(missing_ok=True)
        else:
            store.write_model(root.pointer, LatestPointer(as_of_date=best[0], status=best[1]))
        p.repaired = True
    return [*found, p]
