"""The OpenAPI 3.1 document of the REST API: schemas generated from the models, operations listed."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..dashboard.calendar import EARLIEST_AS_OF
from ..planning.request import MAX_DAYS, MIN_RATE, BackfillRequest, HealRequest
from .idempotency import MAX_KEY
from .inputs import IDEMPOTENCY_HEADER
from .models import (
    BACKFILL_ID_PATTERN,
    DEFAULT_COVERAGE_DAYS,
    DEFAULT_LIST,
    GAP_STATES,
    LINK_PATTERN,
    MAX_BODY,
    MAX_COVERAGE_DAYS,
    MAX_LIST,
    MAX_REQUESTER,
    BackfillList,
    BackfillStatus,
    Coverage,
    CoverageMatrix,
    CoverageQuery,
    DryRun,
    ErrorBody,
    Health,
    LaunchedBody,
    MatrixQuery,
    NothingToRun,
    Retried,
    SessionState,
    SignIn,
)

VERSION = "1.0.0"
REF = "#/components/schemas/"
RESPONSES: list[type[BaseModel]] = [
    BackfillStatus,
    BackfillList,
    LaunchedBody,
    DryRun,
    NothingToRun,
    Retried,
    Health,
    Coverage,
    CoverageMatrix,
    SessionState,
    ErrorBody,
]

# What normalise_district_id accepts: `42`, `09`, `F`, ` 42 `, `District 42`.
DISTRICT_ID_PATTERN = r"^\s*(?:[Dd][Ii][Ss][Tt][Rr][Ii][Cc][Tt]\s+)?(?:[0-9]{1,4}|[A-Za-z])\s*$"

_DISTRICT_IDS = "District ids (digits like 42 or 09, or one letter; `District 42` is accepted)."

# The request models live with the planner; their fields are described here, for callers.
_DESCRIPTIONS = {
    "startDate": f"First as-of date, YYYY-MM-DD; not before {EARLIEST_AS_OF} and not after yesterday.",
    "endDate": f"Last as-of date, YYYY-MM-DD (default startDate); not before startDate, at most {MAX_DAYS} "
    "days in all.",
    "targetDistricts": f"{_DISTRICT_IDS} Absent: every configured district.",
    "collectionType": "auto: per-district when districts are named, else system-wide.",
    "skipExisting": "Leave partitions already materialized alone (false collects them again); a "
    '"not published" answer that is not final yet is never left alone.',
    "retryFailures": "Include partitions that failed before.",
    "recheckUnavailable": 'Ask the dashboard again where "not published" is final too: skipExisting '
    "leaves no unavailable cell alone, and the cost counts their requests.",
    "concurrency": "Runs of this backfill at once.",
    "rate": f"Dashboard requests per second, shared by the backfill's runs: at least {MIN_RATE:g}, at "
    "most the deployment's budget (BACKFILL_RATE, the default).",
    "dryRun": "Plan and cost only; launch nothing.",
    "planHash": "The planHash of a dry run: launch only if the plan is still the same (else 409).",
}
_HEAL_DESCRIPTIONS = {
    **_DESCRIPTIONS,
    "endDate": f"Last as-of date, YYYY-MM-DD; not before startDate, at most {MAX_DAYS} days in all.",
    "targetDistricts": f"{_DISTRICT_IDS} Absent: every configured district (none configured: every "
    "district the collected summaries list).",
    "includeMissing": "Also collect the cells never collected (false: only failed, pending and "
    "summary cells whose detail failed).",
    "rate": f"Dashboard requests per second, shared by the heal's runs: at least {MIN_RATE:g}, at "
    "most the deployment's budget (BACKFILL_RATE, the default).",
    "concurrency": "Runs of the heal at once.",
}
_QUERY_DESCRIPTIONS = {
    "start": f"First as-of date, YYYY-MM-DD (default: {DEFAULT_COVERAGE_DAYS} days before end); not "
    f"before {EARLIEST_AS_OF}, at most {MAX_COVERAGE_DAYS} days before end.",
    "end": "Last as-of date, YYYY-MM-DD (default: yesterday, UTC); not after yesterday.",
    "districts": f"{_DISTRICT_IDS} Comma-separated or repeated. Absent: the configured districts, "
    "none configured: every district the collected summaries list.",
    "inProgress": "Ask Dagster which cells its runs are collecting now (`true`, the default) or "
    "answer from the store alone, at once (`false`: `inProgressKnown` is false).",
    "state": "List only the cells in these states (comma-separated or repeated). Absent: the cells "
    f"that are not complete ({', '.join(GAP_STATES)}, and summary cells whose detail failed).",
}


def _schemas() -> dict[str, Any]:
    """Every component schema: the requests (validation) and the answers (serialization)."""
    _, top = models_json_schema(
        [
            (BackfillRequest, "validation"),
            (HealRequest, "validation"),
            (SignIn, "validation"),
            *((m, "serialization") for m in RESPONSES),
        ],
        by_alias=True,
        ref_template=REF + "{model}",
    )
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
    for model, descriptions in ((BackfillRequest, _DESCRIPTIONS), (HealRequest, _HEAL_DESCRIPTIONS)):
        request = schemas[model.__name__]
        for name, prop in request["properties"].items():
            prop["description"] = descriptions[name]
        for option in request["properties"]["targetDistricts"]["anyOf"]:
            if option.get("type") == "array":
                option["items"]["pattern"] = DISTRICT_ID_PATTERN
    return schemas


def _query_parameters(model: type[BaseModel]) -> list[dict]:
    """The query parameters of a query model: each property's non-null schema; lists are
    comma-separated (`style: form, explode: false`), which the API also takes repeated; an empty
    value is as if not given (inputs.coverage_query)."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF + "{model}")
    out = []
    for name, prop in schema["properties"].items():
        options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
        (value,) = options
        value = {k: v for k, v in value.items() if k != "title"}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "description": _QUERY_DESCRIPTIONS[name] + " An empty value counts as not given.",
            # `?start=&end=` (an HTML form's empty fields) is read as absent, not refused.
            "allowEmptyValue": True,
            "schema": value,
        }
        if value.get("type") == "array":
            parameter.update(style="form", explode=False)
            if name == "districts":
                value["items"]["pattern"] = DISTRICT_ID_PATTERN
        out.append(parameter)
    return out


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF + model.__name__}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, headers: dict | None = None) -> dict:
    return _json(_ref(ErrorBody), description, headers)


