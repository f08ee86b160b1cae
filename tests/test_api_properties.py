"""Issue 10, point 7: the API's answers to generated requests (Dagster faked: fast lane)."""

from __future__ import annotations

import pytest
from api_stack import CONTRACT, FakeApi

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


@pytest.mark.parametrize("path", ["/api/backfills", "/api/heal"])
@pytest.mark.parametrize("rate", [5e-324, 0.0004, 0.009])
def test_a_rate_too_slow_to_pace_a_run_is_refused(api, path, rate):
    # Found by the generated requests: `"rate": 5e-324` (any rate whose share per run rounded to
    # 0) answered 500, the plan's pace per run being 0, which its answer does not allow.
    body = {"startDate": "2025-03-01", "endDate": "2025-03-01", "targetDistricts": ["42"], "rate": rate}
    for dry_run in (True, False):
        r = api.client.post(path, json={**body, "dryRun": dry_run})
        error = CONTRACT.check(r, "POST", path, 400)["error"]
        assert error["fields"] == [
            {"field": "rate", "message": f"must be at least 0.01 requests/s, got {rate:g}"}
        ]
    assert api.dagster.launches == []
    slowest = api.client.post(path, json={**body, "rate": 0.01, "dryRun": True})
    assert CONTRACT.check(slowest, "POST", path, 200)["plan"]["ratePerRun"] > 0
    model = "BackfillRequest" if path == "/api/backfills" else "HealRequest"
    rate_schema = openapi.document()["components"]["schemas"][model]["properties"]["rate"]
    assert {"type": "number", "minimum": 0.01, "maximum": 8.0} in rate_schema["anyOf"]
