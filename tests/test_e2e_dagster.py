"""End to end: `backfill-pipeline dev` (webserver + brisk backfill daemon) and the sandbox as real
processes, backfills over HTTP GraphQL, the snapshot tree checked on disk."""

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
import requests
from conftest import TODAY, published_dates

from backfill_pipeline.api.graphql import DagsterGraphQL
from backfill_pipeline.devstack import start_configured_stack
from backfill_pipeline.names import CLUB_TABLE, DISTRICT_TABLE, FORCE_TAG, concurrency_tag
from backfill_pipeline.tables import partition_dir, read_table

# The e2e files with their own `dagster dev` run on one xdist worker (`--dist loadgroup`).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dagster")]

DISTRICTS = ["42", "61", "109"]
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def consecutive_published(start: dt.date, n: int) -> list[str]:
    """n consecutive published dates from `start` on, as ISO strings (one range covers exactly them)."""
    return [d.isoformat() for d in published_dates(start, n)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    root = base / "data"
    sandbox, dagster = start_configured_stack(
        base,
        today=TODAY.isoformat(),
        districts=DISTRICTS,
        env={"BACKFILL_START_DATE": "2025-01-01", "BACKFILL_RATE": "20", "BACKFILL_BATCH_SIZE": "10"},
    )
    graphql = DagsterGraphQL(dagster.url)
    try:
        yield dict(root=root, sandbox=sandbox, graphql=graphql, log=base / "dagster.log", url=dagster.url)
    finally:
        dagster.stop()
        sandbox.stop()


def faults(stack, rules):
    requests.put(f"{stack['sandbox'].url}/_sandbox/faults", json=rules, timeout=5).raise_for_status()


def ranges(dates, districts):
    return [
        {
            "assetKey": {"path": ["all_districts_summary"]},
            "partitions": {"ranges": [{"start": dates[0], "end": dates[-1]}]},
        },
        {
            "assetKey": {"path": ["district_snapshot"]},
            "partitions": {
                "ranges": [{"start": f"{dates[0]}|{d}", "end": f"{dates[-1]}|{d}"} for d in districts]
            },
        },
    ]


RUN_TIMES = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { runs { creationTime } } }
}"""


def wait_terminal(graphql, backfill_id, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        b = graphql.backfill(backfill_id)
        if b["status"] in TERMINAL:
            return b
        assert time.monotonic() < deadline, f"backfill {backfill_id} still {b['status']}"
        time.sleep(3)


def counts(backfill):
    return {s["assetKey"]["path"][0]: s for s in backfill["assetBackfillData"]["assetBackfillStatuses"]}


def test_backfill_partial_failure_then_retry_from_failure(stack):
    graphql, root = stack["graphql"], stack["root"]
    dates = consecutive_published(dt.date(2025, 3, 10), 3)
    faults(stack, [{"kind": "wrong_report", "district": "61", "asOf": dates[1]}])

    backfill_id = graphql.launch_backfill(ranges(dates, DISTRICTS), tags={"requester": "e2e"})
    b = wait_terminal(graphql, backfill_id)
    c = counts(b)
    assert c["all_districts_summary"]["numPartitionsMaterialized"] == 3
    assert c["district_snapshot"]["numPartitionsMaterialized"] == 8
    assert c["district_snapshot"]["numPartitionsFailed"] == 1
    # Batching: fewer runs than the 12 partitions.
    assert 0 < len(b["runs"]) < 12
    # One level: the daemon submitted the summary's run and the districts' in one iteration (a
    # dependency between the assets would put the districts' a tick, 30 s, later).
    created = [
        r["creationTime"]
        for r in graphql.execute(RUN_TIMES, {"id": backfill_id})["partitionBackfillOrError"]["runs"]
    ]
    assert len(created) == len(b["runs"]) and max(created) - min(created) < 10, created

    statuses = graphql.partition_statuses(["district_snapshot"])
    assert statuses.failed == {f"{dates[1]}|61"}
    assert {f"{d}|{x}" for d in dates for x in DISTRICTS} - statuses.failed <= statuses.materialized

    for d in (dates[0], dates[2]):
        meta = json.loads((root / "snapshots" / d / "metadata.json").read_text())
        assert meta["status"] == "success" and meta["source"] == "backfill"
        assert meta["detailedDistricts"] == DISTRICTS and meta["backfillId"] == backfill_id
        manifest = json.loads((root / "snapshots" / d / "manifest.json").read_text())
        assert {e["districtId"] for e in manifest["districts"]} == set(DISTRICTS)
        assert (root / "snapshots" / d / "all-districts-rankings.json").exists()
    partial = json.loads((root / "snapshots" / dates[1] / "metadata.json").read_text())
    # 61's summary-level data stays (nothing good is demoted); the failed detail is recorded beside it.
    assert partial["status"] == "success" and partial["failedDistricts"] == []
    assert "61" not in partial["detailedDistricts"]
    (error,) = [e for e in partial["errorsWithDataKept"] if e["district"] == "61"]
    assert error["errorClass"] == "NotACsv" and error["retryable"] is False
    assert error["backfillId"] == backfill_id and error["runId"]
    alerts = root / "alerts" / "run-failures.jsonl"
    deadline = time.monotonic() + 60
    while not alerts.exists() and time.monotonic() < deadline:
        time.sleep(2)
    assert backfill_id in alerts.read_text()

    faults(stack, [])
    retry_id = graphql.reexecute_backfill(backfill_id, "FROM_FAILURE")
    assert retry_id != backfill_id
    retried = wait_terminal(graphql, retry_id)
    assert retried["status"] == "COMPLETED_SUCCESS"
    rc = counts(retried)
    assert rc["district_snapshot"]["numPartitionsTargeted"] == 1
    assert rc.get("all_districts_summary", {}).get("numPartitionsTargeted", 0) == 0
    fixed = json.loads((root / "snapshots" / dates[1] / "metadata.json").read_text())
    assert fixed["status"] == "success" and fixed["errorsWithDataKept"] == []
    assert fixed["detailedDistricts"] == DISTRICTS
    assert graphql.partition_statuses(["district_snapshot"]).failed == set()


def test_cancelling_a_backfill_stops_it(stack):
    graphql = stack["graphql"]
    dates = consecutive_published(dt.date(2025, 5, 1), 12)
    faults(stack, [{"kind": "latency", "latencyMs": 1500}])
    try:
        # One run at a time (its concurrency lane), each of at least 12 slow requests: when the
        # cancel reaches the daemon (its next tick, within 30 s), runs are still queued.
        lane = {concurrency_tag(1): "e2e-cancel"}
        backfill_id = graphql.launch_backfill(ranges([dates[0], dates[-1]], DISTRICTS), tags=lane)
        deadline = time.monotonic() + 120
        while not any(r["status"] == "STARTED" for r in graphql.backfill(backfill_id)["runs"]):
            assert time.monotonic() < deadline, "no run started"
            time.sleep(1)
        graphql.cancel_backfill(backfill_id)
        b = wait_terminal(graphql, backfill_id, timeout=180)
    finally:
        faults(stack, [])
    assert b["status"] == "CANCELED"
    assert all(r["status"] in ("CANCELED", "SUCCESS", "FAILURE") for r in b["runs"])
    c = counts(b)
    # One level: 4 runs (the summary's 12 dates, one per district). Dagster cancels those still
    # queued and lets the one in flight finish: their partitions are never collected.
    assert c["district_snapshot"]["numPartitionsTargeted"] == 36
    assert any(r["status"] == "CANCELED" for r in b["runs"]), b["runs"]
    targeted = sum(a["numPartitionsTargeted"] for a in c.values())
    materialized = sum(a["numPartitionsMaterialized"] for a in c.values())
    assert materialized < targeted == 12 + 36
    assert all(a["numPartitionsInProgress"] == 0 for a in c.values())


def cli(stack, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "backfill_pipeline.cli",
            *args,
            "--dagster-url",
            stack["url"],
            "--root",
            str(stack["root"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_plans_launches_follows_and_reports(stack):
    dates = consecutive_published(dt.date(2025, 6, 2), 2)
    before = {b["id"] for b in stack["graphql"].backfills()}
    dry = cli(
        stack, "backfill", "--start", dates[0], "--end", dates[1], "--districts", "109", "--dry-run", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    assert plan["strategy"] == "per-district" and plan["districts"] == ["109"]
    assert plan["partitions"] == {"all_districts_summary": 2, "district_snapshot": 2, "total": 4}
    assert {b["id"] for b in stack["graphql"].backfills()} == before  # a dry run launches nothing

    bad = cli(stack, "backfill", "--start", dates[1], "--end", dates[0])
    assert bad.returncode == 2 and "endDate" in bad.stderr

    run = cli(stack, "backfill", "--start", dates[0], "--end", dates[1], "--districts", "109")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "strategy   per-district" in run.stdout and "launched backfill" in run.stdout
    assert "109" in run.stdout and "succeeded" in run.stdout
    backfill_id = run.stdout.split("launched backfill ")[1].split()[0]

    # The backfill's tags reach its runs: the per-backfill concurrency lane and its share of the
    # budget (the whole budget of 2, drawn by all its runs together).
    for r in stack["graphql"].backfill(backfill_id)["runs"]:
        tags = {t["key"]: t["value"] for t in r["tags"]}
        assert tags["backfill_pipeline/rate"] == "2.0" and "backfill_pipeline/concurrency-3" in tags
        assert tags["backfill_pipeline/source"] == "backfill"

    listed = cli(stack, "list", "--json")
    assert backfill_id in {b["id"] for b in json.loads(listed.stdout)}
    status = json.loads(cli(stack, "status", backfill_id, "--json").stdout)
    assert status["state"] == "succeeded" and status["districts"]["109"]["done"] == 2
    assert status["performance"]["requestsMade"] >= 6
    assert cli(stack, "cancel", backfill_id).returncode == 5  # already over
    assert cli(stack, "retry", backfill_id).returncode == 5  # nothing failed
    assert cli(stack, "status", "nosuchid").returncode == 4


BACKFILL_TIMES = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status timestamp endTimestamp runs { creationTime endTime } }
  }
}"""