_CREATED = {
    "Location": {
        "description": "The new backfill: /api/backfills/{id}.",
        "required": True,
        "schema": {"type": "string", "pattern": LINK_PATTERN},
    },
    "X-Backfill-ID": {
        "description": "The new backfill's id.",
        "required": True,
        "schema": {"type": "string", "pattern": BACKFILL_ID_PATTERN},
    },
}
_REQUESTED_BY = {
    "name": "X-Requested-By",
    "in": "header",
    "required": False,
    "description": f"Who asks (recorded as the requester; default `api`; at most {MAX_REQUESTER} "
    "characters of letters, digits, space and ._@+-).",
    "schema": {"type": "string"},
}
_ID_PARAM = {"name": "backfillId", "in": "path", "required": True, "description": "A backfill id."}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": DEFAULT_LIST},
}
_DAGSTER_ERRORS = {
    "502": _error("Dagster answered with an error (`dagster-error`)."),
    "503": _error(
        "Dagster is unreachable (`dagster-unreachable`).",
        {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string"},
            }
        },
    ),
}
_NOT_FOUND = _error("No backfill with that id (`not-found`); ids are letters and digits.")
_DEFAULT = _error(
    "Any other error: `not-found` (no such route), `method-not-allowed`, `bad-host` (400: no "
    "usable Host header), `misdirected-request` (421: a Host name not on the allow-list: the "
    "loopback names, the bound address and BACKFILL_ALLOWED_HOSTS), `internal-error`."
)

