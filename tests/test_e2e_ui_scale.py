"""The Dagster UI at the default partition space stays responsive while the brisk backfill daemon
evaluates a year x 128 districts backfill (issue 11: nothing else gets worse).

`backfill-pipeline dev` with the default BACKFILL_START_DATE and 128 districts (about 112,000
date x district partitions), a week of materializations reported, then the asset page's query
timed before and while a one-year backfill of every district (about 47,000 partitions) is in
flight. scripts/bench_partitions.py measures the same query at other
sizes (0.05-0.19 s on this machine); the bound here leaves room for a loaded CI machine.
"""

import datetime as dt
import statistics
import time

import pytest
from scale_dagster import DISTRICTS, SEEDED_DAYS, seeded_dagster

from backfill_pipeline.api.graphql import PARTITION_STATUSES, DagsterGraphQL
from backfill_pipeline.names import concurrency_tag

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dagster")]

ASSET_PAGE = PARTITION_STATUSES.replace(
    "partitionStats {", "partitionKeysByDimension { name partitionKeys }\n      partitionStats {", 1
)
# The asset page's query must answer within this, every time (measured: 0.05 s when idle).
PAGE_BOUND_S = 3.0


def page_seconds(graphql: DagsterGraphQL) -> float:
    began = time.perf_counter()
    data = graphql.execute(ASSET_PAGE, {"path": ["district_snapshot"]})
    elapsed = time.perf_counter() - began
    assert data["assetNodeOrError"]["__typename"] == "AssetNode"
    return elapsed


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """The seeded Dagster of tests/scale_dagster.py."""
    with seeded_dagster(tmp_path_factory.mktemp("ui-scale")) as running:
        yield running


def test_the_asset_page_answers_while_a_year_of_every_district_is_evaluated(scale):
    service, yesterday = scale
    graphql = DagsterGraphQL(service.url)
    stats = graphql.execute(ASSET_PAGE, {"path": ["district_snapshot"]})["assetNodeOrError"]
    assert stats["partitionStats"]["numPartitions"] > 100_000  # the default space
    assert stats["partitionStats"]["numMaterialized"] == SEEDED_DAYS * len(DISTRICTS)
    idle = [page_seconds(graphql) for _ in range(3)]

    first = (yesterday - dt.timedelta(days=365)).isoformat()
    ranges = [{"start": f"{first}|{d}", "end": f"{yesterday.isoformat()}|{d}"} for d in DISTRICTS]
    backfill_id = graphql.launch_backfill(
        [{"assetKey": {"path": ["district_snapshot"]}, "partitions": {"ranges": ranges}}],
        # One run at a time: the backfill stays in flight while the page is timed.
        tags={concurrency_tag(1): "ui-scale"},
    )
    busy = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        busy.append(page_seconds(graphql))
        time.sleep(0.5)
    # The daemon was at it all along: its first evaluation of ~47,000 partitions takes minutes
    # here (a cancel sent now was carried out 2 minutes later), so the backfill is still
    # requested; stopping the stack ends it.
    assert graphql.backfill(backfill_id)["status"] == "REQUESTED"

    print(f"asset page idle {statistics.median(idle):.2f} s")
    print(f"busy: median {statistics.median(busy):.2f} s, max {max(busy):.2f} s over {len(busy)} queries")
    assert max(idle + busy) < PAGE_BOUND_S, (idle, busy)
