"""The fault matrix against real processes: `dagster dev` (webserver, daemon, code server, run
workers) and the sandbox dashboard, real files. Each fault happens in the middle of a backfill; each
test ends with every partition collected by the product itself (no manual retry), `verify` clean
and no temporary file left. The time from the end of the fault to the last partition is printed."""

import datetime as dt
import os
import signal
import time

import dagster as dg
import pytest
import requests
from conftest import TODAY, published_dates
from dagster._core.instance.ref import InstanceRef

from backfill_pipeline.api.graphql import DagsterGraphQL
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.devstack import start_split_stack
from backfill_pipeline.files import is_temp_name
from backfill_pipeline.names import HEAL_TAG, POOL
from backfill_pipeline.planning.gaps import find_gaps
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.verify import verify_store

# The fault matrix (mostly waiting on outages) runs on its own xdist worker beside the other e2e files.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("faults")]

DISTRICTS = ["42", "61"]
SUMMARY, DISTRICT = dg.AssetKey("all_districts_summary"), dg.AssetKey("district_snapshot")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    # The webserver and the daemon as separate processes (as in production), so the daemon can die.
    sandbox, webserver, daemon = start_split_stack(
        base,
        today=TODAY.isoformat(),
        districts=DISTRICTS,
        env={
            "BACKFILL_START_DATE": "2025-01-01",
            "BACKFILL_RATE": "4",
            "BACKFILL_BATCH_SIZE": "4",
            "BACKFILL_MAX_ATTEMPTS": "2",
            "BACKFILL_RETRY_DELAY": "2",
            "BACKFILL_BREAKER_COOLDOWN": "10",
        },
    )
    home = base / "dagster_home"
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield dict(
                root=base / "data",
                sandbox=sandbox,
                graphql=DagsterGraphQL(webserver.url),
                instance=instance,
                daemon=daemon,
            )
    finally:
        daemon.stop()
        webserver.stop()
        sandbox.stop()


def faults(stack, rules):
    requests.put(f"{stack['sandbox'].url}/_sandbox/faults", json=rules, timeout=5).raise_for_status()


def launch(stack, dates: list[str]) -> str:
    return stack["graphql"].launch_backfill(
        [
            {
                "assetKey": {"path": ["all_districts_summary"]},
                "partitions": {"ranges": [{"start": dates[0], "end": dates[-1]}]},
            },
            {
                "assetKey": {"path": ["district_snapshot"]},
                "partitions": {
                    "ranges": [{"start": f"{dates[0]}|{d}", "end": f"{dates[-1]}|{d}"} for d in DISTRICTS]
                },
            },
        ],
        tags={"requester": "e2e-faults"},
    )


def keys(dates):
    return {f"{d}|{x}" for d in dates for x in DISTRICTS}


def materialized(stack) -> set[str]:
    return set(stack["instance"].get_materialized_partitions(DISTRICT))


def wait_until(predicate, timeout: float, what: str, every: float = 3):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def check_nothing_lost(stack, dates: list[str]) -> None:
    """Every cell detailed, verify clean, no temporary file anywhere under the data root."""
    store = PerDistrictFileSnapshotStore(stack["root"])
    days = [dt.date.fromisoformat(d) for d in dates]
    gaps = find_gaps(store, days[0], days[-1], DISTRICTS)
    assert {c.state for c in gaps.cells} == {"detailed"}, gaps.totals()
    assert verify_store(store) == []
    temp = [p for p in DataRoot.of(stack["root"]).path.rglob("*") if is_temp_name(p.name)]
    assert temp == []


def heal_runs(stack) -> list:
    return [
        r
        for r in stack["instance"].get_runs(dg.RunsFilter(tags={HEAL_TAG: "true"}))
        if r.status == dg.DagsterRunStatus.SUCCESS
    ]


def outage(stack, rules, seconds: float, dates: list[str]) -> float:
    """Launch a backfill of `dates`, start the fault once its first district is in, end it after
    `seconds`, and wait for every partition; returns the seconds from the fault's end to the last."""
    backfill_id = launch(stack, dates)
    wait_until(lambda: materialized(stack) & keys(dates), 240, "the backfill's first district", every=1)
    faults(stack, rules)
    time.sleep(seconds)
    faults(stack, [])
    cleared = time.monotonic()
    wait_until(lambda: keys(dates) <= materialized(stack), 420, f"backfill {backfill_id} to heal")
    healed_after = time.monotonic() - cleared
    print(f"{rules[0]['kind']} for {seconds:.0f} s: every partition collected {healed_after:.0f} s after")
    check_nothing_lost(stack, dates)
    return healed_after


