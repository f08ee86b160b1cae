"""Scope: which districts a collection covers, and why each other one is left out."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..district_ids import InvalidDistrictId, normalise_district_id, sort_district_ids

log = logging.getLogger(__name__)

OutOfScopeReason = Literal["invalid", "not-configured", "not-on-dashboard"]
ScopeKind = Literal["system-wide", "targeted", "single-district"]


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

    targeted: list[str] = []
    for raw in requested:
        try:
            district = normalise_district_id(raw)
        except InvalidDistrictId as exc:
            out.append(OutOfScope(str(raw), "invalid", str(exc)))
            continue
        if district in targeted or any(o.id == district for o in out):
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
            targeted.append(district)
    kind: ScopeKind = "single-district" if len(targeted) == 1 else "targeted"
    resolution = ScopeResolution(sort_district_ids(targeted), out, kind=kind)
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


def district_partitions_change(
    current: list[str], configured: list[str], listed: list[str] | None
) -> tuple[list[str], list[str]]:
    """(add, remove) that bring the `districts` partitions to the scope.

    Configured districts: exactly those. None configured: every district the dashboard lists,
    added but never removed, so a district that has left the dashboard keeps its history and a
    partition the API added for a past date is not pulled from under a running backfill.
    """
    have = set(current)
    if configured:
        return [d for d in configured if d not in have], [d for d in current if d not in set(configured)]
    return [d for d in (listed or []) if d not in have], []
