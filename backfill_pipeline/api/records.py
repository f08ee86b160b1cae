"""What the service remembers of each backfill it launched or retried (`backfills/<id>.json`).

Dagster copies a parent's tags to a re-executed backfill, so who asked for a retry, and the plan
of any backfill, are known only from this record.
"""

from __future__ import annotations

import datetime as dt

from pydantic import ValidationError

from ..dataroot import DataRoot
from ..files import atomic_write_bytes
from ..planning.request import BackfillRequest, HealRequest
from .graphql import BackfillNotFound
from .models import ApiModel, PlanBody, Timestamp, is_backfill_id


class BackfillRecord(ApiModel):
    """Who asked for a backfill, what they asked (a backfill request, or a heal), its plan, and
    the backfill it retries."""

    request_id: str | None = None
    requester: str | None = None
    request: BackfillRequest | None = None
    heal: HealRequest | None = None
    plan: PlanBody | None = None
    created_at: Timestamp | None = None
    parent: str | None = None


def checked_id(backfill_id: str) -> str:
    """`backfill_id` when it can be one; BackfillNotFound (before asking Dagster) otherwise."""
    if not is_backfill_id(backfill_id):
        raise BackfillNotFound(f"no backfill {backfill_id!r}")
    return backfill_id


def now() -> dt.datetime:
    """The current UTC time, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class BackfillRecords:
    """The backfill records under one data root."""

    def __init__(self, root: DataRoot) -> None:
        self.root = root

    def save(self, backfill_id: str, record: BackfillRecord) -> None:
        """Write the record of a backfill, atomically."""
        path = self.root.backfill_record(checked_id(backfill_id))
        atomic_write_bytes(path, record.model_dump_json(by_alias=True, indent=2).encode())

    def read(self, backfill_id: str) -> BackfillRecord:
        """The record of a backfill; an empty one when there is none or it cannot be read."""
        try:
            data = self.root.backfill_record(checked_id(backfill_id)).read_bytes()
            return BackfillRecord.model_validate_json(data)
        except (FileNotFoundError, ValidationError):
            return BackfillRecord()
