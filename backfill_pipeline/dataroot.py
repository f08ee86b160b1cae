"""DataRoot: every path under the data root (`BACKFILL_DATA_ROOT`), and the only place that
joins them.

```
<root>/
  config/      districts.json, districts.log.jsonl        the configured districts
  raw/         <sha[:2]>/<sha>.csv (+ .json sidecar)       every CSV downloaded
               index/<report>/<district|_all>/<date>.json  answers remembered per fetch
  snapshots/   <YYYY-MM-DD>/ ..., latest-successful.json, .locks/
  state/       breaker.json, runs/<run id>.json            shared breaker, per-run statistics
               api-token                                   the REST API's generated token (0600)
               idempotency/<sha256>.json (+ .lock)         launches asked with an Idempotency-Key
  backfills/   <backfill id>.json                          what each API or CLI backfill asked
  alerts/      run-failures.jsonl                          one line per failed run
  tables/      <table>/as_of=<YYYY-MM-DD>/part-0.parquet   the analyst tables, one file per date
```

Every name that comes from outside (a district id, a run or backfill id, a report) is checked
before it becomes part of a path, so none can leave its directory.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .district_ids import normalise_district_id
from .files import is_temp_name

# The files of one snapshot date.
METADATA = "metadata.json"
MANIFEST = "manifest.json"
COLLECTIONS = "collections.json"
RANKINGS = "all-districts-rankings.json"
DATE_FILES = frozenset({METADATA, MANIFEST, COLLECTIONS, RANKINGS})
POINTER = "latest-successful.json"

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DISTRICT_FILE = re.compile(r"^district_([0-9]{1,4}|[A-Z])\.json$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _safe(name: str, what: str) -> str:
    """`name` when it is one harmless path component (letters, digits, `._-`), else ValueError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{what} {name!r} cannot name a file")
    return name


