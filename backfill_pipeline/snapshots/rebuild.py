"""Rebuild a date's manifest and metadata from the files on disk."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..dataroot import COLLECTIONS, DATE_FILES, RANKINGS, DataRoot, district_id_of
from ..district_ids import district_sort_key
from ..files import fingerprint, is_temp_name, sha256_hex
from .models import (
    MAX_ERRORS_KEPT,
    Collection,
    CollectionInfo,
    Collections,
    DateStatus,
    DistrictError,
    DistrictSnapshot,
    FileEntry,
    Manifest,
    ManifestEntry,
    Metadata,
    Rankings,
    SummaryError,
    WriteContext,
    counted_attempts,
)

M = TypeVar("M", bound=BaseModel)


@dataclass
class DateScan:
    """What a date directory holds, file by file."""

    entries: list[ManifestEntry] = field(default_factory=list)
    rankings: FileEntry | None = None
    errors: dict[str, list[DistrictError]] = field(default_factory=dict)
    # Collections named by the district files read (not those trusted from the manifest).
    collections_seen: dict[tuple, tuple[CollectionInfo, list[str], dt.datetime]] = field(default_factory=dict)
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    unexpected_files: list[str] = field(default_factory=list)


def entry_for(name: str, data: bytes, snapshot: DistrictSnapshot, fp: str) -> ManifestEntry:
    """The manifest entry of a district file whose bytes and model are known."""
    return ManifestEntry(
        file=name,
        district_id=snapshot.district_id,
        status=snapshot.status,
        detail=snapshot.detail,
        bytes=len(data),
        sha256=sha256_hex(data),
        collected_at=snapshot.collected_at,
        data_month=snapshot.data_month,
        is_closing_period=snapshot.is_closing_period,
        unavailable_final=snapshot.status == "unavailable" and snapshot.unavailable_final,
        attempts=counted_attempts(snapshot.errors) if snapshot.status == "failed" else 0,
        last_error=snapshot.errors[-1] if snapshot.status == "failed" and snapshot.errors else None,
        fingerprint=fp,
    )


def read_json_model(path: Path, model: type[M]) -> M | None:
    """A stored model, or None when the file is missing or does not validate."""
    try:
        return model.model_validate_json(path.read_bytes())
    except (FileNotFoundError, ValidationError, ValueError):
        return None


def scan_date(
    root: DataRoot,
    as_of: dt.date,
    previous: Manifest | None = None,
    *,
    known: dict[str, tuple[ManifestEntry, DistrictSnapshot]] | None = None,
) -> DateScan:
    """Read a date directory; files whose stat matches `previous` are not read again."""
    directory = root.date_dir(as_of)
    trusted = {e.file: e for e in previous.districts} if previous else {}
    trusted_rankings = previous.rankings if previous else None
    known = known or {}
    scan = DateScan()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return scan
    for name in names:
        if is_temp_name(name):
            scan.temp_files.append(name)
            continue
        district_id = district_id_of(name)
        path = root.date_file(as_of, name)
        if district_id is None:
            if name == RANKINGS:
                scan.rankings = _rankings_entry(path, trusted_rankings, scan)
            elif name not in DATE_FILES and not name.startswith("."):
                scan.unexpected_files.append(name)
            continue
        if name in known:
            entry, snapshot = known[name]
            _note(scan, entry, snapshot)
            continue
        try:
            fp = fingerprint(path)
        except FileNotFoundError:
            continue
        cached = trusted.get(name)
        if cached is not None and cached.fingerprint == fp and cached.status != "failed":
            scan.entries.append(cached)
            continue
        try:
            data = path.read_bytes()
            snapshot = DistrictSnapshot.model_validate_json(data)
        except (ValidationError, ValueError) as exc:
            scan.bad_files.append((name, _short(exc)))
            continue
        if snapshot.district_id != district_id or snapshot.as_of_date != as_of:
            scan.bad_files.append((name, f"holds district {snapshot.district_id} of {snapshot.as_of_date}"))
            continue
        _note(scan, entry_for(name, data, snapshot, fp), snapshot)
    scan.entries.sort(key=lambda e: district_sort_key(e.district_id))
    return scan


def _note(scan: DateScan, entry: ManifestEntry, snapshot: DistrictSnapshot) -> None:
    scan.entries.append(entry)
    if snapshot.status == "failed":
        scan.errors[snapshot.district_id] = list(snapshot.errors)
    if snapshot.collection is not None:
        info = snapshot.collection
        key = (info.source, info.scope, info.collection_method, info.run_id, info.backfill_id)
        _, districts, latest = scan.collections_seen.get(key, (info, [], snapshot.collected_at))
        districts.append(snapshot.district_id)
        scan.collections_seen[key] = (info, districts, max(latest, snapshot.collected_at))


def _rankings_entry(path: Path, trusted: FileEntry | None, scan: DateScan) -> FileEntry | None:
    try:
        fp = fingerprint(path)
    except FileNotFoundError:
        return None
    if trusted is not None and trusted.fingerprint == fp:
        return trusted
    data = path.read_bytes()
    try:
        Rankings.model_validate_json(data)
    except (ValidationError, ValueError) as exc:
        scan.bad_files.append((RANKINGS, _short(exc)))
        return None
    return FileEntry(file=RANKINGS, bytes=len(data), sha256=sha256_hex(data), fingerprint=fp)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return "; ".join(text[:3])[:300]


def date_status(entries: list[ManifestEntry], marked_unavailable: bool) -> DateStatus:
    """success / partial / failed / unavailable from the district files of a date."""
    statuses = {e.status for e in entries}
    if "success" in statuses:
        return "partial" if "failed" in statuses else "success"
    if "failed" in statuses:
        return "failed"
    if entries or marked_unavailable:
        return "unavailable"
    # A directory with no district files and no unavailable mark holds nothing collected.
    return "failed"


def read_collections(root: DataRoot, as_of: dt.date) -> Collections:
    """The date's collections record; an empty one when missing or unreadable."""
    found = read_json_model(root.date_file(as_of, COLLECTIONS), Collections)
    return found if found is not None else Collections(as_of_date=as_of)


