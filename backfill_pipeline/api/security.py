"""What every request passes before a route sees it: its `Host` on the allow-list (DNS
rebinding), its bearer token (every call that changes something; reads too off loopback), and a
body, if any, declared as JSON. No CORS header is ever sent, so a browser page of another origin
can neither read an answer nor get a preflight approved.

Order: Host (400 without a usable one, 421 for a name not on the list), then the token (401 with
`WWW-Authenticate`), then the body's type (415). Each refusal has the API's error body.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import TOKEN_VARIABLE, is_loopback
from .errors import error_response
from .inputs import MAX_DRAIN
from .session import cookie_from, cookie_value

REALM = "backfill_pipeline"
# Calls that change nothing; every other method needs the token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Read without a token even off loopback: the health check (it then shows no version) and the
# document (public: the shape of the API, nothing of the deployment).
OPEN_PATHS = frozenset({"/api/health", "/api/openapi.json"})
# The console's page and files: public (they hold no data; the data calls need the token or the
# session cookie).
CONSOLE_PREFIX = "/console/"
# Signing in gives the token in the body (the route checks it); signing out needs nothing.
SESSION_PATH = "/api/session"
# The names a loopback API always answers to.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Security:
    """The token every call that changes something must carry, the Host names answered, and
    whether reads need the token too (an API reachable from other machines)."""

    token: str
    hosts: frozenset[str]
    reads_need_token: bool

    @classmethod
    def for_server(
        cls, token: str, host: str, *, extra_hosts: Iterable[str] = (), reads_need_token: bool = False
    ) -> Security:
        """The loopback names, the bound address (unless it is 0.0.0.0 or ::) and `extra_hosts`;
        reads need the token off loopback, or when asked."""
        bound = _name(host)
        hosts = set(LOOPBACK_HOSTS) | {_name(h) for h in extra_hosts}
        if bound not in ("0.0.0.0", "::", ""):
            hosts.add(bound)
        return cls(token, frozenset(hosts), reads_need_token or not is_loopback(host))

    @classmethod
    def locked(cls) -> Security:
        """A token nobody knows: reads on loopback only, nothing can be changed (the app's default
        when none is given)."""
        return cls(secrets.token_urlsafe(32), LOOPBACK_HOSTS, False)


def host_name(value: str) -> str | None:
    """The name of a Host header without its port, lower-case (`[::1]:8080` -> `::1`); None when
    it is not `name[:port]` or `[address][:port]`."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
    elif value.count(":") <= 1:
        name, colon, port = value.partition(":")
        rest = colon + port
    else:
        return None  # an IPv6 address must be in brackets
    if rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit()):
        return None
    if not name or not name.isascii() or any(c.isspace() or c in "/@?#\\[]" for c in name):
        return None
    return name


def _name(entry: str) -> str:
    """A host of the allow-list as host_name() gives it: lower-case, without brackets or port
    (`API.example.org:443` -> `api.example.org`, `[::1]` and `::1` -> `::1`)."""
    return host_name(entry) or entry.strip().strip("[]").lower()


def _unauthorized(given: bool) -> tuple[int, str, str, dict[str, str]]:
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if given else "")
    if given:
        message = "the bearer token is not this API's token"
        return 401, "invalid-token", message, {"WWW-Authenticate": challenge}
    message = (
        "this call needs `Authorization: Bearer <token>`: the API's token is "
        f"{TOKEN_VARIABLE}, or the one `backfill-pipeline api-token` prints"
    )
    return 401, "unauthorized", message, {"WWW-Authenticate": challenge}


def is_json(content_type: str) -> bool:
    """`application/json`, alone or with `charset=utf-8` (any case, any spacing)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != JSON_TYPE:
        return False
    for param in filter(None, (p.strip() for p in params.split(";"))):
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


class Guard:
    """ASGI middleware that refuses, with the API's error body, a request whose Host, token or
    body type is not acceptable; it marks accepted requests `authenticated` (request.state)."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security
        self._token = security.token.encode()
        self._session = cookie_value(security.token).encode()

    def authenticated(self, headers: Headers) -> bool | None:
        """True for this API's token (or the console's cookie for it), False for another one,
        None for neither a bearer token nor a session cookie."""
        values = headers.getlist("authorization")
        if not values:
            return self.signed_in(headers)
        scheme, _, credentials = values[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        given = credentials.strip().encode("latin-1", errors="replace")
        # compare_digest takes as long whatever the first differing byte; two headers never pass.
        return hmac.compare_digest(given, self._token) and len(values) == 1

    def signed_in(self, headers: Headers) -> bool | None:
        """True for the console's session cookie of this API's token, False for a stale or forged
        one, None without one."""
        given = cookie_from(headers.get("cookie"))
        if given is None:
            return None
        return hmac.compare_digest(given.encode("latin-1", errors="replace"), self._session)

    def refusal(self, scope: Scope) -> tuple[int, str, str, dict[str, str]] | None:
        """(status, code, message, headers) of the refusal of this request, or None to let it in."""
        headers = Headers(scope=scope)
        hosts = headers.getlist("host")
        name = host_name(hosts[0]) if len(hosts) == 1 else None
        if name is None:
            return 400, "bad-host", "the request needs one valid Host header", {}
        if name not in self.security.hosts:
            message = (
                f"this API does not answer to the host {name!r} (add it to BACKFILL_ALLOWED_HOSTS "
                "if clients reach the API by that name)"
            )
            return 421, "misdirected-request", message, {}
        method = scope["method"]
        path = scope["path"]
        token = self.authenticated(headers)
        state = scope.setdefault("state", {})
        state["authenticated"] = token is True
        public = path in OPEN_PATHS or path in ("/", SESSION_PATH) or path.startswith(CONSOLE_PREFIX)
        needs_token = (method not in SAFE_METHODS and path != SESSION_PATH) or (
            self.security.reads_need_token and method != "OPTIONS" and not public
        )
        if needs_token and token is not True:
            return _unauthorized(given=token is False)
        if method not in SAFE_METHODS and not headers.getlist("authorization"):
            # A browser's write (the cookie, or signing in) from a page of another origin is
            # refused even when SameSite let the cookie through (an older browser).
            origin = headers.get("origin")
            if origin is not None and host_name(origin.partition("://")[2]) != name:
                return 403, "cross-origin", f"a write from the page of another origin ({origin[:100]})", {}
        if method not in SAFE_METHODS and (_has_body(headers) or "content-type" in headers):
            content_type = headers.get("content-type", "")
            if not is_json(content_type):
                shown = content_type[:100] or "none"
                message = f"the request body must be application/json (charset utf-8), not {shown}"
                return 415, "unsupported-media-type", message, {}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, code, message, headers = refused
        if not await _drained(receive):
            headers = {**headers, "Connection": "close"}
        await error_response(status, code, message, headers=headers)(scope, receive, send)


async def _drained(receive: Receive) -> bool:
    """Read and drop the refused request's body, up to MAX_DRAIN: closing a connection with unread
    data makes the kernel send a reset that can swallow the answer. False when more was left."""
    size = 0
    while size <= MAX_DRAIN:
        message = await receive()
        if message["type"] != "http.request":
            return False
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False
