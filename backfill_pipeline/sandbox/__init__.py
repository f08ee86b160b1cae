"""A local dashboard that speaks the real export protocol, for offline use, tests and benchmarks."""

from __future__ import annotations

import datetime as _dt

from .faults import FaultRule
from .server import SandboxServer

# A fixed "today" for tests: deterministic answers whatever the real date.
DEFAULT_TEST_TODAY = _dt.date(2026, 11, 29)

__all__ = ["DEFAULT_TEST_TODAY", "FaultRule", "SandboxServer"]