def record_collection(
    collections: Collections,
    context: WriteContext,
    now: dt.datetime,
    *,
    written: Sequence[str] = (),
    kept: Sequence[str] = (),
    kept_errors: Sequence[DistrictError] = (),
    date_unavailable: bool = False,
    unavailable_final: bool = False,
    summary_error: SummaryError | None = None,
    summary_answered: bool = False,
) -> Collections:
    """Add one write to the collection it belongs to (same source, scope, method, run, backfill)."""
    info = context.info()
    key = (info.source, info.scope, info.collection_method, info.run_id, info.backfill_id)
    current = next((c for c in collections.collections if c.key() == key), None)
    if current is None:
        current = Collection(**info.model_dump(), first_write_at=now, last_write_at=now)
        collections.collections.append(current)
    current.configured_districts = list(context.configured_districts)
    current.last_write_at = max(current.last_write_at, now)
    current.districts_written = _ids(set(current.districts_written) | set(written))
    current.districts_kept = _ids(set(current.districts_kept) | set(kept))
    current.errors.extend(kept_errors)
    current.date_unavailable = current.date_unavailable or date_unavailable
    if date_unavailable:
        current.unavailable_final = unavailable_final
    if date_unavailable or summary_answered:
        current.summary_answered_at = now
    if summary_error is not None:
        current.summary_errors = [*current.summary_errors, summary_error][-MAX_ERRORS_KEPT:]
    collections.collections.sort(key=lambda c: (c.last_write_at, c.first_write_at))
    return collections


def reconcile_collections(collections: Collections, scan: DateScan) -> list[str]:
    """Record collections that district files name but collections.json lacks (a writer died)."""
    known = {c.key() for c in collections.collections}
    added = []
    for key, (info, districts, collected_at) in scan.collections_seen.items():
        if key in known:
            continue
        context = WriteContext(**info.model_dump())
        record_collection(collections, context, collected_at, written=districts)
        added.append(
            f"{info.source}/{info.scope}/{info.collection_method} run {info.run_id} "
            f"wrote {', '.join(districts)} but is not recorded"
        )
    return added


