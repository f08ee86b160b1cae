"""The shared names: the date x district key format, and the tags dagster.yaml limits by name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from backfill_pipeline.names import (
    BACKFILL_TAG,
    KEY_SEPARATOR,
    TABLES_TAG,
    concurrency_tag,
    district_key,
    key_date,
    parse_district_key,
)
from backfill_pipeline.planning.request import MAX_CONCURRENCY

INSTANCE_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def test_a_key_is_built_and_parsed_back():
    key = district_key(dt.date(2025, 9, 8), "09")
    assert key == "2025-09-08|09" and KEY_SEPARATOR == "|"
    assert district_key("2025-09-08", "09") == key
    assert parse_district_key(key) == (dt.date(2025, 9, 8), "09")
    assert key_date(key) == "2025-09-08"


@pytest.mark.parametrize("bad", ["2025-09-08", "2025-09-08|", "|42", "2025-13-01|42", "42|2025-09-08"])
def test_a_malformed_key_is_refused(bad):
    with pytest.raises(ValueError):
        parse_district_key(bad)


def test_dagster_yaml_limits_the_tags_the_product_sets():
    limits = yaml.safe_load(INSTANCE_YAML.read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    keys = {limit["key"] for limit in limits}
    # Every concurrency a request may ask for has its lane, limited per backfill.
    lanes = {concurrency_tag(n): n for n in range(1, MAX_CONCURRENCY + 1)}
    assert set(lanes) | {BACKFILL_TAG, TABLES_TAG} == keys
    for limit in limits:
        if limit["key"] in lanes:
            assert limit["limit"] == lanes[limit["key"]] and limit["value"]["applyLimitPerUniqueValue"]
        if limit["key"] == TABLES_TAG:
            assert limit["limit"] == 1 and "value" not in limit, "one table rebuild at a time in all"
