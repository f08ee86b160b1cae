"""Which gaps heal themselves, and in which runs: the choice the heal sensor makes, without Dagster.

A cell is healed automatically when it failed for transient reasons (fewer than MAX_ATTEMPTS
times, its Retry-After passed, its last failure old enough that the run's own retries are over),
or when "not published" is still pending and was last asked a day ago. Cells never collected
are not: that is a backfill's decision, not the sensor's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..snapshots.models import Manifest
from ..snapshots.store import PerDistrictFileSnapshotStore
from .gaps import MAX_ATTEMPTS, Cell, find_gaps, heal_partitions

# The asset's RetryPolicy retries 3 times, after 1, 2 and 4 times its delay (plus jitter): a cell is
# left to those retries for this many delays after it failed.
SETTLE_DELAYS = 8
# A pending "not published" is asked again once a day (a little early, so a daily tick is not missed).
PENDING_RECHECK_AFTER = dt.timedelta(hours=20)
# Runs requested per evaluation: the queue and the pool pace them; this only bounds a burst.
MAX_BATCHES = 10


@dataclass(frozen=True)
class HealBatch:
    """One run: a date's summary, or a contiguous block of a date's districts in detail."""

    asset: Literal["summary", "district"]
    as_of: dt.date
    districts: tuple[str, ...]
    # Changes with every new attempt at the batch's cells, so each attempt's run key is new.
    signature: str

    @property
    def run_key(self) -> str:
        """Unique per (cells, attempt): Dagster drops a request whose run key was used."""
        block = f"-{self.districts[0]}-{self.districts[-1]}" if self.districts else ""
        return f"heal-{self.asset}-{self.as_of}{block}-{self.signature}"


def automatic_heal_cells(
    store: PerDistrictFileSnapshotStore,
    *,
    now: dt.datetime,
    refresh_window_start: dt.date,
    retry_delay: float,
) -> list[Cell]:
    """The cells the heal sensor re-executes now (see the module's docstring); dates from
    `refresh_window_start` on are the daily refresh's; `retry_delay` is the assets' step retry delay."""
    settle = dt.timedelta(seconds=SETTLE_DELAYS * retry_delay)
    cells: list[Cell] = []
    for as_of in store.root.dates():
        manifest = store.read_manifest(as_of)
        if manifest is None or _nothing_to_heal(store, manifest):
            continue
        for cell in find_gaps(store, as_of, as_of).cells:
            if _due(cell, now, refresh_window_start, settle):
                cells.append(cell)
    return cells


def unrecorded_failures(
    store: PerDistrictFileSnapshotStore, failed: dict[str, int], *, district_keys: bool
) -> list[Cell]:
    """Keys Dagster saw fail for transient reasons (`failed`: key -> failed runs naming it) whose
    failure the store could not record (a full disk), and which it does not hold as done now:
    they heal like the recorded ones, as many times."""
    cells = []
    for key, failures in sorted(failed.items()):
        if failures >= MAX_ATTEMPTS:
            continue
        day, _, district = key.partition("|")
        as_of = dt.date.fromisoformat(day)
        if district_keys:
            [cell] = find_gaps(store, as_of, as_of, [district]).cells
            if cell.last_error is not None or cell.state not in ("summary", "missing"):
                continue  # recorded (the store's path decides), or settled since
            cells.append(Cell(as_of, cell.district, "failed-transient", failures, detail="detailed"))
        else:
            manifest = store.read_manifest(as_of)
            if manifest is not None and (manifest.summary_errors or manifest.status != "failed"):
                continue
            # A summary key is a date, not a cell: no district, collected from the date's summary.
            cells.append(Cell(as_of, "", "failed-transient", failures))
    return cells


def _nothing_to_heal(store: PerDistrictFileSnapshotStore, manifest: Manifest) -> bool:
    # The common case, decided from the manifest (and the metadata's kept errors) alone.
    if manifest.status in ("unavailable", "failed") or manifest.summary_errors:
        return manifest.status == "unavailable" and manifest.unavailable_final and not manifest.districts
    settled = all(
        e.status == "success" or (e.status == "unavailable" and e.unavailable_final)
        for e in manifest.districts
    )
    if not settled:
        return False
    metadata = store.read_metadata(manifest.as_of_date)
    return metadata is not None and not metadata.errors_with_data_kept


def _due(cell: Cell, now: dt.datetime, refresh_window_start: dt.date, settle: dt.timedelta) -> bool:
    if cell.state == "unavailable-pending":
        seen = cell.seen_at or now
        return cell.as_of < refresh_window_start and now - seen >= PENDING_RECHECK_AFTER
    if not cell.healable(include_missing=False):
        return False
    not_before = cell.retry_not_before
    if not_before is not None and not_before > now:
        return False
    failed_at = cell.last_error.timestamp if cell.last_error is not None else cell.seen_at
    return failed_at is None or now - failed_at >= settle


def heal_batches(cells: Iterable[Cell], district_order: list[str]) -> list[HealBatch]:
    """The runs that re-collect `cells`: one per date for summaries, one per contiguous block of a
    date's districts (in the `districts` partitions' order) for details, oldest date first."""
    cells = list(cells)
    parts = heal_partitions(cells)
    by_key = {c.key: c for c in cells}
    by_date: dict[str, list[Cell]] = {}
    for cell in cells:
        by_date.setdefault(cell.as_of.isoformat(), []).append(cell)
    batches = [
        HealBatch("summary", dt.date.fromisoformat(day), (), _signature(by_date[day]))
        for day in parts.summary
    ]
    position = {d: i for i, d in enumerate(district_order)}
    detail_by_date: dict[str, list[str]] = {}
    for key in parts.districts:
        day, _, district = key.partition("|")
        if district in position:  # a district no longer in the partitions cannot be run
            detail_by_date.setdefault(day, []).append(district)
    for day, districts in sorted(detail_by_date.items()):
        for block in _blocks(sorted(districts, key=position.__getitem__), position):
            block_cells = [by_key[f"{day}|{d}"] for d in block]
            batches.append(
                HealBatch("district", dt.date.fromisoformat(day), tuple(block), _signature(block_cells))
            )
    return sorted(batches, key=lambda b: (b.as_of, b.asset != "summary"))


def _blocks(districts: list[str], position: dict[str, int]) -> list[list[str]]:
    blocks: list[list[str]] = []
    for d in districts:
        if blocks and position[d] == position[blocks[-1][-1]] + 1:
            blocks[-1].append(d)
        else:
            blocks.append([d])
    return blocks


def _signature(cells: Iterable[Cell]) -> str:
    parts = []
    for c in sorted(cells, key=lambda c: c.key):
        when = c.last_error.timestamp if c.last_error is not None else c.seen_at
        parts.append(f"{c.key}@{when.isoformat() if when else ''}#{c.attempts}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
