"""District ids: normalising user input and ordering ids (docs/dashboard.md §5)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_VALID = re.compile(r"^(?:[0-9]{1,4}|[A-Za-z])$")
_SUMMARY_TOKEN = re.compile(r"^[A-Za-z0-9]+$")


class InvalidDistrictId(ValueError):
    """A district id that is not digits or one letter."""


def normalise_district_id(raw: str) -> str:
    """`District 42`, ` 42 ` and `42` all become `42`; leading zeros are kept; letters upper-cased."""
    if not isinstance(raw, str):
        raise InvalidDistrictId(f"district id must be a string, got {type(raw).__name__}")
    # Only ids of a plausible length are kept: a padded one from a request body is not.
    return _normalise(raw) if len(raw) <= _CACHED_LENGTH else _normalise.__wrapped__(raw)


_CACHED_LENGTH = 32


# Bounded: the store reads every manifest entry's id through here (187,000 for a year of 128
# districts) from a set of a few hundred, while hostile input must not grow it without end.
@lru_cache(maxsize=4096)
def _normalise(raw: str) -> str:
    text = raw.strip()
    m = re.fullmatch(r"(?i:district)\s+(\S+)", text)
    if m:
        text = m.group(1)
    if not _VALID.fullmatch(text):
        raise InvalidDistrictId(
            f"invalid district id {raw!r}: expected digits (like 42 or 09) or one letter (F, U)"
        )
    return text.upper()


def is_valid_district_id(raw: str) -> bool:
    """True when `raw` normalises to a district id."""
    try:
        normalise_district_id(raw)
    except InvalidDistrictId:
        return False
    return True


def district_sort_key(district_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, letters last (`02, 09, 42, 109, F, U`)."""
    if district_id.isdigit():
        return (0, int(district_id), district_id)
    return (1, 0, district_id)


def sort_district_ids(ids: Iterable[str]) -> list[str]:
    """De-duplicated, ordered district ids."""
    return sorted(set(ids), key=district_sort_key)


def district_ids_from_summary(values: Iterable[str]) -> list[str]:
    """District ids from the summary's DISTRICT column: trimmed, alphanumeric only, normalised
    (letters upper-cased), ordered."""
    kept = []
    for value in values:
        token = (value or "").strip()
        if _SUMMARY_TOKEN.fullmatch(token) and is_valid_district_id(token):
            kept.append(normalise_district_id(token))
    return sort_district_ids(kept)
