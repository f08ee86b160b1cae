"""The OpenAPI 3.1 document of the REST API, written by hand; the request schema comes from the model."""

from __future__ import annotations

import copy
from functools import lru_cache

from ..dashboard.calendar import EARLIEST_AS_OF
from ..planning.request import BackfillRequest

VERSION = "1.0.0"
STATES = ["running", "succeeded", "completed-with-failures", "failed", "failing", "canceling", "canceled"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_TIME = _nullable({"type": "string", "format": "date-time"})
_LINK = {"type": "string", "pattern": "^/api/backfills/[A-Za-z0-9]+$"}
_BACKFILL_ID = {"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"}

# What normalise_district_id accepts: `42`, `09`, `F`, ` 42 `, `District 42`.
DISTRICT_ID_PATTERN = r"^\s*(?:[Dd][Ii][Ss][Tt][Rr][Ii][Cc][Tt]\s+)?(?:[0-9]{1,4}|[A-Za-z])\s*$"

_DESCRIPTIONS = {
    "startDate": f"First as-of date, YYYY-MM-DD; not before {EARLIEST_AS_OF} and not after yesterday.",
    "endDate": "Last as-of date, YYYY-MM-DD (default startDate); not before startDate.",
    "targetDistricts": "District ids (digits like 42 or 09, or one letter; `District 42` is accepted). "
    "Absent: every configured district.",
    "collectionType": "auto: per-district when districts are named, else system-wide.",
    "skipExisting": "Leave partitions already materialized alone (false collects them again).",
    "retryFailures": "Include partitions that failed before.",
    "concurrency": "Runs of this backfill at once.",
    "rate": "Dashboard requests per second, shared by the backfill's runs.",
    "dryRun": "Plan and cost only; launch nothing.",
    "planHash": "The planHash of a dry run: launch only if the plan is still the same (else 409).",
}


def backfill_request_schema() -> dict:
    """The BackfillRequest JSON schema (camelCase) with descriptions instead of generated titles."""
    schema = copy.deepcopy(BackfillRequest.model_json_schema(by_alias=True))
    for name, prop in schema["properties"].items():
        prop.pop("title", None)
        if name in _DESCRIPTIONS:
            prop["description"] = _DESCRIPTIONS[name]
    for option in schema["properties"]["targetDistricts"]["anyOf"]:
        if option.get("type") == "array":
            option["items"]["pattern"] = DISTRICT_ID_PATTERN
    return schema


def _schemas() -> dict:
    plan = {
        "type": "object",
        "required": [
            "strategy",
            "rationale",
            "scope",
            "dates",
            "districts",
            "outOfScope",
            "partitions",
            "skipped",
            "cost",
            "force",
            "ratePerRun",
            "planHash",
        ],
        "properties": {
            "strategy": {"enum": ["system-wide", "per-district"]},
            "rationale": _STR,
            "scope": {"enum": ["system-wide", "targeted", "single-district"]},
            "dates": {
                "type": "object",
                "required": ["start", "end", "count"],
                "properties": {
                    "start": {"type": "string", "format": "date"},
                    "end": {"type": "string", "format": "date"},
                    "count": {"type": "integer", "minimum": 1},
                },
            },
            "districts": {"type": "array", "items": _STR},
            "outOfScope": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "reason", "message"],
                    "properties": {
                        "id": _STR,
                        "reason": {"enum": ["invalid", "not-configured", "not-on-dashboard"]},
                        "message": _STR,
                    },
                },
            },
            "partitions": {
                "type": "object",
                "required": ["all_districts_summary", "district_snapshot", "total"],
                "additionalProperties": _INT,
            },
            "skipped": {
                "type": "object",
                "additionalProperties": _INT,
                "description": "Partitions left out: materialized, failed, summaryNotNeeded.",
            },
            "cost": {
                "type": "object",
                "required": [
                    "requests",
                    "lowerBound",
                    "upperBound",
                    "cachedCsvs",
                    "byReport",
                    "runs",
                    "seconds",
                    "notes",
                ],
                "description": "HTTP requests to the dashboard when every first attempt is answered, "
                "with the bounds of what cannot be known before fetching.",
                "properties": {
                    "requests": _INT,
                    "lowerBound": _INT,
                    "upperBound": _INT,
                    "cachedCsvs": _INT,
                    "byReport": {"type": "object", "additionalProperties": _INT},
                    "runs": _INT,
                    "seconds": {"type": "number", "minimum": 0},
                    "notes": {"type": "array", "items": _STR},
                },
            },
            "force": {"type": "boolean"},
            "ratePerRun": {"type": "number", "exclusiveMinimum": 0},
            "planHash": {"type": "string", "pattern": "^[0-9a-f]{16,64}$"},
        },
    }
    counts = {
        "type": "object",
        "required": ["targeted", "materialized", "failed", "inProgress"],
        "properties": {
            k: _INT for k in ("targeted", "materialized", "failed", "inProgress", "unavailable", "skipped")
        },
    }
    status = {
        "type": "object",
        "required": [
            "id",
            "state",
            "dagsterStatus",
            "createdAt",
            "counts",
            "assets",
            "runs",
            "districts",
            "districtErrors",
            "performance",
            "plan",
            "error",
        ],
        "properties": {
            "id": _BACKFILL_ID,
            "state": {"enum": STATES},
            "dagsterStatus": _STR,
            "requestId": _nullable(_STR),
            "strategy": _nullable(_STR),
            "requester": _nullable(_STR),
            "title": _nullable(_STR),
            "createdAt": _TIME,
            "endedAt": _TIME,
            "counts": counts,
            "assets": {"type": "object", "additionalProperties": counts},
            "runs": {
                "type": "object",
                "required": ["total", "byStatus"],
                "properties": {"total": _INT, "byStatus": {"type": "object", "additionalProperties": _INT}},
            },
            "districts": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["done", "failed", "unavailable", "lastError"],
                    "properties": {
                        "done": _INT,
                        "failed": _INT,
                        "unavailable": _INT,
                        "lastError": _nullable(_STR),
                    },
                },
            },
            "districtErrors": {"type": "array", "items": {"type": "object"}},
            "performance": {
                "type": "object",
                "required": ["requestsMade", "cacheHits"],
                "properties": {
                    "requestsMade": _INT,
                    "cacheHits": _INT,
                    "cacheHitRate": _nullable({"type": "number"}),
                    "retries": _INT,
                },
            },
            "plan": _nullable(_ref("Plan")),
            "error": _nullable(_STR),
        },
    }
    summary = {
        "type": "object",
        "required": ["id", "state", "dagsterStatus", "createdAt"],
        "properties": {
            "id": _BACKFILL_ID,
            "state": {"enum": STATES},
            "dagsterStatus": _STR,
            "title": _nullable(_STR),
            "partitions": _nullable(_INT),
            "strategy": _nullable(_STR),
            "requester": _nullable(_STR),
            "createdAt": _TIME,
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                    "message": {"type": "string", "minLength": 1},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "additionalProperties": False,
                            "properties": {"field": _STR, "message": _STR},
                        },
                    },
                    "plan": _ref("Plan"),
                },
            }
        },
    }
    return {
        "BackfillRequest": backfill_request_schema(),
        "Plan": plan,
        "BackfillStatus": status,
        "BackfillSummary": summary,
        "BackfillList": {
            "type": "object",
            "required": ["backfills"],
            "properties": {"backfills": {"type": "array", "items": _ref("BackfillSummary")}},
        },
        "Launched": {
            "type": "object",
            "required": ["backfillId", "requestId", "plan", "links"],
            "properties": {
                "backfillId": _BACKFILL_ID,
                "requestId": _STR,
                "plan": _ref("Plan"),
                "links": {"type": "object", "required": ["self"], "properties": {"self": _LINK}},
            },
        },
        "DryRun": {
            "type": "object",
            "required": ["requestId", "plan"],
            "properties": {"requestId": _STR, "plan": _ref("Plan"), "backfillId": False},
        },
        "NothingToRun": {
            "type": "object",
            "required": ["backfillId", "requestId", "plan", "message"],
            "properties": {
                "backfillId": {"type": "null"},
                "requestId": _STR,
                "plan": _ref("Plan"),
                "message": _STR,
            },
        },
        "Retried": {
            "type": "object",
            "required": ["backfillId", "retryOf", "links"],
            "properties": {
                "backfillId": _BACKFILL_ID,
                "retryOf": _BACKFILL_ID,
                "links": {
                    "type": "object",
                    "required": ["self"],
                    "properties": {"self": _LINK, "retryOf": _LINK},
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "dagster"],
            "properties": {
                "status": {"const": "ok"},
                "dagster": {"type": "object", "required": ["version"], "properties": {"version": _STR}},
            },
        },
        "Error": error,
    }


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, headers: dict | None = None) -> dict:
    return _json(_ref("Error"), description, headers)


