"""Writing through the store: replacement rules, metadata, manifest, pointer, readers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from conftest import (
    AS_OF,
    BACKFILL,
    REFRESH,
    a_detailed,
    a_failure,
    a_summary,
    an_error,
    an_unavailable,
)

from backfill_pipeline.files import atomic_write_bytes
from backfill_pipeline.snapshots import (
    DistrictError,
    PerDistrictFileSnapshotStore,
    compute_borda_rankings,
)
from backfill_pipeline.snapshots.models import Metadata


@pytest.fixture
def store(tmp_path):
    return PerDistrictFileSnapshotStore(tmp_path)


def district_bytes(store, district="42", as_of=AS_OF):
    return store.root.district(as_of, district).read_bytes()


def test_layout_and_camel_case_json(store):
    store.write_district(a_summary("42"), context=REFRESH)
    store.write_rankings(AS_OF, compute_borda_rankings([a_summary("42").raw.summary]))
    day = store.root.path / "snapshots" / "2025-09-08"
    names = sorted(p.name for p in day.iterdir())
    assert names == [
        "all-districts-rankings.json",
        "collections.json",
        "district_42.json",
        "manifest.json",
        "metadata.json",
    ]
    for name in names:
        data = json.loads((day / name).read_text())
        assert data["schemaVersion"] == 1
        assert "as_of_date" not in data and data["asOfDate"] == "2025-09-08"
    pointer = json.loads((store.root.path / "snapshots" / "latest-successful.json").read_text())
    assert pointer["asOfDate"] == "2025-09-08"


def test_summary_never_overwrites_detailed(store):
    assert store.write_district(a_summary(), context=REFRESH).written
    assert store.write_district(a_detailed(), context=BACKFILL).written
    before = district_bytes(store)
    result = store.write_district(a_summary(), context=REFRESH)
    assert (result.written, result.reason, result.detail) == (False, "kept-detailed", "detailed")
    assert district_bytes(store) == before
    assert store.has_successful_detailed(AS_OF, "42")


def test_summary_data_replaces_a_detailed_file_without_data(store):
    # Data beats no data: a late-published date's summary replaces the detailed "unavailable"
    # (or failed) file an earlier refresh wrote, and the district is then asked in detail again.
    store.write_district(a_failure("61"), context=BACKFILL)
    store.write_district(an_unavailable("62"), context=BACKFILL)
    assert store.write_district(a_summary("61"), context=REFRESH).written
    assert store.write_district(a_summary("62"), context=REFRESH).written
    assert store.read_metadata(AS_OF).successful_districts == ["61", "62"]
    assert not store.has_successful_detailed(AS_OF, "61")


def test_detailed_replaces_summary_and_keeps_its_summary_row(store):
    store.write_district(a_summary(), context=REFRESH)
    store.write_district(a_detailed(), context=BACKFILL)
    snapshot = store.read_district(AS_OF, "42")
    assert snapshot.detail == "detailed"
    assert snapshot.raw.summary["DISTRICT"] == "42"
    assert snapshot.figures.summary.payment_growth_pct == 2.5
    assert snapshot.figures.detailed.members == 28
    assert "districtsummary" in [s.report for s in snapshot.sources]
    assert snapshot.collection.source == "backfill"


def test_failure_never_replaces_success_of_same_or_higher_detail(store):
    store.write_district(a_detailed(), context=BACKFILL)
    before = district_bytes(store)
    result = store.write_district(a_failure(detail="detailed"), context=BACKFILL)
    assert (result.written, result.reason, result.status) == (False, "kept-success", "success")
    assert district_bytes(store) == before
    metadata = store.read_metadata(AS_OF)
    assert metadata.status == "success"
    assert metadata.successful_districts == ["42"]
    assert metadata.district_errors == []
    [kept] = metadata.errors_with_data_kept
    assert (kept.district, kept.error_class, kept.run_id, kept.backfill_id) == (
        "42",
        "TimeoutError",
        "run-backfill",
        "bf-1",
    )
    # A later successful write supersedes the kept error.
    store.write_district(a_detailed(), context=BACKFILL)
    assert store.read_metadata(AS_OF).errors_with_data_kept == []


def test_summary_data_written_after_a_failed_detail_keeps_its_error(store):
    # One level (issue 11): a district's run may fail before its date's summary run writes.
    store.write_district(a_failure(detail="detailed"), context=BACKFILL)
    result = store.write_districts(AS_OF, [a_summary()], context=REFRESH, summary_answered=True)[0]
    assert result.written  # data beats no data
    metadata = store.read_metadata(AS_OF)
    assert metadata.status == "success" and metadata.failed_districts == []
    assert metadata.detailed_districts == []
    [error] = metadata.errors_with_data_kept
    assert (error.district, error.report, error.run_id, error.backfill_id) == (
        "42",
        "clubperformance",
        "run-backfill",
        "bf-1",
    )
    # Another summary write does not supersede it (the detail is still missing); a detailed one does.
    store.write_districts(AS_OF, [a_summary()], context=REFRESH, summary_answered=True)
    assert len(store.read_metadata(AS_OF).errors_with_data_kept) == 1
    store.write_district(a_detailed(), context=BACKFILL)
    assert store.read_metadata(AS_OF).errors_with_data_kept == []


def test_summary_failure_keeps_summary_success(store):
    store.write_district(a_summary(), context=REFRESH)
    assert not store.write_district(a_failure(detail="summary"), context=REFRESH).written
    assert store.district_status(AS_OF, "42").status == "success"


def test_detailed_failure_never_demotes_summary_success(store):
    store.write_district(a_summary(), context=REFRESH)
    before = district_bytes(store)
    result = store.write_district(a_failure(detail="detailed"), context=BACKFILL)
    assert (result.written, result.reason) == (False, "kept-success")
    assert district_bytes(store) == before
    snapshot = store.read_district(AS_OF, "42")
    assert (snapshot.status, snapshot.detail) == ("success", "summary")
    metadata = store.read_metadata(AS_OF)
    assert metadata.status == "success"
    assert store.latest_successful() == AS_OF
    # The failed attempt is recorded beside the data it did not replace.
    [error] = metadata.errors_with_data_kept
    assert error.report == "clubperformance" and error.retryable
    assert error.run_id == "run-backfill" and error.backfill_id == "bf-1"


def test_failed_attempts_are_kept_as_history(store):
    for _ in range(3):
        store.write_district(a_failure(detail="detailed"), context=BACKFILL)
    snapshot = store.read_district(AS_OF, "42")
    assert len(snapshot.errors) == 3
    entry = store.district_status(AS_OF, "42")
    assert entry.attempts == 3 and entry.last_error.error_class == "TimeoutError"
    store.write_district(a_detailed(), context=BACKFILL)
    assert store.read_district(AS_OF, "42").errors == []
    assert store.district_status(AS_OF, "42").attempts == 0


def test_unavailable_replaces_failure_and_never_success(store):
    store.write_district(a_failure(), context=BACKFILL)
    assert store.write_district(an_unavailable(), context=BACKFILL).written
    store.write_district(a_detailed("61"), context=BACKFILL)
    assert not store.write_district(an_unavailable("61"), context=BACKFILL).written
    metadata = store.read_metadata(AS_OF)
    assert metadata.unavailable_districts == ["42"]
    assert metadata.successful_districts == ["61"]
    assert metadata.status == "success"  # unavailable is a normal outcome, not a failure


def test_metadata_lists_districts_errors_and_partial_status(store):
    results = store.write_districts(
        AS_OF,
        [a_summary("42"), a_summary("09"), a_failure("61", detail="summary"), a_summary("F")],
        context=REFRESH,
    )
    assert [r.written for r in results] == [True] * 4
    metadata = store.read_metadata(AS_OF)
    assert metadata.status == "partial"
    assert metadata.districts == ["09", "42", "61", "F"]
    assert metadata.successful_districts == ["09", "42", "F"]
    assert metadata.failed_districts == ["61"]
    assert [e.district for e in metadata.district_errors] == ["61"]
    assert metadata.data_month == "2025-08" and metadata.is_closing_period is True
    assert (metadata.source, metadata.scope, metadata.collection_method) == (
        "refresh",
        "system-wide",
        "all-districts-csv",
    )
    manifest = store.read_manifest(AS_OF)
    assert [e.file for e in manifest.districts] == [
        "district_09.json",
        "district_42.json",
        "district_61.json",
        "district_F.json",
    ]
    entry = manifest.districts[1]
    data = store.root.district(AS_OF, "42").read_bytes()
    assert entry.bytes == len(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()


def test_only_failures_make_a_failed_date(store):
    store.write_district(a_failure("42"), context=BACKFILL)
    assert store.read_metadata(AS_OF).status == "failed"
    assert store.latest_successful() is None


def test_collections_record_refresh_and_backfill(store):
    store.write_district(a_summary("42"), context=REFRESH)
    store.write_district(a_detailed("42"), context=BACKFILL)
    store.write_district(a_summary("61"), context=REFRESH)
    metadata = store.read_metadata(AS_OF)
    # The latest collection names source, scope and method; the list keeps every collection.
    assert (metadata.source, metadata.run_id) == ("refresh", "run-refresh")
    assert [(c.source, c.scope, c.run_id) for c in metadata.collections] == [
        ("backfill", "targeted", "run-backfill"),
        ("refresh", "system-wide", "run-refresh"),
    ]
    refresh = metadata.collections[1]
    assert refresh.districts_written == ["42", "61"]
    backfill = metadata.collections[0]
    assert backfill.configured_districts == ["42", "61"]
    assert backfill.backfill_id == "bf-1"
    # Each district file says which collection wrote it.
    assert store.read_district(AS_OF, "42").collection.source == "backfill"
    assert store.read_district(AS_OF, "61").collection.source == "refresh"


def test_unavailable_date(store):
    day = dt.date(2025, 12, 25)
    metadata = store.mark_date_unavailable(day, context=REFRESH, reason="no CSV for that date")
    assert metadata.status == "unavailable"
    assert store.read_manifest(day).districts == []
    assert store.list_dates() == [(day, "unavailable")]
    assert store.latest_successful() is None
    coverage = store.coverage(day, day)
    assert coverage.date_status == {day: "unavailable"}


def test_pointer_only_moves_forward(store):
    later, earlier = dt.date(2025, 9, 10), dt.date(2025, 9, 1)
    store.write_district(a_summary(as_of=later), context=REFRESH)
    assert store.latest_successful() == later
    store.write_district(a_summary(as_of=earlier), context=BACKFILL)
    assert store.latest_successful() == later
    # A newer date with only failures does not move it either.
    store.write_district(a_failure(as_of=dt.date(2025, 9, 11)), context=REFRESH)
    assert store.latest_successful() == later
    # A newer partial date does.
    newest = dt.date(2025, 9, 12)
    store.write_districts(
        newest,
        [a_summary("42", newest), a_failure("61", newest, detail="summary")],
        context=REFRESH,
    )
    assert store.latest_successful() == newest


def test_rankings_written_and_listed(store):
    rows = [a_summary(d, club_growth=g).raw.summary for d, g in (("42", "3%"), ("61", "1%"))]
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH)
    path = store.write_rankings(AS_OF, compute_borda_rankings(rows), data_month=(2025, 8))
    assert path.name == "all-districts-rankings.json"
    rankings = store.read_rankings(AS_OF)
    assert [r.district_id for r in rankings.rankings] == ["42", "61"]
    assert rankings.district_count == 2 and rankings.data_month == "2025-08"
    assert store.read_manifest(AS_OF).rankings.file == path.name
    assert store.read_metadata(AS_OF).has_rankings


def test_read_snapshot_list_dates_and_coverage(store):
    d1, d2, d3 = dt.date(2025, 9, 1), dt.date(2025, 9, 2), dt.date(2025, 9, 4)
    store.write_districts(d1, [a_summary("42", d1), a_summary("61", d1)], context=REFRESH)
    store.write_district(a_detailed("42", d2), context=BACKFILL)
    store.write_district(a_failure("61", d2), context=BACKFILL)
    store.mark_date_unavailable(d3, context=REFRESH)

    assert store.list_dates() == [(d1, "success"), (d2, "partial"), (d3, "unavailable")]
    snapshot = store.read_snapshot(d2)
    assert sorted(snapshot.districts) == ["42", "61"]
    assert snapshot.metadata.status == "partial"
    only = store.read_snapshot(d2, districts=["District 42"])
    assert list(only.districts) == ["42"]
    assert store.read_snapshot(dt.date(2025, 9, 3)) is None

    matrix = store.coverage(d1, d3)
    assert matrix.dates == [d1, d2, dt.date(2025, 9, 3), d3]
    assert matrix.districts == ["42", "61"]
    assert matrix.date_status[dt.date(2025, 9, 3)] == "missing"
    assert matrix.cell(d1, "61") == {"status": "success", "detail": "summary"}
    assert matrix.cell(d2, "42") == {"status": "success", "detail": "detailed"}
    assert matrix.cell(d2, "61") == {"status": "failed", "detail": "detailed"}
    assert matrix.cell(d3, "42") is None
    filtered = store.coverage(d1, d2, ["61", "99"])
    assert filtered.districts == ["61", "99"]
    assert filtered.cell(d1, "42") is None and filtered.cell(d1, "61") is not None
    encoded = json.loads(json.dumps(matrix.to_dict()))
    assert encoded["cells"]["2025-09-02"]["42"]["detail"] == "detailed"
    assert encoded["dateStatus"]["2025-09-03"] == "missing"


def test_readers_trust_files_over_a_stale_manifest(store):
    store.write_district(a_summary(), context=REFRESH)
    # A writer that died after replacing the file but before rebuilding the manifest:
    replaced = a_detailed().model_copy(update={"collection": REFRESH.info()})
    atomic_write_bytes(store.root.district(AS_OF, "42"), replaced.model_dump_json().encode())
    assert store.has_successful_detailed(AS_OF, "42")
    assert store.read_manifest(AS_OF).districts[0].detail == "summary"  # still stale
    # The next write rebuilds the manifest from what is on disk.
    store.write_district(a_summary("61"), context=REFRESH)
    assert [e.detail for e in store.read_manifest(AS_OF).districts] == ["detailed", "summary"]


def test_write_validation(store):
    with pytest.raises(ValueError):
        store.write_districts(AS_OF, [a_summary("42", dt.date(2025, 9, 9))], context=REFRESH)
    with pytest.raises(ValueError):
        store.write_districts(AS_OF, [a_summary("42"), a_summary("42")], context=REFRESH)
    with pytest.raises(ValueError):
        store.read_district(AS_OF, "../../etc")


def test_district_error_from_exception_takes_retryable_flag():
    class Flaky(Exception):
        retryable = True

    error = an_error()
    assert error.retryable and error.error_class == "TimeoutError"
    assert DistrictError.from_exception(Flaky("x"), district="42").retryable
    assert not DistrictError.from_exception(ValueError("x"), district="42").retryable


def test_metadata_model_round_trips(store):
    store.write_district(a_failure(), context=BACKFILL)
    raw = store.root.date_file(AS_OF, "metadata.json").read_text()
    assert Metadata.model_validate_json(raw).failed_districts == ["42"]
    assert json.loads(raw)["districtErrors"][0]["errorClass"] == "TimeoutError"
