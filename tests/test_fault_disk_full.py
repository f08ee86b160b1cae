"""The data root filling up mid-batch loses nothing: a real, small filesystem runs out of space.

No root needed: tests/disk_full_worker.py runs under `unshare --user --map-root-user --mount`,
mounts a small tmpfs as the data root (BACKFILL_DATA_ROOT's place), collects a date's summary and
one district, fills the tmpfs with a ballast file and runs a batch of six districts in detail
through `dagster.materialize` against the sandbox on loopback. The ballast is sized (from a twin
run on a copy) so that two districts are written, the third one's detailed file lands but the
manifest rewrite after it meets ENOSPC, and the rest find the disk full. Then the ballast goes,
`verify --repair` fixes the date's index and the failed keys are re-run.

Every property is checked and all the violated ones are reported together, with the child's
observations and its stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import published_dates

from backfill_pipeline.settings import ENV_PREFIX

# Seconds of real servers, processes or generated requests, but no Dagster process: the full
# suite runs it, the fast lane (-m "not e2e and not slow") leaves it out.
pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "disk_full_worker.py"
START = dt.date(2025, 1, 1)
(AS_OF,) = published_dates(dt.date(2025, 3, 10), closing=False)
SIZE = "4m"
# What verify may find after the fault: the date's index (manifest, metadata, collections) not
# describing a file whose write landed just before the disk filled. Nothing else.
INDEX_PROBLEMS = {
    "sha256-mismatch",
    "manifest-entry",
    "unlisted-file",
    "metadata-stale",
    "collection-missing",
}


def unshare_command() -> list[str]:
    """`unshare` making us root of new user and mount namespaces, or a failure saying why not."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux `unshare` is not installed: this test needs it to mount a small tmpfs"
    command = [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*command, "true"], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, (
        "unprivileged user namespaces are unavailable here (`unshare --user --map-root-user --mount "
        f"true` exited {probe.returncode}: {probe.stderr.strip()}); enable them "
        "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0, or an AppArmor "
        "profile allowing them) to run the disk-full test"
    )
    return command