_LOCATION_HEADERS = {
    "Location": {"description": "The new backfill: /api/backfills/{id}.", "required": True, "schema": _LINK},
    "X-Backfill-ID": {"description": "The new backfill's id.", "required": True, "schema": _BACKFILL_ID},
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}}
}
_REQUESTED_BY = {
    "name": "X-Requested-By",
    "in": "header",
    "required": False,
    "description": "Who asks (recorded as the requester; default `api`; at most 64 characters "
    "of letters, digits, space and ._@+-).",
    "schema": {"type": "string"},
}
_ID_PARAM = {
    "name": "backfillId",
    "in": "path",
    "required": True,
    "description": "A backfill id.",
    "schema": {"type": "string"},
}


def _dagster_errors() -> dict:
    return {
        "502": _error("Dagster answered with an error (`dagster-error`)."),
        "503": _error("Dagster is unreachable (`dagster-unreachable`).", _RETRY_AFTER),
    }


def _paths() -> dict:
    not_found = _error("No backfill with that id (`not-found`); ids are letters and digits.")
    return {
        "/api/health": {
            "get": {
                "operationId": "health",
                "summary": "Is Dagster reachable?",
                "responses": {
                    "200": _json(_ref("Health"), "Dagster answers; its version."),
                    **_dagster_errors(),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["openapi", "paths"]}, "The OpenAPI document."
                    )
                },
            }
        },
        "/api/backfills": {
            "get": {
                "operationId": "listBackfills",
                "summary": "The latest backfills, newest first.",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    }
                ],
                "responses": {
                    "200": _json(_ref("BackfillList"), "The backfills."),
                    "400": _error("A bad `limit` (`invalid-request`)."),
                    **_dagster_errors(),
                },
            },
            "post": {
                "operationId": "createBackfill",
                "summary": "Plan and launch a backfill (or only plan it: dryRun).",
                "parameters": [_REQUESTED_BY],
                "requestBody": {
                    "required": True,
                    "description": "At most 256 KB of JSON.",
                    "content": {"application/json": {"schema": _ref("BackfillRequest")}},
                },
                "responses": {
                    "200": _json(
                        {"oneOf": [_ref("DryRun"), _ref("NothingToRun")]},
                        "A dry run's plan, or a plan with nothing to run (backfillId null).",
                    ),
                    "202": _json(
                        _ref("Launched"), "Launched; follow Location for its status.", _LOCATION_HEADERS
                    ),
                    "400": _error(
                        "Not a JSON object (`invalid-json`) or an invalid request "
                        "(`invalid-request`, with `fields`); nothing is launched."
                    ),
                    "409": _error(
                        "The planHash sent no longer matches (`plan-changed`, with the "
                        "current `plan`); nothing is launched."
                    ),
                    "413": _error("The body is larger than 256 KB (`too-large`)."),
                    **_dagster_errors(),
                },
            },
        },
        "/api/backfills/{backfillId}": {
            "parameters": [_ID_PARAM],
            "get": {
                "operationId": "getBackfill",
                "summary": "A backfill's state, counts, progress and cost.",
                "responses": {
                    "200": _json(_ref("BackfillStatus"), "The backfill."),
                    "404": not_found,
                    **_dagster_errors(),
                },
            },
            "delete": {
                "operationId": "cancelBackfill",
                "summary": "Cancel a running backfill.",
                "responses": {
                    "200": _json(_ref("BackfillStatus"), "Cancel requested; the status after it."),
                    "404": not_found,
                    "409": _error("The backfill has ended (`not-cancellable`)."),
                    **_dagster_errors(),
                },
            },
        },
        "/api/backfills/{backfillId}/retry": {
            "parameters": [_ID_PARAM],
            "post": {
                "operationId": "retryBackfill",
                "summary": "Re-execute only what failed, as a new backfill.",
                "parameters": [_REQUESTED_BY],
                "responses": {
                    "202": _json(_ref("Retried"), "The new backfill; follow Location.", _LOCATION_HEADERS),
                    "404": not_found,
                    "409": _error(
                        "Nothing failed (`nothing-to-retry`) or the backfill is still "
                        "running (`still-running`)."
                    ),
                    **_dagster_errors(),
                },
            },
        },
    }


def _with_default_errors(paths: dict) -> dict:
    for item in paths.values():
        for method, operation in item.items():
            if method != "parameters":
                operation["responses"]["default"] = _error(
                    "Any other error: `not-found` (no such route), `method-not-allowed`, `internal-error`."
                )
    return paths


@lru_cache(maxsize=1)
def _document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "backfill_pipeline API",
            "version": VERSION,
            "description": "Launch, watch, cancel and retry backfills of Toastmasters district "
            "statistics; Dagster runs them. Every error body is "
            '`{"error": {"code", "message"}}`.',
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": _with_default_errors(_paths()),
        "components": {"schemas": _schemas()},
    }


def document() -> dict:
    """The OpenAPI document (a fresh copy the caller may change)."""
    return copy.deepcopy(_document())