def test_the_daemon_acts_within_seconds_of_a_launch_and_of_the_last_run(stack):
    """Dagster's backfill daemon looks every 30 s; `backfill-pipeline dev`'s within about a second
    of a new backfill or a run's end. Three launches in a row: with a 30-s tick each wait would be
    0-30 s at random, so all six under 8 s does not happen by luck."""
    graphql = stack["graphql"]
    dates = consecutive_published(dt.date(2025, 9, 1), 3)
    for date in dates:
        backfill_id = graphql.launch_backfill(ranges([date], ["61"]), tags={"requester": "e2e-latency"})
        wait_terminal(graphql, backfill_id, timeout=120)
        b = graphql.execute(BACKFILL_TIMES, {"id": backfill_id})["partitionBackfillOrError"]
        assert b["status"] == "COMPLETED_SUCCESS"
        first_run = min(r["creationTime"] for r in b["runs"])
        last_end = max(r["endTime"] for r in b["runs"])
        assert first_run - b["timestamp"] < 8, f"first run {first_run - b['timestamp']:.1f}s after launch"
        done = b["endTimestamp"] - last_end
        assert done < 8, f"completed {done:.1f}s after its runs"


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
TABLE_RUNS = """
query {
  runsOrError(filter: {tags: [{key: "backfill_pipeline/tables", value: "rebuild"}]}) {
    ... on Runs { results { runId status startTime endTime tags { key value } } }
  }
}"""


