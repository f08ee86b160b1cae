"""Only real districts become partitions (issue 10, point 5; Dagster faked: fast lane): a launch
adds a `districts` partition only for a district that is configured or that a collected summary
lists; any other id is a 400 naming the nearest known ids, for a dry run too, and nothing is
added or launched. And a backfill's rate is a share of the deployment's budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from api_stack import CONTRACT, LOOPBACK, FakeApi, FakeDagster, api_client, fake_service
from conftest import summary_row

from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.launching import nearest_districts
from backfill_pipeline.names import DISTRICT_ASSET
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.rankings import compute_borda_rankings

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
HEAL = "/api/heal"
DAY = "2025-04-14"
# A date whose summary is collected (it lists LISTED) and one whose summary is not.
COLLECTED = dt.date(2025, 3, 3)
LISTED = ["42", "61", "91", "99", "109"]


@pytest.fixture
def bare(tmp_path) -> Iterator[FakeApi]:
    """A deployment with no district configured, no summary collected and no districts partition."""
    root = tmp_path / "data"
    dagster = FakeDagster(districts=[])
    with api_client(create_app(lambda: fake_service(root, dagster), security=LOOPBACK)) as client:
        yield FakeApi(client=client, dagster=dagster, root=root)


def collect_summary(api: FakeApi, day: dt.date = COLLECTED, districts: list[str] = LISTED) -> None:
    """The store holds `day`'s summary, listing `districts`."""
    rows = [summary_row(d) for d in districts]
    PerDistrictFileSnapshotStore(api.root).write_rankings(day, compute_borda_rankings(rows))


def refused(api: FakeApi, path: str, body: dict) -> dict:
    for dry_run in (True, False):
        r = api.client.post(path, json={**body, "dryRun": dry_run})
        error = CONTRACT.check(r, "POST", path, 400)["error"]
        assert error["code"] == "invalid-request"
        assert [f["field"] for f in error["fields"]] == ["targetDistricts"]
    assert api.dagster.launches == [] and api.dagster.districts == []
    return error


@pytest.mark.parametrize("path", [LIST, HEAL])
def test_with_nothing_known_no_id_becomes_a_partition(bare, path):
    for ids in (["9999"], ["0042"], ["42"], ["F"]):
        error = refused(bare, path, {"startDate": DAY, "endDate": DAY, "targetDistricts": ids})
        assert f"{ids[0]} is not a known district" in error["message"]
        assert "none is configured and no summary is collected yet" in error["message"]


def test_an_id_no_summary_lists_answers_400_naming_the_nearest_known_ids(bare):
    collect_summary(bare)
    error = refused(bare, LIST, {"startDate": DAY, "targetDistricts": ["9999"]})
    assert "9999 is not a known district; nearest known: 99, 109, 91" in error["message"]
    # Zero-padded, it is still not 42: refused, and 42 named.
    error = refused(bare, LIST, {"startDate": DAY, "targetDistricts": ["0042", "61"]})
    assert "0042 is not a known district; nearest known: 42" in error["message"]
    assert "61 is not" not in error["message"]


def test_a_district_a_collected_summary_lists_becomes_a_partition(bare):
    collect_summary(bare)
    bare.launch({"startDate": DAY, "targetDistricts": ["District 99"]})
    assert bare.dagster.districts == ["99"]
    bare.launch({"startDate": DAY, "targetDistricts": ["61", "99"]})
    assert bare.dagster.districts == ["99", "61"]


def test_a_configured_district_becomes_a_partition_even_if_no_summary_lists_it(bare):
    DistrictConfig(bare.root).set(["7"])
    bare.launch({"startDate": DAY, "targetDistricts": ["7"]})
    assert bare.dagster.districts == ["7"]
    # Configured districts bound the scope: anything else is out of it (the planner's 400).
    r = bare.client.post(LIST, json={"startDate": DAY, "targetDistricts": ["0007"]})
    assert CONTRACT.check(r, "POST", LIST, 400)["error"]["fields"][0]["field"] == "targetDistricts"
    assert bare.dagster.districts == ["7"]


def test_an_existing_partition_is_used_without_adding_anything(bare):
    bare.dagster.districts = ["5"]  # made before this rule, or by the discovery sensor
    bare.launch({"startDate": DAY, "targetDistricts": ["5"]})
    assert bare.dagster.districts == ["5"]


def test_a_summary_of_the_dates_asked_bounds_the_scope_as_before(bare):
    collect_summary(bare, dt.date.fromisoformat(DAY), ["42", "61"])
    r = bare.client.post(LIST, json={"startDate": DAY, "targetDistricts": ["42", "99"]})
    plan = CONTRACT.check(r, "POST", LIST, 202)["plan"]
    assert plan["districts"] == ["42"] and plan["outOfScope"][0]["reason"] == "not-on-dashboard"
    assert bare.dagster.districts == ["42"]


def test_no_zero_padded_key_is_ever_launched(bare):
    collect_summary(bare)
    for ids in (["0042"], ["042"], ["District 0042"], ["0061", "42"]):
        r = bare.client.post(LIST, json={"startDate": DAY, "targetDistricts": ids})
        assert r.status_code == 400, r.text
    bare.launch({"startDate": DAY, "targetDistricts": ["42"]})
    keys = [
        r
        for p in bare.dagster.launches
        for r in p["partitionsByAssets"]
        if r["assetKey"]["path"] == [DISTRICT_ASSET]
    ]
    assert keys[0]["partitions"]["ranges"] == [{"start": f"{DAY}|42", "end": f"{DAY}|42"}]
    assert bare.dagster.districts == ["42"]


def test_nearest_districts():
    known = ["1", "9", "42", "61", "91", "99", "109", "F", "U"]
    assert nearest_districts("9999", known) == ["99", "109", "91"]
    assert nearest_districts("0042", known)[0] == "42"
    assert nearest_districts("G", known) == []
    assert set(nearest_districts("43", ["42", "44", "F"])) == {"42", "44"}
    assert nearest_districts("7", []) == []


# -- the budget ---------------------------------------------------------------------------------------


def test_a_rate_above_the_budget_answers_400_naming_rate(tmp_path):
    root = tmp_path / "data"
    DistrictConfig(root).set(["42"])
    dagster = FakeDagster()
    app = create_app(lambda: fake_service(root, dagster, rate=4.0), security=LOOPBACK)
    with api_client(app) as client:
        r = client.post(LIST, json={"startDate": DAY, "targetDistricts": ["42"], "rate": 5})
        error = CONTRACT.check(r, "POST", LIST, 400)["error"]
        assert error["fields"] == [{"field": "rate", "message": error["fields"][0]["message"]}]
        assert "above the deployment's budget of 4" in error["message"]
        # Within it: a share; without it: the whole budget, each drawn by all the runs together.
        r = client.post(LIST, json={"startDate": DAY, "targetDistricts": ["42"], "rate": 3, "dryRun": True})
        assert CONTRACT.check(r, "POST", LIST, 200)["plan"]["ratePerRun"] == 3.0
        r = client.post(LIST, json={"startDate": DAY, "targetDistricts": ["42"], "dryRun": True})
        assert CONTRACT.check(r, "POST", LIST, 200)["plan"]["ratePerRun"] == 4.0
    assert dagster.launches == []
