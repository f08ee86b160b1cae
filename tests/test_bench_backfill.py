"""The backfill benchmark's own arithmetic (scripts/bench_backfill.py): what its table claims."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_backfill.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_backfill", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_requests_spaced_at_the_rate_use_the_whole_budget(bench):
    times = [100 + i * 0.5 for i in range(21)]  # 2/s for 10 s
    used, idle = bench.utilisation(times, 2.0)
    assert used == pytest.approx(1.0) and idle == 0.0


def test_a_pause_shows_as_idle_seconds_and_lower_utilisation(bench):
    times = [100 + i * 0.5 for i in range(10)] + [110 + i * 0.5 for i in range(10)]
    used, idle = bench.utilisation(times, 2.0)
    assert used == pytest.approx(19 / (2 * 14.5))
    assert idle == pytest.approx(5 / 15)


def test_cases_are_parsed_and_refused_clearly(bench):
    assert bench.Case.parse("per-district:16x10") == bench.Case("per-district", 16, 10)
    assert bench.Case.parse("system-wide:30").label == "system-wide, 30 dates"
    with pytest.raises(SystemExit, match="per-district or system-wide"):
        bench.Case.parse("weekly:3")
    for bad in ("per-district:16", "per-district:0x3", "system-wide:²", "per-district:ax1"):
        with pytest.raises(SystemExit, match="DATESxDISTRICTS"):
            bench.Case.parse(bad)


def test_the_table_shows_the_ratio_and_the_rerun_share(bench):
    row = {
        "case": "per-district, 1 dates x 1 districts",
        "rate": 8.0,
        "requests": 5,
        "runs": 1,
        "wall": 30.0,
        "floor": 0.6,
        "ratio": 50.0,
        "utilisation": 0.5,
        "idleSeconds": 0.0,
        "completedInDagster": 40.0,
        "rerunWall": 15.0,
        "rerunShare": 0.5,
        "rerunRequests": 0,
    }
    line = bench.table([row]).splitlines()[-1]
    assert "| 5 | 1 | 30.0 | 0.6 | 50.0 | 50% | 0% | 40.0 | 15.0 (50%, 0 requests) |" in line
