"""Idempotent launches: an `Idempotency-Key` (the API's header, the CLI's own key per invocation)
launches at most one backfill, however often the request is sent again.

Under a file lock per key, a record `state/idempotency/<sha256 of the key>.json` is written
*before* the launch (`launching`, with the request's fingerprint and what the launch will record)
and completed after it with the backfill's id; the launch carries the key's digest in the tag
IDEMPOTENCY_TAG. A request sent again with the same key:

- same request, record completed: the original answer, nothing launched;
- same request, record still `launching` (the process died, or lost Dagster's answer, between
  the launch and the record): Dagster's backfills are searched for the tag (a retry: for a child of
  the same parent made since), and the one found completes the record; only when Dagster has none,
  and the record is older than SETTLE_SECONDS (a launch whose answer timed out may still land), is
  it launched again;
- another request (body, route or retried backfill): IdempotencyConflict (422), nothing launched.

A dry run changes nothing and records nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from ..dataroot import DataRoot
from ..files import atomic_write_bytes
from ..names import PARENT_BACKFILL_TAG, TAG_PREFIX
from .graphql import DagsterGraphQL, DagsterGraphQLError, DagsterUnreachable
from .models import ApiModel, PlanBody, Timestamp
from .records import BackfillRecord, BackfillRecords, now

log = logging.getLogger(__name__)

# The backfill tag (copied to its runs) that carries the digest of the key it was launched with.
IDEMPOTENCY_TAG = f"{TAG_PREFIX}idempotency-key"
MAX_KEY = 200
# A record left `launching` this recently may belong to a launch whose answer was lost but that
# Dagster is still storing (the GraphQL client's timeout, with a margin): not launched again yet.
SETTLE_SECONDS = 60.0
# How long a request waits for another one holding the same key.
LOCK_TIMEOUT = 120.0
# How far before its record a backfill may be stamped: the record keeps whole seconds, and
# Dagster's clock may be another machine's. A launch is matched by its tag, so its window is wide;
# a retry only by its parent (which may have been retried before), so its window is narrow.
LAUNCH_SLACK = dt.timedelta(days=1)
RETRY_SLACK = dt.timedelta(seconds=5)

Operation = Literal["backfill", "heal", "retry"]


class IdempotencyConflict(Exception):
    """The key was used before for another request."""


class LaunchPending(Exception):
    """A launch with this key is under way, or its outcome is not known yet; retry later."""


def checked_key(key: str) -> str:
    """`key` when it can be an idempotency key: 1 to MAX_KEY printable ASCII characters (space
    included, not at either end); ValueError saying what is wrong otherwise."""
    if not key:
        raise ValueError("must not be empty")
    if len(key) > MAX_KEY:
        raise ValueError(f"must be at most {MAX_KEY} characters, got {len(key)}")
    if not all(" " <= c <= "~" for c in key):
        raise ValueError("must be printable ASCII characters only")
    if key != key.strip():
        raise ValueError("must not start or end with a space")
    return key


def key_digest(key: str) -> str:
    """The sha256 of a key: the record's name and the tag's value (the key itself is never stored)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def fingerprint(
    operation: Operation, request: BaseModel | None = None, backfill_id: str | None = None
) -> str:
    """What the request asks, as a digest: the operation, the validated request (so spelling,
    key order and defaults do not matter) and the backfill it retries."""
    payload = {
        "operation": operation,
        "request": None if request is None else request.model_dump(mode="json", by_alias=True),
        "backfill": backfill_id,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class IdempotencyRecord(ApiModel):
    """One key's launch: what was asked (its fingerprint), its state, and its answer."""

    operation: Operation
    fingerprint: str
    state: Literal["launching", "completed"]
    started_at: Timestamp
    completed_at: Timestamp | None = None
    request_id: str | None = None
    backfill_id: str | None = None
    retry_of: str | None = None
    plan: PlanBody | None = None
    # What the launch records of its backfill (backfills/<id>.json): written by whoever
    # completes the record, when the launch itself could not.
    record: BackfillRecord | None = None


@dataclass(frozen=True)
class Outcome:
    """The answer a key already has: its backfill (None: nothing was left to run)."""

    backfill_id: str | None
    request_id: str | None
    plan: PlanBody | None
    retry_of: str | None


class Claim:
    """The right to launch for one key, held under its lock: `outcome` is the earlier answer when
    there is one (launch nothing then); else `begin` before the launch and `complete` after."""

    def __init__(self, store: Idempotency, digest: str, operation: Operation, fingerprint: str) -> None:
        self.store = store
        self.digest = digest
        self.operation = operation
        self.fingerprint = fingerprint
        self.outcome: Outcome | None = None
        self.record: IdempotencyRecord | None = None

    @property
    def tag(self) -> dict[str, str]:
        """The tag the launched backfill carries."""
        return {IDEMPOTENCY_TAG: self.digest[:32]}

    def begin(
        self,
        *,
        request_id: str | None,
        plan: PlanBody | None,
        record: BackfillRecord,
        retry_of: str | None = None,
    ) -> None:
        """Write the record `launching`, before the launch."""
        self.record = IdempotencyRecord(
            operation=self.operation,
            fingerprint=self.fingerprint,
            state="launching",
            started_at=self.store.clock(),
            request_id=request_id,
            retry_of=retry_of,
            plan=plan,
            record=record,
        )
        self.store.write(self.digest, self.record)

    def complete(
        self, backfill_id: str | None, *, request_id: str | None = None, plan: PlanBody | None = None
    ) -> None:
        """The launch is done (`backfill_id` None: nothing was left to run): the record completed."""
        base = self.record or IdempotencyRecord(
            operation=self.operation,
            fingerprint=self.fingerprint,
            state="launching",
            started_at=self.store.clock(),
            request_id=request_id,
            plan=plan,
        )
        self.record = base.model_copy(
            update={"state": "completed", "completed_at": self.store.clock(), "backfill_id": backfill_id}
        )
        self.store.write(self.digest, self.record)

    def abandon(self) -> None:
        """Dagster refused the launch (nothing was made): forget the record."""
        self.store.remove(self.digest)
        self.record = None

    def find(self) -> str | None:
        """The backfill Dagster made for this key, if any (see Idempotency.find)."""
        if self.record is None:
            return None
        return self.store.find(self.digest, self.record)


class Idempotency:
    """The idempotency records under one data root, resolved against Dagster."""

    def __init__(
        self,
        root: DataRoot,
        graphql: DagsterGraphQL,
        *,
        settle: float = SETTLE_SECONDS,
        lock_timeout: float = LOCK_TIMEOUT,
        clock: Callable[[], dt.datetime] = now,
    ) -> None:
        self.root = root
        self.graphql = graphql
        self.settle = settle
        self.lock_timeout = lock_timeout
        self.clock = clock

    def read(self, digest: str) -> IdempotencyRecord | None:
        """The record of a key's digest; None when there is none. LaunchPending when it cannot be
        read (it cannot tell whether a backfill was launched)."""
        path = self.root.idempotency_record(digest)
        try:
            return IdempotencyRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            raise LaunchPending(
                f"the record of this Idempotency-Key cannot be read ({type(exc).__name__}); whether "
                "it launched a backfill is unknown: check GET /api/backfills and send another key"
            ) from None

    def write(self, digest: str, record: IdempotencyRecord) -> None:
        """Write a key's record, atomically."""
        data = record.model_dump_json(by_alias=True, indent=2).encode()
        atomic_write_bytes(self.root.idempotency_record(digest), data)

    def remove(self, digest: str) -> None:
        """Forget a key's record."""
        self.root.idempotency_record(digest).unlink(missing_ok=True)

    @contextmanager
    def claim(self, key: str, operation: Operation, fingerprint: str) -> Iterator[Claim]:
        """Hold the key's lock; the claim says whether it already has an answer. Raises
        IdempotencyConflict for a key used for another request, LaunchPending while another
        request holds the key or a launch's outcome is not known yet."""
        digest = key_digest(checked_key(key))
        lock_path = self.root.idempotency_lock(digest)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise LaunchPending(
                "another request with this Idempotency-Key is still launching; send it again later"
            ) from None
        try:
            claim = Claim(self, digest, operation, fingerprint)
            self._resolve(claim, self.read(digest))
            yield claim
        finally:
            lock.release()

    def _resolve(self, claim: Claim, record: IdempotencyRecord | None) -> None:
        if record is None:
            return
        if (record.operation, record.fingerprint) != (claim.operation, claim.fingerprint):
            raise IdempotencyConflict(
                f"this Idempotency-Key was used at {record.started_at.isoformat()} for another "
                f"request ({record.operation}); send a new key for a new request"
            )
        claim.record = record
        if record.state == "launching":
            found = self.find(claim.digest, record)
            if found is None:
                age = (self.clock() - record.started_at).total_seconds()
                if age < self.settle:
                    raise LaunchPending(
                        "a launch with this Idempotency-Key started "
                        f"{max(age, 0):.0f} s ago and its outcome is not known yet; send it again "
                        f"in {self.settle - age:.0f} s"
                    )
                log.warning("idempotency record %s: no backfill in Dagster, launching again", claim.digest)
                claim.record = None
                return
            log.warning(
                "idempotency record %s: completed with backfill %s found in Dagster", claim.digest, found
            )
            if record.record is not None:
                records = BackfillRecords(self.root)
                if records.read(found) == BackfillRecord():
                    records.save(found, record.record)
            claim.complete(found)
            record = claim.record
            assert record is not None
        claim.outcome = Outcome(
            backfill_id=record.backfill_id,
            request_id=record.request_id,
            plan=record.plan,
            retry_of=record.retry_of,
        )

    def find(self, digest: str, record: IdempotencyRecord) -> str | None:
        """The backfill a `launching` record launched, if Dagster has it: for a launch, the one
        tagged with the key (not a retry of it, which inherits the tag); for a retry, a child of
        the same backfill made since the record was written."""
        slack = RETRY_SLACK if record.operation == "retry" else LAUNCH_SLACK
        since = (record.started_at - slack).timestamp()
        tag = digest[:32]
        candidates = []
        for b in self.graphql.backfills_since(since):
            if (b.get("timestamp") or 0) < since:
                continue
            tags = {t["key"]: t["value"] for t in b.get("tags") or []}
            if record.operation == "retry":
                if tags.get(PARENT_BACKFILL_TAG) == record.retry_of:
                    candidates.append(b)
            elif tags.get(IDEMPOTENCY_TAG) == tag and PARENT_BACKFILL_TAG not in tags:
                candidates.append(b)
        if not candidates:
            return None
        return min(candidates, key=lambda b: b.get("timestamp") or 0)["id"]


def resolved_after_lost_answer(claim: Claim | None, error: DagsterUnreachable) -> str:
    """The backfill a launch whose answer was lost made after all, found by its key; re-raises
    `error` when there is no claim, nothing is found, or Dagster cannot be asked."""
    if claim is None:
        raise error
    try:
        found = claim.find()
    except (DagsterUnreachable, DagsterGraphQLError):
        found = None
    if found is None:
        raise error
    return found
