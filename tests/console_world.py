"""A data root holding one cell of every state (tests of the console and its matrix)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import AS_OF, BACKFILL, REFRESH, a_detailed, a_failure, a_summary, an_unavailable

from backfill_pipeline.dashboard.errors import ClientHttpError, ServerError
from backfill_pipeline.scope import DistrictConfig
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore, failed_district, unavailable_district
from backfill_pipeline.snapshots.models import DistrictError, SummaryError

DISTRICTS = ["09", "10", "11", "12", "13", "42", "61"]
DAY_2 = AS_OF + dt.timedelta(days=1)
DAY_3 = AS_OF + dt.timedelta(days=2)
# (date, district) -> state, for the cells the world sets on purpose.
EXPECTED = {
    (AS_OF, "42"): "detailed",
    (AS_OF, "61"): "summary",
    (AS_OF, "09"): "failed-transient",
    (AS_OF, "10"): "failed-permanent",
    (AS_OF, "11"): "unavailable-pending",
    (AS_OF, "12"): "unavailable-final",
    (AS_OF, "13"): "missing",
    (DAY_2, "42"): "unavailable-pending",
    (DAY_3, "61"): "failed-transient",
}


def every_state(root: Path) -> None:
    """AS_OF: one district per state; DAY_2 not published; DAY_3 the summary failed with a 503."""
    DistrictConfig(root).set(DISTRICTS)
    store = PerDistrictFileSnapshotStore(root)
    store.write_districts(AS_OF, [a_summary("42"), a_summary("61")], context=REFRESH, summary_answered=True)
    store.write_district(a_detailed("42"), context=BACKFILL)
    store.write_district(a_failure("09"), context=BACKFILL)
    error = DistrictError.from_exception(
        ClientHttpError("HTTP 404", status=404), district="10", report="clubperformance"
    )
    store.write_district(
        failed_district(district_id="10", as_of=AS_OF, detail="detailed", errors=[error]), context=BACKFILL
    )
    store.write_district(an_unavailable("11"), context=BACKFILL)
    store.write_district(
        unavailable_district(district_id="12", as_of=AS_OF, detail="detailed", final=True), context=BACKFILL
    )
    store.mark_date_unavailable(DAY_2, context=REFRESH)
    summary_error = SummaryError.from_exception(ServerError("HTTP 503", status=503), run_id="r3")
    store.record_summary_failure(DAY_3, summary_error, context=REFRESH)
