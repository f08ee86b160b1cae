"""Every GraphQL document the API sends is valid against the schema of the Dagster we pin: a
field renamed upstream, or a fragment on the wrong type, fails here instead of in a live call."""

from __future__ import annotations

import pytest
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from backfill_pipeline.api import graphql as documents

NAMES = [
    "LAUNCH",
    "BACKFILL",
    "BACKFILLS",
    "BACKFILLS_SINCE",
    "CANCEL",
    "REEXECUTE",
    "PARTITION_STATUSES",
    "PARTITION_KEYS",
    "REPOSITORIES",
    "ADD_PARTITION",
    "POOL",
    "MATERIALIZING",
]


@pytest.fixture(scope="module")
def schema():
    return create_schema().graphql_schema


@pytest.mark.parametrize("name", NAMES)
def test_the_document_is_valid_against_dagsters_schema(schema, name):
    errors = validate(schema, parse(getattr(documents, name)))
    assert errors == [], [e.message for e in errors]


def test_every_document_of_the_module_is_checked():
    sent = {
        n
        for n, v in vars(documents).items()
        if n[:1].isalpha() and n.isupper() and isinstance(v, str) and "{" in v
    }
    assert sent == set(NAMES)
