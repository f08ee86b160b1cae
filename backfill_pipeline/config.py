"""Environment settings, read when a command or run starts (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

from .dashboard.client import DEFAULT_BASE_URL


def data_root() -> Path:
    """`BACKFILL_DATA_ROOT`, default `./data`."""
    return Path(os.environ.get("BACKFILL_DATA_ROOT") or "data")


def dashboard_url() -> str:
    """`BACKFILL_DASHBOARD_URL`, default the real dashboard."""
    return os.environ.get("BACKFILL_DASHBOARD_URL") or DEFAULT_BASE_URL


def rate() -> float:
    """`BACKFILL_RATE`: dashboard requests per second per run, default 2."""
    return float(os.environ.get("BACKFILL_RATE") or 2)


def dagster_url() -> str:
    """`BACKFILL_DAGSTER_URL`: where the API and CLI reach Dagster's webserver."""
    return os.environ.get("BACKFILL_DAGSTER_URL") or "http://127.0.0.1:3000"
