"""The console's sign-in: the API's token, given once, becomes an HttpOnly, SameSite=Strict cookie.

The cookie holds no secret of its own: it is an HMAC of the token, so it is checked without any
server-side state, a new token (an API restart with another one) signs every browser out, and the
token itself never sits in the browser. SameSite=Strict keeps other sites' pages from sending it;
the Guard's JSON-only bodies and missing CORS headers keep them from reading or posting anyway.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie

COOKIE = "backfill_console"
# What the HMAC signs: a cookie for the console, not a value useful anywhere else.
_PURPOSE = b"backfill_pipeline console session v1"
# A browser keeps the cookie for a working week; signing in again is one paste of the token.
MAX_AGE_SECONDS = 7 * 24 * 3600


def cookie_value(token: str) -> str:
    """The session cookie's value for the API's `token`."""
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def cookie_from(header: str | None) -> str | None:
    """The session cookie's value in a `Cookie` header, or None (a malformed header included)."""
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies raises CookieError and, on odd input, others
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def set_cookie_header(token: str, *, secure: bool) -> str:
    """The `Set-Cookie` header that signs a browser in."""
    return _cookie(cookie_value(token), MAX_AGE_SECONDS, secure)


def clear_cookie_header(*, secure: bool) -> str:
    """The `Set-Cookie` header that signs a browser out."""
    return _cookie("", 0, secure)


def _cookie(value: str, max_age: int, secure: bool) -> str:
    parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    return "; ".join([*parts, "Secure"] if secure else parts)
