"""Readers for the API and UI: a date's snapshot, the dates with status, the coverage matrix."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from pydantic import ValidationError

from ..dataroot import MANIFEST, METADATA, RANKINGS, DataRoot, parse_date_dir
from ..district_ids import sort_district_ids
from ..files import fingerprint
from .models import (
    DateStatus,
    Detail,
    DistrictSnapshot,
    DistrictStatus,
    Manifest,
    ManifestEntry,
    Metadata,
    Rankings,
)
from .rebuild import (
    build_manifest,
    build_metadata,
    entry_for,
    read_collections,
    read_json_model,
    scan_date,
)

CoverageDateStatus = DateStatus | Literal["missing"]


class CoverageCell(TypedDict):
    """One cell of the coverage matrix (a plain dict: the matrix has tens of thousands)."""

    status: DistrictStatus
    detail: Detail


@dataclass
class CoverageMatrix:
    """Date x district -> status and detail; every day of the range, `missing` when none."""

    start: dt.date
    end: dt.date
    dates: list[dt.date]
    districts: list[str]
    date_status: dict[dt.date, CoverageDateStatus] = field(default_factory=dict)
    cells: dict[dt.date, dict[str, CoverageCell]] = field(default_factory=dict)

    def cell(self, as_of: dt.date, district: str) -> CoverageCell | None:
        """The cell of one date and district, or None when that district has no file."""
        return self.cells.get(as_of, {}).get(district)

    def to_dict(self) -> dict:
        """JSON-ready, camelCase, ISO dates."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "dates": [d.isoformat() for d in self.dates],
            "districts": list(self.districts),
            "dateStatus": {d.isoformat(): s for d, s in self.date_status.items()},
            "cells": {d.isoformat(): row for d, row in self.cells.items()},
        }


@dataclass
class DateSnapshot:
    """Everything stored for one as-of date."""

    as_of: dt.date
    metadata: Metadata
    manifest: Manifest
    rankings: Rankings | None = None
    districts: dict[str, DistrictSnapshot] = field(default_factory=dict)


class SnapshotReader:
    """Read-only access to a store; never takes the write locks, never sees temporary files."""

    def __init__(self, root: DataRoot) -> None:
        self.root = root
        self._manifests: dict[dt.date, tuple[str, Manifest]] = {}

    def manifest(self, as_of: dt.date) -> Manifest | None:
        """The stored manifest, parsed once per version of the file."""
        path = self.root.date_file(as_of, MANIFEST)
        try:
            fp = fingerprint(path)
        except FileNotFoundError:
            return None
        cached = self._manifests.get(as_of)
        if cached is not None and cached[0] == fp:
            return cached[1]
        manifest = read_json_model(path, Manifest)
        if manifest is not None:
            self._manifests[as_of] = (fp, manifest)
        return manifest

    def district_entry(self, as_of: dt.date, district: str) -> ManifestEntry | None:
        """A district's manifest entry, re-read from its file when the manifest is behind."""
        path = self.root.district(as_of, district)
        try:
            fp = fingerprint(path)
        except FileNotFoundError:
            return None
        manifest = self.manifest(as_of)
        if manifest is not None:
            for entry in manifest.districts:
                if entry.district_id == district and entry.fingerprint == fp:
                    return entry
        # The manifest is stale (a writer died before rebuilding it): trust the file itself.
        try:
            data = path.read_bytes()
            snapshot = DistrictSnapshot.model_validate_json(data)
        except (FileNotFoundError, ValidationError, ValueError):
            return None
        return entry_for(path.name, data, snapshot, fp)

    def read_district(self, as_of: dt.date, district: str) -> DistrictSnapshot | None:
        """One district file, or None."""
        return read_json_model(self.root.district(as_of, district), DistrictSnapshot)

    def read_snapshot(self, as_of: dt.date, districts: list[str] | None) -> DateSnapshot | None:
        """Metadata, manifest, rankings and district files of a date; None when no directory."""
        if not self.root.date_dir(as_of).is_dir():
            return None
        manifest = self.manifest(as_of)
        metadata = read_json_model(self.root.date_file(as_of, METADATA), Metadata)
        if manifest is None or metadata is None:
            # Not rebuilt yet (a writer died first): compute both in memory, write nothing.
            collections = read_collections(self.root, as_of)
            scan = scan_date(self.root, as_of)
            manifest = build_manifest(as_of, scan, collections)
            metadata = build_metadata(as_of, scan, collections, manifest)
        wanted = [e.district_id for e in manifest.districts] if districts is None else districts
        loaded = {}
        for district in wanted:
            snapshot = self.read_district(as_of, district)
            if snapshot is not None:
                loaded[district] = snapshot
        rankings = read_json_model(self.root.date_file(as_of, RANKINGS), Rankings)
        return DateSnapshot(as_of, metadata, manifest, rankings, loaded)

    def list_dates(self) -> list[tuple[dt.date, DateStatus]]:
        """Every date directory with its status, oldest first."""
        found = []
        for as_of in self.root.dates():
            raw = _load(self.root.date_file(as_of, MANIFEST))
            status = raw.get("status") if raw else None
            if status is None:
                collections = read_collections(self.root, as_of)
                status = build_manifest(as_of, scan_date(self.root, as_of), collections).status
            found.append((as_of, status))
        return found

    def coverage(self, start: dt.date, end: dt.date, districts: list[str] | None) -> CoverageMatrix:
        """The coverage matrix of [start, end] from manifests, without opening district files."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        present = set()
        if self.root.snapshots.is_dir():
            with os.scandir(self.root.snapshots) as entries:
                for entry in entries:
                    d = parse_date_dir(entry.name)
                    if d is not None and start <= d <= end:
                        present.add(d)
        wanted = set(districts) if districts is not None else None
        seen: set[str] = set()
        dates: list[dt.date] = []
        date_status: dict[dt.date, CoverageDateStatus] = {}
        cells: dict[dt.date, dict[str, CoverageCell]] = {}
        day = start
        while day <= end:
            dates.append(day)
            if day not in present:
                date_status[day] = "missing"
            else:
                raw = _load(self.root.date_file(day, MANIFEST))
                row: dict[str, CoverageCell] = {}
                for entry in raw.get("districts", ()) if raw else ():
                    district = entry["districtId"]
                    if wanted is None or district in wanted:
                        row[district] = {"status": entry["status"], "detail": entry["detail"]}
                seen.update(row)
                cells[day] = row
                # A date whose manifest is not written yet counts as failed until rebuilt.
                date_status[day] = raw.get("status", "failed") if raw else "failed"
            day += dt.timedelta(days=1)
        columns = sort_district_ids(seen if districts is None else districts)
        return CoverageMatrix(
            start=start,
            end=end,
            dates=dates,
            districts=columns,
            date_status=date_status,
            cells=cells,
        )


def _load(path) -> dict | None:
    # Plain json on purpose: the coverage matrix reads hundreds of manifests per call.
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None
