"""Issue 10, point 7: the API's answers to generated requests (Dagster faked: fast lane)."""

from __future__ import annotations

from api_stack import FakeApi

from backfill_pipeline.api import openapi

pytest_plugins = ["api_stack"]


def test_an_empty_coverage_parameter_is_documented_as_not_given(api: FakeApi):
    # Found by the generated requests: `?start=` answered 200 (an empty value is as if not
    # given), while the document had it an invalid date.
    parameters = openapi.document()["paths"]["/api/coverage"]["get"]["parameters"]
    assert {p["name"] for p in parameters if p.get("allowEmptyValue")} == {
        "start",
        "end",
        "districts",
        "state",
    }
    empty = api.client.get("/api/coverage?start=&end=&districts=&state=")
    assert empty.status_code == 200 and empty.json() == api.client.get("/api/coverage").json()
