"""The API's guard (issue 10, points 3 and 4; Dagster faked: fast lane): the bearer token on every
call that changes something (and reads off loopback), the Host allow-list against DNS rebinding,
JSON-only bodies, and no CORS ever. Each refusal has the error body and changes nothing."""

from __future__ import annotations

import socket

import pytest
import requests
from api_stack import AUTH, CONTRACT, EXPOSED, LOOPBACK, TOKEN, ApiServer, FakeApi, FakeDagster, fake_service

from backfill_pipeline.api import security
from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.security import Security, host_name, is_json

pytest_plugins = ["api_stack"]

LIST = "/api/backfills"
REQUEST = {"startDate": "2025-04-14", "targetDistricts": ["42"]}
HEAL = {"startDate": "2025-04-14", "endDate": "2025-04-15"}
# Every call that changes something: (method, path, JSON body).
WRITES = [
    ("POST", LIST, REQUEST),
    ("POST", LIST, {**REQUEST, "dryRun": True}),
    ("DELETE", "/api/backfills/abc123", None),
    ("POST", "/api/backfills/abc123/retry", None),
    ("POST", "/api/heal", HEAL),
    ("POST", "/api/heal", {**HEAL, "dryRun": True}),
]
READS = [LIST, "/api/backfills/abc123", "/api/coverage?start=2025-04-14&end=2025-04-15"]


def template(path: str) -> str:
    """The document's path template of a path."""
    parts = path.split("?")[0].split("/")
    if len(parts) >= 4 and parts[2] == "backfills":
        parts[3] = "{backfillId}"
    return "/".join(parts)


def nothing_changed(api: FakeApi) -> None:
    assert api.dagster.launches == []
    assert api.dagster.districts == ["42", "61", "109"]
    assert not (api.root / "backfills").exists() and not (api.root / "state" / "idempotency").exists()


# -- the token ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_every_write_without_the_token_answers_401_and_does_nothing(api, method, path, body):
    a_backfill = api.launch(REQUEST)  # something a cancel or retry could act on
    api.dagster.launches.clear()
    path = path.replace("abc123", a_backfill)
    for headers, code, challenge in [
        ({}, "unauthorized", 'Bearer realm="backfill_pipeline"'),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unauthorized", 'Bearer realm="backfill_pipeline"'),
        ({"Authorization": "Bearer"}, "unauthorized", 'Bearer realm="backfill_pipeline"'),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid-token", 'error="invalid_token"'),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "invalid-token", 'error="invalid_token"'),
        ({"Authorization": b"Bearer \xe9t\xe9-token-0123456789"}, "invalid-token", 'error="invalid_token"'),
    ]:
        client = api.client_with(LOOPBACK, headers=headers)
        r = client.request(method, path, json=body)
        error = CONTRACT.check(r, method, template(path), 401)["error"]
        assert error["code"] == code, (headers, error)
        assert r.headers["WWW-Authenticate"].startswith('Bearer realm="backfill_pipeline"')
        assert challenge in r.headers["WWW-Authenticate"]
        assert "Bearer <token>" in error["message"] or "not this API's token" in error["message"]
    assert api.dagster.launches == []
    assert api.dagster.backfills_by_id[a_backfill]["status"] == "REQUESTED"  # not cancelled


