"""District configuration, its change log, scope resolution and the `districts` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from backfill_pipeline.district_ids import InvalidDistrictId
from backfill_pipeline.scope import DistrictConfig, resolve_scope
from backfill_pipeline.snapshots.commands import register, split_ids


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
    assert json.loads(json.dumps(r.to_dict()))["outOfScope"][0]["reason"]


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


def test_split_ids():
    assert split_ids(["42,61", "F"]) == ["42", "61", "F"]
    assert split_ids(["42 61"]) == ["42 61"]  # one id, rejected later as invalid
    assert split_ids(["District 42", " District 61 ,09"]) == ["District 42", "District 61", "09"]


def _parser():
    parser = argparse.ArgumentParser(prog="backfill-pipeline")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def run(argv):
    args = _parser().parse_args(argv)
    return args.handler(args)


def test_districts_command(tmp_path, capsys):
    root = str(tmp_path)
    assert run(["districts", "list", "--root", root]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "every available district" in captured.err
    assert run(["districts", "add", "42,61", "09", "--root", root]) == 0
    assert capsys.readouterr().out.split() == ["09", "42", "61"]
    assert run(["districts", "--root", root, "remove", "61"]) == 0
    assert capsys.readouterr().out.split() == ["09", "42"]
    assert run(["districts", "set", "F", "U", "--root", root]) == 0
    assert run(["districts", "list", "--root", root]) == 0
    assert capsys.readouterr().out.split() == ["F", "U", "F", "U"]


def test_districts_command_rejects_invalid_ids(tmp_path, capsys):
    assert run(["districts", "add", "42,abc", "--root", str(tmp_path)]) == 2
    assert "invalid district id" in capsys.readouterr().err
    assert not (tmp_path / "config").exists()


def test_districts_command_default_root_is_read_at_call_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(tmp_path / "a"))
    parser = _parser()
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(tmp_path / "b"))
    args = parser.parse_args(["districts", "add", "42"])
    assert args.handler(args) == 0
    assert DistrictConfig(tmp_path / "b").list() == ["42"]
    assert not (tmp_path / "a").exists()


def test_districts_command_in_a_subprocess(tmp_path):
    code = textwrap.dedent(
        """
        import argparse, sys
        from backfill_pipeline.snapshots.commands import register
        parser = argparse.ArgumentParser(prog="backfill-pipeline")
        register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(sys.argv[1:])
        sys.exit(args.handler(args))
        """
    )
    env = {**os.environ, "BACKFILL_DATA_ROOT": str(tmp_path)}

    def cli(*argv):
        return subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=60
        )

    spaced = cli("districts", "add", "District 4 2")
    assert spaced.returncode == 2 and "invalid district id" in spaced.stderr
    assert cli("districts", "add", "42,61", "District 9").returncode == 0
    listed = cli("districts", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["9", "42", "61"]
    bad = cli("districts", "remove", "61,xy")
    assert bad.returncode == 2 and "invalid district id" in bad.stderr
    assert DistrictConfig(tmp_path).list() == ["9", "42", "61"]
