"""Reading a request: its JSON body (bounded), the backfill or heal request in it, the coverage
query, who asks, its Idempotency-Key."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ..planning.request import BackfillRequest, HealRequest, field_errors
from .errors import ApiError
from .idempotency import checked_key
from .models import MAX_BODY, MAX_REQUESTER, CoverageQuery, FieldError, MatrixQuery, SignIn

Model = TypeVar("Model", bound=BaseModel)
Ranged = TypeVar("Ranged", BackfillRequest, HealRequest)
# The query parameters that take several values: comma-separated, repeated, or both.
LIST_PARAMETERS = ("districts", "state")

# A too-large body is read and thrown away up to this much so the client sees the 413: closing
# a connection with unread data makes the kernel send a reset that can swallow the answer.
MAX_DRAIN = 16 * MAX_BODY
_REQUESTER_DROP = re.compile(r"[^A-Za-z0-9 ._@+-]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


async def json_object(request: Request) -> dict:
    """The body as a JSON object; 413 past MAX_BODY (before parsing), 400 when not a JSON object."""
    declared = request.headers.get("content-length")
    too_large = (
        declared is not None and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY
    )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            too_large = True
        if too_large:
            if size > MAX_DRAIN:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise ApiError(
            413,
            "too-large",
            f"the request body is larger than {MAX_BODY // 1024} KB",
            headers={"Connection": "close"},
        )
    try:
        body = json.loads(b"".join(chunks), parse_constant=_reject_constant)
    except ValueError as exc:
        raise ApiError(400, "invalid-json", f"the request body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid-json", "the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(
            400, "invalid-json", f"the request body must be a JSON object, not {type(body).__name__}"
        )
    return body


def _validated(model: type[Model], data: dict, what: str) -> Model:
    """`data` as `model`; ApiError 400 naming every field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [FieldError.model_validate(f) for f in field_errors(exc)]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    raise ApiError(400, "invalid-request", f"invalid {what}: {summary}{more}", fields=fields)


def sign_in(body: dict) -> SignIn:
    """The console's sign-in body; ApiError 400 naming the field at fault."""
    return _validated(SignIn, body, "sign-in")


def backfill_request(body: dict) -> BackfillRequest:
    """The body as a BackfillRequest; ApiError 400 naming every field at fault."""
    return _validated(BackfillRequest, body, "backfill request")


def heal_request(body: dict) -> HealRequest:
    """The body as a HealRequest; ApiError 400 naming every field at fault."""
    return _validated(HealRequest, body, "heal request")


def coverage_query(request: Request) -> CoverageQuery:
    """The query string as a CoverageQuery: lists comma-separated or repeated, empty values as not
    given; ApiError 400 naming every parameter at fault (an unknown one too)."""
    return _query(request, CoverageQuery)


def matrix_query(request: Request) -> MatrixQuery:
    """The matrix's query string, read as `coverage_query` reads its own."""
    return _query(request, MatrixQuery)


def _query(request: Request, model: type[Model]) -> Model:
    lists: dict[str, list[str]] = {}
    single: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name in LIST_PARAMETERS:
            lists.setdefault(name, []).extend(v.strip() for v in value.split(",") if v.strip())
            continue
        if name in seen:
            message = "given more than once"
            raise ApiError(
                400, "invalid-request", f"{name}: {message}", fields=[FieldError(field=name, message=message)]
            )
        seen.add(name)
        if value.strip():
            single[name] = value
    data: dict[str, object] = {**single, **{k: v for k, v in lists.items() if v}}
    return _validated(model, data, "coverage query")


def requester(request: Request) -> str:
    """`X-Requested-By`, reduced to letters, digits, space and ._@+- (at most 64); `api` by default."""
    raw = request.headers.get("x-requested-by", "")
    cleaned = " ".join(_REQUESTER_DROP.sub("", raw).split())[:MAX_REQUESTER].strip()
    return cleaned or "api"


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header (None when absent); ApiError 400 naming it when it is given
    more than once, empty, longer than 200 characters or not printable ASCII."""
    values = request.headers.getlist(IDEMPOTENCY_HEADER.lower())
    if not values:
        return None
    try:
        if len(values) > 1:
            raise ValueError("given more than once")
        return checked_key(values[0])
    except ValueError as exc:
        message = str(exc)
    raise ApiError(
        400,
        "invalid-request",
        f"{IDEMPOTENCY_HEADER}: {message}",
        fields=[FieldError(field=IDEMPOTENCY_HEADER, message=message)],
    )
