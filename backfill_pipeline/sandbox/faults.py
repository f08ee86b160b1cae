"""Fault injection rules for export requests, drawn from a seeded generator the server owns."""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import dataclass, field

KINDS = ("error", "429", "latency", "truncate", "html", "wrong_as_of", "reset")
# Kinds that answer instead of the dashboard; the first one that fires wins.
TERMINAL = ("reset", "error", "429", "html")

_FIELDS = {
    "kind",
    "rate",
    "status",
    "retryAfter",
    "latencyMs",
    "report",
    "district",
    "asOf",
    "times",
    "incomplete",
}


@dataclass
class FaultRule:
    """One rule: what to do, how often, to which requests, how many times."""

    kind: str
    rate: float = 1.0
    status: int = 500
    retry_after: int = 1
    latency_ms: int = 0
    report: str | None = None
    district: str | None = None
    as_of: dt.date | None = None
    times: int | None = None
    incomplete: bool = False

    @classmethod
    def from_dict(cls, raw: dict) -> FaultRule:
        """Build a rule from its JSON form; ValueError names what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError(f"a fault rule is a JSON object, got {type(raw).__name__}")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        kind = str(raw.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {list(KINDS)}, got {raw.get('kind')!r}")
        try:
            rule = cls(
                kind=kind,
                rate=float(raw.get("rate", 1.0)),
                status=int(raw.get("status", 500)),
                retry_after=int(raw.get("retryAfter", 1)),
                latency_ms=int(raw.get("latencyMs", 0)),
                report=str(raw["report"]) if raw.get("report") is not None else None,
                district=str(raw["district"]) if raw.get("district") is not None else None,
                as_of=dt.date.fromisoformat(raw["asOf"]) if raw.get("asOf") else None,
                times=int(raw["times"]) if raw.get("times") is not None else None,
                incomplete=bool(raw.get("incomplete", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault rule {raw!r}: {exc}") from None
        if not 0.0 <= rule.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {rule.rate}")
        if kind == "error" and not 400 <= rule.status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {rule.status}")
        if rule.latency_ms < 0 or rule.retry_after < 0:
            raise ValueError("latencyMs and retryAfter must not be negative")
        if rule.times is not None and rule.times < 1:
            raise ValueError(f"times must be at least 1, got {rule.times}")
        return rule

    def to_dict(self) -> dict:
        """The JSON form, with the remaining `times`."""
        out: dict = {"kind": self.kind, "rate": self.rate}
        if self.kind == "error":
            out["status"] = self.status
        if self.kind == "429":
            out["retryAfter"] = self.retry_after
        if self.kind == "latency":
            out["latencyMs"] = self.latency_ms
        if self.kind == "truncate":
            out["incomplete"] = self.incomplete
        for key, value in (
            ("report", self.report),
            ("district", self.district),
            ("asOf", self.as_of.isoformat() if self.as_of else None),
            ("times", self.times),
        ):
            if value is not None:
                out[key] = value
        return out

    def matches(self, report: str | None, district: str | None, as_of: dt.date | None) -> bool:
        """True when the request passes the rule's filters."""
        return (
            (self.report is None or self.report == report)
            and (self.district is None or self.district == district)
            and (self.as_of is None or self.as_of == as_of)
        )


def as_rule(rule: FaultRule | dict) -> FaultRule:
    """Accept a rule or its JSON form."""
    return rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule)


@dataclass
class FaultPlan:
    """The faults that fire for one request."""

    latency_ms: int = 0
    terminal: FaultRule | None = None
    truncate: FaultRule | None = None
    wrong_as_of: bool = False
    fired: list[str] = field(default_factory=list)


class FaultSet:
    """The server's current rules; thread-safe."""

    def __init__(self, rules=(), seed: int = 42) -> None:
        self._lock = threading.Lock()
        self._rules = [as_rule(r) for r in rules]
        self._rng = random.Random(f"faults-{seed}")

    def replace(self, rules) -> None:
        """Replace every rule."""
        new = [as_rule(r) for r in rules]
        with self._lock:
            self._rules = new

    def append(self, rule) -> None:
        """Add one rule at the end."""
        new = as_rule(rule)
        with self._lock:
            self._rules.append(new)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = []

    def to_list(self) -> list[dict]:
        """The current rules in JSON form."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def draw(self, report: str | None, district: str | None, as_of: dt.date | None) -> FaultPlan:
        """Decide which rules fire for one export request, spending their `times`."""
        plan = FaultPlan()
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(report, district, as_of):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                plan.fired.append(rule.kind)
                if rule.kind == "latency":
                    plan.latency_ms += rule.latency_ms
                elif rule.kind == "truncate":
                    plan.truncate = plan.truncate or rule
                elif rule.kind == "wrong_as_of":
                    plan.wrong_as_of = True
                else:
                    plan.terminal = rule
                    break
        return plan
