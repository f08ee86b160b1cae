"""Gaps with causes: every (date, district) in scope with what the store holds for it and why, and
which cells a heal would collect again. Read from manifests and metadata only; no Dagster."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..dataroot import MANIFEST, METADATA
from ..district_ids import normalise_district_id, sort_district_ids
from ..names import district_key
from ..scope import DistrictConfig
from ..snapshots.models import (
    AttemptError,
    DistrictError,
    Manifest,
    ManifestEntry,
    Metadata,
    SummaryError,
    counted_attempts,
)
from ..snapshots.store import PerDistrictFileSnapshotStore

CellState = Literal[
    "detailed",
    "summary",
    "unavailable-final",
    "unavailable-pending",
    "failed-transient",
    "failed-permanent",
    "missing",
]
STATES: tuple[CellState, ...] = get_args(CellState)

# A cell that failed this many times for transient reasons is not re-executed automatically any
# more: a report that is always an HTML page must end failed, not be asked for ever.
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Cell:
    """One (date, district): its state, and for failures the last error and the attempts."""

    as_of: dt.date
    district: str
    state: CellState
    attempts: int = 0
    last_error: AttemptError | None = None
    # A detail attempt that failed on a cell whose summary-level data was kept.
    detail_wanted: bool = False
    # The detail of the cell's file, when it has one.
    detail: str | None = None
    # When the store last heard about the cell (its file written, or its date's last change).
    seen_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        """The cell's `date|district` partition key."""
        return district_key(self.as_of, self.district)

    @property
    def retry_not_before(self) -> dt.datetime | None:
        """When the dashboard asked us to come back, if it did."""
        return self.last_error.retry_not_before if self.last_error is not None else None

    def healable(self, *, include_missing: bool = True) -> bool:
        """True when collecting the cell again may give more than it holds now."""
        if self.state in ("failed-transient", "unavailable-pending"):
            return True
        if self.state == "summary":
            return self.detail_wanted
        return include_missing and self.state == "missing"

    def to_dict(self) -> dict:
        """JSON form for the CLI and the API."""
        out: dict = {"asOf": self.as_of.isoformat(), "district": self.district, "state": self.state}
        if self.detail is not None:
            out["detail"] = self.detail
        if self.attempts:
            out["attempts"] = self.attempts
        if self.last_error is not None:
            e = self.last_error
            out["lastError"] = {
                "class": e.error_class,
                "message": e.message,
                "retryable": e.retryable,
                "at": e.timestamp.isoformat(),
                "report": getattr(e, "report", None) or "districtsummary",
                "runId": e.run_id,
                "backfillId": e.backfill_id,
            }
            if e.retry_not_before is not None:
                out["retryNotBefore"] = e.retry_not_before.isoformat()
        return out


@dataclass
class Gaps:
    """Every cell of a range of dates x districts, with totals per state."""

    start: dt.date
    end: dt.date
    districts: list[str]
    cells: list[Cell] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Cells per state, every state listed."""
        counts = Counter(c.state for c in self.cells)
        return {state: counts.get(state, 0) for state in STATES}

    def healable(self, *, include_missing: bool = True) -> list[Cell]:
        """The cells a heal would collect again."""
        return [c for c in self.cells if c.healable(include_missing=include_missing)]

    def to_dict(self, *, states: Iterable[str] | None = None) -> dict:
        """JSON form: range, districts, totals, and the cells (those in `states` when given)."""
        wanted = set(states) if states is not None else None
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "districts": self.districts,
            "totals": self.totals(),
            "healable": len(self.healable()),
            "cells": [c.to_dict() for c in self.cells if wanted is None or c.state in wanted],
        }


def find_gaps(
    store: PerDistrictFileSnapshotStore,
    start: dt.date,
    end: dt.date,
    districts: Iterable[str] | None = None,
) -> Gaps:
    """Every (date, district) from `start` to `end`: the districts given, else the configured
    ones, else every district the collected summaries list."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    dates = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    if districts is not None:
        wanted = sort_district_ids({normalise_district_id(d) for d in districts})
    else:
        wanted = DistrictConfig(store.root).list() or (store.listed_districts(dates) or [])
    gaps = Gaps(start=start, end=end, districts=wanted)
    for as_of in dates:
        gaps.cells.extend(_DATES.cells(store, as_of, tuple(wanted)))
    return gaps


