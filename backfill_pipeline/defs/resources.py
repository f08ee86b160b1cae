"""Dagster resources: typed clients with verbs over the core, configured from `Settings`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from ..collecting.batch import RunInfo, earlier_permanent_failure
from ..collecting.collect import DistrictOutcome, SummaryOutcome, collect_district, collect_summary
from ..collecting.run_stats import record_run_stats
from ..dashboard.budget import Lane, check_rate
from ..dashboard.client import ClientSettings, DashboardClient
from ..dataroot import DataRoot
from ..names import BACKFILL_TAG, RATE_TAG, RECHECK_TAG
from ..scope import DistrictConfig
from ..settings import Settings, load_settings
from ..snapshots.models import Scope
from ..snapshots.rootcheck import check_data_root
from ..snapshots.store import PerDistrictFileSnapshotStore

# The Settings behind each field of RefreshService (the resource names its fields for the UI).
CLIENT_FIELDS = {
    "dashboard_url": "base_url",
    "data_root": "data_root",
    "rate": "rate",
    "cache": "use_cache",
    "connect_timeout": "connect_timeout_seconds",
    "read_timeout": "read_timeout_seconds",
    "max_attempts": "max_attempts",
    "breaker_threshold": "breaker_threshold",
    "breaker_cooldown": "breaker_cooldown_seconds",
    "budget_store": "budget_store",
}


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


class RefreshService(dg.ConfigurableResource):
    """All dashboard access: polite (rate limit, shared breaker), cached on disk, retried when transient."""

    base_url: str
    data_root: str
    rate: float
    use_cache: bool
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_attempts: int
    breaker_threshold: int
    breaker_cooldown_seconds: float
    budget_store: str | None

    _client: DashboardClient | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> RefreshService:
        """The resource with the deployment's settings (shown as its configuration in the UI)."""
        values: dict[str, Any] = {
            field: _plain(getattr(settings, name)) for name, field in CLIENT_FIELDS.items()
        }
        return cls(**values)

    def settings(self) -> ClientSettings:
        """The core client's settings, checked as every BACKFILL_* value is: a bad value given in
        the launchpad fails the run with a message naming the resource's field."""
        options = {name: f"resource refresh.{field}" for name, field in CLIENT_FIELDS.items()}
        values = {name: getattr(self, field) for name, field in CLIENT_FIELDS.items()}
        return load_settings(options, **values).client()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One client per run: with the in-process executor its limiter, cache and breaker
        # serve every partition of the run. A backfill may ask for a slower pace per run.
        settings = self.settings()
        tags = context.run.tags if context.run else {}
        # The deployment's one budget: a backfill's runs draw their share of it, behind the refresh.
        settings = replace(
            settings,
            share=run_share(tags.get(RATE_TAG), settings.rate),
            share_name=f"backfill:{tags[BACKFILL_TAG]}" if BACKFILL_TAG in tags else None,
            lane=lane_of(tags),
        )
        recheck = (
            (context.run.tags.get(RECHECK_TAG) or "").lower() in ("1", "true", "yes")
            if context.run
            else False
        )
        # Before anything is written: a root on an object-store mount, or without working locks,
        # would lose or corrupt snapshots (UnsafeDataRoot fails the run, naming why).
        check_data_root(self.data_root).raise_if_unsafe()
        self._client = DashboardClient(settings, self.data_root, recheck_unavailable=recheck)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is None:
            return
        try:
            if context.run is not None:
                # What this run cost the dashboard, for the backfill status (read without Dagster);
                # before the client closes: its stats read the breaker, whose store it closes.
                record_run_stats(
                    self.root, context.run.run_id, context.run.tags.get(BACKFILL_TAG), self.stats()
                )
        finally:
            self._client.close()

    @property
    def root(self) -> DataRoot:
        """The data root."""
        return DataRoot.of(self.data_root)

    @property
    def client(self) -> DashboardClient:
        """The run's dashboard client."""
        if self._client is None:
            self._client = DashboardClient(self.settings(), self.data_root)
        return self._client

    @property
    def store(self) -> PerDistrictFileSnapshotStore:
        """The snapshot store under the data root."""
        return PerDistrictFileSnapshotStore(self.root)

    def configured(self) -> list[str]:
        """The configured districts ([] means every district the dashboard lists)."""
        return DistrictConfig(self.root).list()

    # -- verbs ---------------------------------------------------------------------------------

    def collect_summary(self, as_of: dt.date, run: RunInfo) -> SummaryOutcome:
        """One date's all-districts summary: summary files of the in-scope districts, rankings."""
        configured = self.configured()
        context = run.write_context("system-wide", "all-districts-csv", configured)
        return collect_summary(
            self.client, self.store, as_of, configured=configured, context=context, attempt=run.attempt
        )

    def collect_district(self, as_of: dt.date, district: str, run: RunInfo, scope: Scope) -> DistrictOutcome:
        """One district on one date in detail (a permanent failure of this run is not asked again)."""
        store = self.store
        earlier = earlier_permanent_failure(store, as_of, district, run)
        if earlier is not None:
            return earlier
        context = run.write_context(scope, "per-district-csvs", self.configured())
        return collect_district(
            self.client, store, as_of, district, context=context, force=run.force, attempt=run.attempt
        )

    def stats(self) -> dict:
        """Requests made, cache hits, retries and rate-limiter waiting so far in this run (read
        twice per partition: without the breaker's state, which is the status page's to read)."""
        return self.client.stats(breaker=False)


def lane_of(tags: Mapping[str, str]) -> Lane:
    """A backfill's runs (heals included) wait behind every other run: the refresh's."""
    return Lane.BACKFILL if BACKFILL_TAG in tags else Lane.REFRESH


def run_share(tag: str | None, budget: float) -> float | None:
    """The run's share of the budget from its rate tag (None: no tag, the whole budget).

    Anyone with the Dagster UI may set the tag: a value that is not a finite rate above 0 fails
    the run before any request (naming the tag); one above the budget is the budget."""
    if tag is None:
        return None
    try:
        rate = check_rate(tag, f"run tag {RATE_TAG}")
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    return min(rate, budget)


class SnapshotStore(dg.ConfigurableResource):
    """The per-date snapshot directories under the data root (atomic, concurrent-safe writes)."""

    data_root: str

    def open(self) -> PerDistrictFileSnapshotStore:
        """The core store over this data root."""
        return PerDistrictFileSnapshotStore(self.data_root)

    @property
    def root(self) -> DataRoot:
        """The data root."""
        return DataRoot.of(self.data_root)


class DistrictConfiguration(dg.ConfigurableResource):
    """The configured districts (`<root>/config/districts.json`); none means every district."""

    data_root: str

    def configured(self) -> list[str]:
        """The configured district ids, normalised and ordered."""
        return DistrictConfig(self.data_root).list()


def resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource, configured from the deployment's settings."""
    root = str(settings.data_root)
    return {
        "refresh": RefreshService.from_settings(settings),
        "store": SnapshotStore(data_root=root),
        "districts": DistrictConfiguration(data_root=root),
    }
