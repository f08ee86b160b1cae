"""Where every file of the store lives (DESIGN.md section 4)."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..dashboard.districts import normalise_district_id
from .atomic import is_temp_name

METADATA = "metadata.json"
MANIFEST = "manifest.json"
COLLECTIONS = "collections.json"
RANKINGS = "all-districts-rankings.json"
POINTER = "latest-successful.json"
DATE_FILES = frozenset({METADATA, MANIFEST, COLLECTIONS, RANKINGS})

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DISTRICT_FILE = re.compile(r"^district_([0-9]{1,4}|[A-Z])\.json$")


def district_file_name(district_id: str) -> str:
    """`district_42.json`; the id is validated so it can never escape the directory."""
    if normalise_district_id(district_id) != district_id:
        raise ValueError(f"district id {district_id!r} is not normalised")
    return f"district_{district_id}.json"


def district_id_of(file_name: str) -> str | None:
    """The district id of a district file name, or None for any other name."""
    m = _DISTRICT_FILE.fullmatch(file_name)
    return m.group(1) if m else None


def parse_date_dir(name: str) -> dt.date | None:
    """The as-of date of a snapshot directory name, or None."""
    if not _DATE_DIR.fullmatch(name):
        return None
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class Layout:
    """Paths under one data root."""

    root: Path

    @property
    def snapshots(self) -> Path:
        """`<root>/snapshots`."""
        return self.root / "snapshots"

    @property
    def locks(self) -> Path:
        """Lock files, kept out of the snapshot directories."""
        return self.snapshots / ".locks"

    @property
    def pointer(self) -> Path:
        """`<root>/snapshots/latest-successful.json`."""
        return self.snapshots / POINTER

    def pointer_temp_files(self) -> list[Path]:
        """Temporary files a dead writer of the pointer left behind."""
        prefix = f".{POINTER}"
        if not self.snapshots.is_dir():
            return []
        return [
            self.snapshots / name
            for name in os.listdir(self.snapshots)
            if name.startswith(prefix) and is_temp_name(name)
        ]

    def date_dir(self, as_of: dt.date) -> Path:
        """`<root>/snapshots/YYYY-MM-DD`."""
        return self.snapshots / as_of.isoformat()

    def district(self, as_of: dt.date, district_id: str) -> Path:
        """A district file of a date."""
        return self.date_dir(as_of) / district_file_name(district_id)

    def date_file(self, as_of: dt.date, name: str) -> Path:
        """metadata.json, manifest.json, collections.json or the rankings of a date."""
        return self.date_dir(as_of) / name

    def date_lock(self, as_of: dt.date) -> FileLock:
        """The inter-process lock that serialises every write to one date."""
        self.locks.mkdir(parents=True, exist_ok=True)
        return FileLock(self.locks / f"{as_of.isoformat()}.lock")

    def pointer_lock(self) -> FileLock:
        """The inter-process lock of the latest-successful pointer."""
        self.locks.mkdir(parents=True, exist_ok=True)
        return FileLock(self.locks / "latest-successful.lock")

    def dates(self) -> list[dt.date]:
        """Every as-of date that has a directory, oldest first."""
        if not self.snapshots.is_dir():
            return []
        found = []
        with os.scandir(self.snapshots) as entries:
            for entry in entries:
                d = parse_date_dir(entry.name)
                if d is not None and entry.is_dir():
                    found.append(d)
        return sorted(found)
