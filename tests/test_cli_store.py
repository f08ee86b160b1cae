"""`backfill-pipeline verify` and `backfill-pipeline districts list|add|remove|set`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import AS_OF

from backfill_pipeline.cli import main
from backfill_pipeline.cli.store import split_ids
from backfill_pipeline.scope import DistrictConfig


def run(*argv: str, env: dict | None = None):
    return CliRunner().invoke(main, list(argv), env=env)


def run_process(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill_pipeline.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


# -- districts --------------------------------------------------------------------------------------


def test_split_ids():
    assert split_ids(["42,61", "F"]) == ["42", "61", "F"]
    assert split_ids(["42 61"]) == ["42 61"]  # one id, rejected later as invalid
    assert split_ids(["District 42", " District 61 ,09"]) == ["District 42", "District 61", "09"]


def test_districts_command(tmp_path):
    root = str(tmp_path)
    listed = run("districts", "list", "--root", root)
    assert listed.exit_code == 0 and listed.stdout == "" and "every available district" in listed.stderr
    added = run("districts", "add", "42,61", "09", "--root", root)
    assert added.exit_code == 0 and added.stdout.split() == ["09", "42", "61"]
    removed = run("districts", "--root", root, "remove", "61")  # --root before the action works too
    assert removed.exit_code == 0 and removed.stdout.split() == ["09", "42"]
    assert run("districts", "set", "F", "U", "--root", root).stdout.split() == ["F", "U"]
    assert run("districts", "list", "--root", root).stdout.split() == ["F", "U"]
    emptied = run("districts", "set", "--root", root)
    assert emptied.exit_code == 0 and emptied.stdout == "" and "every available district" in emptied.stderr


def test_districts_json(tmp_path):
    root = str(tmp_path)
    assert json.loads(run("districts", "add", "42", "--root", root, "--json").stdout) == {"districts": ["42"]}
    assert json.loads(run("districts", "--json", "--root", root, "list").stdout) == {"districts": ["42"]}
    assert json.loads(run("districts", "set", "--root", root, "--json").stdout) == {"districts": []}


@pytest.mark.parametrize("action", ["add", "remove", "set"])
@pytest.mark.parametrize("ids", ["42,abc", "District 4 2"])
def test_invalid_ids_exit_2_and_write_nothing(tmp_path, action, ids):
    # A space never splits ids: `District 4 2` is one invalid id, not districts 4 and 2.
    result = run("districts", action, ids, "--root", str(tmp_path))
    assert result.exit_code == 2 and "invalid district id" in result.stderr
    assert not (tmp_path / "config").exists()


def test_add_and_remove_need_ids(tmp_path):
    for action in ("add", "remove"):
        result = run("districts", action, "--root", str(tmp_path))
        assert result.exit_code == 2 and "Missing argument" in result.stderr


def test_default_root_is_read_when_the_command_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(tmp_path / "b"))
    assert run("districts", "add", "42").exit_code == 0
    assert DistrictConfig(tmp_path / "b").list() == ["42"]


def test_a_bad_backfill_variable_exits_2_naming_it(tmp_path):
    result = run("districts", "add", "42", "--root", str(tmp_path), env={"BACKFILL_RATE": "nan"})
    assert result.exit_code == 2 and "BACKFILL_RATE='nan'" in result.stderr
    assert not (tmp_path / "config").exists()


def test_a_configuration_that_cannot_be_read_exits_1(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "districts.json").write_text("{not json")
    result = run("districts", "list", "--root", str(tmp_path))
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


def test_districts_in_a_subprocess(tmp_path):
    env = {"BACKFILL_DATA_ROOT": str(tmp_path)}
    assert run_process("districts", "add", "42,61", "District 9", env=env).returncode == 0
    listed = run_process("districts", "list", env=env)
    assert listed.returncode == 0 and listed.stdout.split() == ["9", "42", "61"]
    bad = run_process("districts", "remove", "61,xy", env=env)
    assert bad.returncode == 2 and "invalid district id" in bad.stderr
    assert DistrictConfig(tmp_path).list() == ["9", "42", "61"]


# -- verify -----------------------------------------------------------------------------------------


@pytest.fixture
def store(small_store):
    """The shared small store of conftest."""
    return small_store


def break_it(store) -> None:
    store.root.date_file(AS_OF, "metadata.json").unlink()
    (store.root.date_dir(AS_OF) / ".metadata.json.tmp-1-aa").write_text("")


def test_verify_lists_problems_in_a_table_and_repairs_them(store):
    root = str(store.root)
    clean = run("verify", "--root", root)
    assert clean.exit_code == 0 and clean.stdout.startswith("ok: 2 snapshot(s)")
    break_it(store)
    broken = run("verify", "--root", root)
    assert broken.exit_code == 1 and "problem(s) found" in broken.stderr
    lines = broken.stdout.splitlines()
    assert lines[0].split() == ["asOf", "kind", "path", "message", "repaired"]
    assert any(
        line.split()[:3] == ["2025-09-08", "metadata-invalid", "snapshots/2025-09-08/metadata.json"]
        for line in lines
    )
    assert any("temp-file" in line and line.split()[-1] == "no" for line in lines)
    repaired = run("verify", "--root", root, "--repair")
    assert repaired.exit_code == 0 and "repaired" in repaired.stderr
    assert all(line.split()[-1] == "yes" for line in repaired.stdout.splitlines()[2:] if line.strip())
    assert run("verify", "--root", root).exit_code == 0


def test_verify_json(store):
    root = str(store.root)
    assert json.loads(run("verify", "--root", root, "--json").stdout) == {
        "root": root,
        "dates": 2,
        "problems": [],
        "unrepaired": 0,
    }
    break_it(store)
    broken = run("verify", "--root", root, "--json")
    assert broken.exit_code == 1
    out = json.loads(broken.stdout)
    assert out["unrepaired"] == len(out["problems"]) >= 2
    assert {"asOfDate": "2025-09-08", "kind": "temp-file"}.items() <= next(
        p for p in out["problems"] if p["kind"] == "temp-file"
    ).items()
    repaired = json.loads(run("verify", "--root", root, "--json", "--repair").stdout)
    assert repaired["unrepaired"] == 0 and all(p["repaired"] for p in repaired["problems"])


def test_verify_reads_the_root_from_the_environment(store):
    store.root.pointer.unlink()
    result = run("verify", env={"BACKFILL_DATA_ROOT": str(store.root)})
    assert result.exit_code == 1 and "pointer-missing" in result.stdout


def test_verify_a_bad_backfill_variable_exits_2(store):
    result = run("verify", "--root", str(store.root), env={"BACKFILL_DAGSTER_URL": "ftp://x"})
    assert result.exit_code == 2 and "BACKFILL_DAGSTER_URL='ftp://x'" in result.stderr


def test_verify_in_a_subprocess(store):
    store.root.district(AS_OF, "42").write_text("not json")
    env = {"BACKFILL_DATA_ROOT": str(store.root)}
    broken = run_process("verify", env=env)
    assert broken.returncode == 1
    assert any(
        line.split()[1:3] == ["invalid-file", "snapshots/2025-09-08/district_42.json"]
        for line in broken.stdout.splitlines()
    )
    fixed = run_process("verify", "--repair", "--root", str(store.root), "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert all(p["repaired"] for p in json.loads(fixed.stdout)["problems"])


@pytest.mark.parametrize("ids", [("",), (" ",), ("42", ""), ("42,",), ("42,,61",)])
def test_an_empty_district_id_is_refused_and_nothing_changes(tmp_path, ids):
    root = str(tmp_path)
    assert run("districts", "set", "09", "--root", root).exit_code == 0
    for verb in ("add", "remove", "set"):
        result = run("districts", verb, *ids, "--root", root)
        assert result.exit_code == 2 and "empty district id" in result.stderr, (verb, ids, result.output)
    assert run("districts", "list", "--root", root).stdout.split() == ["09"]
