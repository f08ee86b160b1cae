"""PerDistrictFileSnapshotStore: one directory per as-of date, one JSON file per district.

Rules (the layout is docs/design.md §7, plus `collections.json` per date and `.locks/`):

- Every write to a date holds that date's inter-process lock; every file is written to a hidden
  temporary name in its directory, fsynced and `os.replace`d, then the date's manifest and
  metadata are rebuilt from the files on disk (unchanged files are recognised by a stat
  fingerprint and not re-read).
- Nothing good is demoted. A failed or unavailable write never replaces a successful file (of
  any detail): the file is kept and the error goes to the collection's record, shown in metadata
  as `errorsWithDataKept` until a later detailed write of that district supersedes it. A summary
  write never replaces a successful detailed file, but does replace a detailed file without data
  (unavailable or failed): data beats no data, and a failed one's errors are kept beside it.
  Anything else replaces the file (newest wins); a failed file that replaces a failed file keeps
  its attempt history (`errors`), and a detailed file that replaces a summary file keeps the
  district's summary row.
- A failed attempt at a date's summary is recorded in `collections.json` (`summaryErrors`) and
  leaves the date's files as they were.
- `collections.json` lists every collection that wrote to the date, keyed by (source, scope,
  method, run id, backfill id). metadata.json shows the latest one's source, scope, method and
  configured districts, and the whole list; each district file names its own collection.
- The latest-successful pointer moves to a date whose status is `success` or `partial` when that
  date is not older than the one it names: it never moves back. When the pointer file is missing
  or unreadable, the newest such date on disk stands in for it, so a damaged pointer cannot pull
  it back either.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..dataroot import COLLECTIONS, MANIFEST, METADATA, RANKINGS, DataRoot, district_file_name
from ..district_ids import normalise_district_id, sort_district_ids
from ..files import atomic_write_bytes, fingerprint, fsync_dir, make_dirs
from . import readers
from .models import (
    MAX_ERRORS_KEPT,
    Collections,
    DateStatus,
    Detail,
    DistrictError,
    DistrictSnapshot,
    DistrictStatus,
    LatestPointer,
    Manifest,
    ManifestEntry,
    Metadata,
    RankingEntry,
    Rankings,
    SummaryError,
    WriteContext,
    utc_now,
)
from .rebuild import (
    build_manifest,
    build_metadata,
    entry_for,
    read_collections,
    read_json_model,
    reconcile_collections,
    record_collection,
    scan_date,
)

log = logging.getLogger(__name__)

POINTER_STATUSES: frozenset[str] = frozenset({"success", "partial"})


@dataclass(frozen=True)
class WriteResult:
    """What a district write did: `written`, or which better file it kept and why."""

    district_id: str
    as_of: dt.date
    written: bool
    status: DistrictStatus
    detail: Detail
    reason: str  # "written", "kept-detailed" or "kept-success"


def keep_reason(existing: ManifestEntry | None, new: DistrictSnapshot) -> str | None:
    """Why the existing district file must stay instead of `new`; None when `new` replaces it."""
    if existing is None or existing.status != "success":
        return None
    if new.status != "success":
        return "kept-success"
    if new.detail == "summary" and existing.detail == "detailed":
        return "kept-detailed"
    return None


def replaces_failed_detail(existing: ManifestEntry | None, new: DistrictSnapshot) -> bool:
    """True when summary data replaces a failed detailed file: data beats no data, but the
    detail is still missing and its errors are kept beside the data."""
    return (
        existing is not None
        and existing.status == "failed"
        and existing.detail == "detailed"
        and new.status == "success"
        and new.detail == "summary"
    )


class PerDistrictFileSnapshotStore:
    """The snapshot store of docs/design.md §7: atomic files, rebuilt manifest and metadata."""

    def __init__(self, root: DataRoot | Path | str, *, durable: bool = True) -> None:
        self.root = DataRoot.of(root)
        # durable=False skips fsync: only for building throwaway stores (tests, benchmarks).
        self.durable = durable
        self._reader = readers.SnapshotReader(self.root)

    # ------------------------------------------------------------------------------- writes

    def write_district(self, snapshot: DistrictSnapshot, *, context: WriteContext) -> WriteResult:
        """Write one district file, then rebuild the date's manifest and metadata under its lock."""
        return self.write_districts(snapshot.as_of_date, [snapshot], context=context)[0]

    def write_districts(
        self,
        as_of: dt.date,
        snapshots: Sequence[DistrictSnapshot],
        *,
        context: WriteContext,
        summary_answered: bool = False,
    ) -> list[WriteResult]:
        """Write many district files of one date under one lock and one rebuild (`summary_answered`:
        they come from the date's summary, which earlier summary errors no longer describe)."""
        ids = [s.district_id for s in snapshots]
        if len(set(ids)) != len(ids):
            raise ValueError(f"one write per district please, got {ids}")
        for snapshot in snapshots:
            if snapshot.as_of_date != as_of:
                raise ValueError(f"district {snapshot.district_id} is for {snapshot.as_of_date}, not {as_of}")
        results: list[WriteResult] = []
        with self.date_lock(as_of):
            stored = read_json_model(self.root.date_file(as_of, MANIFEST), Manifest)
            first = scan_date(self.root, as_of, stored)
            # The scan just made is the freshest "previous": the rebuild below reuses it.
            previous = build_manifest(as_of, first, Collections(as_of_date=as_of))
            on_disk = {e.district_id: e for e in first.entries}
            known: dict[str, tuple[ManifestEntry, DistrictSnapshot]] = {}
            written, kept, kept_errors = [], [], []
            for snapshot in snapshots:
                existing = on_disk.get(snapshot.district_id)
                reason = keep_reason(existing, snapshot)
                if existing is not None and reason is not None:
                    kept.append(snapshot.district_id)
                    kept_errors += [_with_ids(e, context) for e in snapshot.errors]
                    results.append(
                        WriteResult(
                            snapshot.district_id,
                            as_of,
                            False,
                            existing.status,
                            existing.detail,
                            reason,
                        )
                    )
                    log.info(
                        "district %s on %s: kept the %s %s file instead of the new %s %s one",
                        snapshot.district_id,
                        as_of,
                        existing.status,
                        existing.detail,
                        snapshot.status,
                        snapshot.detail,
                    )
                    continue
                if replaces_failed_detail(existing, snapshot):
                    # Summary data now stands where a detailed attempt failed (the district's
                    # run finished before its date's summary run): the failure stays on record.
                    kept_errors += first.errors.get(snapshot.district_id, [])
                final = self._prepare(snapshot, existing, context)
                name = district_file_name(final.district_id)
                data = final.model_dump_json().encode()
                path = self.root.date_file(as_of, name)
                atomic_write_bytes(path, data, durable=self.durable, sync_dir=False)
                known[name] = (entry_for(name, data, final, fingerprint(path)), final)
                written.append(final.district_id)
                results.append(
                    WriteResult(final.district_id, as_of, True, final.status, final.detail, "written")
                )
            collections = record_collection(
                read_collections(self.root, as_of),
                context,
                utc_now(),
                written=written,
                kept=kept,
                kept_errors=kept_errors,
                summary_answered=summary_answered,
            )
            self.write_model(self.root.date_file(as_of, COLLECTIONS), collections, sync_dir=False)
            self._rebuild_locked(as_of, previous, known=known, collections=collections)
        return results

    def mark_date_unavailable(
        self, as_of: dt.date, *, context: WriteContext, reason: str | None = None, final: bool = False
    ) -> Metadata:
        """Record that the dashboard has not published `as_of` (status `unavailable`, not failed);
        `final` when the evidence says it never will."""
        with self.date_lock(as_of):
            make_dirs(self.root.date_dir(as_of), durable=self.durable)
            collections = record_collection(
                read_collections(self.root, as_of),
                context,
                utc_now(),
                date_unavailable=True,
                unavailable_final=final,
            )
            self.write_model(self.root.date_file(as_of, COLLECTIONS), collections, sync_dir=False)
            previous = read_json_model(self.root.date_file(as_of, MANIFEST), Manifest)
            metadata = self._rebuild_locked(as_of, previous, collections=collections)
        log.info("%s marked unavailable%s", as_of, f": {reason}" if reason else "")
        return metadata

    def record_summary_failure(
        self, as_of: dt.date, error: SummaryError, *, context: WriteContext
    ) -> Metadata:
        """Record a failed attempt at the date's summary; the date's files stay as they are."""
        with self.date_lock(as_of):
            make_dirs(self.root.date_dir(as_of), durable=self.durable)
            collections = record_collection(
                read_collections(self.root, as_of), context, utc_now(), summary_error=error
            )
            self.write_model(self.root.date_file(as_of, COLLECTIONS), collections, sync_dir=False)
            previous = read_json_model(self.root.date_file(as_of, MANIFEST), Manifest)
            return self._rebuild_locked(as_of, previous, collections=collections)

    def write_rankings(
        self,
        as_of: dt.date,
        rankings: Sequence[RankingEntry] | Rankings,
        *,
        data_month: tuple[int, int] | str | None = None,
    ) -> Path:
        """Write `all-districts-rankings.json` of a date and rebuild its manifest and metadata."""
        if not isinstance(rankings, Rankings):
            rankings = Rankings(
                as_of_date=as_of,
                data_month=data_month,
                district_count=len(rankings),
                rankings=list(rankings),
            )
        if rankings.as_of_date != as_of:
            raise ValueError(f"rankings are for {rankings.as_of_date}, not {as_of}")
        path = self.root.date_file(as_of, RANKINGS)
        with self.date_lock(as_of):
            self.write_model(path, rankings)
            previous = read_json_model(self.root.date_file(as_of, MANIFEST), Manifest)
            self._rebuild_locked(as_of, previous)
        return path

    def rebuild(self, as_of: dt.date) -> Metadata:
        """Re-read every file of a date and rewrite its manifest and metadata."""
        with self.date_lock(as_of):
            return self._rebuild_locked(as_of, None)

    # ------------------------------------------------------------------------------- reads

    def read_district(self, as_of: dt.date, district: str) -> DistrictSnapshot | None:
        """One district file, or None when there is none."""
        return self._reader.read_district(as_of, normalise_district_id(district))

    def district_status(self, as_of: dt.date, district: str) -> ManifestEntry | None:
        """Status, detail, data month of a district on a date (from the manifest when current)."""
        return self._reader.district_entry(as_of, normalise_district_id(district))

    def has_successful_detailed(self, as_of: dt.date, district: str) -> bool:
        """True when the district has a successful detailed file for that date."""
        entry = self.district_status(as_of, district)
        return entry is not None and entry.status == "success" and entry.detail == "detailed"

    def read_manifest(self, as_of: dt.date) -> Manifest | None:
        """The date's manifest.json, or None."""
        return read_json_model(self.root.date_file(as_of, MANIFEST), Manifest)

    def read_metadata(self, as_of: dt.date) -> Metadata | None:
        """The date's metadata.json, or None."""
        return read_json_model(self.root.date_file(as_of, METADATA), Metadata)

    def read_collections(self, as_of: dt.date) -> Collections:
        """The date's collections record (empty when none)."""
        return read_collections(self.root, as_of)

    def read_rankings(self, as_of: dt.date) -> Rankings | None:
        """The date's rankings, or None."""
        return read_json_model(self.root.date_file(as_of, RANKINGS), Rankings)

    def listed_districts(self, dates: Iterable[dt.date] | None = None) -> list[str] | None:
        """Every district the collected summaries of `dates` list (default: the newest successful
        date's); None when no summary of them is collected."""
        if dates is None:
            latest = self.latest_successful()
            dates = [latest] if latest else []
        listed: set[str] = set()
        found = False
        for day in dates:
            rankings = self.read_rankings(day)
            if rankings is not None:
                found = True
                listed.update(r.district_id for r in rankings.rankings)
        return sort_district_ids(listed) if found else None

    def read_snapshot(
        self, as_of: dt.date, *, districts: Iterable[str] | None = None
    ) -> readers.DateSnapshot | None:
        """A date's metadata, manifest, rankings and district files (all, or those named)."""
        wanted = None if districts is None else [normalise_district_id(d) for d in districts]
        return self._reader.read_snapshot(as_of, wanted)

    def list_dates(self) -> list[tuple[dt.date, DateStatus]]:
        """Every as-of date with its status, oldest first."""
        return self._reader.list_dates()

    def coverage(
        self, start: dt.date, end: dt.date, districts: Iterable[str] | None = None
    ) -> readers.CoverageMatrix:
        """Date x district -> status and detail, built from manifests only."""
        wanted = None if districts is None else [normalise_district_id(d) for d in districts]
        return self._reader.coverage(start, end, wanted)

    def latest_successful(self) -> dt.date | None:
        """The newest date with successful districts, from the forward-only pointer."""
        pointer = read_json_model(self.root.pointer, LatestPointer)
        return pointer.as_of_date if pointer else None

    def date_lock(self, as_of: dt.date) -> FileLock:
        """The inter-process lock that serialises every write to one date."""
        return _lock(self.root.date_lock(as_of))

    def pointer_lock(self) -> FileLock:
        """The inter-process lock of the latest-successful pointer."""
        return _lock(self.root.pointer_lock)

    # ------------------------------------------------------------------------------- internals

    def _prepare(
        self, snapshot: DistrictSnapshot, existing: ManifestEntry | None, context: WriteContext
    ) -> DistrictSnapshot:
        errors = [_with_ids(e, context) for e in snapshot.errors]
        if snapshot.status == "failed" and existing is not None and existing.status == "failed":
            # The attempt history: how often this cell failed, and how.
            old = self.read_district(snapshot.as_of_date, snapshot.district_id)
            if old is not None:
                errors = [*old.errors, *errors][-MAX_ERRORS_KEPT:]
        update: dict = {"collection": context.info(), "errors": errors}
        if snapshot.detail == "detailed" and snapshot.raw.summary is None and existing is not None:
            update.update(self._carried_summary(snapshot, existing))
        return snapshot.model_copy(update=update)

    def _carried_summary(self, snapshot: DistrictSnapshot, existing: ManifestEntry) -> dict:
        # A detailed file keeps the district's summary row when the file it replaces had it.
        if snapshot.data_month is not None and existing.data_month != snapshot.data_month:
            return {}
        old = self.read_district(snapshot.as_of_date, snapshot.district_id)
        if old is None or old.raw.summary is None or old.figures.summary is None:
            return {}
        sources = [s for s in old.sources if s.report == "districtsummary"]
        return {
            "raw": snapshot.raw.model_copy(update={"summary": old.raw.summary}),
            "figures": snapshot.figures.model_copy(update={"summary": old.figures.summary}),
            "sources": [*snapshot.sources, *sources],
        }

    def _rebuild_locked(
        self,
        as_of: dt.date,
        previous: Manifest | None,
        *,
        known: dict | None = None,
        collections: Collections | None = None,
    ) -> Metadata:
        if collections is None:
            collections = read_collections(self.root, as_of)
        scan = scan_date(self.root, as_of, previous, known=known)
        # Every write to a date holds its lock, so a temporary file seen now is a dead writer's.
        for name in scan.temp_files:
            self.root.date_file(as_of, name).unlink(missing_ok=True)
        if reconcile_collections(collections, scan):
            self.write_model(self.root.date_file(as_of, COLLECTIONS), collections, sync_dir=False)
        manifest = build_manifest(as_of, scan, collections)
        metadata = build_metadata(as_of, scan, collections, manifest)
        self.write_model(self.root.date_file(as_of, MANIFEST), manifest, sync_dir=False)
        self.write_model(self.root.date_file(as_of, METADATA), metadata, sync_dir=False)
        # One fsync makes every rename in the date's directory durable (the district files and
        # collections its callers wrote under the same lock too), before the pointer names it.
        if self.durable:
            fsync_dir(self.root.date_dir(as_of))
        self._advance_pointer(as_of, metadata.status)
        return metadata

    def _advance_pointer(self, as_of: dt.date, status: DateStatus) -> None:
        if status not in POINTER_STATUSES:
            return
        with self.pointer_lock():
            for stale in self.root.temp_files():
                stale.unlink(missing_ok=True)
            current = read_json_model(self.root.pointer, LatestPointer)
            if current is None:
                # Missing or damaged: what the dates on disk say is the floor, not nothing.
                newest = newest_successful_on_disk(self.root)
                if newest is not None and newest[0] > as_of:
                    current = LatestPointer(as_of_date=newest[0], status=newest[1])
                    self.write_model(self.root.pointer, current)
                    return
            if current is not None and current.as_of_date > as_of:
                return
            if current is not None and current.as_of_date == as_of and current.status == status:
                return
            self.write_model(self.root.pointer, LatestPointer(as_of_date=as_of, status=status))

    def write_model(self, path: Path, model, *, sync_dir: bool = True) -> None:
        """Atomically write a stored model as indented camelCase JSON (callers hold the lock;
        `sync_dir=False` when `_rebuild_locked` syncs the directory next)."""
        atomic_write_bytes(
            path, model.model_dump_json(indent=2).encode(), durable=self.durable, sync_dir=sync_dir
        )


def newest_successful_on_disk(root: DataRoot) -> tuple[dt.date, DateStatus] | None:
    """The newest date whose manifest says `success` or `partial`, read from the dates on disk."""
    for as_of in reversed(root.dates()):
        manifest = read_json_model(root.date_file(as_of, MANIFEST), Manifest)
        if manifest is not None and manifest.status in POINTER_STATUSES:
            return as_of, manifest.status
    return None


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def _with_ids(error: DistrictError, context: WriteContext) -> DistrictError:
    if error.run_id is not None and error.backfill_id is not None:
        return error
    return error.model_copy(
        update={
            "run_id": error.run_id or context.run_id,
            "backfill_id": error.backfill_id or context.backfill_id,
        }
    )
