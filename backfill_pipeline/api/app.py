"""The REST API over BackfillService (Starlette): launch, list, watch, cancel and retry backfills;
the store's coverage (its gaps) and healing them. Every request passes the Guard first (Host,
bearer token, JSON bodies: security.py); launches honour an Idempotency-Key (idempotency.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import console, inputs, openapi
from .appstate import service_of as _service
from .errors import EXCEPTION_HANDLERS, ApiError, answer
from .launching import Launched
from .models import (
    DEFAULT_LIST,
    MAX_LIST,
    BackfillList,
    Coverage,
    DagsterVersion,
    DryRun,
    FieldError,
    Health,
    LaunchedBody,
    Links,
    NothingToRun,
    Retried,
    RetryLinks,
    backfill_link,
)
from .security import Guard, Security
from .service import BackfillService

NOTHING_TO_RUN = (
    "nothing to run: every partition asked for is already materialized "
    "(send skipExisting: false to collect them again)"
)
NOTHING_TO_HEAL = (
    "nothing to heal: every cell of the range is complete, final or failed for good "
    "(GET /api/coverage lists them; a backfill with skipExisting: false collects them again)"
)

ServiceFactory = Callable[[], BackfillService]

# Plans computed at once, plans waiting for a slot (POST /api/backfills and /api/heal, dry runs
# included), and for how long one waits. A year of 200 districts is seconds of CPU under the GIL:
# more at once would not finish sooner, would each hold a thread of the pool every other request
# needs (the health check's ping waited behind 40 of them, for minutes) and their memory. Waiting
# costs only a coroutine and the parsed body, and is bounded in time, so a burst of small requests
# (a script, clients sending again after a lost answer) gets through. Beyond these, or after
# waiting that long, 503 `busy` with Retry-After.
PLAN_SLOTS = 2
PLAN_WAITING = 8
PLAN_WAIT_SECONDS = 10.0
BUSY_RETRY_AFTER_SECONDS = 10


class Planning:
    """Admission to planning: at most `slots` plans computed at once and `waiting` more queued
    for a slot, each for at most `wait` seconds; any other request is refused at once (ApiError
    503 `busy`, Retry-After). Used from the event loop only, so its count needs no lock."""

    def __init__(
        self, slots: int = PLAN_SLOTS, waiting: int = PLAN_WAITING, wait: float = PLAN_WAIT_SECONDS
    ) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.capacity = slots + waiting
        self.wait = wait
        self.admitted = 0

    def busy(self) -> ApiError:
        return ApiError(
            503,
            "busy",
            f"the API is already planning as many requests as it takes at once ({self.capacity}); "
            f"send this one again in {BUSY_RETRY_AFTER_SECONDS} s",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
        )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot while planning (waiting for one first); ApiError 503 when none comes."""
        if self.admitted >= self.capacity:
            raise self.busy()
        self.admitted += 1
        try:
            try:
                async with asyncio.timeout(self.wait):
                    await self.slots.acquire()
            except TimeoutError:
                raise self.busy() from None
            try:
                yield
            finally:
                self.slots.release()
        finally:
            self.admitted -= 1


REPLAYED = {"Idempotent-Replayed": "true"}


def _created(body: LaunchedBody | Retried, *, replayed: bool = False) -> JSONResponse:
    headers = {"Location": backfill_link(body.backfill_id), "X-Backfill-ID": body.backfill_id}
    return answer(body, 202, {**headers, **(REPLAYED if replayed else {})})


