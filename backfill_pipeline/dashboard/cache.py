"""The raw cache: every downloaded CSV stored content-addressed, and an index of fetches answered."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..snapshots.atomic import atomic_write_bytes


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


class RawCache:
    """`<root>/raw/<sha[:2]>/<sha>.csv` with a `.json` sidecar, plus `<root>/raw/index/` answers."""

    def __init__(self, root: Path | str) -> None:
        self.dir = Path(root) / "raw"

    def blob_path(self, sha256: str) -> Path:
        """Where the CSV with this digest lives."""
        return self.dir / sha256[:2] / f"{sha256}.csv"

    def put(self, body: bytes, *, url: str, as_of: dt.date) -> str:
        """Store a downloaded body and its sidecar; returns the sha256."""
        sha = hashlib.sha256(body).hexdigest()
        blob = self.blob_path(sha)
        if not blob.exists():
            atomic_write_bytes(blob, body)
        sidecar = {
            "url": url,
            "asOf": as_of.isoformat(),
            "fetchedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": sha,
            "bytes": len(body),
        }
        atomic_write_bytes(blob.with_suffix(".json"), json.dumps(sidecar, indent=2).encode())
        return sha

    def read(self, sha256: str) -> bytes | None:
        """The stored body, or None when missing or corrupt (its digest no longer matches)."""
        try:
            body = self.blob_path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        return body if hashlib.sha256(body).hexdigest() == sha256 else None

    def _answer_path(self, report: str, district: str | None, as_of: dt.date) -> Path:
        return self.dir / "index" / report / (district or "_all") / f"{as_of.isoformat()}.json"

    def lookup(self, report: str, district: str | None, as_of: dt.date) -> CachedAnswer | None:
        """The remembered answer for this fetch, if any."""
        try:
            data = json.loads(self._answer_path(report, district, as_of).read_text())
            return CachedAnswer(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def forget(self, report: str, district: str | None, as_of: dt.date) -> None:
        """Drop a remembered answer (the blob stays: other answers may share it)."""
        self._answer_path(report, district, as_of).unlink(missing_ok=True)

    def remember(self, answer: CachedAnswer) -> None:
        """Remember an answer so the same fetch costs no request next time."""
        path = self._answer_path(answer.report, answer.district, dt.date.fromisoformat(answer.as_of))
        atomic_write_bytes(path, json.dumps(asdict(answer), indent=2).encode())
