"""The partitions: as-of dates, districts, and date x district."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .planner import DISTRICTS_PARTITION

# Chosen by measurement (scripts/bench_partitions.py, README "Scale"): from the start of PY
# 2024-2025, 128 districts make ~113k date x district partitions today (+46.7k a year); the asset
# pages answer in 0.05 s and a one-year backfill launches in ~3.5 s. A configured subset of ~10
# districts can start at 2008-07-01 (67k partitions, pages 0.2 s, a year launches in ~1.1 s).
DEFAULT_START_DATE = dt.date(2024, 7, 1)

districts_partitions = dg.DynamicPartitionsDefinition(name=DISTRICTS_PARTITION)


def daily_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    """One partition per as-of date, from `start` to yesterday (the dashboard shows yesterday)."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat())


def date_district_partitions(daily: dg.DailyPartitionsDefinition) -> dg.MultiPartitionsDefinition:
    """Date x district; keys look like `2025-09-08|42` (dimensions sort by name)."""
    return dg.MultiPartitionsDefinition({"date": daily, "district": districts_partitions})


def split_key(key: dg.MultiPartitionKey | str) -> tuple[dt.date, str]:
    """(as-of date, district) of a date x district key."""
    if not isinstance(key, dg.MultiPartitionKey):
        date_part, district = str(key).split("|", 1)
        return dt.date.fromisoformat(date_part), district
    dims = key.keys_by_dimension
    return dt.date.fromisoformat(dims["date"]), dims["district"]


def date_district_key(as_of: dt.date, district: str) -> dg.MultiPartitionKey:
    """The partition key of one (date, district)."""
    return dg.MultiPartitionKey({"date": as_of.isoformat(), "district": district})
