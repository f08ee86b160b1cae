"""Gaps with causes: every (date, district) in scope is one state, with the last error and attempts."""

from __future__ import annotations

import datetime as dt

from conftest import AS_OF, BACKFILL, REFRESH, a_detailed, a_failure, a_summary, an_unavailable

from backfill_pipeline.dashboard.errors import CircuitOpen, ClientHttpError, ServerError
from backfill_pipeline.planning.gaps import MAX_ATTEMPTS, STATES, find_gaps, heal_partitions
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore, failed_district, unavailable_district
from backfill_pipeline.snapshots.models import DistrictError, SummaryError

DAY_2 = AS_OF + dt.timedelta(days=1)
DAY_3 = AS_OF + dt.timedelta(days=2)
DAY_4 = AS_OF + dt.timedelta(days=3)
DAY_5 = AS_OF + dt.timedelta(days=4)


def failure(district: str, exc: Exception, as_of: dt.date = AS_OF):
    error = DistrictError.from_exception(exc, district=district, report="clubperformance")
    return failed_district(district_id=district, as_of=as_of, detail="detailed", errors=[error])


def states(gaps) -> dict[tuple[str, str], str]:
    return {(c.as_of.isoformat(), c.district): c.state for c in gaps.cells}


def test_every_cell_has_one_state_and_the_totals_add_up(tmp_path):
    store = PerDistrictFileSnapshotStore(tmp_path)
    # AS_OF: 42 detailed, 61 summary only, 09 failed transiently, 10 failed permanently,
    # 11 unavailable (pending), 12 unavailable (final), 13 never collected.
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH, summary_answered=True)
    store.write_district(a_detailed("42"), context=BACKFILL)
    store.write_district(a_failure("09"), context=BACKFILL)
    store.write_district(failure("10", ClientHttpError("HTTP 404", status=404)), context=BACKFILL)
    store.write_district(an_unavailable("11"), context=BACKFILL)
    final = unavailable_district(district_id="12", as_of=AS_OF, detail="detailed", final=True)
    store.write_district(final, context=BACKFILL)
    # DAY_2: not published (pending); DAY_3: the summary failed with a 503; DAY_4: nothing.
    store.mark_date_unavailable(DAY_2, context=REFRESH)
    error = SummaryError.from_exception(ServerError("HTTP 503", status=503), run_id="r3")
    store.record_summary_failure(DAY_3, error, context=REFRESH)
    # DAY_5: final on evidence.
    store.mark_date_unavailable(DAY_5, context=REFRESH, final=True)

    districts = ["09", "10", "11", "12", "13", "42", "61"]
    gaps = find_gaps(store, AS_OF, DAY_5, districts)
    got = states(gaps)
    day = AS_OF.isoformat()
    assert got[(day, "42")] == "detailed"
    assert got[(day, "61")] == "summary"
    assert got[(day, "09")] == "failed-transient"
    assert got[(day, "10")] == "failed-permanent"
    assert got[(day, "11")] == "unavailable-pending"
    assert got[(day, "12")] == "unavailable-final"
    assert got[(day, "13")] == "missing"
    assert {got[(DAY_2.isoformat(), d)] for d in districts} == {"unavailable-pending"}
    assert {got[(DAY_3.isoformat(), d)] for d in districts} == {"failed-transient"}
    assert {got[(DAY_4.isoformat(), d)] for d in districts} == {"missing"}
    assert {got[(DAY_5.isoformat(), d)] for d in districts} == {"unavailable-final"}
    totals = gaps.totals()
    assert list(totals) == list(STATES) and sum(totals.values()) == 5 * len(districts) == len(gaps.cells)
    assert totals["detailed"] == 1 and totals["failed-permanent"] == 1 and totals["missing"] == 1 + 7

    # The failed cells say why, when and how often.
    cell = next(c for c in gaps.cells if c.as_of == DAY_3 and c.district == "42")
    data = cell.to_dict()
    assert data["lastError"]["class"] == "ServerError" and data["lastError"]["retryable"] is True
    assert data["lastError"]["report"] == "districtsummary" and data["attempts"] == 1
    assert data["lastError"]["runId"] == "r3"

    # Heal: summaries for dates without detail, the detailed cells in detail; nothing final.
    healable = gaps.healable()
    assert {c.state for c in healable} == {"failed-transient", "unavailable-pending", "missing"}
    parts = heal_partitions(healable)
    assert parts.districts == [f"{day}|09", f"{day}|11"]
    assert parts.summary == [day, DAY_2.isoformat(), DAY_3.isoformat(), DAY_4.isoformat()]
    # Without the missing cells, AS_OF's summary is not needed (13 is its only missing cell).
    assert day not in heal_partitions(gaps.healable(include_missing=False)).summary


