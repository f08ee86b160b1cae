"""District configuration, its change log and scope resolution."""

from __future__ import annotations

import json
import logging

import pytest

from backfill_pipeline.district_ids import InvalidDistrictId
from backfill_pipeline.scope import DistrictConfig, resolve_scope


def reasons(resolution):
    return {o.id: o.reason for o in resolution.out_of_scope}


def test_nothing_requested_nothing_configured_means_every_available_district():
    r = resolve_scope(None, [], ["61", "09", "F", "42"])
    assert r.in_scope == ["09", "42", "61", "F"]
    assert r.all_available and not r.pending_discovery
    assert r.out_of_scope == [] and r.kind == "system-wide"


def test_every_district_before_the_dashboard_list_is_known():
    r = resolve_scope([], [], None)
    assert r.in_scope == [] and r.all_available and r.pending_discovery


def test_configured_districts_not_on_the_dashboard_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="backfill_pipeline.scope"):
        r = resolve_scope(None, ["42", "61"], ["42", "09"])
    assert r.in_scope == ["42"] and not r.all_available
    assert reasons(r) == {"61": "not-on-dashboard"}
    assert "61" in caplog.text and "not-on-dashboard" in caplog.text


def test_requested_targets_are_validated_against_configuration_and_dashboard(caplog):
    with caplog.at_level(logging.WARNING, logger="backfill_pipeline.scope"):
        r = resolve_scope(["District 42", " 61 ", "../x", "42", "99", "2"], ["42", "61", "02"], ["42", "02"])
    assert r.in_scope == ["42"]
    assert reasons(r) == {
        "../x": "invalid",
        "61": "not-on-dashboard",
        "99": "not-configured",
        "2": "not-configured",  # 02 is configured; 2 is another district
    }
    assert r.kind == "single-district"
    for item in r.out_of_scope:
        assert repr(item.id) in caplog.text
    assert json.loads(json.dumps([o.to_dict() for o in r.out_of_scope]))[0]["reason"]


def test_without_configuration_any_valid_requested_id_on_the_dashboard_is_in_scope():
    r = resolve_scope(["42", "61", "u"], [], None)
    assert r.in_scope == ["42", "61", "U"] and r.kind == "targeted"
    r = resolve_scope(["42", "61"], [], ["42"])
    assert r.in_scope == ["42"] and reasons(r) == {"61": "not-on-dashboard"}


def test_configuration_add_remove_set_and_change_log(tmp_path):
    config = DistrictConfig(tmp_path)
    assert config.list() == []
    assert config.add(["District 61", "09", "F"]) == ["09", "61", "F"]
    assert config.add(["42", "61"]) == ["09", "42", "61", "F"]
    assert config.remove(["F", "130"]) == ["09", "42", "61"]
    assert config.set(["02", "109"]) == ["02", "109"]
    assert config.list() == ["02", "109"]
    assert config.set([]) == []
    stored = json.loads((tmp_path / "config" / "districts.json").read_text())
    assert stored["schemaVersion"] == 1 and stored["districts"] == []
    lines = (tmp_path / "config" / "districts.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["add", "add", "remove", "set", "set"]
    first = json.loads(lines[0])
    assert first["ids"] == ["09", "61", "F"] and first["resulting"] == ["09", "61", "F"]
    assert "timestamp" in first
    assert [c.action for c in config.changes()] == ["add", "add", "remove", "set", "set"]


def test_invalid_ids_write_nothing(tmp_path):
    config = DistrictConfig(tmp_path)
    with pytest.raises(InvalidDistrictId):
        config.add(["42", "4 2x"])
    assert not (tmp_path / "config").exists()
    config.add(["42"])
    with pytest.raises(InvalidDistrictId):
        config.set(["61", ""])
    assert config.list() == ["42"]
    assert len(config.changes()) == 1