# Who may call: `bearerAuth` is BACKFILL_API_TOKEN, or the token generated into the data root
# (`backfill-pipeline api-token` prints it).
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API's token: BACKFILL_API_TOKEN, or on a loopback API without it the "
        "token generated on first start into <data root>/state/api-token (`backfill-pipeline "
        "api-token` prints it). Every call that changes something needs it; reads need it when "
        "the API listens on anything but loopback.",
    }
}
_WRITE: list[dict] = [{"bearerAuth": []}]
# Reads: the token off loopback, nothing on loopback.
_READ: list[dict] = [{"bearerAuth": []}, {}]
_OPEN: list[dict] = []
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": '`Bearer realm="backfill_pipeline"`, with `error="invalid_token"` when a '
        "token was sent.",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer realm="},
    }
}
_UNAUTHORIZED = _error(
    "No bearer token (`unauthorized`) or not this API's (`invalid-token`); nothing is done.", _CHALLENGE
)
_READ_UNAUTHORIZED = _error(
    "Off loopback only: no bearer token (`unauthorized`) or not this API's (`invalid-token`).", _CHALLENGE
)
_UNSUPPORTED = _error(
    "A body not declared `application/json` (optionally with `charset=utf-8`): "
    "`unsupported-media-type`; nothing is done."
)
_REUSED = _error(
    f"The {IDEMPOTENCY_HEADER} was used before for another request (`idempotency-key-reused`); "
    "nothing is launched."
)
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}
# The launch routes' 503: Dagster down, or planning full (app.Planning).
_PLANNING_UNAVAILABLE = _error(
    "Dagster is unreachable (`dagster-unreachable`), or the API is already planning as many "
    "requests as it takes at once (`busy`); nothing is launched.",
    _RETRY_AFTER,
)
_PENDING = (
    f"; or another request with the same {IDEMPOTENCY_HEADER} is launching, or a launch with it "
    "has no known outcome yet (`launch-pending`, with Retry-After)"
)
_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": f"At most one launch per key (1 to {MAX_KEY} printable ASCII characters): the "
    "same key with the same request answers the original backfill again (marked "
    "`Idempotent-Replayed: true`), with another request 422. A dry run ignores it.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY, "pattern": "^[ -~]+$"},
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": f"`true` when this is the earlier answer to the same {IDEMPOTENCY_HEADER}.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _operation(operation_id: str, summary: str, responses: dict, *, security: list, **more: Any) -> dict:
    if security is _WRITE:
        responses = {**responses, "401": _UNAUTHORIZED}
    elif security is _READ:
        responses = {**responses, "401": _READ_UNAUTHORIZED}
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": security,
        **more,
        "responses": {**responses, "default": _DEFAULT},
    }


def _body(model) -> dict:
    return {
        "required": True,
        "description": f"At most {MAX_BODY // 1024} KB of JSON.",
        "content": {"application/json": {"schema": _ref(model)}},
    }


def _launch_answers(nothing: str, launched: str) -> dict:
    """The answers of a route that plans and launches one backfill (launch, heal)."""
    return {
        "200": _json({"oneOf": [_ref(DryRun), _ref(NothingToRun)]}, nothing, _REPLAYED),
        "202": _json(_ref(LaunchedBody), launched, {**_CREATED, **_REPLAYED}),
        "400": _error(
            "Not a JSON object (`invalid-json`), an invalid request (`invalid-request`, with "
            f"`fields`: a district neither configured nor listed by a collected summary names the "
            f"nearest known ones) or {IDEMPOTENCY_HEADER}; nothing is launched."
        ),
        "409": _error(
            "The planHash sent no longer matches (`plan-changed`, with the current `plan`)"
            + _PENDING
            + "; nothing is launched.",
            _RETRY_AFTER,
        ),
        "413": _error(f"The body is larger than {MAX_BODY // 1024} KB (`too-large`)."),
        "415": _UNSUPPORTED,
        "422": _REUSED,
    }