def test_a_failed_detail_on_kept_summary_data_is_shown_and_healed_in_detail(tmp_path):
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(AS_OF, [a_summary("42")], context=REFRESH, summary_answered=True)
    store.write_district(a_failure("42"), context=BACKFILL)  # kept: the summary data stays
    [cell] = find_gaps(store, AS_OF, AS_OF, ["42"]).cells
    assert cell.state == "summary" and cell.attempts == 1 and cell.detail_wanted
    assert heal_partitions([cell]).districts == [f"{AS_OF}|42"]


def test_attempts_are_bounded_and_an_open_breaker_is_not_an_attempt(tmp_path):
    store = PerDistrictFileSnapshotStore(tmp_path)
    for _ in range(5):
        store.write_district(failure("42", CircuitOpen("open", retry_in=30)), context=BACKFILL)
    [cell] = find_gaps(store, AS_OF, AS_OF, ["42"]).cells
    assert cell.state == "failed-transient" and cell.attempts == 0
    for _ in range(MAX_ATTEMPTS):
        store.write_district(failure("42", ServerError("HTTP 503", status=503)), context=BACKFILL)
    [cell] = find_gaps(store, AS_OF, AS_OF, ["42"]).cells
    # Always failing: it ends failed, and is no longer healed automatically.
    assert cell.state == "failed-permanent" and cell.attempts == MAX_ATTEMPTS
    assert not cell.healable()


def test_districts_default_to_the_configured_then_the_listed_ones(tmp_path):
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH)
    store.write_rankings(AS_OF, [])
    assert find_gaps(store, AS_OF, AS_OF).districts == []  # no rankings listing anyone
    from backfill_pipeline.scope import DistrictConfig

    DistrictConfig(tmp_path).set(["61", "109"])
    gaps = find_gaps(store, AS_OF, AS_OF)
    assert gaps.districts == ["61", "109"]
    assert states(gaps) == {(AS_OF.isoformat(), "61"): "summary", (AS_OF.isoformat(), "109"): "missing"}


def test_a_date_is_read_again_after_every_write_to_it_and_not_otherwise(tmp_path, monkeypatch):
    """The cells of a date are kept between calls (the console asks for the same year again and
    again) and read again as soon as a write replaced the date's manifest or metadata."""
    store = PerDistrictFileSnapshotStore(tmp_path)
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH, summary_answered=True)
    assert states(find_gaps(store, AS_OF, DAY_2, ["42", "61"]))[(AS_OF.isoformat(), "42")] == "summary"
    reads = []
    real = PerDistrictFileSnapshotStore.read_manifest
    monkeypatch.setattr(
        PerDistrictFileSnapshotStore, "read_manifest", lambda self, d: reads.append(d) or real(self, d)
    )
    find_gaps(PerDistrictFileSnapshotStore(tmp_path), AS_OF, DAY_2, ["42", "61"])
    assert reads == []  # nothing changed: nothing read
    # Each write shows at once, read from its date alone.
    store.write_district(a_detailed("42"), context=BACKFILL)
    got = states(find_gaps(store, AS_OF, DAY_2, ["42", "61"]))
    assert got[(AS_OF.isoformat(), "42")] == "detailed" and reads == [AS_OF]
    store.write_district(a_failure("61"), context=BACKFILL)
    assert states(find_gaps(store, AS_OF, DAY_2, ["42", "61"]))[(AS_OF.isoformat(), "61")] == "summary"
    assert reads == [AS_OF, AS_OF]
    store.mark_date_unavailable(DAY_2, context=REFRESH)
    got = states(find_gaps(store, AS_OF, DAY_2, ["42", "61"]))
    assert got[(DAY_2.isoformat(), "61")] == "unavailable-pending" and reads[-1] == DAY_2
    # Another choice of districts reads nothing again, and still gets its own cells.
    reads.clear()
    cells = find_gaps(store, AS_OF, AS_OF, ["61", "99"]).cells
    assert [(c.district, c.state) for c in cells] == [("61", "summary"), ("99", "missing")]
    assert reads == []
