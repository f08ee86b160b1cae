"""Dagster resources: typed clients with verbs over the core (dashboard client, store, configuration)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from .dashboard.client import DEFAULT_BASE_URL, ClientSettings, DashboardClient
from .planner import RATE_TAG
from .run_stats import record_run_stats
from .scope import DistrictConfig
from .snapshots.store import PerDistrictFileSnapshotStore


def _positive_float(value: str | None) -> float | None:
    try:
        rate = float(value) if value else None
    except ValueError:
        return None
    return rate if rate and rate > 0 else None


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
        # serve every partition of the run. A backfill may ask for a slower pace per run.
        settings = self.settings()
        tags = context.dagster_run.tags if context.dagster_run else {}
        run_rate = _positive_float(tags.get(RATE_TAG))
        if run_rate is not None:
            settings = replace(settings, rate=run_rate)
        self._client = DashboardClient(settings, Path(self.data_root))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is None:
            return
        self._client.close()
        run = context.dagster_run
        if run is not None:
            # What this run cost the dashboard, for the backfill status (read without Dagster).
            record_run_stats(
                Path(self.data_root), run.run_id, run.tags.get("dagster/backfill"), self._client.stats()
            )

    @property
    def client(self) -> DashboardClient:
        """The run's dashboard client."""
        if self._client is None:
            self._client = DashboardClient(self.settings(), Path(self.data_root))
        return self._client

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
        return DistrictConfig(self.data_root).list()
