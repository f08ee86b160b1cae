"""Dagster resources: typed clients with verbs over the core (dashboard client, store, configuration)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from .dashboard.client import DEFAULT_BASE_URL, ClientSettings, DashboardClient, FetchResult
from .dashboard.reports import DISTRICT_REPORTS, Report
from .scope import DistrictConfiguration as DistrictConfigFile
from .snapshots.store import PerDistrictFileSnapshotStore


class RefreshService(dg.ConfigurableResource):
    """All dashboard access: polite (rate limit, shared breaker), cached on disk, retried when transient."""

    base_url: str = DEFAULT_BASE_URL
    data_root: str = "data"
    # Strings because Dagster's EnvVar yields strings (and ints through EnvVar.int).
    rate: str = "2"
    use_cache: str = "true"
    connect_timeout_seconds: int = 5
    read_timeout_seconds: int = 60
    max_attempts: int = 4
    breaker_threshold: int = 5
    breaker_cooldown_seconds: int = 30

    _client: DashboardClient | None = PrivateAttr(default=None)

    def settings(self) -> ClientSettings:
        """The core client's settings from this resource's configuration."""
        rate = float(self.rate)
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate!r}")
        return ClientSettings(
            base_url=self.base_url,
            rate=rate,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            max_attempts=self.max_attempts,
            breaker_threshold=self.breaker_threshold,
            breaker_cooldown=self.breaker_cooldown_seconds,
            use_cache=self.use_cache.strip().lower() not in ("0", "false", "no", "off"),
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # One client per run: with the in-process executor its limiter, cache and breaker
        # serve every partition of the run.
        self._client = DashboardClient(self.settings(), Path(self.data_root))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> DashboardClient:
        """The run's dashboard client."""
        if self._client is None:
            self._client = DashboardClient(self.settings(), Path(self.data_root))
        return self._client

    def fetch_summary(self, as_of: dt.date, *, force: bool = False) -> FetchResult:
        """The all-districts summary for an as-of date (own month first, then the closing month)."""
        return self.client.fetch(Report.SUMMARY, as_of, force=force)

    def fetch_district_reports(
        self, as_of: dt.date, district: str, data_month: tuple[int, int], *, force: bool = False
    ) -> list[FetchResult]:
        """A district's three reports at the data month the date's summary settled: one request each."""
        return [
            self.client.fetch(report, as_of, district, data_month=data_month, force=force)
            for report in DISTRICT_REPORTS
        ]

    def stats(self) -> dict:
        """Requests made, cache hits, retries and rate-limiter waiting so far in this run."""
        return self.client.stats()


class SnapshotStore(dg.ConfigurableResource):
    """The per-date snapshot directories under the data root (atomic, concurrent-safe writes)."""

    data_root: str = "data"

    def open(self) -> PerDistrictFileSnapshotStore:
        """The core store over this data root."""
        return PerDistrictFileSnapshotStore(Path(self.data_root))


class DistrictConfiguration(dg.ConfigurableResource):
    """The configured districts (`<root>/config/districts.json`); none means every district."""

    data_root: str = "data"

    def configured(self) -> list[str]:
        """The configured district ids, normalised and ordered."""
        return DistrictConfigFile(Path(self.data_root)).list()
