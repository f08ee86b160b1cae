"""The core (dashboard client, CSV parsing, store, scope, planner, collect) never imports Dagster."""

import subprocess
import sys

CORE = [
    "backfill_pipeline.dashboard.client",
    "backfill_pipeline.dashboard.csvparse",
    "backfill_pipeline.snapshots.store",
    "backfill_pipeline.snapshots.verify",
    "backfill_pipeline.scope",
    "backfill_pipeline.planning.planner",
    "backfill_pipeline.collecting.batch",
    "backfill_pipeline.settings",
    "backfill_pipeline.sandbox.server",
    "backfill_pipeline.api.app",
    "backfill_pipeline.api.service",
]


def test_core_modules_import_without_dagster():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        + "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"Dagster imported by the core: {p.stdout} {p.stderr[-2000:]}"