def table_runs(graphql):
    return graphql.execute(TABLE_RUNS)["runsOrError"]["results"]


def run_dates(run):
    """The dates a table run rebuilt: its partition, or the ends of its range."""
    tags = {t["key"]: t["value"] for t in run["tags"]}
    return {tags[k] for k in ("dagster/partition", RANGE_START, RANGE_END) if k in tags}


def wait_tables(graphql, dates, timeout=150):
    """Until both analyst tables are materialized for `dates` (the automation sensor ticks every 30 s)."""
    deadline = time.monotonic() + timeout
    while True:
        done = [graphql.partition_statuses([t]).materialized for t in (DISTRICT_TABLE, CLUB_TABLE)]
        if all(set(dates) <= d for d in done):
            return
        assert time.monotonic() < deadline, f"tables of {dates} not rebuilt: {done}"
        time.sleep(3)


def test_the_analyst_tables_follow_the_snapshots_date_by_date(stack):
    """Point 3 of issue 13: Dagster's automation sensor rebuilds a date's tables after a backfill
    collected it (never while it still collects), and after a re-collection only that date."""
    graphql, root = stack["graphql"], stack["root"]
    dates = consecutive_published(dt.date(2025, 10, 6), 2)
    backfill_id = graphql.launch_backfill(ranges(dates, ["42", "109"]), tags={"requester": "e2e-tables"})
    assert wait_terminal(graphql, backfill_id)["status"] == "COMPLETED_SUCCESS"
    b = graphql.execute(BACKFILL_TIMES, {"id": backfill_id})
    collected_by = max(r["endTime"] for r in b["partitionBackfillOrError"]["runs"])
    wait_tables(graphql, dates)
    ours = [r for r in table_runs(graphql) if {t["value"] for t in r["tags"]} & set(dates)]
    assert ours and all(r["status"] == "SUCCESS" for r in ours)
    assert min(r["startTime"] for r in ours) >= collected_by - 1, (
        "a table rebuilt while its date was collecting"
    )
    days = [dt.date.fromisoformat(d) for d in dates]
    clubs = read_table(root, CLUB_TABLE, days[0], days[1])
    assert set(clubs["district"]) == {"42", "109"} and set(clubs["as_of"]) == set(days)
    for day in days:
        listed = json.loads((root / "snapshots" / day.isoformat() / "manifest.json").read_text())["districts"]
        assert len(read_table(root, DISTRICT_TABLE, day, day)) == len(listed)

    # Re-collect one district of the second date: only that date is rebuilt.
    files = {d: partition_dir(root, CLUB_TABLE, d) / "part-0.parquet" for d in days}
    before = {d: files[d].stat().st_mtime_ns for d in days}
    runs_before = {r["runId"] for r in table_runs(graphql)}
    again = graphql.launch_backfill(ranges([dates[1]], ["42"])[1:], tags={FORCE_TAG: "true"})
    assert wait_terminal(graphql, again)["status"] == "COMPLETED_SUCCESS"
    deadline = time.monotonic() + 150
    while files[days[1]].stat().st_mtime_ns == before[days[1]]:
        assert time.monotonic() < deadline, "the re-collected date's tables were not rebuilt"
        time.sleep(3)
    new_runs = [r for r in table_runs(graphql) if r["runId"] not in runs_before]
    assert [{t["key"]: t["value"] for t in r["tags"]}.get("dagster/partition") for r in new_runs] == [
        dates[1]
    ]
    assert files[days[0]].stat().st_mtime_ns == before[days[0]], "an unchanged date was rebuilt"