# -- endpoints -------------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """200 with Dagster's version; 503 when Dagster does not answer. Off loopback, a caller
    without the token learns only that it answers (no version to look up weaknesses by)."""
    service = await _service(request)
    version = await run_in_threadpool(service.graphql.ping)
    security: Security = request.app.state.security
    shown = not security.reads_need_token or request.state.authenticated
    return answer(Health(dagster=DagsterVersion(version=version) if shown else None))


async def openapi_document(request: Request) -> Response:
    """The OpenAPI document of this API."""
    return JSONResponse(openapi.document())


async def list_backfills(request: Request) -> Response:
    """The latest backfills, newest first (`?limit=1..200`, default 50)."""
    raw = request.query_params.get("limit", str(DEFAULT_LIST))
    # ASCII digits only: `²` is a digit to str.isdigit but not to int().
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIST:
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


def _launched(launched: Launched, *, dry_run: bool, nothing: str) -> Response:
    """202 for a launched backfill; 200 with the plan for a dry run or a plan with nothing to run;
    the same again, marked Idempotent-Replayed, for a key that already has its answer."""
    plan = launched.plan
    if dry_run:
        return answer(DryRun(request_id=launched.request_id, plan=plan))
    if launched.backfill_id is None:
        body = NothingToRun(request_id=launched.request_id, plan=plan, message=nothing)
        return answer(body, headers=REPLAYED if launched.replayed else None)
    links = Links(self_=backfill_link(launched.backfill_id))
    return _created(
        LaunchedBody(
            backfill_id=launched.backfill_id, request_id=launched.request_id, plan=plan, links=links
        ),
        replayed=launched.replayed,
    )


async def create_backfill(request: Request) -> Response:
    """Validate, plan and launch (202); a dry run or a plan with nothing to run answers 200."""
    key = inputs.idempotency_key(request)
    body = await inputs.json_object(request)
    backfill_request = inputs.backfill_request(body)
    service = await _service(request)
    async with request.app.state.planning.slot():
        launched = await run_in_threadpool(
            service.launch, backfill_request, requester=inputs.requester(request), idempotency_key=key
        )
    return _launched(launched, dry_run=backfill_request.dry_run, nothing=NOTHING_TO_RUN)


async def coverage(request: Request) -> Response:
    """Every cell of a range of dates x districts from the store: totals per state, the cells
    that are not complete (or those of `state`), each with its last error and attempts."""
    query = inputs.coverage_query(request)
    service = await _service(request)

    def read() -> dict:
        return Coverage.from_gaps(service.gaps(query), query).to_json()

    return JSONResponse(await run_in_threadpool(read))


async def heal(request: Request) -> Response:
    """Plan and launch one backfill of exactly the healable cells (202); a dry run or nothing to
    heal answers 200."""
    key = inputs.idempotency_key(request)
    body = await inputs.json_object(request)
    heal_request = inputs.heal_request(body)
    service = await _service(request)
    async with request.app.state.planning.slot():
        launched = await run_in_threadpool(
            service.heal, heal_request, requester=inputs.requester(request), idempotency_key=key
        )
    return _launched(launched, dry_run=heal_request.dry_run, nothing=NOTHING_TO_HEAL)


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
    key = inputs.idempotency_key(request)
    service = await _service(request)
    retried = await run_in_threadpool(
        service.retry, backfill_id, requester=inputs.requester(request), idempotency_key=key
    )
    new_id = retried.backfill_id
    links = RetryLinks(self_=backfill_link(new_id), retry_of=backfill_link(backfill_id))
    return _created(Retried(backfill_id=new_id, retry_of=backfill_id, links=links), replayed=retried.replayed)


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
    _route("/api/coverage", GET=coverage),
    _route("/api/heal", POST=heal),
    _route("/api/session", GET=console.session_state, POST=console.sign_in, DELETE=console.sign_out),
    _route("/api/coverage/matrix", GET=console.matrix),
    _route("/", GET=console.page),
    _route("/console/{name}", GET=console.console_file),
]


def create_app(
    service_factory: ServiceFactory | None = None, *, security: Security | None = None
) -> Starlette:
    """The API app; `service_factory` (default: BackfillService() from the environment) runs at
    startup. `security` (default: a token nobody knows, loopback names only, so nothing can be
    changed) is what every request must pass."""
    factory = service_factory or BackfillService
    security = security or Security.locked()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.service = await run_in_threadpool(factory)
        yield

    app = Starlette(
        routes=ROUTES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        middleware=[Middleware(Guard, security=security)],
    )
    app.state.security = security
    app.state.service_factory = factory
    app.state.service = None
    app.state.service_lock = asyncio.Lock()
    app.state.planning = Planning()
    return app
