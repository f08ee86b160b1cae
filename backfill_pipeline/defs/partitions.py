"""The partitions: as-of dates, districts, and date x district."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from ..names import DATE_DIMENSION, DISTRICT_DIMENSION, DISTRICTS_PARTITION, parse_district_key

districts_partitions = dg.DynamicPartitionsDefinition(name=DISTRICTS_PARTITION)


def daily_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    """One partition per as-of date, from `start` to yesterday (the dashboard shows yesterday)."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat())


def date_district_partitions(daily: dg.DailyPartitionsDefinition) -> dg.MultiPartitionsDefinition:
    """Date x district; keys look like `2025-09-08|42` (dimensions sort by name)."""
    return dg.MultiPartitionsDefinition({DATE_DIMENSION: daily, DISTRICT_DIMENSION: districts_partitions})


def date_district_key(as_of: dt.date, district: str) -> dg.MultiPartitionKey:
    """The partition key of one (date, district)."""
    return dg.MultiPartitionKey({DATE_DIMENSION: as_of.isoformat(), DISTRICT_DIMENSION: district})


def split_key(key: dg.MultiPartitionKey | str) -> tuple[dt.date, str]:
    """(as-of date, district) of a date x district key."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dt.date.fromisoformat(dims[DATE_DIMENSION]), dims[DISTRICT_DIMENSION]
    return parse_district_key(key)
