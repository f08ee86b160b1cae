"""`verify`: manifest against files against sha256, schemas, pointer; `--repair`."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from conftest import AS_OF, BACKFILL, REFRESH, a_detailed, a_summary

from backfill_pipeline.files import atomic_write_bytes
from backfill_pipeline.snapshots.verify import verify_store


@pytest.fixture
def store(small_store):
    """The shared small store of conftest."""
    return small_store


def kinds(problems):
    return sorted(p.kind for p in problems)


def test_clean_store_has_no_problems(store):
    assert verify_store(store) == []
    assert verify_store(store, repair=True) == []


def test_tampered_file_is_a_sha256_mismatch_and_repair_rebuilds(store):
    path = store.root.district(AS_OF, "42")
    data = json.loads(path.read_text())
    data["figures"]["summary"]["clubGrowthPct"] = 99.0
    path.write_text(json.dumps(data))
    problems = verify_store(store)
    assert "sha256-mismatch" in kinds(problems)
    assert any(p.path == "snapshots/2025-09-08/district_42.json" for p in problems)
    repaired = verify_store(store, repair=True)
    assert repaired and all(p.repaired for p in repaired)
    assert verify_store(store) == []


def test_torn_or_invalid_files_are_quarantined(store):
    store.root.district(AS_OF, "61").write_text('{"schemaVersion": 1, "distr')
    store.root.district(AS_OF, "42").write_text(json.dumps({"schemaVersion": 1}))
    problems = verify_store(store)
    assert kinds(problems).count("invalid-file") == 2
    verify_store(store, repair=True)
    assert verify_store(store) == []
    assert store.read_metadata(AS_OF).districts == ["09"]
    hidden = [p.name for p in store.root.date_dir(AS_OF).iterdir() if p.name.startswith(".")]
    assert len(hidden) == 2 and all(".corrupt-" in h for h in hidden)


def test_district_file_in_the_wrong_place_is_invalid(store):
    moved = a_summary("61").model_dump_json()
    store.root.district(AS_OF, "61").unlink()
    store.root.district(AS_OF, "F").write_text(moved)
    assert "invalid-file" in kinds(verify_store(store))


def test_leftovers_of_a_crashed_writer(store):
    day = store.root.date_dir(AS_OF)
    (day / ".district_42.json.tmp-999-abcd").write_text('{"half')
    # The writer died after replacing the file but before rebuilding manifest and metadata.
    replaced = a_detailed("61").model_copy(update={"collection": BACKFILL.info()})
    atomic_write_bytes(store.root.district(AS_OF, "61"), replaced.model_dump_json().encode())
    atomic_write_bytes(
        store.root.district(AS_OF, "F"),
        a_summary("F").model_copy(update={"collection": REFRESH.info()}).model_dump_json().encode(),
    )
    found = kinds(verify_store(store))
    assert {"temp-file", "sha256-mismatch", "unlisted-file", "metadata-stale"} <= set(found)
    # Readers already see the file, never the temporary one.
    assert store.has_successful_detailed(AS_OF, "61")
    assert sorted(store.read_snapshot(AS_OF).districts) == ["09", "42", "61"]
    verify_store(store, repair=True)
    assert verify_store(store) == []
    assert store.read_metadata(AS_OF).districts == ["09", "42", "61", "F"]
    assert store.read_metadata(AS_OF).detailed_districts == ["61"]


def test_missing_collection_record_is_restored(store):
    other = BACKFILL.model_copy(update={"run_id": "run-lost"})
    replaced = a_detailed("61").model_copy(update={"collection": other.info()})
    atomic_write_bytes(store.root.district(AS_OF, "61"), replaced.model_dump_json().encode())
    assert "collection-missing" in kinds(verify_store(store))
    verify_store(store, repair=True)
    assert verify_store(store) == []
    runs = [c.run_id for c in store.read_collections(AS_OF).collections]
    assert "run-lost" in runs


def test_missing_metadata_and_manifest(store):
    store.root.date_file(AS_OF, "metadata.json").unlink()
    store.root.date_file(AS_OF, "manifest.json").write_text("{}")
    assert {"metadata-invalid", "manifest-invalid"} <= set(kinds(verify_store(store)))
    # Readers still answer, computing both in memory.
    assert store.read_snapshot(AS_OF).metadata.status == "partial"
    verify_store(store, repair=True)
    assert verify_store(store) == []


def test_pointer_problems(store):
    pointer = store.root.pointer
    pointer.unlink()
    assert kinds(verify_store(store)) == ["pointer-missing"]
    verify_store(store, repair=True)
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
    assert kinds(verify_store(store)) == ["pointer-stale"]
    (store.root.snapshots / ".latest-successful.json.tmp-1-ff").write_text("{")
    assert kinds(verify_store(store, repair=True)) == ["pointer-stale", "temp-file"]
    assert verify_store(store) == []
    assert store.latest_successful() == dt.date(2025, 9, 9)


def test_a_damaged_pointer_never_pulls_it_back(store):
    # The newest successful date is 2025-09-09; a corrupt or deleted pointer file must not let a
    # write to an older date become "the latest".
    older = dt.date(2025, 9, 1)
    for damage in ("{not json", None):
        if damage is None:
            store.root.pointer.unlink()
        else:
            store.root.pointer.write_text(damage)
        store.write_district(a_summary("42", older), context=REFRESH)
        assert store.latest_successful() == dt.date(2025, 9, 9)


def test_repair_never_moves_the_pointer_back(store):
    # The pointer's date loses its data (a file deleted by hand): verify says so, repair leaves it.
    store.root.district(dt.date(2025, 9, 9), "42").unlink()
    store.rebuild(dt.date(2025, 9, 9))
    problems = verify_store(store, repair=True)
    [ahead] = [p for p in problems if p.kind == "pointer-ahead"]
    assert not ahead.repaired and "never moves back" in ahead.message
    assert store.latest_successful() == dt.date(2025, 9, 9)


def test_new_directories_are_fsynced_into_their_parents(tmp_path, monkeypatch):
    import backfill_pipeline.files as files

    synced = []
    real = files.fsync_dir
    monkeypatch.setattr(files, "fsync_dir", lambda d: (synced.append(d), real(d)))
    files.atomic_write_bytes(tmp_path / "a" / "b" / "c.json", b"{}")
    # a into tmp_path, b into a, then the file's rename into b.
    assert synced == [tmp_path, tmp_path / "a", tmp_path / "a" / "b"]


def test_a_writer_killed_mid_write_leaves_no_temporary_file_once_the_path_is_written_again(tmp_path):
    import subprocess
    import sys

    from backfill_pipeline.files import is_temp_name

    target = tmp_path / "raw" / "95" / "blob.csv"
    target.parent.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = target.with_name(f".blob.csv.tmp-{dead.stdout.strip()}-deadbeef")
    live = target.with_name(f".blob.csv.tmp-{os.getpid()}-cafecafe")  # a writer still at work
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert sorted(p.name for p in target.parent.iterdir() if is_temp_name(p.name)) == [live.name]