def _ids(ids: set[str]) -> list[str]:
    return sorted(ids, key=district_sort_key)


def current_summary_errors(collections: Collections) -> list[SummaryError]:
    """Failed summary attempts since the summary was last answered (newest last)."""
    answered = [c.summary_answered_at for c in collections.collections if c.summary_answered_at]
    since = max(answered) if answered else None
    errors = [
        e for c in collections.collections for e in c.summary_errors if since is None or e.timestamp > since
    ]
    return sorted(errors, key=lambda e: e.timestamp)[-MAX_ERRORS_KEPT:]


def unavailable_final(collections: Collections) -> bool:
    """Whether the latest collection that found the date unpublished judged that final."""
    marks = [c for c in collections.collections if c.date_unavailable]
    return bool(marks) and max(marks, key=lambda c: c.last_write_at).unavailable_final


def build_manifest(as_of: dt.date, scan: DateScan, collections: Collections) -> Manifest:
    """The manifest of a scanned date."""
    marked = any(c.date_unavailable for c in collections.collections)
    status = date_status(scan.entries, marked)
    return Manifest(
        as_of_date=as_of,
        status=status,
        unavailable_final=status == "unavailable" and unavailable_final(collections),
        summary_errors=current_summary_errors(collections),
        districts=scan.entries,
        rankings=scan.rankings,
    )


def build_metadata(as_of: dt.date, scan: DateScan, collections: Collections, manifest: Manifest) -> Metadata:
    """The metadata of a scanned date; source/scope/method are those of the latest collection."""
    entries = {e.district_id: e for e in scan.entries}
    success = [e for e in scan.entries if e.status == "success"]
    month_source = success or [e for e in scan.entries if e.data_month]
    data_month, closing = None, None
    if month_source:
        month_counts = Counter(e.data_month for e in month_source if e.data_month)
        if month_counts:
            data_month = month_counts.most_common(1)[0][0]
            closing = any(e.is_closing_period for e in month_source if e.data_month == data_month)
    latest = collections.collections[-1] if collections.collections else None
    kept_errors = []
    for collection in collections.collections:
        for error in collection.errors:
            entry = entries.get(error.district)
            # A later detailed write of the district supersedes the error of an earlier kept
            # attempt; summary data written later does not (the detail is still missing).
            if entry is not None and (entry.detail != "detailed" or error.timestamp >= entry.collected_at):
                kept_errors.append(error)
    district_errors = [err for d in entries if d in scan.errors for err in scan.errors[d]]
    return Metadata(
        as_of_date=as_of,
        status=manifest.status,
        data_month=data_month,
        is_closing_period=closing,
        source=latest.source if latest else None,
        scope=latest.scope if latest else None,
        collection_method=latest.collection_method if latest else None,
        configured_districts=latest.configured_districts if latest else [],
        run_id=latest.run_id if latest else None,
        backfill_id=latest.backfill_id if latest else None,
        collections=list(collections.collections),
        districts=[e.district_id for e in scan.entries],
        successful_districts=[e.district_id for e in success],
        failed_districts=[e.district_id for e in scan.entries if e.status == "failed"],
        unavailable_districts=[e.district_id for e in scan.entries if e.status == "unavailable"],
        detailed_districts=[e.district_id for e in success if e.detail == "detailed"],
        district_errors=district_errors,
        errors_with_data_kept=kept_errors,
        unavailable_final=manifest.unavailable_final,
        summary_errors=manifest.summary_errors,
        has_rankings=scan.rankings is not None,
    )


def comparable(model: Manifest | Metadata) -> dict:
    """A stored model without its timestamp and stat fingerprints, for consistency checks."""
    data = json.loads(model.model_dump_json())
    data.pop("updatedAt", None)
    for entry in data.get("districts", []):
        if isinstance(entry, dict):
            entry.pop("fingerprint", None)
    if isinstance(data.get("rankings"), dict):
        data["rankings"].pop("fingerprint", None)
    return data
