"""`verify`: manifest against files against sha256, schemas, pointer; `--repair`; the command."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap

import pytest
from test_store_support import AS_OF, BACKFILL, REFRESH, a_detailed, a_failure, a_summary

from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore
from backfill_pipeline.snapshots.atomic import atomic_write_bytes
from backfill_pipeline.snapshots.commands import register


@pytest.fixture
def store(tmp_path):
    s = PerDistrictFileSnapshotStore(tmp_path)
    s.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH)
    s.write_district(a_failure("09"), context=BACKFILL)
    s.write_district(a_detailed("42", dt.date(2025, 9, 9)), context=BACKFILL)
    return s


def kinds(problems):
    return sorted(p.kind for p in problems)


def test_clean_store_has_no_problems(store):
    assert store.verify() == []
    assert store.verify(repair=True) == []


def test_tampered_file_is_a_sha256_mismatch_and_repair_rebuilds(store):
    path = store.layout.district(AS_OF, "42")
    data = json.loads(path.read_text())
    data["figures"]["summary"]["clubGrowthPct"] = 99.0
    path.write_text(json.dumps(data))
    problems = store.verify()
    assert "sha256-mismatch" in kinds(problems)
    assert any(p.path == "snapshots/2025-09-08/district_42.json" for p in problems)
    repaired = store.verify(repair=True)
    assert repaired and all(p.repaired for p in repaired)
    assert store.verify() == []


def test_torn_or_invalid_files_are_quarantined(store):
    store.layout.district(AS_OF, "61").write_text('{"schemaVersion": 1, "distr')
    store.layout.district(AS_OF, "42").write_text(json.dumps({"schemaVersion": 1}))
    problems = store.verify()
    assert kinds(problems).count("invalid-file") == 2
    store.verify(repair=True)
    assert store.verify() == []
    assert store.read_metadata(AS_OF).districts == ["09"]
    hidden = [p.name for p in store.layout.date_dir(AS_OF).iterdir() if p.name.startswith(".")]
    assert len(hidden) == 2 and all(".corrupt-" in h for h in hidden)


def test_district_file_in_the_wrong_place_is_invalid(store):
    moved = a_summary("61").model_dump_json()
    store.layout.district(AS_OF, "61").unlink()
    store.layout.district(AS_OF, "F").write_text(moved)
    assert "invalid-file" in kinds(store.verify())


def test_leftovers_of_a_crashed_writer(store):
    day = store.layout.date_dir(AS_OF)
    (day / ".district_42.json.tmp-999-abcd").write_text('{"half')
    # The writer died after replacing the file but before rebuilding manifest and metadata.
    replaced = a_detailed("61").model_copy(update={"collection": BACKFILL.info()})
    atomic_write_bytes(store.layout.district(AS_OF, "61"), replaced.model_dump_json().encode())
    atomic_write_bytes(
        store.layout.district(AS_OF, "F"),
        a_summary("F").model_copy(update={"collection": REFRESH.info()}).model_dump_json().encode(),
    )
    found = kinds(store.verify())
    assert {"temp-file", "sha256-mismatch", "unlisted-file", "metadata-stale"} <= set(found)
    # Readers already see the file, never the temporary one.
    assert store.has_successful_detailed(AS_OF, "61")
    assert sorted(store.read_snapshot(AS_OF).districts) == ["09", "42", "61"]
    store.verify(repair=True)
    assert store.verify() == []
    assert store.read_metadata(AS_OF).districts == ["09", "42", "61", "F"]
    assert store.read_metadata(AS_OF).detailed_districts == ["61"]


def test_missing_collection_record_is_restored(store):
    other = BACKFILL.model_copy(update={"run_id": "run-lost"})
    replaced = a_detailed("61").model_copy(update={"collection": other.info()})
    atomic_write_bytes(store.layout.district(AS_OF, "61"), replaced.model_dump_json().encode())
    assert "collection-missing" in kinds(store.verify())
    store.verify(repair=True)
    assert store.verify() == []
    runs = [c.run_id for c in store.read_collections(AS_OF).collections]
    assert "run-lost" in runs


def test_missing_metadata_and_manifest(store):
    store.layout.date_file(AS_OF, "metadata.json").unlink()
    store.layout.date_file(AS_OF, "manifest.json").write_text("{}")
    assert {"metadata-invalid", "manifest-invalid"} <= set(kinds(store.verify()))
    # Readers still answer, computing both in memory.
    assert store.read_snapshot(AS_OF).metadata.status == "partial"
    store.verify(repair=True)
    assert store.verify() == []


def test_pointer_problems(store):
    pointer = store.layout.pointer
    pointer.unlink()
    assert kinds(store.verify()) == ["pointer-missing"]
    store.verify(repair=True)
    assert store.latest_successful() == dt.date(2025, 9, 9)
    pointer.write_text(
        json.dumps(
            {
                "schemaVersion": 1,
                "asOfDate": "2025-09-08",
                "status": "partial",
                "updatedAt": "2025-09-10T00:00:00Z",
            }
        )
    )
    assert kinds(store.verify()) == ["pointer-stale"]
    (store.layout.snapshots / ".latest-successful.json.tmp-1-ff").write_text("{")
    assert kinds(store.verify(repair=True)) == ["pointer-stale", "temp-file"]
    assert store.verify() == []
    assert store.latest_successful() == dt.date(2025, 9, 9)


def _parser():
    parser = argparse.ArgumentParser(prog="backfill-pipeline")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def run(argv):
    args = _parser().parse_args(argv)
    return args.handler(args)


def test_verify_command(store, capsys):
    root = str(store.root)
    assert run(["verify", "--root", root]) == 0
    assert "ok" in capsys.readouterr().out
    store.layout.date_file(AS_OF, "metadata.json").unlink()
    (store.layout.date_dir(AS_OF) / ".metadata.json.tmp-1-aa").write_text("")
    assert run(["verify", "--root", root]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("metadata-invalid snapshots/2025-09-08/metadata.json" in line for line in out)
    assert any("temp-file" in line for line in out)
    assert run(["verify", "--root", root, "--repair"]) == 0
    assert "[repaired]" in capsys.readouterr().out
    assert run(["verify", "--root", root]) == 0


def test_verify_command_reads_root_from_environment(store, monkeypatch, capsys):
    monkeypatch.setenv("BACKFILL_DATA_ROOT", str(store.root))
    store.layout.pointer.unlink()
    assert run(["verify"]) == 1
    assert "pointer-missing" in capsys.readouterr().out


def test_verify_command_in_a_subprocess(store):
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
    store.layout.district(AS_OF, "42").write_text("not json")
    env = {**os.environ, "BACKFILL_DATA_ROOT": str(store.root)}
    broken = subprocess.run(
        [sys.executable, "-c", code, "verify"], capture_output=True, text=True, env=env, timeout=60
    )
    assert broken.returncode == 1
    assert "invalid-file snapshots/2025-09-08/district_42.json" in broken.stdout
    fixed = subprocess.run(
        [sys.executable, "-c", code, "verify", "--repair"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    clean = subprocess.run(
        [sys.executable, "-c", code, "verify", "--root", str(store.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert clean.returncode == 0 and "ok" in clean.stdout
