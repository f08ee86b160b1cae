"""The raw cache: every downloaded CSV stored content-addressed, and an index of fetches answered."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..dataroot import DataRoot
from ..files import atomic_write_bytes
from .calendar import unavailable_on_evidence

# Observations of "not published" kept per fetch: two suffice as evidence.
MAX_SEEN = 8


@dataclass(frozen=True)
class CachedAnswer:
    """A fetch already answered: which URL gave the accepted CSV, or that the date is unavailable."""

    report: str
    district: str | None
    as_of: str
    available: bool
    url: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    fetched_at: str | None = None
    # For an unavailable answer: when it was seen (UTC ISO times), the evidence that it is final.
    seen: list[str] = field(default_factory=list)

    def seen_times(self) -> list[dt.datetime]:
        """The observations of "not published" (an old entry counts its fetch time once)."""
        times = self.seen or ([self.fetched_at] if self.fetched_at else [])
        out = []
        for text in times:
            try:
                when = dt.datetime.fromisoformat(text)
            except (TypeError, ValueError):
                continue
            out.append(when if when.tzinfo else when.replace(tzinfo=dt.UTC))
        return out

    def unavailable_final(self) -> bool:
        """True for an unavailable answer with the evidence that it is final."""
        as_of = dt.date.fromisoformat(self.as_of)
        return not self.available and unavailable_on_evidence(as_of, self.seen_times())


class RawCache:
    """`<root>/raw/<sha[:2]>/<sha>.csv` with a `.json` sidecar, plus `<root>/raw/index/` answers."""

    def __init__(self, root: DataRoot | Path | str) -> None:
        self.root = DataRoot.of(root)

    def put(self, body: bytes, *, url: str, as_of: dt.date) -> str:
        """Store a downloaded body and its sidecar; returns the sha256."""
        sha = hashlib.sha256(body).hexdigest()
        blob = self.root.raw_blob(sha)
        if self.read(sha) is None:  # missing, or damaged: this download repairs it
            atomic_write_bytes(blob, body)
        sidecar = {
            "url": url,
            "asOf": as_of.isoformat(),
            "fetchedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": sha,
            "bytes": len(body),
        }
        atomic_write_bytes(self.root.raw_sidecar(sha), json.dumps(sidecar, indent=2).encode())
        return sha

    def read(self, sha256: str) -> bytes | None:
        """The stored body, or None when missing or corrupt (its digest no longer matches)."""
        try:
            body = self.root.raw_blob(sha256).read_bytes()
        except (FileNotFoundError, ValueError):  # ValueError: not a digest (a damaged answer)
            return None
        return body if hashlib.sha256(body).hexdigest() == sha256 else None

    def lookup(self, report: str, district: str | None, as_of: dt.date) -> CachedAnswer | None:
        """The remembered answer for this fetch, if any."""
        try:
            data = json.loads(self.root.raw_answer(report, district, as_of).read_text())
            answer = CachedAnswer(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return answer if isinstance(answer.seen, list) else replace(answer, seen=[])

    def forget(self, report: str, district: str | None, as_of: dt.date) -> None:
        """Drop a remembered answer (the blob stays: other answers may share it)."""
        self.root.raw_answer(report, district, as_of).unlink(missing_ok=True)

    def observe_unavailable(
        self, report: str, district: str | None, as_of: dt.date, *, now: dt.datetime | None = None
    ) -> CachedAnswer:
        """Add one "not published" observation to the fetch's answer; returns the answer."""
        when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        old = self.lookup(report, district, as_of)
        seen = [] if old is None or old.available else [t.isoformat() for t in old.seen_times()]
        answer = CachedAnswer(
            report=report,
            district=district,
            as_of=as_of.isoformat(),
            available=False,
            fetched_at=when,
            seen=[*seen, when][-MAX_SEEN:],
        )
        self.remember(answer)
        return answer

    def remember(self, answer: CachedAnswer) -> None:
        """Remember an answer so the same fetch costs no request next time."""
        path = self.root.raw_answer(answer.report, answer.district, dt.date.fromisoformat(answer.as_of))
        atomic_write_bytes(path, json.dumps(asdict(answer), indent=2).encode())
