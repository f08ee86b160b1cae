"""Gaps with causes: every (date, district) in scope with what the store holds for it and why, and
which cells a heal would collect again. Read from manifests and metadata only; no Dagster."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from ..dataroot import MANIFEST, METADATA
from ..district_ids import normalise_district_id, sort_district_ids
from ..files import fingerprint
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
    # What the cells were read from: equal only while no date of the range was written to.
    version: tuple = ()

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
    views = [_DATES.view(store, as_of) for as_of in dates]
    for view in views:
        gaps.cells.extend(view.cell(d) for d in wanted)
    gaps.version = (str(store.root.path), start, end, tuple(wanted), tuple(v.signature for v in views))
    return gaps


@dataclass(frozen=True)
class _DateView:
    """What a date's manifest and metadata say of its cells: the districts it has, and the one
    state of every district it does not have."""

    as_of: dt.date
    known: dict[str, Cell]
    manifest: Manifest | None
    signature: tuple = ()

    def cell(self, district: str) -> Cell:
        """The district's cell on this date."""
        known = self.known.get(district)
        if known is not None:
            return known
        manifest, as_of = self.manifest, self.as_of
        if manifest is None:
            return Cell(as_of, district, "missing")
        if manifest.status == "unavailable" and not manifest.districts:
            state: CellState = "unavailable-final" if manifest.unavailable_final else "unavailable-pending"
            return Cell(as_of, district, state, seen_at=manifest.updated_at)
        if manifest.summary_errors:
            return _failed(as_of, district, manifest.summary_errors)
        return Cell(as_of, district, "missing")


def _date_view(as_of: dt.date, manifest: Manifest | None, metadata: Metadata | None) -> _DateView:
    if manifest is None:
        return _DateView(as_of, {}, None)
    kept: dict[str, list[DistrictError]] = {}
    for error in metadata.errors_with_data_kept if metadata is not None else []:
        kept.setdefault(error.district, []).append(error)
    known = {e.district_id: _entry_cell(as_of, e, kept.get(e.district_id, [])) for e in manifest.districts}
    return _DateView(as_of, known, manifest)


class _DateCellsCache:
    """Each date's view, read again only when its manifest or metadata file changed (every write
    replaces them by a rename, so their fingerprints change). The API's console asks for the same
    year over and over; reading and validating its 732 files is most of an answer's time. Bounded
    by the cells it holds, whatever districts each caller asks for."""

    def __init__(self, most_cells: int = 250_000) -> None:
        self.most_cells = most_cells
        self._views: OrderedDict[str, tuple[tuple, _DateView]] = OrderedDict()
        self._cells = 0
        self._lock = threading.Lock()

    def view(self, store: PerDistrictFileSnapshotStore, as_of: dt.date) -> _DateView:
        """The date's view, read from its files when they changed since last time."""
        manifest_path = store.root.date_file(as_of, MANIFEST)
        signature = (_fingerprint(manifest_path), _fingerprint(store.root.date_file(as_of, METADATA)))
        key = str(manifest_path)
        with self._lock:
            hit = self._views.get(key)
            if hit is not None and hit[0] == signature:
                self._views.move_to_end(key)
                return hit[1]
        manifest = store.read_manifest(as_of) if signature[0] is not None else None
        metadata = store.read_metadata(as_of) if manifest is not None else None
        view = replace(_date_view(as_of, manifest, metadata), signature=signature)
        with self._lock:
            # Stamped with the signature taken before reading: a write in between is seen next time.
            old = self._views.pop(key, None)
            if old is not None:
                self._cells -= len(old[1].known)
            self._views[key] = (signature, view)
            self._cells += len(view.known)
            while self._cells > self.most_cells and len(self._views) > 1:
                _, (_, dropped) = self._views.popitem(last=False)
                self._cells -= len(dropped.known)
        return view


def _fingerprint(path: Path) -> str | None:
    try:
        return fingerprint(path)
    except FileNotFoundError:
        return None


_DATES = _DateCellsCache()


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