# Its own group (and so its own stack, on another worker): the five minutes are waited through
# while the other faults run.
@pytest.mark.xdist_group("faults-outage")
@pytest.mark.timeout(900)
def test_a_five_minute_outage_mid_backfill_heals_without_a_human(stack):
    dates = [d.isoformat() for d in published_dates(dt.date(2025, 5, 12), 8)]
    before = len(heal_runs(stack))
    outage(stack, [{"kind": "error", "status": 503}], 300, dates)
    # The backfill's own runs failed during the outage; heal_gaps re-executed them.
    assert len(heal_runs(stack)) > before


def test_the_maintenance_page_for_90_s_heals_without_a_human(stack):
    dates = [d.isoformat() for d in published_dates(dt.date(2025, 6, 9), 6)]
    outage(stack, [{"kind": "html"}], 90, dates)


def run_worker_pid(stack, run_id: str) -> int | None:
    for record in stack["instance"].all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key and event.pid:
            return event.pid
    return None


def test_a_run_worker_killed_mid_batch_is_retried_and_each_partition_materialized_once(stack):
    dates = [d.isoformat() for d in published_dates(dt.date(2025, 2, 3), 8)]
    instance = stack["instance"]
    launch(stack, dates)
    # Wait for a district run that has collected some keys but not all of its batch.
    victim = None

    def mid_batch() -> bool:
        nonlocal victim
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if DISTRICT not in (run.asset_selection or set()):
                continue
            done = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            if any(r.event_log_entry.dagster_event.asset_key == DISTRICT for r in done):
                victim = run
                return True
        return False

    wait_until(mid_batch, 240, "a district run mid-batch", every=0.5)
    pid = run_worker_pid(stack, victim.run_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    try:
        wait_until(lambda: keys(dates) <= materialized(stack), 420, "the retried run")
    except AssertionError:
        # What CI needs to tell a stuck retry from a slow one.
        victim_now = instance.get_run_by_id(victim.run_id)
        retries = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": victim.run_id}))
        print("victim:", victim.run_id, victim_now and victim_now.status, victim_now and victim_now.tags)
        print("retries:", [(r.run_id, r.status) for r in retries])
        print("missing:", sorted(keys(dates) - materialized(stack)))
        # A dead worker's pool slots stay claimed unless run monitoring frees them
        # (free_slots_after_run_end_seconds): a pool with no free slot holds every retry back.
        info = instance.event_log_storage.get_concurrency_info(POOL)
        print("pool:", info.slot_count, "slots,", info.active_slot_count, "claimed by", info.active_run_ids)
        print("pending steps:", info.pending_step_count)
        print((stack["root"].parent / "daemon.log").read_text()[-6000:])
        raise
    print(f"run worker SIGKILLed: every partition collected {time.monotonic() - killed:.0f} s after")
    assert instance.get_run_by_id(victim.run_id).status == dg.DagsterRunStatus.FAILURE
    retries = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": victim.run_id}))
    assert retries, "run_retries re-launched the dead run"
    # Exactly once: each partition has one materialization.
    assert materializations_per_key(stack, keys(dates)) == {k: 1 for k in keys(dates)}
    check_nothing_lost(stack, dates)


def materializations_per_key(stack, wanted: set[str]) -> dict[str, int]:
    per_key: dict[str, int] = {}
    for record in stack["instance"].fetch_materializations(DISTRICT, limit=5000).records:
        key = record.event_log_entry.dagster_event.partition
        if key in wanted:
            per_key[key] = per_key.get(key, 0) + 1
    return per_key


def test_the_daemon_killed_mid_backfill_and_restarted_finishes_it_once(stack):
    dates = [d.isoformat() for d in published_dates(dt.date(2025, 9, 8), 8)]
    backfill_id = launch(stack, dates)
    wait_until(lambda: materialized(stack) & keys(dates), 240, "the backfill's first district", every=1)
    stack["daemon"].kill()
    time.sleep(20)  # nothing schedules, dequeues or ticks the backfill meanwhile
    stack["daemon"].start()
    restarted = time.monotonic()
    wait_until(lambda: keys(dates) <= materialized(stack), 420, f"backfill {backfill_id} after the restart")
    print(f"daemon killed for 20 s: every partition in {time.monotonic() - restarted:.0f} s after restart")
    assert materializations_per_key(stack, keys(dates)) == {k: 1 for k in keys(dates)}
    check_nothing_lost(stack, dates)
