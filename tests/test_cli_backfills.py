"""`backfill-pipeline backfill|status|cancel|retry|list` over a scripted BackfillService (no Dagster):
text and --json output, following, the exit codes; real subprocesses for Dagster unreachable and an
unknown backfill. The whole flow against a real Dagster is in test_e2e_dagster.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TODAY
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from backfill_pipeline.api.graphql import BackfillNotFound, DagsterGraphQLError, DagsterUnreachable
from backfill_pipeline.api.models import PlanBody
from backfill_pipeline.api.service import (
    Launched,
    NotCancellable,
    NothingToRetry,
    PlanConflict,
    Retried,
    StillRunning,
)
from backfill_pipeline.cli import backfills, main, render
from backfill_pipeline.devstack import free_port
from backfill_pipeline.planning.planner import PlanError, World, make_plan
from backfill_pipeline.planning.request import BackfillRequest


class Answer(BaseModel):
    """A service answer as a pydantic model (what the service is moving to); dumps as the dict."""

    model_config = ConfigDict(extra="allow")


def a_plan(**fields: Any):
    request = BackfillRequest.model_validate({"startDate": "2025-04-14", "targetDistricts": ["61"], **fields})
    world = World(
        today=TODAY,
        partition_start=dt.date(2025, 1, 1),
        configured=[],
        available=["42", "61"],
        district_partitions=["42", "61"],
        materialized={},
        failed={},
        batch_size=10,
    )
    return make_plan(request, world, None)


def a_status(state: str = "succeeded", done: int = 2, failed: int = 0, backfill_id: str = "abc123") -> dict:
    return {
        "id": backfill_id,
        "state": state,
        "dagsterStatus": "REQUESTED",
        "requestId": "r1",
        "strategy": "per-district",
        "requester": "cli:test",
        "retryOf": None,
        "title": "per-district 2025-04-14..2025-04-14 districts 61",
        "createdAt": "2026-11-29T10:00:00+00:00",
        "endedAt": None,
        "counts": {
            "targeted": 2,
            "materialized": done - failed,
            "failed": failed,
            "inProgress": 2 - done,
            "unavailable": 0,
            "skipped": 0,
        },
        "assets": {},
        "runs": {"total": 1, "byStatus": {"SUCCESS": 1}},
        "districts": {
            "61": {
                "done": done - failed,
                "failed": failed,
                "unavailable": 0,
                "lastError": "2025-04-14: NotACsv: an HTML page" if failed else None,
            }
        },
        "districtErrors": [],
        "performance": {
            "requestsMade": 4,
            "cacheHits": 0,
            "cacheHitRate": 0.0,
            "rateLimitWaitSeconds": 0.5,
            "retries": 0,
            "runsReporting": 1,
            "poolSlotsInUse": 0,
            "poolLimit": 2,
            "breakerState": "closed",
            "budgetRate": 2.0,
            "budgetRateNow": 1.9,
        },
        "plan": None,
        "error": None,
    }


@dataclass
class Script:
    """What the scripted service answers; `models` wraps every answer in a pydantic model."""

    statuses: list[dict] = field(default_factory=lambda: [a_status()])
    error: Exception | None = None
    models: bool = False
    settings: list = field(default_factory=list)
    launched: list = field(default_factory=list)
    keys: list = field(default_factory=list)

    def answer(self, value: Any) -> Any:
        if self.error is not None:
            raise self.error
        return Answer.model_validate(value) if self.models and isinstance(value, dict) else value


class ScriptedService:
    def __init__(self, script: Script, settings: Any) -> None:
        self.script = script
        script.settings.append(settings)

    def launch(
        self, request: BackfillRequest, *, requester: str, idempotency_key: str | None = None
    ) -> Launched:
        self.script.answer(None)
        plan = PlanBody.from_plan(a_plan())
        self.script.launched.append((request, requester))
        self.script.keys.append(idempotency_key)
        return Launched(plan=plan, backfill_id=None if request.dry_run else "abc123", request_id="r1")

    def status(self, backfill_id: str) -> Any:
        statuses = self.script.statuses
        return self.script.answer(statuses.pop(0) if len(statuses) > 1 else statuses[0])

    def cancel(self, backfill_id: str) -> Any:
        return self.script.answer(a_status("canceling", backfill_id=backfill_id))

    def retry(self, backfill_id: str, *, requester: str, idempotency_key: str | None = None) -> Retried:
        self.script.keys.append(idempotency_key)
        return Retried(self.script.answer("new456"))

    def list(self, limit: int = 50) -> Any:
        rows = [
            {
                "id": "abc123",
                "state": "succeeded",
                "dagsterStatus": "COMPLETED",
                "title": "t1",
                "partitions": 2,
                "strategy": "per-district",
                "requester": "cli:test",
                "createdAt": "2026-11-29T10:00:00+00:00",
            }
        ]
        return [self.script.answer(r) for r in rows][:limit]


@pytest.fixture
def script(monkeypatch) -> Script:
    s = Script()
    monkeypatch.setattr(backfills, "BackfillService", lambda settings: ScriptedService(s, settings))
    monkeypatch.setattr(backfills, "FOLLOW_INTERVAL", 0)
    return s


def cli(*argv: str, env: dict | None = None):
    return CliRunner().invoke(main, list(argv), env=env)


# -- backfill ---------------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_launches_nothing(script):
    result = cli("backfill", "--start", "2025-04-14", "--districts", "61", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "strategy   per-district" in result.stdout and "plan hash  " in result.stdout
    assert "nothing launched (dry run)" in result.stdout
    request, requester = script.launched[0]
    assert request.dry_run and request.target_districts == ["61"] and requester.startswith("cli:")


def test_recheck_unavailable_reaches_the_request_and_shows_in_the_plan(script, capsys):
    assert not cli("backfill", "--start", "2025-04-14", "--dry-run").exit_code
    assert script.launched[-1][0].recheck_unavailable is False
    result = cli("backfill", "--start", "2025-04-14", "--recheck-unavailable", "--dry-run")
    assert result.exit_code == 0 and script.launched[-1][0].recheck_unavailable is True
    plan = backfills.plan_json(a_plan(recheckUnavailable=True))
    assert plan["recheckUnavailable"] is True
    render.print_plan(plan)
    assert 'recheck    "not published" answers are asked again, even final ones\n' in capsys.readouterr().out


def test_dry_run_json(script):
    result = cli("backfill", "--start", "2025-04-14", "--districts", "61", "--dry-run", "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0 and out["backfillId"] is None
    assert out["plan"]["strategy"] == "per-district" and out["plan"]["districts"] == ["61"]
    assert out["plan"]["partitions"] == {"all_districts_summary": 1, "district_snapshot": 1, "total": 2}


@pytest.mark.parametrize("models", [False, True])
def test_launch_follows_with_a_line_per_change_and_ends_with_the_table(script, models):
    script.models = models
    script.statuses = [
        a_status("running", done=0),
        a_status("running", done=0),
        a_status("running", done=1),
        a_status(),
    ]
    result = cli("backfill", "--start", "2025-04-14", "--districts", "61")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "launched backfill abc123" in out
    progress = [line for line in out.splitlines() if line.startswith(("running", "succeeded"))]
    assert [line.split()[0] for line in progress] == ["running", "running", "succeeded"]  # changes only
    assert "[###############...............]    1/2  50%" in progress[1]
    table = out.split("backfill abc123  succeeded  (per-district)")[1].splitlines()
    assert table[2].split() == ["district", "done", "failed", "unavailable", "last", "error"]
    assert table[4].split() == ["61", "2", "0", "0"]


def test_a_backfill_that_ends_with_failures_exits_1(script):
    script.statuses = [a_status("completed-with-failures", done=2, failed=1)]
    result = cli("backfill", "--start", "2025-04-14", "--districts", "61")
    assert result.exit_code == 1
    assert "NotACsv: an HTML page" in result.stdout


def test_launch_json_is_one_document_with_the_final_status(script):
    script.statuses = [a_status("running", done=1), a_status("failed", done=2, failed=2)]
    result = cli("backfill", "--start", "2025-04-14", "--districts", "61", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["backfillId"] == "abc123" and out["plan"]["strategy"] == "per-district"
    assert out["status"]["state"] == "failed"


def test_no_follow(script):
    text = cli("backfill", "--start", "2025-04-14", "--no-follow")
    assert text.exit_code == 0 and text.stdout.rstrip().endswith("launched backfill abc123")
    out = json.loads(cli("backfill", "--start", "2025-04-14", "--no-follow", "--json").stdout)
    assert out["backfillId"] == "abc123" and "status" not in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--start", "2025-04-14", "--end", "2025-04-01"], "endDate"),
        (["--start", "2025-4-14"], "startDate"),
        (["--start", "2025-04-14", "--rate", "0"], "rate"),
        (["--start", "2025-04-14", "--rate", "nan"], "rate"),
        (["--start", "2025-04-14", "--concurrency", "4"], "concurrency"),
        (["--start", "2025-04-14", "--districts", "61,x1"], "targetDistricts"),
        (["--start", "2025-04-14", "--plan-hash", "../x"], "planHash"),
        (["--start", "2025-04-14", "--type", "everything"], "--type"),
        (["--start", "2025-04-14", "--rate", "fast"], "--rate"),
        (["--end", "2025-04-14"], "--start"),
    ],
)
def test_a_bad_request_exits_2_naming_the_field(script, argv, named):
    result = cli("backfill", *argv)
    assert result.exit_code == 2 and named in result.stderr, result.output
    assert script.launched == []


def test_a_request_the_planner_refuses_exits_2(script):
    script.error = PlanError("endDate", "is after yesterday")
    result = cli("backfill", "--start", "2025-04-14")
    assert result.exit_code == 2 and "error: endDate: is after yesterday" in result.stderr


def test_a_changed_plan_hash_exits_6_with_the_current_plan(script):
    plan = a_plan()
    script.error = PlanConflict("0" * 16, plan)
    result = cli("backfill", "--start", "2025-04-14", "--plan-hash", "0" * 16)
    assert result.exit_code == 6 and f"plan hash  {plan.plan_hash}" in result.stdout
    assert "no longer matches" in result.stderr


# -- status, cancel, retry, list ---------------------------------------------------------------------


@pytest.mark.parametrize("models", [False, True])
def test_status_text_and_json(script, models):
    script.models = models
    text = cli("status", "abc123")
    assert text.exit_code == 0 and text.stdout.startswith("backfill abc123  succeeded  (per-district)")
    assert "requests 4, cache hit rate 0.0" in text.stdout
    assert "the whole deployment now: 1.9 requests/s of the budget's 2.0" in text.stdout
    as_json = cli("status", "abc123", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == a_status()


@pytest.mark.parametrize(
    ("state", "code"), [("succeeded", 0), ("completed-with-failures", 1), ("canceled", 1)]
)
def test_status_follow_exits_by_the_final_state(script, state, code):
    script.statuses = [a_status("running", done=1), a_status(state)]
    result = cli("status", "abc123", "--follow", "--json")
    assert result.exit_code == code and json.loads(result.stdout)["state"] == state


def test_cancel(script):
    text = cli("cancel", "abc123")
    assert text.exit_code == 0 and text.stdout == "backfill abc123: canceling\n"
    assert json.loads(cli("cancel", "abc123", "--json").stdout)["state"] == "canceling"


def test_retry(script):
    text = cli("retry", "abc123")
    assert text.exit_code == 0 and text.stdout == "launched backfill new456\n"
    assert json.loads(cli("retry", "abc123", "--json").stdout) == {"backfillId": "new456"}
    script.statuses = [a_status("running", done=0, backfill_id="new456"), a_status(backfill_id="new456")]
    followed = cli("retry", "abc123", "--follow", "--json")
    assert followed.exit_code == 0
    assert json.loads(followed.stdout)["status"]["id"] == "new456"


@pytest.mark.parametrize("models", [False, True])
def test_list(script, models):
    script.models = models
    text = cli("list")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0].split() == ["id", "state", "createdAt", "title"]
    assert text.stdout.splitlines()[2].split() == ["abc123", "succeeded", "2026-11-29T10:00:00+00:00", "t1"]
    rows = json.loads(cli("list", "--limit", "5", "--json").stdout)
    assert [r["id"] for r in rows] == ["abc123"] and rows[0]["requester"] == "cli:test"


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (DagsterUnreachable("Dagster at x is unreachable"), 3, "is `dagster dev` running?"),
        (BackfillNotFound("no backfill 'zz9'"), 4, "no backfill 'zz9'"),
        (NotCancellable("backfill abc123 is COMPLETED: nothing to cancel"), 5, "nothing to cancel"),
        (NothingToRetry("backfill abc123 has no failed partition"), 5, "no failed partition"),
        (StillRunning("backfill abc123 is still REQUESTED"), 5, "still REQUESTED"),
        (DagsterGraphQLError("Cannot query field"), 1, "Dagster refused: Cannot query field"),
    ],
)
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "abc123"],
        ["cancel", "abc123"],
        ["retry", "abc123"],
        ["list"],
        ["backfill", "--start", "2025-04-14"],
    ],
)
def test_service_errors_exit_with_their_code(script, error, code, message, argv):
    script.error = error
    result = cli(*argv, "--json")
    assert result.exit_code == code and message in result.stderr and result.stdout == ""


def test_options_and_variables_reach_the_settings(script, tmp_path):
    env = {"BACKFILL_DAGSTER_URL": "http://dagster.example:3000", "BACKFILL_DATA_ROOT": str(tmp_path / "env")}
    assert cli("status", "abc123", env=env).exit_code == 0
    assert (
        cli(
            "status", "abc123", "--dagster-url", "http://127.0.0.1:3333/", "--root", str(tmp_path), env=env
        ).exit_code
        == 0
    )
    first, second = script.settings
    assert (first.dagster_url, first.data_root) == ("http://dagster.example:3000", tmp_path / "env")
    assert (second.dagster_url, second.data_root) == ("http://127.0.0.1:3333", tmp_path)


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--dagster-url", "ftp://x"], {}, "--dagster-url='ftp://x'"),
        ([], {"BACKFILL_DAGSTER_URL": "nowhere"}, "BACKFILL_DAGSTER_URL='nowhere'"),
        ([], {"BACKFILL_RATE": "nan"}, "BACKFILL_RATE='nan'"),
    ],
)
def test_bad_settings_exit_2_naming_them(script, argv, env, named):
    for command in (["status", "abc123"], ["list"], ["backfill", "--start", "2025-04-14"]):
        result = cli(*command, *argv, env=env)
        assert result.exit_code == 2 and named in result.stderr
    assert script.settings == [] and script.launched == []


# -- the progress bar on a terminal -------------------------------------------------------------------


def test_a_terminal_gets_a_rich_progress_bar():
    statuses = iter([a_status("running", done=0), a_status("running", done=1), a_status()])
    screen = io.StringIO()
    out = Console(file=screen, force_terminal=True, width=100, color_system=None)
    last = render.watch(
        lambda: next(statuses), lambda s: f"failed {s['counts']['failed']}", interval=0, out=out
    )
    assert last["state"] == "succeeded"
    shown = screen.getvalue()
    assert "2/2" in shown and "100%" in shown and "succeeded" in shown and "━" in shown
    assert "[###" not in shown  # not the plain lines


# -- real processes, no Dagster ------------------------------------------------------------------------


def run_process(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill_pipeline.cli", *argv], capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_in_a_subprocess_dagster_unreachable_exits_3_and_an_unknown_id_4(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    # The mapping of every error to its code is tested in-process above; these show it reaches
    # the real process's exit status.
    p = run_process("list", "--json", "--dagster-url", closed, "--root", str(tmp_path))
    assert p.returncode == 3 and "unreachable" in p.stderr and p.stdout == ""
    missing = run_process("status", "not-an-id", "--dagster-url", closed, "--root", str(tmp_path))
    assert missing.returncode == 4 and "no backfill 'not-an-id'" in missing.stderr
    bad = run_process("backfill", "--start", "2025-04-14", "--end", "2025-04-01", "--root", str(tmp_path))
    assert bad.returncode == 2 and "endDate" in bad.stderr


# -- idempotency keys ------------------------------------------------------------------------------------


def test_each_invocation_launches_with_a_key_of_its_own(script):
    assert cli("backfill", "--start", "2025-04-14", "--no-follow").exit_code == 0
    assert cli("backfill", "--start", "2025-04-14", "--no-follow").exit_code == 0
    assert cli("retry", "abc123").exit_code == 0
    first, second, third = script.keys
    assert len({first, second, third}) == 3 and all(len(k) == 32 for k in script.keys)
    given = cli("backfill", "--start", "2025-04-14", "--no-follow", "--idempotency-key", "nightly-2025-04-14")
    assert given.exit_code == 0 and script.keys[-1] == "nightly-2025-04-14"
    assert cli("retry", "abc123", "--idempotency-key", "retry-of-abc123").exit_code == 0
    assert script.keys[-1] == "retry-of-abc123"


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "tab\there", " padded "])
def test_a_bad_idempotency_key_exits_2_naming_the_option(script, key):
    for argv in (["backfill", "--start", "2025-04-14"], ["retry", "abc123"]):
        result = cli(*argv, "--idempotency-key", key)
        assert result.exit_code == 2 and "--idempotency-key: " in result.stderr, result.output
    assert script.launched == [] and script.keys == []


def test_a_lost_launch_tells_how_to_finish_it_without_launching_twice(script):
    script.error = DagsterUnreachable("Dagster at x is unreachable: read timed out")
    result = cli("backfill", "--start", "2025-04-14", "--idempotency-key", "k-1")
    assert result.exit_code == 3
    assert "the same command with --idempotency-key k-1 shows it instead of launching again" in result.stderr


@pytest.fixture
def faked(tmp_path, monkeypatch):
    """The real service over `tmp_path` (42, 61, 109 configured), Dagster faked."""
    from api_stack import DISTRICTS, FakeDagster, fake_service

    from backfill_pipeline.scope import DistrictConfig

    fake = FakeDagster()
    DistrictConfig(tmp_path).set(DISTRICTS)
    monkeypatch.setattr(backfills, "BackfillService", lambda settings: fake_service(settings.data_root, fake))
    return fake


def test_the_same_key_again_shows_the_backfill_it_launched(faked, tmp_path):
    argv = ["backfill", "--start", "2025-04-14", "--districts", "42", "--no-follow", "--root", str(tmp_path)]
    first = cli(*argv, "--idempotency-key", "once", "--json")
    body = json.loads(first.stdout)
    assert first.exit_code == 0 and body["replayed"] is False and body["idempotencyKey"] == "once"
    again = cli(*argv, "--idempotency-key", "once")
    assert again.exit_code == 0
    assert f"already launched with this --idempotency-key: backfill {body['backfillId']}" in again.stdout
    assert len(faked.backfills_by_id) == 1
    # The same key for another request is refused, nothing launched.
    other = cli(
        *argv[:-3], "--districts", "61", "--no-follow", "--root", str(tmp_path), "--idempotency-key", "once"
    )
    assert other.exit_code == 2 and "--idempotency-key: this Idempotency-Key was used" in other.stderr
    assert len(faked.backfills_by_id) == 1
    # Without --idempotency-key each invocation is its own launch.
    faked.finish(body["backfillId"], ["2025-04-14|42"])
    assert cli(*argv).exit_code == 0 and len(faked.backfills_by_id) == 2


def test_a_cli_launch_whose_answer_was_lost_is_found_by_its_key(faked, tmp_path):
    faked.lose_next_answer = DagsterUnreachable("read timed out")
    argv = [
        "backfill",
        "--start",
        "2025-04-14",
        "--districts",
        "42",
        "--no-follow",
        "--json",
        "--root",
        str(tmp_path),
    ]
    result = cli(*argv)
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.stdout)["backfillId"] in faked.backfills_by_id and len(faked.backfills_by_id) == 1
    )