def test_the_token_is_compared_in_constant_time(api, monkeypatch):
    compared = []

    def spy(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    client = api.client_with(LOOPBACK, headers={"Authorization": "Bearer wrong-token-of-16-chars"})
    assert client.post(LIST, json=REQUEST).status_code == 401
    assert compared == [(b"wrong-token-of-16-chars", TOKEN.encode())]


def test_two_authorization_headers_are_refused_even_if_one_is_right(api):
    client = api.client_with(LOOPBACK, headers={})
    headers = [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer other-token-0123456789")]
    r = client.post(LIST, json=REQUEST, headers=headers)
    assert r.status_code == 401 and api.dagster.launches == []


def test_reads_on_loopback_need_no_token(api):
    client = api.client_with(LOOPBACK, headers={})
    a_backfill = api.launch(REQUEST)
    for path in READS:
        path = path.replace("abc123", a_backfill)
        CONTRACT.check(client.get(path), "GET", template(path), 200)
    assert client.get("/api/health").json()["dagster"] == {"version": "1.13.28"}


def test_off_loopback_reads_need_the_token_but_health_and_the_document_do_not(api):
    a_backfill = api.launch(REQUEST)
    anonymous = api.client_with(EXPOSED, headers={}, host="api.example.org")
    with_token = api.client_with(EXPOSED, host="api.example.org")
    for path in READS:
        path = path.replace("abc123", a_backfill)
        assert (
            CONTRACT.check(anonymous.get(path), "GET", template(path), 401)["error"]["code"] == "unauthorized"
        )
        CONTRACT.check(with_token.get(path), "GET", template(path), 200)
    # The health check stays open for load balancers but shows no version without the token.
    assert CONTRACT.check(anonymous.get("/api/health"), "GET", "/api/health", 200) == {
        "status": "ok",
        "dagster": None,
    }
    assert with_token.get("/api/health").json()["dagster"] == {"version": "1.13.28"}
    CONTRACT.check(anonymous.get("/api/openapi.json"), "GET", "/api/openapi.json", 200)


def test_the_default_app_lets_nothing_be_changed(api, tmp_path):
    # create_app() without security: a token nobody knows.
    from api_stack import api_client

    dagster = FakeDagster()
    with api_client(create_app(lambda: fake_service(tmp_path, dagster))) as client:
        assert client.post(LIST, json=REQUEST).status_code == 401
        assert client.get("/api/openapi.json").status_code == 200
    assert dagster.launches == []


# -- the Host allow-list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]", "[::1]:8080"]
)
def test_loopback_names_are_answered(api, host):
    client = api.client_with(LOOPBACK, host=host)
    assert client.get(LIST).status_code == 200


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:8080", "127.0.0.2", "localhost.attacker.example", "0.0.0.0"],
)
def test_other_names_answer_421_and_nothing_is_done(api, host):
    client = api.client_with(LOOPBACK, host=host)
    for method, path, body in [("GET", LIST, None), ("POST", LIST, REQUEST)]:
        r = client.request(method, path, json=body)
        assert r.status_code == 421
        error = r.json()["error"]
        assert error["code"] == "misdirected-request" and "BACKFILL_ALLOWED_HOSTS" in error["message"]
        assert not any(h.lower().startswith("access-control") for h in r.headers)
    nothing_changed(api)


def test_the_allowed_hosts_and_the_bound_address_are_answered(api):
    secured = Security.for_server(
        TOKEN, "192.0.2.7", extra_hosts=["API.Example.org", "b.example:8443", "[fd00::5]"]
    )
    assert secured.hosts == {
        "localhost",
        "127.0.0.1",
        "::1",
        "192.0.2.7",
        "api.example.org",
        "b.example",
        "fd00::5",
    }
    assert secured.reads_need_token
    for host in (
        "api.example.org",
        "api.example.org:443",
        "b.example",
        "[fd00::5]:80",
        "192.0.2.7:8080",
        "localhost",
    ):
        assert api.client_with(secured, host=host).get(LIST).status_code == 200, host
    # 0.0.0.0 is where it listens, never a name a client uses.
    assert "0.0.0.0" not in EXPOSED.hosts


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Example.ORG", "example.org"),
        ("example.org:8080", "example.org"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("::1", None),  # an IPv6 address with a port would be ambiguous: brackets are required
        ("example.org:", None),
        ("example.org:80x", None),
        ("[::1", None),
        ("exa mple.org", None),
        ("evil.example/x", None),
        ("user@example.org", None),
        ("", None),
        ("ex\u00e4mple.org", None),
    ],
)
def test_host_names_are_parsed_strictly(value, name):
    assert host_name(value) == name


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_over_real_http_a_rebound_name_and_a_missing_host_are_refused(tmp_path):
    dagster = FakeDagster()
    with ApiServer(create_app(lambda: fake_service(tmp_path, dagster), security=LOOPBACK)) as server:
        # DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1.
        r = requests.get(
            f"{server.url}{LIST}", headers={"Host": f"attacker.example:{server.port}"}, timeout=10
        )
        assert r.status_code == 421 and r.json()["error"]["code"] == "misdirected-request"
        r = requests.post(
            f"{server.url}{LIST}", json=REQUEST, headers={**AUTH, "Host": "attacker.example"}, timeout=10
        )
        assert r.status_code == 421
        # HTTP/1.0 may omit Host: there is nothing to check it against.
        answer = _raw(server.port, b"GET /api/backfills HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"bad-host"' in answer
        assert requests.get(f"{server.url}{LIST}", timeout=10).status_code == 200
    assert dagster.launches == []


# -- bodies only as JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json; charset=latin-1",
        "application/json; boundary=x",
        "application/ld+json",
        "",
    ],
)
def test_a_body_not_declared_json_answers_415(api, content_type, tmp_path):
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = b'{"startDate": "2025-04-14", "targetDistricts": ["42"]}'
    for path in (LIST, "/api/heal", "/api/backfills/abc123/retry"):
        r = api.client.post(path, content=body, headers=headers)
        error = CONTRACT.check(r, "POST", template(path), 415)["error"]
        assert error["code"] == "unsupported-media-type"
    nothing_changed(api)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", 'Application/JSON;Charset="UTF-8"'],
)
def test_json_with_or_without_utf8_charset_is_accepted(api, content_type):
    body = b'{"startDate": "2025-04-14", "targetDistricts": ["42"], "dryRun": true}'
    r = api.client.post(LIST, content=body, headers={"Content-Type": content_type})
    assert CONTRACT.check(r, "POST", LIST, 200)["plan"]["districts"] == ["42"]


