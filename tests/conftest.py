"""Shared fixtures: the sandbox dashboard on loopback, with a fixed today."""

from __future__ import annotations

import datetime

import pytest

from backfill_pipeline.sandbox import DEFAULT_TEST_TODAY, SandboxServer

SANDBOX_TODAY: datetime.date = DEFAULT_TEST_TODAY


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox for the whole session (seed 42, today 2026-11-29); never give it faults."""
    with SandboxServer(seed=42, today=SANDBOX_TODAY) as server:
        yield server


@pytest.fixture
def fresh_sandbox():
    """A new sandbox per test, free to take faults and to count requests."""
    with SandboxServer(seed=42, today=SANDBOX_TODAY) as server:
        yield server