@pytest.mark.timeout(120)
def test_the_data_root_filling_up_mid_batch_loses_nothing(fresh_sandbox, tmp_path):
    command = unshare_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")  # outside the tmpfs
    (tmp_path / "dagster_home").mkdir()
    config = {
        "url": fresh_sandbox.url,
        "as_of": AS_OF.isoformat(),
        "start": START.isoformat(),
        "workdir": str(tmp_path / "mnt"),
        "size": SIZE,
    }
    child = subprocess.run(
        [*command, sys.executable, str(WORKER), json.dumps(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=TESTS.parent,
        timeout=100,
    )
    stderr = f"--- the child's stderr (tail):\n{child.stderr[-8000:]}"
    assert child.returncode == 0, f"the child exited {child.returncode}\n{stderr}"
    try:
        obs = json.loads(child.stdout)
    except ValueError:
        pytest.fail(f"the child printed no JSON document: {child.stdout[-2000:]!r}\n{stderr}")

    violated: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            violated.append(what)

    setup, full, freed, final = obs["setup"], obs["full"], obs["freed"], obs["final"]
    batch, earlier, target = setup["batch"], setup["earlier_district"], obs["twin"]["target"]
    keys = {f"{AS_OF}|{d}" for d in batch}
    date = f"snapshots/{AS_OF}"

    # The fixture: a real small tmpfs, a non-empty store, a ballast leaving a little space.
    expect(obs["mount"] == {"fstype": "tmpfs", "total": 4 * 1024 * 1024}, f"a 4 MiB tmpfs: {obs['mount']}")
    expect(setup["summary_success"] and setup["earlier"]["success"], "the summary and one district first")
    expect(setup["districts"] > 100 and setup["verify"] == [], "a full, clean date before the fault")
    expect(obs["twin"]["success"], "the twin run (plenty of space) succeeds")
    expect(0 < obs["ballast"]["free"] <= 1024 * 1024, f"a little space left: {obs['ballast']}")

    # The batch met ENOSPC: transient (Dagster retried it), no temporary file, nothing lost.
    expect(not full["success"], "the batch run fails: the disk is full")
    failures = full["failures"]
    expect(len(failures) == 1, f"one step failure: {failures}")
    failed = {k for f in failures for k in f.get("failed_partitions", [])}
    expect(
        all(
            f.get("retryable") is True and "No space left on device" in f.get("errors", "") for f in failures
        ),
        "the failure is ENOSPC and retryable (an OSError is transient)",
    )
    expect(full["step_retries"] >= 1, "Dagster retried the step (transient failure)")
    materialized = set(full["materialized"])
    expect(
        {f"{AS_OF}|{d}" for d in batch[:2]} <= materialized,
        f"the keys before the disk filled are materialized: {sorted(materialized)}",
    )
    expect(bool(failed) and failed <= keys, f"some keys of the batch failed: {sorted(failed)}")
    expect(
        materialized | failed == keys and not materialized & failed,
        "every key of the batch is either materialized or named failed by the run, none vanishes: "
        f"{sorted(keys - materialized - failed)} are neither (their file landed before the manifest "
        "rewrite met ENOSPC; the step's retry took them for done and skipped them)",
    )
    expect(full["temp_files"] == [], f"no temporary file left: {full['temp_files']}")
    expect(full["missing"] == [], f"no file lost: {full['missing']}")
    allowed = {f"{date}/{n}" for n in ("manifest.json", "metadata.json", "collections.json")}
    allowed |= {f"{date}/district_{d}.json" for d in full["detailed"] if d in batch}
    expect(
        set(full["changed"]) <= allowed,
        f"only the batch's new files and the index changed: {full['changed']}",
    )
    expect(full["not_success"] == [], f"no district file demoted: {full['not_success']}")
    expect(earlier in full["detailed"], "the district collected earlier keeps its detailed file")
    expect(
        full["unindexed"] == [target],
        f"the disk ran out right after {target}'s file landed, before the manifest described it "
        f"(files the manifest does not describe: {full['unindexed']})",
    )
    expect(
        all(p["kind"] in INDEX_PROBLEMS and p["path"] in allowed for p in full["verify"]),
        f"verify finds only the date's index behind its files: {full['verify']}",
    )

    # Space freed: repair fixes the index; the failed keys are re-run and every key materializes.
    expect(all(p["repaired"] for p in freed["repair"]), f"verify --repair fixes it all: {freed['repair']}")
    expect(freed["verify"] == [], f"verify is clean after the repair: {freed['verify']}")
    heal = obs.get("heal", {})
    expect(heal.get("success") is True, f"the re-run of the failed keys succeeds: {heal}")
    expect(
        set(heal.get("materialized", {})) == failed
        and set(heal.get("materialized", {}).values()) == {"success"},
        f"the re-run materializes exactly the failed keys, collected: {heal.get('materialized')}",
    )
    expect(
        keys | {f"{AS_OF}|{earlier}"} <= set(final["materialized"]),
        f"every key is materialized in the end; missing: {sorted(keys - set(final['materialized']))}",
    )
    expect(final["verify"] == [], f"verify is clean in the end: {final['verify']}")
    expect(final["temp_files"] == [] and final["missing"] == [], "no temporary file, no file lost")
    expect(final["not_success"] == [], f"every district file is valid and successful: {final['not_success']}")
    detailed = sorted([*batch, earlier])
    expect(
        final["detailed"] == detailed, f"the batch and the earlier district in detail: {final['detailed']}"
    )
    expect(
        final["metadata_status"] == "success"
        and final["metadata_detailed"] == detailed
        and final["metadata_successful"] == setup["districts"],
        f"the metadata agrees: {final['metadata_status']}, {final['metadata_detailed']}",
    )

    assert not violated, (
        "\n".join(f"- {v}" for v in violated)
        + f"\n--- the child's observations:\n{json.dumps(obs, indent=1)}\n{stderr}"
    )