def district_file_name(district_id: str) -> str:
    """`district_42.json`; the id must be normalised, so it can never escape the directory."""
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
class DataRoot:
    """The data root and every path under it."""

    path: Path

    @classmethod
    def of(cls, root: DataRoot | Path | str) -> DataRoot:
        """`root` as a DataRoot (a path is taken as it is)."""
        return root if isinstance(root, DataRoot) else cls(Path(root))

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    # -- config/ ------------------------------------------------------------------------------

    @property
    def config_dir(self) -> Path:
        """`config/`: the district configuration."""
        return self.path / "config"

    @property
    def districts_file(self) -> Path:
        """`config/districts.json`: the configured districts."""
        return self.config_dir / "districts.json"

    @property
    def districts_log(self) -> Path:
        """`config/districts.log.jsonl`: every change of the configuration."""
        return self.config_dir / "districts.log.jsonl"

    @property
    def districts_lock(self) -> Path:
        """The lock that serialises changes of the configuration."""
        return self.config_dir / ".districts.lock"

    # -- raw/ ---------------------------------------------------------------------------------

    def raw_blob(self, sha256: str) -> Path:
        """`raw/<sha[:2]>/<sha>.csv`: a downloaded CSV, named by its digest."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.path / "raw" / sha256[:2] / f"{sha256}.csv"

    def raw_sidecar(self, sha256: str) -> Path:
        """`raw/<sha[:2]>/<sha>.json`: where and when a CSV was downloaded."""
        return self.raw_blob(sha256).with_suffix(".json")

    def raw_answer(self, report: str, district: str | None, as_of: dt.date) -> Path:
        """`raw/index/<report>/<district|_all>/<date>.json`: the remembered answer of one fetch."""
        if district is not None and normalise_district_id(district) != district:
            raise ValueError(f"district id {district!r} is not normalised")
        folder = "_all" if district is None else district
        return self.path / "raw" / "index" / _safe(report, "report") / folder / f"{as_of.isoformat()}.json"

    def raw_fetch_lock(self, report: str, as_of: dt.date) -> Path:
        """`state/fetch-locks/<report>-<date>.lock`: held while one process asks the dashboard for
        a report every district's run of that date needs (the summary), so it is asked once."""
        return self.path / "state" / "fetch-locks" / f"{_safe(report, 'report')}-{as_of.isoformat()}.lock"

    # -- state/ -------------------------------------------------------------------------------

    @property
    def breaker_state(self) -> Path:
        """`state/breaker.json`: the circuit breaker every process shares."""
        return self.path / "state" / "breaker.json"

    @property
    def breaker_lock(self) -> Path:
        """The lock around the breaker's state file."""
        return self.path / "state" / "breaker.json.lock"

    @property
    def api_token(self) -> Path:
        """`state/api-token`: the REST API's bearer token when BACKFILL_API_TOKEN is not set
        (generated on the API's first start, readable by its owner only)."""
        return self.path / "state" / "api-token"

    @property
    def idempotency_dir(self) -> Path:
        """`state/idempotency/`: the records of launches asked with an Idempotency-Key."""
        return self.path / "state" / "idempotency"

    def idempotency_record(self, digest: str) -> Path:
        """`state/idempotency/<sha256>.json`: a launch asked with an Idempotency-Key, named by
        the key's digest (the key itself never becomes a path)."""
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.idempotency_dir / f"{digest}.json"

    @property
    def budget_file(self) -> Path:
        """`state/budget.sqlite`: the deployment's budget at the dashboard, when kept on this
        machine (its lock and its lanes' file beside it)."""
        return self.path / "state" / "budget.sqlite"

    def idempotency_lock(self, digest: str) -> Path:
        """The lock that serialises the launches of one Idempotency-Key."""
        return self.idempotency_record(digest).with_suffix(".lock")

    @property
    def run_stats_dir(self) -> Path:
        """`state/runs/`: the statistics of each run."""
        return self.path / "state" / "runs"

    def run_stats(self, run_id: str) -> Path:
        """`state/runs/<run id>.json`: what one Dagster run asked of the dashboard."""
        return self.run_stats_dir / f"{_safe(run_id, 'run id')}.json"

    # -- backfills/ and alerts/ ---------------------------------------------------------------

    @property
    def backfills_dir(self) -> Path:
        """`backfills/`: the record of each backfill launched through the API or CLI."""
        return self.path / "backfills"

    def backfill_record(self, backfill_id: str) -> Path:
        """`backfills/<id>.json`: the request, plan and requester of one backfill."""
        return self.backfills_dir / f"{_safe(backfill_id, 'backfill id')}.json"

    @property
    def run_failure_log(self) -> Path:
        """`alerts/run-failures.jsonl`: one line per failed run."""
        return self.path / "alerts" / "run-failures.jsonl"

    # -- tables/ ------------------------------------------------------------------------------

    @property
    def tables(self) -> Path:
        """`tables/`: the analyst tables as hive-partitioned Parquet datasets, one per table."""
        return self.path / "tables"

    # -- snapshots/ ---------------------------------------------------------------------------

    @property
    def snapshots(self) -> Path:
        """`snapshots/`: one directory per as-of date."""
        return self.path / "snapshots"

    @property
    def pointer(self) -> Path:
        """`snapshots/latest-successful.json`."""
        return self.snapshots / POINTER

    def date_dir(self, as_of: dt.date) -> Path:
        """`snapshots/YYYY-MM-DD`."""
        return self.snapshots / as_of.isoformat()

    def district(self, as_of: dt.date, district_id: str) -> Path:
        """A district file of a date."""
        return self.date_dir(as_of) / district_file_name(district_id)

    def date_file(self, as_of: dt.date, name: str) -> Path:
        """A file of a date directory by its name (metadata.json, a district file, a temporary file)."""
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a file of a snapshot date")
        return self.date_dir(as_of) / name

    def quarantine(self, as_of: dt.date, name: str, stamp: str) -> Path:
        """Where `verify --repair` moves an invalid file of a date: hidden, never read again."""
        return self.date_dir(as_of) / f".corrupt-{_safe(stamp, 'stamp')}-{self.date_file(as_of, name).name}"

    def date_lock(self, as_of: dt.date) -> Path:
        """The lock file that serialises every write to one date (kept out of its directory)."""
        return self.snapshots / ".locks" / f"{as_of.isoformat()}.lock"

    @property
    def pointer_lock(self) -> Path:
        """The lock file of the latest-successful pointer."""
        return self.snapshots / ".locks" / "latest-successful.lock"

    def temp_files(self, as_of: dt.date | None = None) -> list[Path]:
        """Temporary files a dead writer left in a date directory (or, without a date, of the pointer)."""
        directory = self.date_dir(as_of) if as_of else self.snapshots
        prefix = "." if as_of else f".{POINTER}"
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return [directory / n for n in sorted(names) if n.startswith(prefix) and is_temp_name(n)]

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
