"""Every failure of the API as `{"error": {"code", "message", ...}}`: ApiError and the exception handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..planning.planner import PlanError
from .graphql import BackfillNotFound, DagsterGraphQLError, DagsterUnreachable
from .idempotency import IdempotencyConflict, LaunchPending
from .launching import NothingToRetry, PlanConflict, StillRunning
from .models import ErrorBody, ErrorDetail, FieldError, PlanBody
from .status import NotCancellable

RETRY_AFTER_SECONDS = 30
# When to send again a request whose key another request holds, or whose launch is unresolved.
PENDING_RETRY_AFTER_SECONDS = 10


class ApiError(Exception):
    """An answer other than success: HTTP status, machine code, human message, the fields at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        fields: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.fields = fields


def answer(body: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A model as the JSON answer (camelCase; an error body without its absent fields)."""
    content = body.model_dump(mode="json", by_alias=True, exclude_none=isinstance(body, ErrorBody))
    return JSONResponse(content, status_code=status, headers=headers)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    fields: list[FieldError] | None = None,
    plan: PlanBody | None = None,
) -> JSONResponse:
    """`{"error": {"code", "message", ...}}` with the given status."""
    detail = ErrorDetail(code=code, message=message, fields=fields, plan=plan)
    return answer(ErrorBody(error=detail), status, headers)


def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, fields=exc.fields)


def _plan_error(request: Request, exc: PlanError) -> Response:
    return error_response(
        400, "invalid-request", str(exc), fields=[FieldError(field=exc.field, message=exc.message)]
    )


def _plan_conflict(request: Request, exc: PlanConflict) -> Response:
    return error_response(409, "plan-changed", str(exc), plan=PlanBody.from_plan(exc.plan))


# The service's refusals: (status, code), the message is the exception's.
_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    BackfillNotFound: (404, "not-found"),
    NotCancellable: (409, "not-cancellable"),
    StillRunning: (409, "still-running"),
    NothingToRetry: (409, "nothing-to-retry"),
    IdempotencyConflict: (422, "idempotency-key-reused"),
}


def _refused(request: Request, exc: Exception) -> Response:
    status, code = next(refusal for cls, refusal in _REFUSALS.items() if isinstance(exc, cls))
    return error_response(status, code, str(exc))


def _pending(request: Request, exc: LaunchPending) -> Response:
    return error_response(
        409, "launch-pending", str(exc), headers={"Retry-After": str(PENDING_RETRY_AFTER_SECONDS)}
    )


def _unreachable(request: Request, exc: DagsterUnreachable) -> Response:
    return error_response(
        503, "dagster-unreachable", str(exc), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def _dagster_error(request: Request, exc: DagsterGraphQLError) -> Response:
    return error_response(502, "dagster-error", f"Dagster answered with an error: {exc}")


def _http(request: Request, exc: HTTPException) -> Response:
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
    message = {
        404: f"no such resource: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _internal(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this answer, so the server logs its traceback.
    return error_response(500, "internal-error", f"internal error: {type(exc).__name__}")


# Starlette picks the handler of the nearest class in the exception's MRO, so BackfillNotFound
# (a DagsterGraphQLError) answers 404 and not 502.
EXCEPTION_HANDLERS: Mapping[Any, Callable[..., Response]] = {
    ApiError: _api_error,
    PlanError: _plan_error,
    PlanConflict: _plan_conflict,
    **dict.fromkeys(_REFUSALS, _refused),
    LaunchPending: _pending,
    DagsterUnreachable: _unreachable,
    DagsterGraphQLError: _dagster_error,
    HTTPException: _http,
    Exception: _internal,
}