def _paths() -> dict:
    one = {"parameters": [{**_ID_PARAM, "schema": {"type": "string"}}]}
    request_body = _body(BackfillRequest)
    created = _launch_answers(
        "A dry run's plan, or a plan with nothing to run (backfillId null).",
        "Launched; follow Location for its status.",
    )
    heal_body = _body(HealRequest)
    healed = _launch_answers(
        "A dry run's plan, or nothing to heal (backfillId null, with the plan).",
        "The heal's backfill; follow Location for its status.",
    )
    openapi_json = _json({"type": "object", "required": ["openapi", "paths"]}, "The OpenAPI document.")
    return {
        "/api/health": {
            "get": _operation(
                "health",
                "Is Dagster reachable?",
                {
                    "200": _json(
                        _ref(Health),
                        "Dagster answers; its version (null off loopback without the token).",
                    ),
                    **_DAGSTER_ERRORS,
                },
                security=_OPEN,
            )
        },
        "/api/openapi.json": {
            "get": _operation("openapi", "This document.", {"200": openapi_json}, security=_OPEN)
        },
        "/api/backfills": {
            "get": _operation(
                "listBackfills",
                "The latest backfills, newest first.",
                {
                    "200": _json(_ref(BackfillList), "The backfills."),
                    "400": _error("A bad `limit` (`invalid-request`)."),
                    **_DAGSTER_ERRORS,
                },
                parameters=[_LIMIT],
                security=_READ,
            ),
            "post": _operation(
                "createBackfill",
                "Plan and launch a backfill (or only plan it: dryRun).",
                {**created, **_DAGSTER_ERRORS, "503": _PLANNING_UNAVAILABLE},
                parameters=[_REQUESTED_BY, _IDEMPOTENCY_KEY],
                requestBody=request_body,
                security=_WRITE,
            ),
        },
        "/api/backfills/{backfillId}": {
            **one,
            "get": _operation(
                "getBackfill",
                "A backfill's state, counts, progress and cost.",
                {"200": _json(_ref(BackfillStatus), "The backfill."), "404": _NOT_FOUND, **_DAGSTER_ERRORS},
                security=_READ,
            ),
            "delete": _operation(
                "cancelBackfill",
                "Cancel a running backfill.",
                {
                    "200": _json(_ref(BackfillStatus), "Cancel requested; the status after it."),
                    "404": _NOT_FOUND,
                    "409": _error("The backfill has ended (`not-cancellable`)."),
                    "415": _UNSUPPORTED,
                    **_DAGSTER_ERRORS,
                },
                security=_WRITE,
            ),
        },
        "/api/backfills/{backfillId}/retry": {
            **one,
            "post": _operation(
                "retryBackfill",
                "Re-execute only what failed, as a new backfill.",
                {
                    "202": _json(
                        _ref(Retried), "The new backfill; follow Location.", {**_CREATED, **_REPLAYED}
                    ),
                    "400": _error(f"A bad {IDEMPOTENCY_HEADER} (`invalid-request`); nothing is launched."),
                    "404": _NOT_FOUND,
                    "409": _error(
                        "Nothing failed (`nothing-to-retry`) or the backfill is still running "
                        "(`still-running`)" + _PENDING + ".",
                        _RETRY_AFTER,
                    ),
                    "415": _UNSUPPORTED,
                    "422": _REUSED,
                    **_DAGSTER_ERRORS,
                },
                parameters=[_REQUESTED_BY, _IDEMPOTENCY_KEY],
                security=_WRITE,
            ),
        },
        "/api/coverage": {
            "get": _operation(
                "getCoverage",
                "The store's cells of a range of dates x districts: totals per state and the gaps, "
                "with their last error and attempts (read from the store; no Dagster).",
                {
                    "200": _json(_ref(Coverage), "Totals per state and the cells asked for."),
                    "400": _error(
                        "A bad parameter (`invalid-request`, with `fields` naming it): a date not "
                        "written YYYY-MM-DD or out of range, an invalid district id, an unknown state "
                        "or parameter, a reversed or too long range."
                    ),
                },
                parameters=_query_parameters(CoverageQuery),
                security=_READ,
            )
        },
        "/api/coverage/matrix": {
            "get": _operation(
                "getCoverageMatrix",
                "Every cell of a range as a dates x districts matrix of one-letter states, with "
                "totals per district and per date and the causes of incomplete cells (the "
                "console's heatmap): read from the store, with the cells Dagster's runs are "
                "collecting now laid over them unless `inProgress=false`.",
                {
                    "200": _json(_ref(CoverageMatrix), "The matrix."),
                    "400": _error("A bad parameter (`invalid-request`, with `fields` naming it)."),
                },
                parameters=_query_parameters(MatrixQuery),
                security=_READ,
            )
        },
        "/api/session": {
            "get": _operation(
                "getSession",
                "Whether the caller is signed in: the console's session cookie or a bearer token.",
                {"200": _json(_ref(SessionState), "Signed in or not.")},
                security=_OPEN,
            ),
            "post": _operation(
                "signIn",
                "Sign a browser in: the API's token, answered by an HttpOnly, SameSite=Strict "
                "session cookie that authenticates like the token (the console).",
                {
                    "200": _json(
                        _ref(SessionState),
                        "Signed in: the session cookie (an HMAC of the token) in `Set-Cookie`.",
                        {
                            "Set-Cookie": {
                                "description": "The session cookie: HttpOnly, SameSite=Strict.",
                                "required": True,
                                "schema": {"type": "string"},
                            }
                        },
                    ),
                    "400": _error('Not `{"token": "..."}` (`invalid-request` or `invalid-json`).'),
                    "401": _error("Not this API's token (`invalid-token`); no cookie."),
                    "403": _error("Sent from a page of another origin (`cross-origin`)."),
                    "413": _error("A body larger than the API takes (`too-large`)."),
                    "415": _UNSUPPORTED,
                },
                requestBody=_body(SignIn),
                security=_OPEN,
            ),
            "delete": _operation(
                "signOut",
                "Sign a browser out: the session cookie cleared.",
                {"200": _json(_ref(SessionState), "Signed out: the session cookie cleared.")},
                security=_OPEN,
            ),
        },
        "/api/heal": {
            "post": _operation(
                "heal",
                "Collect again exactly the cells of a range that may give more than they hold "
                "(failed for transient reasons, not published yet, never collected), as one "
                "backfill; or only plan it (dryRun).",
                {**healed, **_DAGSTER_ERRORS, "503": _PLANNING_UNAVAILABLE},
                parameters=[_REQUESTED_BY, _IDEMPOTENCY_KEY],
                requestBody=heal_body,
                security=_WRITE,
            )
        },
    }


@lru_cache(maxsize=1)
def _document() -> str:
    return json.dumps(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "backfill_pipeline API",
                "version": VERSION,
                "description": "Launch, watch, cancel and retry backfills of Toastmasters district "
                "statistics; Dagster runs them. See the store's gaps and heal them. Every error body "
                'is `{"error": {"code", "message"}}`. Calls that change something need '
                "`Authorization: Bearer <token>` (reads too off loopback); bodies are "
                "`application/json`.",
            },
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "paths": _paths(),
            "components": {"schemas": _schemas(), "securitySchemes": SECURITY_SCHEMES},
        }
    )


def document() -> dict:
    """The OpenAPI document (a fresh copy the caller may change)."""
    return json.loads(_document())
