"""A small client for Dagster's GraphQL API over HTTP: launch, read, cancel and retry backfills."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import requests

from ..names import district_key


class DagsterUnreachable(Exception):
    """Dagster's webserver did not answer."""


class DagsterGraphQLError(Exception):
    """Dagster answered with an error (GraphQL errors or an error type in the result union)."""

    def __init__(self, message: str, *, typename: str | None = None) -> None:
        super().__init__(message)
        self.typename = typename


class BackfillNotFound(DagsterGraphQLError):
    """No backfill with that id."""


_BACKFILL_FRAGMENT = """
fragment BackfillFields on PartitionBackfill {
  id status numPartitions numCancelable timestamp endTimestamp fromFailure title description
  tags { key value }
  assetSelection { path }
  error { message }
  assetBackfillData { ...Progress }
  runs(limit: 1000) { runId status tags { key value } }
}"""
# Partitions by outcome for each asset of an asset backfill (status.asset_counts reads them).
_PROGRESS_FRAGMENT = """
fragment Progress on AssetBackfillData {
  assetBackfillStatuses {
    __typename
    ... on AssetPartitionsStatusCounts {
      assetKey { path } numPartitionsTargeted numPartitionsInProgress
      numPartitionsMaterialized numPartitionsFailed
    }
  }
}"""

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

BACKFILL = (
    """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { ...BackfillFields }
    ... on Error { message }
  }
}"""
    + _BACKFILL_FRAGMENT
    + _PROGRESS_FRAGMENT
)

BACKFILLS = (
    """
query Backfills($limit: Int, $cursor: String) {
  partitionBackfillsOrError(limit: $limit, cursor: $cursor) {
    __typename
    ... on PartitionBackfills {
      results {
        id status numPartitions timestamp endTimestamp title tags { key value }
        assetBackfillData { ...Progress }
      }
    }
    ... on Error { message }
  }
}"""
    + _PROGRESS_FRAGMENT
)

BACKFILLS_SINCE = """
query BackfillsSince($limit: Int, $cursor: String, $after: Float) {
  partitionBackfillsOrError(limit: $limit, cursor: $cursor, filters: {createdAfter: $after}) {
    __typename
    ... on PartitionBackfills { results { id timestamp tags { key value } } }
    ... on Error { message }
  }
}"""