class _DateCellsCache:
    """A date's cells, read again only when its manifest or metadata file changed (by inode,
    mtime and size: every write replaces them by a rename). The API's console asks for the same
    year over and over; reading and validating its 732 files is most of an answer's time."""

    def __init__(self, most: int = 4096) -> None:
        self.most = most
        self._entries: OrderedDict[tuple, tuple[tuple, tuple[Cell, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def cells(
        self, store: PerDistrictFileSnapshotStore, as_of: dt.date, wanted: tuple[str, ...]
    ) -> tuple[Cell, ...]:
        """The cells of `as_of` for `wanted`, from the cache when both files are unchanged."""
        manifest_path = store.root.date_file(as_of, MANIFEST)
        signature = (_stat(manifest_path), _stat(store.root.date_file(as_of, METADATA)))
        key = (str(manifest_path), wanted)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == signature:
                self._entries.move_to_end(key)
                return hit[1]
        manifest = store.read_manifest(as_of) if signature[0] is not None else None
        metadata = store.read_metadata(as_of) if manifest is not None else None
        cells = tuple(_date_cells(as_of, list(wanted), manifest, metadata))
        with self._lock:
            # Stamped with the signature taken before reading: a write in between is seen next time.
            self._entries[key] = (signature, cells)
            self._entries.move_to_end(key)
            while len(self._entries) > self.most:
                self._entries.popitem(last=False)
        return cells


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


_DATES = _DateCellsCache()


def _date_cells(
    as_of: dt.date, districts: list[str], manifest: Manifest | None, metadata: Metadata | None
) -> Iterable[Cell]:
    if manifest is None:
        for d in districts:
            yield Cell(as_of, d, "missing")
        return
    entries = {e.district_id: e for e in manifest.districts}
    kept: dict[str, list[DistrictError]] = {}
    for error in metadata.errors_with_data_kept if metadata is not None else []:
        kept.setdefault(error.district, []).append(error)
    summary_errors = manifest.summary_errors
    for d in districts:
        entry = entries.get(d)
        if entry is not None:
            yield _entry_cell(as_of, entry, kept.get(d, []))
        elif manifest.status == "unavailable" and not manifest.districts:
            state: CellState = "unavailable-final" if manifest.unavailable_final else "unavailable-pending"
            yield Cell(as_of, d, state, seen_at=manifest.updated_at)
        elif summary_errors:
            yield _failed(as_of, d, summary_errors)
        else:
            yield Cell(as_of, d, "missing")


def _entry_cell(as_of: dt.date, entry: ManifestEntry, kept: list[DistrictError]) -> Cell:
    d, detail, seen = entry.district_id, entry.detail, entry.collected_at
    if entry.status == "success":
        if detail == "detailed":
            return Cell(as_of, d, "detailed", detail=detail)
        if kept:
            attempts = counted_attempts(kept)
            wanted = kept[-1].retryable and attempts < MAX_ATTEMPTS
            return Cell(as_of, d, "summary", attempts, kept[-1], detail_wanted=wanted, detail=detail)
        return Cell(as_of, d, "summary", detail=detail)
    if entry.status == "unavailable":
        state: CellState = "unavailable-final" if entry.unavailable_final else "unavailable-pending"
        return Cell(as_of, d, state, detail=detail, seen_at=seen)
    attempts = entry.attempts
    error = entry.last_error
    permanent = error is None or not error.retryable or attempts >= MAX_ATTEMPTS
    state = "failed-permanent" if permanent else "failed-transient"
    return Cell(as_of, d, state, attempts, error, detail=detail, seen_at=seen)


def _failed(as_of: dt.date, district: str, errors: list[SummaryError]) -> Cell:
    last = errors[-1]
    attempts = counted_attempts(errors)
    permanent = not last.retryable or attempts >= MAX_ATTEMPTS
    state: CellState = "failed-permanent" if permanent else "failed-transient"
    return Cell(as_of, district, state, attempts, last, seen_at=last.timestamp)


@dataclass(frozen=True)
class HealPartitions:
    """What re-collects a set of cells: the dates whose summary is needed, the cells in detail."""

    summary: list[str]
    districts: list[str]


def heal_partitions(cells: Iterable[Cell]) -> HealPartitions:
    """The partitions to run for `cells`: a cell with detailed attempts is collected in detail;
    every other one comes from its date's summary."""
    summary: set[str] = set()
    detail: set[str] = set()
    for cell in cells:
        detailed_cell = cell.detail_wanted or (
            cell.detail == "detailed"
            and cell.state in ("failed-transient", "failed-permanent", "unavailable-pending")
        )
        if detailed_cell:
            detail.add(cell.key)
        else:
            summary.add(cell.as_of.isoformat())
    return HealPartitions(summary=sorted(summary), districts=sorted(detail))
