"""A local dashboard that speaks the real export protocol, for offline use, tests and benchmarks."""

from __future__ import annotations

from .faults import FaultRule
from .server import SandboxServer

__all__ = ["FaultRule", "SandboxServer"]
