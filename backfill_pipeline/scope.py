"""District configuration (config/districts.json + change log) and scope resolution (R2, R7)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from filelock import FileLock
from pydantic import ValidationError

from .dashboard.districts import InvalidDistrictId, normalise_district_id, sort_district_ids
from .snapshots.atomic import atomic_write_bytes
from .snapshots.models import DistrictConfigChange, DistrictConfigFile

log = logging.getLogger(__name__)

OutOfScopeReason = Literal["invalid", "not-configured", "not-on-dashboard"]
ScopeKind = Literal["system-wide", "targeted", "single-district"]


class DistrictConfigError(RuntimeError):
    """The configuration file exists but cannot be read."""


def normalise_ids(raw_ids: Iterable[str]) -> list[str]:
    """Normalise every id or raise InvalidDistrictId naming all the bad ones (nothing half-done)."""
    good, bad = [], []
    for raw in raw_ids:
        try:
            good.append(normalise_district_id(raw))
        except InvalidDistrictId:
            bad.append(raw)
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        raise InvalidDistrictId(
            f"invalid district id(s) {listed}: expected digits (like 42 or 09) or one letter (F, U)"
        )
    return sort_district_ids(good)


class DistrictConfiguration:
    """The configured districts under `<root>/config/`; an empty set means every district."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.dir = self.root / "config"
        self.path = self.dir / "districts.json"
        self.log_path = self.dir / "districts.log.jsonl"

    def list(self) -> list[str]:
        """The configured district ids, ordered; [] when none are configured."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return sort_district_ids(DistrictConfigFile.model_validate_json(data).districts)
        except (ValidationError, ValueError) as exc:
            raise DistrictConfigError(f"{self.path} is not a valid district configuration") from exc

    def add(self, ids: Iterable[str]) -> list[str]:
        """Add districts; returns the resulting configuration."""
        wanted = normalise_ids(ids)
        return self._change("add", wanted, lambda current: set(current) | set(wanted))

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Remove districts (unconfigured ids are ignored); returns the resulting configuration."""
        wanted = normalise_ids(ids)
        return self._change("remove", wanted, lambda current: set(current) - set(wanted))

    def set(self, ids: Iterable[str]) -> list[str]:
        """Replace the configuration; an empty list means every available district."""
        wanted = normalise_ids(ids)
        return self._change("set", wanted, lambda current: set(wanted))

    def changes(self) -> list[DistrictConfigChange]:
        """The change log, oldest first (a torn last line from a crash is skipped)."""
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                found.append(DistrictConfigChange.model_validate_json(line))
            except (ValidationError, ValueError):
                continue
        return found

    def _change(self, action: str, ids: list[str], apply) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.dir / ".districts.lock"):
            resulting = sort_district_ids(apply(self.list()))
            config = DistrictConfigFile(districts=resulting)
            atomic_write_bytes(self.path, config.model_dump_json(indent=2).encode())
            change = DistrictConfigChange(action=action, ids=ids, resulting=resulting)
            # Appended after the file is replaced: the log never claims a change not made.
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(change.model_dump_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
        log.info("districts %s %s -> %s", action, ids, resulting or "(all available)")
        return resulting


@dataclass(frozen=True)
class OutOfScope:
    """A requested (or configured) id left out of the scope, and why."""

    id: str
    reason: OutOfScopeReason
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form: id, reason, message."""
        return {"id": self.id, "reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class ScopeResolution:
    """The districts to collect and those left out, each with a reason."""

    in_scope: list[str]
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    # True when nothing was requested or configured: every district the dashboard lists.
    all_available: bool = False
    # True when all_available but the dashboard's list for that date is not known yet.
    pending_discovery: bool = False
    kind: ScopeKind = "system-wide"

    def to_dict(self) -> dict:
        """JSON-ready form, camelCase like every other JSON of the project."""
        return {
            "inScope": list(self.in_scope),
            "outOfScope": [o.to_dict() for o in self.out_of_scope],
            "allAvailable": self.all_available,
            "pendingDiscovery": self.pending_discovery,
            "kind": self.kind,
        }


def resolve_scope(
    requested: list[str] | None, configured: list[str], available: list[str] | None
) -> ScopeResolution:
    """In-scope and out-of-scope districts from requested targets, configuration and dashboard."""
    configured_ids = _valid_only(configured, "configured")
    available_ids = None if available is None else set(_valid_only(available, "available"))
    out: list[OutOfScope] = []

    def not_on_dashboard(district: str) -> bool:
        if available_ids is None or district in available_ids:
            return False
        out.append(
            OutOfScope(
                district,
                "not-on-dashboard",
                f"district {district} is not on the dashboard that date",
            )
        )
        return True

    if not requested:
        if configured_ids:
            in_scope = [d for d in configured_ids if not not_on_dashboard(d)]
            resolution = ScopeResolution(in_scope, out, kind="system-wide")
        else:
            in_scope = sort_district_ids(available_ids or ())
            resolution = ScopeResolution(
                in_scope,
                out,
                all_available=True,
                pending_discovery=available_ids is None,
                kind="system-wide",
            )
        _log(resolution)
        return resolution

    in_scope: list[str] = []
    for raw in requested:
        try:
            district = normalise_district_id(raw)
        except InvalidDistrictId as exc:
            out.append(OutOfScope(str(raw), "invalid", str(exc)))
            continue
        if district in in_scope or any(o.id == district for o in out):
            continue
        if configured_ids and district not in configured_ids:
            out.append(
                OutOfScope(
                    district,
                    "not-configured",
                    f"district {district} is not among the configured districts",
                )
            )
            continue
        if not not_on_dashboard(district):
            in_scope.append(district)
    in_scope = sort_district_ids(in_scope)
    kind: ScopeKind = "single-district" if len(in_scope) == 1 else "targeted"
    resolution = ScopeResolution(in_scope, out, kind=kind)
    _log(resolution)
    return resolution


def _valid_only(ids: Iterable[str], what: str) -> list[str]:
    kept = []
    for raw in ids:
        try:
            kept.append(normalise_district_id(raw))
        except InvalidDistrictId:
            log.warning("ignoring invalid %s district id %r", what, raw)
    return sort_district_ids(kept)


def _log(resolution: ScopeResolution) -> None:
    for item in resolution.out_of_scope:
        log.warning("district %r out of scope (%s): %s", item.id, item.reason, item.message)
