"""The operator's console, served by the API process: its page and files at `/` (shipped in the
package, nothing from a CDN), the sign-in that turns the API's token into a session cookie, and
the coverage matrix its heatmap paints. The page computes nothing the server has."""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from importlib import resources

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..names import DISTRICT_ASSET, SUMMARY_ASSET
from ..planning.matrix import coverage_matrix
from . import inputs
from .appstate import service_of
from .errors import ApiError, answer
from .graphql import DagsterGraphQLError, DagsterUnreachable
from .models import CoverageMatrix, SessionState
from .security import Security
from .session import clear_cookie_header, set_cookie_header

# The console's files, by the name the page asks for: nothing else under /console/ is served.
FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# The page runs only its own script and style: no inline code, nothing from another origin.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
NO_STORE = {"Cache-Control": "no-store"}


def _file(name: str) -> bytes:
    return resources.files("backfill_pipeline.console").joinpath(name).read_bytes()


async def page(request: Request) -> Response:
    """The console's page."""
    return Response(_file("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


async def console_file(request: Request) -> Response:
    """One of the console's files (FILES); 404 for any other name."""
    name = request.path_params["name"]
    if name not in FILES:
        raise ApiError(404, "not-found", f"the console has no file {name[:100]!r}")
    return Response(_file(name), media_type=FILES[name], headers=HEADERS)


async def sign_in(request: Request) -> Response:
    """`{"token": ...}`: 200 with the session cookie when it is the API's token, else 401."""
    given = inputs.sign_in(await inputs.json_object(request))
    security: Security = request.app.state.security
    if not hmac.compare_digest(given.token.encode("utf-8", "replace"), security.token.encode()):
        raise ApiError(401, "invalid-token", "that is not this API's token")
    cookie = set_cookie_header(security.token, secure=request.url.scheme == "https")
    return answer(SessionState(signed_in=True), headers={**NO_STORE, "Set-Cookie": cookie})


async def session_state(request: Request) -> Response:
    """Whether this browser is signed in (the session cookie, or a bearer token, of this API)."""
    return answer(SessionState(signed_in=bool(request.state.authenticated)), headers=NO_STORE)


async def sign_out(request: Request) -> Response:
    """200, the session cookie cleared."""
    cookie = clear_cookie_header(secure=request.url.scheme == "https")
    return answer(SessionState(signed_in=False), headers={**NO_STORE, "Set-Cookie": cookie})


def in_progress(service) -> set[str] | None:
    """The keys Dagster's runs are collecting now (the summary's as bare dates); None when Dagster
    does not answer: the matrix is the store's alone then, and says so."""
    try:
        keys = service.graphql.materializing_keys([DISTRICT_ASSET])
        keys |= service.graphql.materializing_keys([SUMMARY_ASSET])
    except (DagsterUnreachable, DagsterGraphQLError):
        return None
    return keys


async def matrix(request: Request) -> Response:
    """The coverage of a range as a dates x districts matrix of one-letter states (the heatmap),
    with totals per district and per date and the details of incomplete cells."""
    query = inputs.matrix_query(request)
    service = await service_of(request)

    def read() -> bytes:
        gaps = service.gaps(query)  # a bad range is answered before Dagster is asked
        running = in_progress(service) if query.in_progress else None
        dagster_url = service.graphql.url.removesuffix("/graphql")
        key = (gaps.version, None if running is None else frozenset(running), dagster_url)
        cached = _ANSWERS.get(key)
        if cached is not None:
            return cached
        matrix = coverage_matrix(gaps, running)
        matrix["dagsterUrl"] = dagster_url
        body = JSONResponse(CoverageMatrix.model_validate(matrix).to_json()).body
        _ANSWERS.put(key, bytes(body))
        return bytes(body)

    return Response(await run_in_threadpool(read), media_type="application/json")


class _Answers:
    """The last few matrices as sent, by what they were built from: the console asks for the
    same year again and again (twice per look), and an unchanged store answers in milliseconds."""

    def __init__(self, most: int = 8) -> None:
        self.most = most
        self._bodies: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        """The body built from `key`, if kept."""
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: tuple, body: bytes) -> None:
        """Keep `body` as built from `key` (the oldest goes past `most`)."""
        with self._lock:
            self._bodies[key] = body
            while len(self._bodies) > self.most:
                self._bodies.popitem(last=False)


_ANSWERS = _Answers()