def test_a_write_without_a_body_needs_no_content_type(api):
    backfill_id = api.launch(REQUEST)
    api.dagster.finish(backfill_id, ["2025-04-14|42"])
    r = api.client.post(f"/api/backfills/{backfill_id}/retry")
    assert "content-type" not in r.request.headers
    CONTRACT.check(r, "POST", "/api/backfills/{backfillId}/retry", 202)


def test_is_json():
    assert is_json("application/json") and is_json(" application/json ; charset=utf8 ")
    assert not is_json("application/json; charset=utf-8; q=1") and not is_json("text/json")


def test_a_large_refused_body_still_gets_its_answer_over_a_real_connection(tmp_path):
    # The guard reads the refused body before answering: a reset must not swallow the 415 or 401.
    dagster = FakeDagster()
    big = b"x" * (512 * 1024)
    with ApiServer(create_app(lambda: fake_service(tmp_path, dagster), security=LOOPBACK)) as server:
        r = requests.post(
            f"{server.url}{LIST}", data=big, headers={**AUTH, "Content-Type": "text/plain"}, timeout=30
        )
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported-media-type"
        r = requests.post(f"{server.url}{LIST}", data=big, headers={"Content-Type": "text/plain"}, timeout=30)
        assert r.status_code == 401
    assert dagster.launches == []


# -- no CORS -------------------------------------------------------------------------------------------


def _no_cors(response) -> None:
    assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers


def test_no_answer_carries_cors_headers(api):
    origin = {"Origin": "https://attacker.example"}
    _no_cors(api.client.get(LIST, headers=origin))
    _no_cors(api.client.post(LIST, json={**REQUEST, "dryRun": True}, headers=origin))
    _no_cors(api.client.get("/api/health", headers=origin))
    _no_cors(api.client_with(LOOPBACK, headers={}).post(LIST, json=REQUEST, headers=origin))


def test_a_preflight_is_not_approved(api):
    for path in (LIST, "/api/heal", "/api/backfills/abc123"):
        r = api.client_with(LOOPBACK, headers={}).options(
            path,
            headers={
                "Origin": "https://attacker.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert r.status_code == 405 and r.json()["error"]["code"] == "method-not-allowed"
        _no_cors(r)
    nothing_changed(api)


def test_a_cross_site_simple_request_reaches_nothing(api):
    # What a page of another origin can send without a preflight: a text/plain POST, no token.
    r = api.client_with(LOOPBACK, headers={}).post(
        LIST,
        content=b'{"startDate": "2025-04-14", "targetDistricts": ["42"]}',
        headers={"Content-Type": "text/plain", "Origin": "https://attacker.example"},
    )
    assert r.status_code == 401
    _no_cors(r)
    nothing_changed(api)
