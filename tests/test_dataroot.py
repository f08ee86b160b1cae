"""DataRoot: the one map of the data root, and names from outside that must not leave their folder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from backfill_pipeline.dataroot import DataRoot, district_file_name, district_id_of, parse_date_dir

DAY = dt.date(2025, 9, 8)
SHA = "ab" + "0" * 62


def test_every_path_of_the_documented_layout(tmp_path):
    root = DataRoot(tmp_path)
    rel = {
        "districts": root.districts_file,
        "log": root.districts_log,
        "blob": root.raw_blob(SHA),
        "sidecar": root.raw_sidecar(SHA),
        "answer": root.raw_answer("clubperformance", "09", DAY),
        "summary answer": root.raw_answer("districtsummary", None, DAY),
        "breaker": root.breaker_state,
        "run": root.run_stats("0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"),
        "record": root.backfill_record("abc123"),
        "alerts": root.run_failure_log,
        "date": root.date_dir(DAY),
        "district": root.district(DAY, "F"),
        "metadata": root.date_file(DAY, "metadata.json"),
        "pointer": root.pointer,
    }
    assert {k: str(p.relative_to(tmp_path)) for k, p in rel.items()} == {
        "districts": "config/districts.json",
        "log": "config/districts.log.jsonl",
        "blob": f"raw/ab/{SHA}.csv",
        "sidecar": f"raw/ab/{SHA}.json",
        "answer": "raw/index/clubperformance/09/2025-09-08.json",
        "summary answer": "raw/index/districtsummary/_all/2025-09-08.json",
        "breaker": "state/breaker.json",
        "run": "state/runs/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab.json",
        "record": "backfills/abc123.json",
        "alerts": "alerts/run-failures.jsonl",
        "date": "snapshots/2025-09-08",
        "district": "snapshots/2025-09-08/district_F.json",
        "metadata": "snapshots/2025-09-08/metadata.json",
        "pointer": "snapshots/latest-successful.json",
    }
    # Locks live apart from the date directories, so readers never list them.
    assert root.date_lock(DAY).parent == root.pointer_lock.parent == tmp_path / "snapshots" / ".locks"


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda r, x: r.backfill_record(x), "../../etc/passwd"),
        (lambda r, x: r.backfill_record(x), ".."),
        (lambda r, x: r.backfill_record(x), ""),
        (lambda r, x: r.run_stats(x), "a/b"),
        (lambda r, x: r.raw_answer(x, None, DAY), "../summary"),
        (lambda r, x: r.raw_answer("clubperformance", x, DAY), "../42"),
        (lambda r, x: r.raw_answer("clubperformance", x, DAY), "District 42"),
        (lambda r, x: r.raw_blob(x), "../" + "0" * 61),
        (lambda r, x: r.district(DAY, x), "42/../61"),
        (lambda r, x: r.date_file(DAY, x), "../metadata.json"),
        (lambda r, x: r.date_file(DAY, x), ".."),
        (lambda r, x: r.quarantine(DAY, "district_42.json", x), "a/b"),
    ],
)
def test_a_name_from_outside_cannot_leave_its_folder(tmp_path, make, bad):
    with pytest.raises(ValueError):
        make(DataRoot(tmp_path), bad)


def test_file_and_directory_names_parse_back():
    assert district_file_name("09") == "district_09.json" and district_id_of("district_09.json") == "09"
    assert district_id_of("district_9x.json") is None and district_id_of("metadata.json") is None
    assert parse_date_dir("2025-09-08") == DAY
    assert parse_date_dir("2025-02-30") is None and parse_date_dir("latest") is None


def test_dates_lists_only_date_directories(tmp_path):
    root = DataRoot(tmp_path)
    for name in ("2025-09-09", "2025-09-08", ".locks", "not-a-date"):
        (root.snapshots / name).mkdir(parents=True)
    (root.snapshots / "2025-09-10").write_text("a file, not a date directory")
    assert root.dates() == [DAY, dt.date(2025, 9, 9)]
    assert DataRoot.of(str(tmp_path)) == root and DataRoot.of(root) is root
    assert Path(root) == tmp_path