CANCEL = """
mutation Cancel($id: String!) {
  cancelPartitionBackfill(backfillId: $id) {
    __typename
    ... on CancelBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  reexecutePartitionBackfill(reexecutionParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

# Asks a little more than partition_statuses reads (partitionStats, materializing partitions):
# scripts/bench_partitions.py times this document as the asset page's query.
PARTITION_STATUSES = """
query Statuses($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses {
        __typename
        ... on TimePartitionStatuses { ranges { startKey endKey status } }
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions materializingPartitions
        }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey
            secondaryDim {
              __typename
              ... on DefaultPartitionStatuses {
                materializedPartitions failedPartitions materializingPartitions
              }
              ... on TimePartitionStatuses { ranges { startKey endKey status } }
            }
          }
        }
      }
    }
    ... on Error { message }
  }
}"""


PARTITION_KEYS = """
query Keys($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode { partitionKeysByDimension { name partitionKeys } }
    ... on Error { message }
  }
}"""


REPOSITORIES = """
{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name location { name } } }
  ... on Error { message } } }"""

ADD_PARTITION = """
mutation Add($key: String!, $def: String!, $repo: RepositorySelector!) {
  addDynamicPartition(partitionKey: $key, partitionsDefName: $def, repositorySelector: $repo) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on Error { message }
  }
}"""

MATERIALIZING = """
query Materializing($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode { partitionStats { numMaterializing } }
    ... on Error { message }
  }
}"""

POOL = """
query Pool($key: String!) {
  instance { concurrencyLimit(concurrencyKey: $key) { slotCount activeSlotCount limit
    pendingStepCount activeRunIds } }
}"""


@dataclass
class PartitionStatuses:
    """Partition keys of one asset by status."""

    materialized: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    in_progress: set[str] = field(default_factory=set)


def _days(start: str, end: str) -> list[str]:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def _time_ranges(ranges: list[dict], out: PartitionStatuses) -> None:
    for r in ranges:
        target = {
            "MATERIALIZED": out.materialized,
            "FAILED": out.failed,
            "MATERIALIZING": out.in_progress,
        }.get(r["status"])
        if target is not None:
            target.update(_days(r["startKey"], r["endKey"]))


class DagsterGraphQL:
    """Posts GraphQL documents to Dagster's webserver; raises typed errors."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.url = base_url.rstrip("/") + "/graphql"
        self.timeout = timeout
        self.session = requests.Session()

    def execute(self, query: str, variables: dict | None = None) -> dict:
        """The `data` of a GraphQL answer."""
        payload = {"query": query, "variables": variables or {}}
        # A query may be sent again if a kept-alive connection was dropped; a mutation may not.
        attempts = 1 if query.lstrip().startswith("mutation") else 2
        for attempt in range(1, attempts + 1):
            try:
                r = self.session.post(self.url, json=payload, timeout=self.timeout)
                break
            except requests.ConnectionError as exc:
                if attempt == attempts:
                    raise DagsterUnreachable(f"Dagster at {self.url} is unreachable: {exc}") from exc
            except requests.RequestException as exc:
                raise DagsterUnreachable(f"Dagster at {self.url} is unreachable: {exc}") from exc
        try:
            body = r.json()
        except ValueError as exc:
            raise DagsterUnreachable(
                f"Dagster at {self.url} answered HTTP {r.status_code} without JSON"
            ) from exc
        # Dagster answers GraphQL execution errors with HTTP 500 and an `errors` list.
        if body.get("errors"):
            raise DagsterGraphQLError("; ".join(e.get("message", "?") for e in body["errors"]))
        if r.status_code != 200 or "data" not in body:
            raise DagsterUnreachable(f"Dagster at {self.url} answered HTTP {r.status_code}")
        return body["data"]

    @staticmethod
    def _result(data: dict, field_name: str, ok: str) -> dict:
        result = data[field_name]
        typename = result.get("__typename")
        if typename == ok:
            return result
        message = result.get("message") or typename
        if typename == "BackfillNotFoundError":
            raise BackfillNotFound(message, typename=typename)
        raise DagsterGraphQLError(message, typename=typename)

    def ping(self) -> str:
        """Dagster's version; raises DagsterUnreachable when it does not answer."""
        return self.execute("{ version }")["version"]

    def launch_backfill(
        self,
        partitions_by_assets: list[dict],
        *,
        tags: dict[str, str] | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> str:
        """Launch an asset backfill; `partitions_by_assets` as in LaunchBackfillParams. Returns its id."""
        params = {
            "partitionsByAssets": partitions_by_assets,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
            "title": title,
            "description": description,
        }
        data = self.execute(LAUNCH, {"params": params})
        return self._result(data, "launchPartitionBackfill", "LaunchBackfillSuccess")["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        """One backfill: status, counts per asset, runs, tags."""
        data = self.execute(BACKFILL, {"id": backfill_id})
        return self._result(data, "partitionBackfillOrError", "PartitionBackfill")

    def backfills(self, limit: int = 50, cursor: str | None = None) -> list[dict]:
        """The latest backfills, newest first."""
        data = self.execute(BACKFILLS, {"limit": limit, "cursor": cursor})
        return self._result(data, "partitionBackfillsOrError", "PartitionBackfills")["results"]

    def backfills_since(self, created_after: float, *, page: int = 100, most: int = 2000) -> list[dict]:
        """The backfills created after a POSIX time (id, timestamp, tags), newest first; at most
        `most` of them."""
        out: list[dict] = []
        cursor = None
        while len(out) < most:
            data = self.execute(BACKFILLS_SINCE, {"limit": page, "cursor": cursor, "after": created_after})
            results = self._result(data, "partitionBackfillsOrError", "PartitionBackfills")["results"]
            out += results
            if len(results) < page:
                break
            cursor = results[-1]["id"]
        return out[:most]

    def cancel_backfill(self, backfill_id: str) -> None:
        """Ask Dagster to cancel a backfill (its queued runs are canceled, running ones terminated)."""
        data = self.execute(CANCEL, {"id": backfill_id})
        self._result(data, "cancelPartitionBackfill", "CancelBackfillSuccess")

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        """Launch a new backfill of what failed (FROM_FAILURE) or of everything (ALL_STEPS)."""
        data = self.execute(REEXECUTE, {"params": {"parentRunId": backfill_id, "strategy": strategy}})
        return self._result(data, "reexecutePartitionBackfill", "LaunchBackfillSuccess")["backfillId"]

    def repository_selector(self) -> dict:
        """The selector of the (single) repository of this workspace."""
        data = self.execute(REPOSITORIES)
        nodes = self._result(data, "repositoriesOrError", "RepositoryConnection")["nodes"]
        if not nodes:
            raise DagsterGraphQLError("no code location loaded in Dagster")
        return {"repositoryName": nodes[0]["name"], "repositoryLocationName": nodes[0]["location"]["name"]}

    def add_dynamic_partitions(self, partitions_def: str, keys: list[str]) -> None:
        """Add keys to a dynamic partitions definition (existing ones are left alone)."""
        repo = self.repository_selector()
        for key in keys:
            data = self.execute(ADD_PARTITION, {"key": key, "def": partitions_def, "repo": repo})
            result = data["addDynamicPartition"]
            if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise DagsterGraphQLError(result.get("message") or result["__typename"])

    def pool(self, key: str) -> dict:
        """Slots of a concurrency pool: limit, in use, pending."""
        return self.execute(POOL, {"key": key})["instance"]["concurrencyLimit"]

    def partition_keys(self, asset_path: list[str]) -> dict[str, list[str]]:
        """The partition keys of each dimension of an asset (e.g. {"date": [...], "district": [...]})."""
        data = self.execute(PARTITION_KEYS, {"path": asset_path})
        node = self._result(data, "assetNodeOrError", "AssetNode")
        return {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}

    def materializing_keys(self, asset_path: list[str]) -> set[str]:
        """The partition keys of an asset that runs are materializing now. The count is asked
        first: it is all most calls need, and the statuses of a year of partitions are not."""
        data = self.execute(MATERIALIZING, {"path": asset_path})
        stats = self._result(data, "assetNodeOrError", "AssetNode")["partitionStats"]
        if not stats or not stats["numMaterializing"]:
            return set()
        return self.partition_statuses(asset_path).in_progress

    def partition_statuses(self, asset_path: list[str]) -> PartitionStatuses:
        """Every partition key of an asset that is materialized or failed."""
        data = self.execute(PARTITION_STATUSES, {"path": asset_path})
        node = self._result(data, "assetNodeOrError", "AssetNode")
        out = PartitionStatuses()
        statuses = node["assetPartitionStatuses"]
        kind = statuses["__typename"]
        if kind == "TimePartitionStatuses":
            _time_ranges(statuses["ranges"], out)
        elif kind == "DefaultPartitionStatuses":
            out.materialized.update(statuses["materializedPartitions"])
            out.failed.update(statuses["failedPartitions"])
            out.in_progress.update(statuses.get("materializingPartitions") or [])
        else:
            # Multi-partitions: ranges of the date dimension, each with district statuses.
            for r in statuses["ranges"]:
                dates = _days(r["primaryDimStartKey"], r["primaryDimEndKey"])
                second = r["secondaryDim"]
                for d in dates:
                    out.materialized.update(
                        district_key(d, k) for k in second.get("materializedPartitions", [])
                    )
                    out.failed.update(district_key(d, k) for k in second.get("failedPartitions", []))
                    out.in_progress.update(
                        district_key(d, k) for k in second.get("materializingPartitions") or []
                    )
        return out
