"""Environment settings, read when a command or run starts (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

from .dashboard.client import DEFAULT_BASE_URL, ClientSettings


def data_root() -> Path:
    """`BACKFILL_DATA_ROOT`, default `./data`."""
    return Path(os.environ.get("BACKFILL_DATA_ROOT") or "data")


def dashboard_url() -> str:
    """`BACKFILL_DASHBOARD_URL`, default the real dashboard."""
    return os.environ.get("BACKFILL_DASHBOARD_URL") or DEFAULT_BASE_URL


def batch_size() -> int:
    """`BACKFILL_BATCH_SIZE`: partitions per backfill run (BackfillPolicy.multi_run), default 50."""
    return int(os.environ.get("BACKFILL_BATCH_SIZE") or 50)


def dagster_url() -> str:
    """`BACKFILL_DAGSTER_URL`: where the API and CLI reach Dagster's webserver."""
    return os.environ.get("BACKFILL_DAGSTER_URL") or "http://127.0.0.1:3000"


def client_settings(*, base_url: str | None = None, rate: float | None = None) -> ClientSettings:
    """The dashboard client's settings from BACKFILL_* variables (as the Dagster resources read
    them), with explicit values taking precedence."""
    env = os.environ.get

    def number(name: str, default: float) -> float:
        return float(env(name) or default)

    return ClientSettings(
        base_url=base_url or dashboard_url(),
        rate=rate if rate is not None else number("BACKFILL_RATE", 2),
        connect_timeout=number("BACKFILL_CONNECT_TIMEOUT", 5),
        read_timeout=number("BACKFILL_READ_TIMEOUT", 60),
        max_attempts=int(number("BACKFILL_MAX_ATTEMPTS", 4)),
        breaker_threshold=int(number("BACKFILL_BREAKER_THRESHOLD", 5)),
        breaker_cooldown=number("BACKFILL_BREAKER_COOLDOWN", 30),
        use_cache=(env("BACKFILL_CACHE") or "true").strip().lower() not in ("0", "false", "no", "off"),
    )
