"""Shared fixtures and helpers: the one "today", the sandbox dashboard on loopback, dates it
published, and settings that do not depend on the developer's environment."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from backfill_pipeline.dashboard.client import ClientSettings
from backfill_pipeline.sandbox import SandboxServer, publication
from backfill_pipeline.settings import ENV_PREFIX, Settings

# The date every test pretends is today: the sandbox answers as it would on this day.
TODAY = dt.date(2026, 11, 29)


@pytest.fixture(autouse=True)
def no_backfill_environment(monkeypatch) -> None:
    """Tests see the settings they give, never a BACKFILL_* variable of the developer's shell."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the whole session (seed 42, today TODAY); never give it faults."""
    with SandboxServer(seed=42, today=TODAY) as server:
        yield server


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxServer]:
    """A new sandbox per test, free to take faults and to count requests."""
    with SandboxServer(seed=42, today=TODAY) as server:
        yield server


def published_dates(start: dt.date, n: int = 1, *, closing: bool | None = None) -> list[dt.date]:
    """The first n consecutive dates from `start` on that the sandbox published, inside a closing
    window or not as asked (None: either), so one date range covers exactly them."""

    def fits(day: dt.date) -> bool:
        ok = publication.is_published(day, today=TODAY)
        return ok and (closing is None or publication.is_closing_period(day) == closing)

    day = start
    while not all(fits(day + dt.timedelta(days=i)) for i in range(n)):
        day += dt.timedelta(days=1)
        assert day < TODAY, f"no {n} published dates after {start}"
    return [day + dt.timedelta(days=i) for i in range(n)]


def unpublished_date(start: dt.date) -> dt.date:
    """The first date from `start` on that the sandbox never published."""
    day = start
    while not publication.is_unpublished(day):
        day += dt.timedelta(days=1)
        assert day < TODAY, f"no unpublished date after {start}"
    return day


def settings(**values) -> Settings:
    """Settings from these values and the defaults (the environment is cleared for every test)."""
    return Settings(**values)


def client_settings(base_url: str, **overrides) -> ClientSettings:
    """The dashboard client's settings against `base_url`, with fast backoff unless overridden."""
    return settings(dashboard_url=base_url).client(**{"backoff_base": 0.05, "backoff_max": 0.2, **overrides})
