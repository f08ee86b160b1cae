"""The Dagster layer's part in the budget: which lane a run draws from, and its share."""

import dagster as dg
import pytest

from backfill_pipeline.dashboard.budget import Lane
from backfill_pipeline.defs.resources import lane_of, run_share
from backfill_pipeline.defs.schedules import REFRESH_TAGS
from backfill_pipeline.names import BACKFILL_TAG, HEAL_TAG, RATE_TAG


def test_backfill_runs_wait_behind_the_refresh_and_every_other_run():
    assert lane_of({**REFRESH_TAGS}) == Lane.REFRESH
    assert lane_of({}) == Lane.REFRESH  # a run launched by hand from the UI is not a backfill's
    assert lane_of({BACKFILL_TAG: "abcdefgh", RATE_TAG: "1.0"}) == Lane.BACKFILL
    assert lane_of({BACKFILL_TAG: "abcdefgh", HEAL_TAG: "true"}) == Lane.BACKFILL


def test_a_rate_tag_is_a_share_never_above_the_budget():
    assert run_share("0.5", 2.0) == 0.5
    assert run_share("8", 2.0) == 2.0
    assert run_share(None, 2.0) is None


@pytest.mark.parametrize("tag", ["inf", "-inf", "nan", "0", "-1", "fast", "", "1e999", "²"])
def test_a_rate_tag_that_is_no_rate_fails_the_run_naming_the_tag(tag):
    with pytest.raises(dg.Failure, match=f"run tag {RATE_TAG}"):
        run_share(tag, 2.0)
