"""`backfill-pipeline gaps` and `backfill-pipeline heal` over a real store and service, Dagster faked
(no Dagster process): the table, the JSON, the exit codes, what a heal launches."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from api_stack import DISTRICTS, FakeDagster, fake_service
from click.testing import CliRunner
from conftest import AS_OF, BACKFILL, REFRESH, TODAY, a_detailed, a_failure, a_summary

from backfill_pipeline.api.models import CoverageQuery, coverage_dict
from backfill_pipeline.cli import backfills, main
from backfill_pipeline.names import DISTRICT_ASSET, HEAL_TAG, STRATEGY_TAG, SUMMARY_ASSET
from backfill_pipeline.planning.gaps import find_gaps
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.models import SummaryError

DAY = [AS_OF + dt.timedelta(days=i) for i in range(4)]
ISO = [d.isoformat() for d in DAY]
RANGE = ["--start", ISO[0], "--end", ISO[3]]


@pytest.fixture
def dagster(tmp_path, monkeypatch) -> FakeDagster:
    """The commands' service over `tmp_path` (DISTRICTS configured), today fixed, Dagster faked.
    The store: DAY 0: 42 detailed, 61 summary, 109 failed; DAY 1 pending; DAY 2 the summary
    failed with a 503; DAY 3 never collected."""
    fake = FakeDagster()
    DistrictConfig(tmp_path).set(DISTRICTS)
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(DAY[0], [a_summary("61")], context=REFRESH, summary_answered=True)
    store.write_district(a_detailed("42"), context=BACKFILL)
    store.write_district(a_failure("109"), context=BACKFILL)
    store.mark_date_unavailable(DAY[1], context=REFRESH)
    error = SummaryError.from_exception(ConnectionError("HTTP 503: try later"), run_id="r3")
    store.record_summary_failure(DAY[2], error.model_copy(update={"retryable": True}), context=REFRESH)
    monkeypatch.setattr(backfills, "BackfillService", lambda settings: fake_service(settings.data_root, fake))
    return fake


def cli(root, *argv: str):
    return CliRunner().invoke(main, [*argv, "--root", str(root)])


# -- gaps ----------------------------------------------------------------------------------------------


def test_gaps_prints_the_totals_and_the_cells_not_complete(tmp_path, dagster):
    result = cli(tmp_path, "gaps", *RANGE)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{ISO[0]} .. {ISO[3]}: 12 cell(s) of 3 district(s) (42, 61, 109)"
    totals = {line.split()[0]: line.split()[1] for line in lines[3:10]}
    assert totals == {
        "detailed": "1",
        "summary": "1",
        "unavailable-final": "0",
        "unavailable-pending": "3",
        "failed-transient": "4",
        "failed-permanent": "0",
        "missing": "3",
    }
    rows = [line.split() for line in lines[1:] if line.startswith("2025-")]
    assert len(rows) == 1 + 3 + 3 + 3
    assert rows[0][:5] == [ISO[0], "109", "failed-transient", "1", "TimeoutError:"]
    failed_summary = next(r for r in rows if r[0] == ISO[2])
    assert failed_summary[:5] == [ISO[2], "42", "failed-transient", "1", "ConnectionError:"]
    heal = f"backfill-pipeline heal --start {ISO[0]} --end {ISO[3]}"
    assert lines[-1] == f"10 cell(s) may give more if collected again: {heal}"
    assert dagster.launches == []


def test_gaps_json_is_the_coverage_answer(tmp_path, dagster):
    result = cli(tmp_path, "gaps", *RANGE, "--json")
    assert result.exit_code == 0 and result.stderr == ""
    out = json.loads(result.stdout)
    store = PerDistrictFileSnapshotStore(tmp_path)
    assert out == coverage_dict(find_gaps(store, DAY[0], DAY[3]), CoverageQuery())
    assert out["totals"]["failed-transient"] == 4 and out["healable"] == 10 and len(out["cells"]) == 10
    chosen = json.loads(cli(tmp_path, "gaps", *RANGE, "--state", "detailed,summary", "--json").stdout)
    assert [(c["district"], c["state"]) for c in chosen["cells"]] == [("42", "detailed"), ("61", "summary")]
    one = json.loads(cli(tmp_path, "gaps", *RANGE, "--districts", "District 61", "--json").stdout)
    assert one["districts"] == ["61"] and sum(one["totals"].values()) == 4


def test_gaps_defaults_to_the_30_days_up_to_yesterday(tmp_path, dagster):
    out = json.loads(cli(tmp_path, "gaps", "--json").stdout)
    yesterday = TODAY - dt.timedelta(days=1)
    assert (out["start"], out["end"]) == (
        (yesterday - dt.timedelta(days=30)).isoformat(),
        yesterday.isoformat(),
    )


def test_gaps_limit_and_fail_on_gaps(tmp_path, dagster):
    limited = cli(tmp_path, "gaps", *RANGE, "--limit", "2")
    assert limited.exit_code == 0
    assert sum(line.startswith("2025-") for line in limited.stdout.splitlines()[1:]) == 2
    assert "... and 8 more (--limit 0 or --json lists them all)" in limited.stdout
    assert cli(tmp_path, "gaps", *RANGE, "--fail-on-gaps").exit_code == 1
    complete = cli(
        tmp_path, "gaps", "--start", ISO[0], "--end", ISO[0], "--districts", "42,61", "--fail-on-gaps"
    )
    assert complete.exit_code == 0 and "may give more" not in complete.stdout


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--start", "2025-3-1"], "--start"),
        (["--start", "²"], "--start"),
        (["--end", "2030-01-01"], "--end"),
        (["--start", TODAY.isoformat()], "--start"),
        (["--start", "2008-06-01", "--end", "2008-07-03"], "--start"),
        (["--start", "2025-03-10", "--end", "2025-03-01"], "--end"),
        (["--start", "2009-01-01", "--end", "2025-01-01"], "--end"),
        (["--districts", "42,../x"], "--districts"),
        (["--state", "missing", "--state", "lost"], "--state"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_bad_gaps_options_exit_2_naming_them(tmp_path, dagster, argv, named):
    result = cli(tmp_path, "gaps", *argv, "--json")
    assert result.exit_code == 2 and named in result.stderr and result.stdout == "", result.output


# -- heal ----------------------------------------------------------------------------------------------


def test_heal_dry_run_prints_the_plan_and_its_cost(tmp_path, dagster):
    result = cli(tmp_path, "heal", *RANGE, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("strategy   heal: 10 of 12 cell(s) may give more than they hold")
    assert "partitions 4 (3 summary, 1 district)" in result.stdout
    assert "nothing launched (dry run)" in result.stdout
    out = json.loads(cli(tmp_path, "heal", *RANGE, "--dry-run", "--json").stdout)
    assert out["backfillId"] is None and out["plan"]["strategy"] == "heal"
    # Three summaries (the pending date, the failed summary's, the missing one), and 109's date
    # summary, uncached, and its three reports.
    assert out["plan"]["partitions"] == {"all_districts_summary": 3, "district_snapshot": 1, "total": 4}
    assert out["plan"]["cost"]["requests"] == 3 + 1 + 3
    assert dagster.launches == []


def test_heal_launches_exactly_the_healable_cells(tmp_path, dagster):
    dry = json.loads(cli(tmp_path, "heal", *RANGE, "--no-missing", "--dry-run", "--json").stdout)
    result = cli(tmp_path, "heal", *RANGE, "--no-missing", "--plan-hash", dry["plan"]["planHash"], "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["backfillId"] == "fake0001" and "status" not in out
    (launch,) = dagster.launches
    launched = {
        p["assetKey"]["path"][0]: dagster.keys(p["partitions"]["ranges"])
        for p in launch["partitionsByAssets"]
    }
    assert launched == {SUMMARY_ASSET: [ISO[1], ISO[2]], DISTRICT_ASSET: [f"{ISO[0]}|109"]}
    assert launch["tags"][HEAL_TAG] == "true" and launch["tags"][STRATEGY_TAG] == "heal"


def test_a_heal_given_the_same_key_again_launches_once(tmp_path, dagster):
    argv = ["heal", *RANGE, "--no-missing", "--idempotency-key", "heal-2025-q1", "--json"]
    first = json.loads(cli(tmp_path, *argv).stdout)
    again = cli(tmp_path, *argv)
    assert again.exit_code == 0, again.output
    replay = json.loads(again.stdout)
    assert replay["backfillId"] == first["backfillId"] and replay["replayed"] is True
    assert len(dagster.launches) == 1
    assert first["idempotencyKey"] == "heal-2025-q1"


def test_heal_follows_when_asked(tmp_path, dagster, monkeypatch):
    monkeypatch.setattr(backfills, "FOLLOW_INTERVAL", 0)
    original = dagster.backfill

    def ended(backfill_id: str) -> dict:
        dagster.finish(backfill_id)
        return original(backfill_id)

    monkeypatch.setattr(dagster, "backfill", ended)
    result = cli(tmp_path, "heal", *RANGE, "--follow")
    assert result.exit_code == 0, result.output
    assert (
        "launched heal backfill fake0001" in result.stdout
        and "backfill fake0001  succeeded  (heal)" in result.stdout
    )


def test_nothing_to_heal(tmp_path, dagster):
    result = cli(tmp_path, "heal", "--start", ISO[0], "--end", ISO[0], "--districts", "42,61")
    assert result.exit_code == 0 and "nothing launched: nothing to heal" in result.stdout
    assert dagster.launches == []


@pytest.mark.parametrize(
    ("argv", "named", "code"),
    [
        (["--start", "2025-3-1"], "--start", 2),
        (["--end", "2030-01-01"], "--end", 2),
        (["--start", "2025-01-01", "--end", "2026-06-01"], "--end", 2),
        (["--start", "2024-12-01", "--end", "2025-01-02"], "--start", 2),  # before the first partition
        (["--districts", "x1"], "--districts", 2),
        (["--districts", "999"], "--districts", 2),
        (["--rate", "0"], "--rate", 2),
        (["--concurrency", "4"], "--concurrency", 2),
        (["--plan-hash", "../x"], "--plan-hash", 2),
        (["--plan-hash", "0" * 16], "no longer matches", 6),
    ],
)
def test_bad_heal_options_exit_with_their_code(tmp_path, dagster, argv, named, code):
    result = cli(tmp_path, "heal", *argv)
    assert result.exit_code == code and named in result.stderr, result.output
    assert dagster.launches == []


def test_heal_when_dagster_is_down_exits_3(tmp_path, dagster):
    from backfill_pipeline.api.graphql import DagsterUnreachable

    dagster.error = DagsterUnreachable("Dagster at x is unreachable")
    result = cli(tmp_path, "heal", *RANGE, "--json")
    assert result.exit_code == 3 and "unreachable" in result.stderr and result.stdout == ""
    # gaps needs no Dagster.
    assert cli(tmp_path, "gaps", *RANGE).exit_code == 0
