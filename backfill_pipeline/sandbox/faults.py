"""Fault injection rules for export requests, drawn from a seeded generator the server owns."""

from __future__ import annotations

import datetime as dt
import random
import threading
from dataclasses import dataclass, field

KINDS = (
    "error",
    "429",
    "latency",
    "truncate",
    "html",
    "wrong_as_of",
    "reset",
    "redirect",
    "drip",
    "huge",
    "wrong_report",
)
# Kinds that answer instead of the dashboard; the first one that fires wins.
TERMINAL = ("reset", "error", "429", "html", "redirect", "huge", "wrong_report")
# Bounds of the slow and the big answers: enough to test any client, not to hurt the machine.
MAX_SIZE_MB = 4096.0
MAX_BYTES_PER_SECOND = 100_000_000

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
    "location",
    "bytesPerSecond",
    "sizeMb",
    "chunked",
    "contentType",
}
_DEFAULT_STATUS = {"error": 500, "redirect": 302}


@dataclass
class FaultRule:
    """One rule: what to do, how often, to which requests, how many times."""

    kind: str
    rate: float = 1.0
    status: int = 500
    retry_after: int | str | None = None
    latency_ms: int = 0
    report: str | None = None
    district: str | None = None
    as_of: dt.date | None = None
    times: int | None = None
    incomplete: bool = False
    location: str = "/maintenance.aspx"
    bytes_per_second: int = 1024
    size_mb: float = 100.0
    chunked: bool = False
    content_type: str | None = None

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
                status=_int(raw.get("status", _DEFAULT_STATUS.get(kind, 500)), "status"),
                retry_after=_retry_after(raw["retryAfter"]) if "retryAfter" in raw else None,
                latency_ms=int(raw.get("latencyMs", 0)),
                report=str(raw["report"]) if raw.get("report") is not None else None,
                district=str(raw["district"]) if raw.get("district") is not None else None,
                as_of=dt.date.fromisoformat(raw["asOf"]) if raw.get("asOf") else None,
                times=int(raw["times"]) if raw.get("times") is not None else None,
                incomplete=_bool(raw.get("incomplete", False), "incomplete"),
                location=_location(raw.get("location", "/maintenance.aspx")),
                bytes_per_second=_int(raw.get("bytesPerSecond", 1024), "bytesPerSecond"),
                size_mb=_number(raw.get("sizeMb", 100.0), "sizeMb"),
                chunked=_bool(raw.get("chunked", False), "chunked"),
                content_type=_header(raw["contentType"], "contentType") if "contentType" in raw else None,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault rule {raw!r}: {exc}") from None
        if not 0.0 <= rule.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {rule.rate}")
        if kind == "error" and not 400 <= rule.status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {rule.status}")
        if kind == "redirect" and not 300 <= rule.status <= 399:
            raise ValueError(f"redirect status must be 3xx, got {rule.status}")
        if not 1 <= rule.bytes_per_second <= MAX_BYTES_PER_SECOND:
            raise ValueError(
                f"bytesPerSecond must be within 1..{MAX_BYTES_PER_SECOND}, got {rule.bytes_per_second}"
            )
        if not 0 < rule.size_mb <= MAX_SIZE_MB:
            raise ValueError(f"sizeMb must be above 0 and at most {MAX_SIZE_MB:g}, got {rule.size_mb}")
        if rule.latency_ms < 0:
            raise ValueError("latencyMs must not be negative")
        if rule.times is not None and rule.times < 1:
            raise ValueError(f"times must be at least 1, got {rule.times}")
        return rule

    def to_dict(self) -> dict:
        """The JSON form, with the remaining `times`."""
        out: dict = {"kind": self.kind, "rate": self.rate}
        if self.kind == "error":
            out["status"] = self.status
        if self.kind == "429":
            out["retryAfter"] = self.retry_after_header
        if self.kind == "error" and self.retry_after is not None:
            out["retryAfter"] = self.retry_after
        if self.kind == "html" and self.content_type is not None:
            out["contentType"] = self.content_type
        if self.kind == "latency":
            out["latencyMs"] = self.latency_ms
        if self.kind == "truncate":
            out["incomplete"] = self.incomplete
        if self.kind == "redirect":
            out["status"] = self.status
            out["location"] = self.location
        if self.kind == "drip":
            out["bytesPerSecond"] = self.bytes_per_second
        if self.kind == "huge":
            out["sizeMb"] = self.size_mb
            out["chunked"] = self.chunked
        for key, value in (
            ("report", self.report),
            ("district", self.district),
            ("asOf", self.as_of.isoformat() if self.as_of else None),
            ("times", self.times),
        ):
            if value is not None:
                out[key] = value
        return out

    @property
    def retry_after_header(self) -> str:
        """The Retry-After a 429 sends: the rule's, else 1 second."""
        return str(self.retry_after if self.retry_after is not None else 1)

    def matches(self, report: str | None, district: str | None, as_of: dt.date | None) -> bool:
        """True when the request passes the rule's filters."""
        return (
            (self.report is None or self.report == report)
            and (self.district is None or self.district == district)
            and (self.as_of is None or self.as_of == as_of)
        )


def _int(value: object, name: str) -> int:
    # Strict: JSON numbers that are whole, or digit strings; never a bool or a fraction cut down.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit()):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def _bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _retry_after(value: object) -> int | str:
    # Seconds (a whole number, not negative), or any header text to send as it is (an HTTP-date,
    # `-5`, `1.5`, `²`): the client under test must cope with every form.
    if isinstance(value, str):
        return _header(value, "retryAfter")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"retryAfter must be whole seconds, not negative, or header text; got {value!r}")
    return value


def _header(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError(f"{name} must be text of at most 200 characters, got {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be Latin-1 text (an HTTP header), got {value!r}") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError(f"{name} must hold no control characters, got {value!r}")
    return value


def _location(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise ValueError(f"location must be a URL or path of 1..2000 characters, got {value!r}")
    if not value.isascii() or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError(f"location must be printable ASCII, got {value!r}")
    return value


def as_rule(rule: FaultRule | dict) -> FaultRule:
    """Accept a rule or its JSON form."""
    return rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule)


@dataclass
class FaultPlan:
    """The faults that fire for one request."""

    latency_ms: int = 0
    terminal: FaultRule | None = None
    truncate: FaultRule | None = None
    drip: FaultRule | None = None
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
                elif rule.kind == "drip":
                    plan.drip = plan.drip or rule
                elif rule.kind == "wrong_as_of":
                    plan.wrong_as_of = True
                else:
                    plan.terminal = rule
                    break
        return plan
