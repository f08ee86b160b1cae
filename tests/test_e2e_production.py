"""Issue 14, point 2: Dagster's production topology on this machine. A throwaway PostgreSQL holds
Dagster's runs, event logs and schedules; a gRPC code server, `dagster-webserver` and `backfill-
pipeline daemon` run as separate processes over the repo's workspace.yaml and
deploy/dagster-postgres.yaml; the REST API launches a per-district backfill on top. Mid-backfill
the code server, then the daemon, are killed and restarted: the backfill completes, every
partition materialized once, `verify` clean."""

import datetime as dt
import secrets
import time

import dagster as dg
import pytest
import requests
from api_process import running_api
from conftest import TODAY, published_dates
from dagster._core.instance.ref import InstanceRef
from pg_server import dagster_postgres_env, postgres_server

from backfill_pipeline.devstack import start_production_stack
from backfill_pipeline.planning.gaps import find_gaps
from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.verify import verify_store

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("production")]

DISTRICTS = ["42", "61", "109"]
DISTRICT = dg.AssetKey("district_snapshot")


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    base = tmp_path_factory.mktemp("production")
    token = secrets.token_urlsafe(24)
    with postgres_server() as url, pytest.MonkeyPatch.context() as env:
        pg = dagster_postgres_env(url)
        for name, value in pg.items():
            env.setenv(name, value)  # this process reads the same instance below
        stack = start_production_stack(
            base,
            today=TODAY.isoformat(),
            districts=DISTRICTS,
            env={"BACKFILL_START_DATE": "2025-01-01", "BACKFILL_RATE": "3", "BACKFILL_BATCH_SIZE": "4", **pg},
        )
        try:
            home = base / "dagster_home"
            with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
                with running_api(
                    base / "data", token=token, dagster_url=stack.webserver.url, today=TODAY.isoformat()
                ) as console:
                    yield dict(
                        stack=stack,
                        instance=instance,
                        root=base / "data",
                        home=home,
                        api=f"{console}/api",
                        token=token,
                    )
        finally:
            stack.stop()


def wait_until(predicate, timeout: float, what: str, every: float = 1):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def test_dagster_keeps_its_state_in_postgres_not_in_dagster_home(production):
    instance = production["instance"]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    assert not list(production["home"].rglob("*.db")), "no SQLite file beside the instance"
    # The daemon's sensors already ran against it: district_discovery made the partitions.
    assert instance.get_dynamic_partitions("districts") == DISTRICTS


def test_a_backfill_survives_the_code_server_and_the_daemon_restarting(production):
    stack, instance, api = production["stack"], production["instance"], production["api"]
    headers = {"Authorization": f"Bearer {production['token']}"}
    dates = [d.isoformat() for d in published_dates(dt.date(2025, 10, 6), 10)]
    wanted = {f"{d}|{x}" for d in dates for x in DISTRICTS}
    answer = requests.post(
        f"{api}/backfills",
        json={"startDate": dates[0], "endDate": dates[-1], "targetDistricts": DISTRICTS},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    backfill_id = answer.headers["X-Backfill-ID"]

    def materialized() -> set[str]:
        return set(instance.get_materialized_partitions(DISTRICT)) & wanted

    wait_until(lambda: materialized(), 240, "the backfill's first district")
    stack.code_server.kill()  # the main process only: the runs it started live on, as in a crash
    time.sleep(5)
    stack.code_server.start(timeout=180)
    stack.daemon.kill()
    time.sleep(10)
    stack.daemon.start()
    restarted = time.monotonic()
    assert materialized() != wanted, "the backfill was over before the restarts: nothing was shown"

    def state() -> str:
        status = requests.get(f"{api}/backfills/{backfill_id}", headers=headers, timeout=30)
        status.raise_for_status()
        return status.json()["state"]

    wait_until(lambda: state() not in ("running", "failing", "canceling"), 600, "the backfill's end", every=3)
    print(f"backfill over {time.monotonic() - restarted:.0f} s after the restarts")
    assert state() == "succeeded"
    # Every run recorded what it cost (its teardown reads the breaker, kept in PostgreSQL here).
    status = requests.get(f"{api}/backfills/{backfill_id}", headers=headers, timeout=30).json()
    assert status["performance"]["requestsMade"] >= len(wanted) * 3, status["performance"]
    assert status["performance"]["breakerState"] == "closed"
    per_key: dict[str, int] = {}
    for record in instance.fetch_materializations(DISTRICT, limit=5000).records:
        key = record.event_log_entry.dagster_event.partition
        if key in wanted:
            per_key[key] = per_key.get(key, 0) + 1
    assert per_key == {k: 1 for k in wanted}, "every partition materialized once"
    store = PerDistrictFileSnapshotStore(production["root"])
    days = [dt.date.fromisoformat(d) for d in dates]
    assert {c.state for c in find_gaps(store, days[0], days[-1], DISTRICTS).cells} == {"detailed"}
    assert verify_store(store) == []
