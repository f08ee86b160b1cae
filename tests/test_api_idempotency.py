"""Idempotent launches (issue 10, point 6; Dagster faked: fast lane): an Idempotency-Key launches at
most one backfill, however the request is sent again; its record is written before the launch
and completed after it, so a launch interrupted in between is resolved from Dagster, never
launched twice."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from api_stack import AUTH, CONTRACT, LOOPBACK, ApiServer, FakeApi, FakeDagster, fake_service

from backfill_pipeline.api import idempotency
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.graphql import DagsterGraphQLError, DagsterUnreachable
from backfill_pipeline.api.idempotency import (
    IDEMPOTENCY_TAG,
    MAX_KEY,
    Claim,
    IdempotencyRecord,
    checked_key,
    key_digest,
)
from backfill_pipeline.dataroot import DataRoot
from backfill_pipeline.scope import DistrictConfig

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
HEAL = "/api/heal"
RETRY = "/api/backfills/{backfillId}/retry"
REQUEST = {"startDate": "2025-04-14", "targetDistricts": ["42"]}
HEAL_REQUEST = {"startDate": "2025-04-14", "endDate": "2025-04-15"}
FAILED_KEY = "2025-04-14|42"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def record(api: FakeApi, key: str) -> IdempotencyRecord:
    path = DataRoot(api.root).idempotency_record(key_digest(key))
    return IdempotencyRecord.model_validate_json(path.read_bytes())


def launches(api: FakeApi) -> int:
    return len(api.dagster.backfills_by_id)


# -- a request sent again -------------------------------------------------------------------------------


def test_the_same_key_and_request_answer_the_original_backfill_without_launching_again(api):
    first = api.client.post(LIST, json=REQUEST, headers=keyed("launch-1"))
    body = CONTRACT.check(first, "POST", LIST, 202)
    assert "Idempotent-Replayed" not in first.headers
    # The same request spelled differently (key order, a default given, a district written
    # `District 42`) is the same request.
    again = {"targetDistricts": ["District 42"], "skipExisting": True, "startDate": "2025-04-14"}
    for _ in range(3):
        r = api.client.post(LIST, json=again, headers=keyed("launch-1"))
        assert CONTRACT.check(r, "POST", LIST, 202) == body
        assert r.headers["Idempotent-Replayed"] == "true"
        assert r.headers["Location"] == first.headers["Location"]
        assert r.headers["X-Backfill-ID"] == body["backfillId"]
    assert launches(api) == 1
    assert api.dagster.launches[0]["tags"][IDEMPOTENCY_TAG] == key_digest("launch-1")[:32]
    saved = record(api, "launch-1")
    assert (saved.state, saved.backfill_id, saved.operation) == ("completed", body["backfillId"], "backfill")
    # The key itself is stored nowhere: the record is named by its digest.
    assert "launch-1" not in saved.model_dump_json()


def test_another_key_launches_another_backfill_and_no_key_always_launches(api):
    a = CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("a")), "POST", LIST, 202)
    api.dagster.finish(a["backfillId"], [FAILED_KEY])
    b = CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("b")), "POST", LIST, 202)
    assert a["backfillId"] != b["backfillId"]
    api.dagster.finish(b["backfillId"], [FAILED_KEY])
    c = CONTRACT.check(api.client.post(LIST, json=REQUEST), "POST", LIST, 202)
    assert c["backfillId"] not in (a["backfillId"], b["backfillId"])
    assert launches(api) == 3


@pytest.mark.parametrize(
    "other",
    [
        {**REQUEST, "endDate": "2025-04-15"},
        {**REQUEST, "targetDistricts": ["61"]},
        {**REQUEST, "skipExisting": False},
        {**REQUEST, "concurrency": 1},
    ],
)
def test_the_same_key_with_another_request_answers_422_and_launches_nothing(api, other):
    CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("k")), "POST", LIST, 202)
    r = api.client.post(LIST, json=other, headers=keyed("k"))
    error = CONTRACT.check(r, "POST", LIST, 422)["error"]
    assert error["code"] == "idempotency-key-reused" and "another request" in error["message"]
    # Another route with the same key is another request too.
    r = api.client.post(HEAL, json=HEAL_REQUEST, headers=keyed("k"))
    assert CONTRACT.check(r, "POST", HEAL, 422)["error"]["code"] == "idempotency-key-reused"
    assert launches(api) == 1


def test_heal_and_retry_are_idempotent_too(api):
    heal = api.client.post(HEAL, json=HEAL_REQUEST, headers=keyed("heal-1"))
    healed = CONTRACT.check(heal, "POST", HEAL, 202)
    again = api.client.post(HEAL, json=HEAL_REQUEST, headers=keyed("heal-1"))
    assert (
        CONTRACT.check(again, "POST", HEAL, 202) == healed and again.headers["Idempotent-Replayed"] == "true"
    )
    assert launches(api) == 1

    parent = api.launch(REQUEST)
    api.dagster.finish(parent, [FAILED_KEY])
    path = f"/api/backfills/{parent}/retry"
    first = CONTRACT.check(api.client.post(path, headers=keyed("retry-1")), "POST", RETRY, 202)
    again = api.client.post(path, headers=keyed("retry-1"))
    assert CONTRACT.check(again, "POST", RETRY, 202) == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert launches(api) == 3
    # Without a key a retry is launched each time it is asked.
    assert CONTRACT.check(api.client.post(path), "POST", RETRY, 202)["backfillId"] != first["backfillId"]
    assert launches(api) == 4


def test_a_plan_with_nothing_to_run_is_answered_again_with_200(api):
    done = api.launch(REQUEST)
    api.dagster.finish(done)
    first = api.client.post(LIST, json=REQUEST, headers=keyed("nothing"))
    body = CONTRACT.check(first, "POST", LIST, 200)
    assert body["backfillId"] is None
    again = api.client.post(LIST, json=REQUEST, headers=keyed("nothing"))
    assert CONTRACT.check(again, "POST", LIST, 200) == body and again.headers["Idempotent-Replayed"] == "true"
    assert launches(api) == 1


def test_a_dry_run_ignores_the_key_and_records_nothing(api):
    dry = api.client.post(LIST, json={**REQUEST, "dryRun": True}, headers=keyed("dry"))
    CONTRACT.check(dry, "POST", LIST, 200)
    assert not (api.root / "state" / "idempotency").exists()
    # The launch with the same key is its own first request.
    CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("dry")), "POST", LIST, 202)
    assert launches(api) == 1


def test_a_refused_request_records_nothing(api):
    r = api.client.post(LIST, json={**REQUEST, "planHash": "0" * 16}, headers=keyed("refused"))
    assert CONTRACT.check(r, "POST", LIST, 409)["error"]["code"] == "plan-changed"
    r = api.client.post(LIST, json={**REQUEST, "targetDistricts": ["999"]}, headers=keyed("refused"))
    assert CONTRACT.check(r, "POST", LIST, 400)["error"]["code"] == "invalid-request"
    # Neither was a launch: the key is free for the request that launches.
    CONTRACT.check(
        api.client.post(LIST, json={**REQUEST, "endDate": "2025-04-15"}, headers=keyed("refused")),
        "POST",
        LIST,
        202,
    )


def raising(error: BaseException):
    def call(*args, **kwargs):
        raise error

    return call


def test_dagster_refusing_the_launch_frees_the_key(api, monkeypatch):
    real = api.dagster.launch_backfill
    monkeypatch.setattr(api.dagster, "launch_backfill", raising(DagsterGraphQLError("no")))
    r = api.client.post(LIST, json=REQUEST, headers=keyed("refused-by-dagster"))
    assert CONTRACT.check(r, "POST", LIST, 502)["error"]["code"] == "dagster-error"
    assert not DataRoot(api.root).idempotency_record(key_digest("refused-by-dagster")).exists()
    monkeypatch.setattr(api.dagster, "launch_backfill", real)
    CONTRACT.check(
        api.client.post(LIST, json=REQUEST, headers=keyed("refused-by-dagster")), "POST", LIST, 202
    )
    assert launches(api) == 1


# -- bad keys ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([("Idempotency-Key", "x" * (MAX_KEY + 1))], "at most 200"),
        ([("Idempotency-Key", "")], "must not be empty"),
        ([("Idempotency-Key", b"caf\xe9")], "printable ASCII"),
        ([("Idempotency-Key", "tab\there")], "printable ASCII"),
        ([("Idempotency-Key", "a"), ("Idempotency-Key", "b")], "more than once"),
    ],
)
def test_a_bad_key_answers_400_naming_the_header_and_launches_nothing(api, headers, message):
    a_backfill = api.launch(REQUEST)
    api.dagster.finish(a_backfill, [FAILED_KEY])
    for method, path, template, body in [
        ("POST", LIST, LIST, REQUEST),
        ("POST", HEAL, HEAL, HEAL_REQUEST),
        ("POST", f"/api/backfills/{a_backfill}/retry", RETRY, None),
    ]:
        r = api.client.request(method, path, json=body, headers=headers)
        error = CONTRACT.check(r, method, template, 400)["error"]
        assert error["fields"] == [{"field": "Idempotency-Key", "message": error["fields"][0]["message"]}]
        assert message in error["message"] and error["message"].startswith("Idempotency-Key: ")
    assert launches(api) == 1


def test_the_longest_key_is_accepted():
    assert checked_key("k" * MAX_KEY) == "k" * MAX_KEY
    assert checked_key("a b~!") == "a b~!"
    for bad in ("", " a", "a ", "\u00e9", "a\nb", "k" * (MAX_KEY + 1)):
        with pytest.raises(ValueError):
            checked_key(bad)


# -- an interrupted launch ---------------------------------------------------------------------------


def crash_once_on_completion(monkeypatch) -> list[str]:
    """The process dies (an exception stands in) right after Dagster made the backfill, before the
    record is completed: once."""
    crashed: list[str] = []
    real = Claim.complete

    def complete(self, backfill_id, **kw):
        if backfill_id is not None and not crashed:
            crashed.append(backfill_id)
            raise SystemError("killed between the launch and its record")
        return real(self, backfill_id, **kw)

    monkeypatch.setattr(Claim, "complete", complete)
    return crashed


@pytest.mark.parametrize(
    ("path", "body", "operation"), [(LIST, REQUEST, "backfill"), (HEAL, HEAL_REQUEST, "heal")]
)
def test_a_launch_killed_before_its_record_completed_is_found_in_dagster_not_launched_again(
    api, monkeypatch, path, body, operation
):
    crashed = crash_once_on_completion(monkeypatch)
    client = api.client_with(LOOPBACK, raise_server_exceptions=False)
    r = client.post(path, json=body, headers=keyed("interrupted"))
    assert r.status_code == 500 and crashed
    left = record(api, "interrupted")
    assert (left.state, left.operation, left.backfill_id) == ("launching", operation, None)
    assert launches(api) == 1

    r = client.post(path, json=body, headers=keyed("interrupted"))
    answer = CONTRACT.check(r, "POST", path, 202)
    assert answer["backfillId"] == crashed[0] and r.headers["Idempotent-Replayed"] == "true"
    assert answer["requestId"] == left.request_id
    assert launches(api) == 1
    assert record(api, "interrupted").state == "completed"
    # The backfill's own record, which the killed launch did not get to write... was written.
    status = CONTRACT.check(
        api.client.get(f"/api/backfills/{crashed[0]}"), "GET", "/api/backfills/{backfillId}", 200
    )
    assert status["requester"] == "api" and status["plan"]["planHash"] == answer["plan"]["planHash"]


def test_a_retry_killed_before_its_record_completed_is_found_by_its_parent(api, monkeypatch):
    parent = api.launch(REQUEST)
    api.dagster.finish(parent, [FAILED_KEY])
    crashed = crash_once_on_completion(monkeypatch)
    client = api.client_with(LOOPBACK, raise_server_exceptions=False)
    path = f"/api/backfills/{parent}/retry"
    assert client.post(path, headers=keyed("retry-killed")).status_code == 500
    assert record(api, "retry-killed").state == "launching"
    r = client.post(path, headers=keyed("retry-killed"))
    assert CONTRACT.check(r, "POST", RETRY, 202)["backfillId"] == crashed[0]
    assert launches(api) == 2  # the parent and one retry


def test_a_launch_killed_before_dagster_heard_of_it_is_launched_once_the_record_settled(api, monkeypatch):
    real = api.dagster.launch_backfill
    monkeypatch.setattr(api.dagster, "launch_backfill", raising(SystemError("killed")))
    client = api.client_with(LOOPBACK, raise_server_exceptions=False)
    assert client.post(LIST, json=REQUEST, headers=keyed("early")).status_code == 500
    assert record(api, "early").state == "launching" and launches(api) == 0
    monkeypatch.setattr(api.dagster, "launch_backfill", real)
    # Too recent to know: a launch whose answer was lost may still land in Dagster.
    r = api.client.post(LIST, json=REQUEST, headers=keyed("early"))
    error = CONTRACT.check(r, "POST", LIST, 409)["error"]
    assert error["code"] == "launch-pending" and r.headers["Retry-After"] == "10"
    assert f"in {idempotency.SETTLE_SECONDS - 1:.0f} s" in error["message"] or "s ago" in error["message"]
    assert launches(api) == 0
    # Once it has settled, Dagster still has nothing with the key: launched, once.
    api.client.app.state.service.settle = 0.0
    first = CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("early")), "POST", LIST, 202)
    again = CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("early")), "POST", LIST, 202)
    assert first == again and launches(api) == 1


def test_a_lost_answer_is_resolved_at_once_by_the_key(api):
    # Dagster made the backfill but its answer never came back (a timeout).
    api.dagster.lose_next_answer = DagsterUnreachable("read timed out")
    r = api.client.post(LIST, json=REQUEST, headers=keyed("lost"))
    body = CONTRACT.check(r, "POST", LIST, 202)
    assert body["backfillId"] in api.dagster.backfills_by_id and launches(api) == 1
    assert record(api, "lost").backfill_id == body["backfillId"]


def test_without_a_key_a_lost_answer_is_a_503_and_a_retry_launches_twice(api):
    # Why the key exists: the same thing without it.
    api.dagster.lose_next_answer = DagsterUnreachable("read timed out")
    assert CONTRACT.check(api.client.post(LIST, json=REQUEST), "POST", LIST, 503)
    CONTRACT.check(api.client.post(LIST, json=REQUEST), "POST", LIST, 202)
    assert launches(api) == 2


def test_an_unreadable_record_launches_nothing(api):
    path = DataRoot(api.root).idempotency_record(key_digest("broken"))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    r = api.client.post(LIST, json=REQUEST, headers=keyed("broken"))
    assert CONTRACT.check(r, "POST", LIST, 409)["error"]["code"] == "launch-pending"
    assert launches(api) == 0


def test_concurrent_requests_with_one_key_launch_one_backfill_over_real_http(tmp_path, monkeypatch):
    root = tmp_path / "data"
    DistrictConfig(root).set(["42", "61", "109"])
    dagster = FakeDagster()
    real = dagster.launch_backfill

    def slow_launch(*args, **kwargs):
        time.sleep(0.5)  # the others arrive while the first one launches
        return real(*args, **kwargs)

    monkeypatch.setattr(dagster, "launch_backfill", slow_launch)
    answers: list[requests.Response] = []
    with ApiServer(create_app(lambda: fake_service(root, dagster), security=LOOPBACK)) as server:

        def post() -> None:
            answers.append(
                requests.post(
                    f"{server.url}{LIST}", json=REQUEST, headers={**AUTH, **keyed("race")}, timeout=60
                )
            )

        threads = [threading.Thread(target=post) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert [r.status_code for r in answers] == [202] * 5
    assert len({r.json()["backfillId"] for r in answers}) == 1
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in answers) == [
        "",
        "true",
        "true",
        "true",
        "true",
    ]
    assert len(dagster.backfills_by_id) == 1


def test_the_record_is_written_before_the_launch(api, monkeypatch):
    seen: list[str] = []
    real = api.dagster.launch_backfill

    def launch(*args, **kwargs):
        seen.append(
            json.loads(DataRoot(api.root).idempotency_record(key_digest("order")).read_text())["state"]
        )
        return real(*args, **kwargs)

    monkeypatch.setattr(api.dagster, "launch_backfill", launch)
    CONTRACT.check(api.client.post(LIST, json=REQUEST, headers=keyed("order")), "POST", LIST, 202)
    assert seen == ["launching"] and record(api, "order").state == "completed"
