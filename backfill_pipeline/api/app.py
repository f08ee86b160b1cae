"""The REST API over BackfillService (Starlette): launch, list, watch, cancel and retry backfills."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..planning.planner import PlanError
from ..planning.request import BackfillRequest, field_errors
from . import openapi
from .graphql import BackfillNotFound, DagsterGraphQLError, DagsterUnreachable
from .models import (
    DEFAULT_LIST,
    MAX_BODY,
    MAX_LIST,
    MAX_REQUESTER,
    BackfillList,
    DagsterVersion,
    DryRun,
    ErrorBody,
    ErrorDetail,
    FieldError,
    Health,
    LaunchedBody,
    Links,
    NothingToRun,
    PlanBody,
    Retried,
    RetryLinks,
    backfill_link,
)
from .service import BackfillService, NotCancellable, NothingToRetry, PlanConflict, StillRunning

# A too-large body is read and thrown away up to this much so the client sees the 413: closing
# a connection with unread data makes the kernel send a reset that can swallow the answer.
MAX_DRAIN = 16 * MAX_BODY
RETRY_AFTER_SECONDS = 30
NOTHING_TO_RUN = (
    "nothing to run: every partition asked for is already materialized "
    "(send skipExisting: false to collect them again)"
)
_REQUESTER_DROP = re.compile(r"[^A-Za-z0-9 ._@+-]")

ServiceFactory = Callable[[], BackfillService]


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


# -- exception handlers: every failure becomes {"error": {code, message}} -----------------------


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
}


def _refused(request: Request, exc: Exception) -> Response:
    status, code = next(refusal for cls, refusal in _REFUSALS.items() if isinstance(exc, cls))
    return error_response(status, code, str(exc))


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
    DagsterUnreachable: _unreachable,
    DagsterGraphQLError: _dagster_error,
    HTTPException: _http,
    Exception: _internal,
}


# -- request helpers -----------------------------------------------------------------------------


async def _service(request: Request) -> BackfillService:
    state = request.app.state
    if getattr(state, "service", None) is None:
        # Only reached when the server runs without lifespan events; build it once.
        async with state.service_lock:
            if getattr(state, "service", None) is None:
                state.service = await run_in_threadpool(state.service_factory)
    return state.service


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


async def _json_object(request: Request) -> dict:
    """The body as a JSON object; 413 past MAX_BODY (before parsing), 400 when not a JSON object."""
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > MAX_BODY
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


def _backfill_request(body: dict) -> BackfillRequest:
    """The body as a BackfillRequest; ApiError 400 naming every field at fault."""
    try:
        return BackfillRequest.model_validate(body)
    except ValidationError as exc:
        fields = [FieldError.model_validate(f) for f in field_errors(exc)]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    raise ApiError(400, "invalid-request", f"invalid backfill request: {summary}{more}", fields=fields)


def _requester(request: Request) -> str:
    raw = request.headers.get("x-requested-by", "")
    cleaned = " ".join(_REQUESTER_DROP.sub("", raw).split())[:MAX_REQUESTER].strip()
    return cleaned or "api"


def _created(body: LaunchedBody | Retried) -> JSONResponse:
    headers = {"Location": backfill_link(body.backfill_id), "X-Backfill-ID": body.backfill_id}
    return answer(body, 202, headers)


# -- endpoints -------------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """200 with Dagster's version; 503 when Dagster does not answer."""
    service = await _service(request)
    version = await run_in_threadpool(service.graphql.ping)
    return answer(Health(dagster=DagsterVersion(version=version)))


async def openapi_document(request: Request) -> Response:
    """The OpenAPI document of this API."""
    return JSONResponse(openapi.document())


async def list_backfills(request: Request) -> Response:
    """The latest backfills, newest first (`?limit=1..200`, default 50)."""
    raw = request.query_params.get("limit", str(DEFAULT_LIST))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        message = f"must be an integer from 1 to {MAX_LIST}"
        raise ApiError(
            400,
            "invalid-request",
            f"limit: {message}, got {raw!r}",
            fields=[FieldError(field="limit", message=message)],
        )
    service = await _service(request)
    backfills = await run_in_threadpool(service.list, int(raw))
    return answer(BackfillList(backfills=backfills))


async def create_backfill(request: Request) -> Response:
    """Validate, plan and launch (202); a dry run or a plan with nothing to run answers 200."""
    body = await _json_object(request)
    backfill_request = _backfill_request(body)
    service = await _service(request)
    launched = await run_in_threadpool(service.launch, backfill_request, requester=_requester(request))
    plan = PlanBody.from_plan(launched.plan)
    if backfill_request.dry_run:
        return answer(DryRun(request_id=launched.request_id, plan=plan))
    if launched.backfill_id is None:
        return answer(NothingToRun(request_id=launched.request_id, plan=plan, message=NOTHING_TO_RUN))
    links = Links(self_=backfill_link(launched.backfill_id))
    return _created(
        LaunchedBody(backfill_id=launched.backfill_id, request_id=launched.request_id, plan=plan, links=links)
    )


async def get_backfill(request: Request) -> Response:
    """State, counts, progress, errors and performance of one backfill."""
    service = await _service(request)
    return answer(await run_in_threadpool(service.status, request.path_params["backfillId"]))


async def cancel_backfill(request: Request) -> Response:
    """Cancel a running backfill; answers its status afterwards."""
    service = await _service(request)
    return answer(await run_in_threadpool(service.cancel, request.path_params["backfillId"]))


async def retry_backfill(request: Request) -> Response:
    """Re-execute what failed as a new backfill (202 with its Location)."""
    backfill_id = request.path_params["backfillId"]
    service = await _service(request)
    new_id = await run_in_threadpool(service.retry, backfill_id, requester=_requester(request))
    links = RetryLinks(self_=backfill_link(new_id), retry_of=backfill_link(backfill_id))
    return _created(Retried(backfill_id=new_id, retry_of=backfill_id, links=links))


Endpoint = Callable[[Request], Awaitable[Response]]


def _route(path: str, **by_method: Endpoint) -> Route:
    """One route per path, so a 405 lists every method the path allows in `Allow`."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return Route(path, endpoint, methods=list(by_method), name=path)


ROUTES = [
    _route("/api/health", GET=health),
    _route("/api/openapi.json", GET=openapi_document),
    _route("/api/backfills", GET=list_backfills, POST=create_backfill),
    _route("/api/backfills/{backfillId}", GET=get_backfill, DELETE=cancel_backfill),
    _route("/api/backfills/{backfillId}/retry", POST=retry_backfill),
]


def create_app(service_factory: ServiceFactory | None = None) -> Starlette:
    """The API app; `service_factory` (default: BackfillService() from the environment) runs at startup."""
    factory = service_factory or BackfillService

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.service = await run_in_threadpool(factory)
        yield

    app = Starlette(routes=ROUTES, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.service_factory = factory
    app.state.service = None
    app.state.service_lock = asyncio.Lock()
    return app
