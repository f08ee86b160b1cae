"""Fault injection, stats and the request log of the sandbox, over loopback HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from conftest import TODAY

from backfill_pipeline.sandbox import FaultRule, SandboxServer

PATH = "/2024-2025/export.aspx?type=CSV&report=clubperformance~42~3/31/2025~3/20/2025~2024-2025"
SUMMARY = "/2024-2025/export.aspx?type=CSV&report=districtsummary~3/31/2025~3/20/2025~2024-2025"


def get(server: SandboxServer, path: str = PATH) -> requests.Response:
    return requests.get(server.url + path, timeout=10)


def test_error_fault_with_times(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "error", "status": 503, "times": 2}])
    assert [get(fresh_sandbox).status_code for _ in range(3)] == [503, 503, 200]
    assert fresh_sandbox.faults() == []


def test_429_fault(fresh_sandbox):
    fresh_sandbox.add_fault({"kind": "429", "retryAfter": 7})
    r = get(fresh_sandbox)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"


def test_latency_fault(fresh_sandbox):
    fresh_sandbox.set_faults([FaultRule(kind="latency", latency_ms=300)])
    start = time.monotonic()
    assert get(fresh_sandbox).status_code == 200
    assert time.monotonic() - start >= 0.3


def test_truncate_fault(fresh_sandbox):
    clean = get(fresh_sandbox).content
    fresh_sandbox.set_faults([{"kind": "truncate"}])
    r = get(fresh_sandbox)
    assert r.status_code == 200 and b"Month of" not in r.content
    assert clean.startswith(r.content) and len(r.content) < len(clean)
    assert not r.content.endswith(b"\r\n")
    r.content.decode("utf-8")  # never cut inside a character
    assert r.content.count(b"\r\n") >= 2  # cut inside a data row, not the header


def test_truncate_incomplete_breaks_the_transfer(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "truncate", "incomplete": True, "times": 1}])
    with pytest.raises(requests.exceptions.RequestException):
        get(fresh_sandbox)
    assert get(fresh_sandbox).status_code == 200


def test_html_fault(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "html"}])
    r = get(fresh_sandbox)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert r.text.lstrip().lower().startswith("<!doctype html")


def test_wrong_as_of_fault(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "wrong_as_of"}])
    r = get(fresh_sandbox)
    assert r.content.endswith(b"Month of Mar, As of 03/19/2025\r\n")


def test_reset_fault(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "reset", "times": 1}])
    with pytest.raises(requests.exceptions.ConnectionError):
        get(fresh_sandbox)
    assert get(fresh_sandbox).status_code == 200
    assert fresh_sandbox.stats()["byStatus"] == {"reset": 1, "200": 1}


def test_filters_and_rates(fresh_sandbox):
    fresh_sandbox.set_faults(
        [
            {"kind": "error", "report": "districtsummary"},
            {"kind": "error", "status": 502, "district": "61"},
            {"kind": "error", "status": 504, "asOf": "2025-03-21"},
        ]
    )
    assert get(fresh_sandbox).status_code == 200
    assert get(fresh_sandbox, SUMMARY).status_code == 500
    assert get(fresh_sandbox, PATH.replace("~42~", "~61~")).status_code == 502
    assert get(fresh_sandbox, PATH.replace("~3/20/2025~", "~3/21/2025~")).status_code == 504
    fresh_sandbox.set_faults([{"kind": "error", "rate": 0.5}])
    codes = [get(fresh_sandbox).status_code for _ in range(60)]
    assert 10 < codes.count(500) < 50


def test_faults_spare_control_endpoints(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "reset"}])
    assert requests.get(fresh_sandbox.url + "/_sandbox/health", timeout=10).status_code == 200


def test_fault_control_over_http(fresh_sandbox):
    url = fresh_sandbox.url + "/_sandbox/faults"
    assert requests.get(url, timeout=10).json() == {"faults": []}
    r = requests.put(url, json=[{"kind": "error", "status": 503, "times": 1}], timeout=10)
    assert r.json()["faults"] == [{"kind": "error", "rate": 1.0, "status": 503, "times": 1}]
    requests.post(url, json={"kind": "latency", "latencyMs": 5, "report": "clubperformance"}, timeout=10)
    assert len(requests.get(url, timeout=10).json()["faults"]) == 2
    assert get(fresh_sandbox).status_code == 503
    assert [f["kind"] for f in fresh_sandbox.faults()] == ["latency"]
    assert requests.delete(url, timeout=10).json() == {"faults": []}
    bad = requests.post(url, json={"kind": "explode"}, timeout=10)
    assert bad.status_code == 400 and "kind" in bad.json()["error"]
    assert requests.put(url, json={"kind": "error"}, timeout=10).status_code == 400
    assert requests.post(url, json={"kind": "error", "rate": 2}, timeout=10).status_code == 400


def test_fault_rate_draws_are_deterministic():
    def run():
        with SandboxServer(today=TODAY, faults=[{"kind": "error", "rate": 0.3}]) as server:
            return [get(server).status_code for _ in range(20)]

    assert run() == run()


def test_stats_and_request_log(fresh_sandbox):
    get(fresh_sandbox)
    get(fresh_sandbox, SUMMARY)
    get(
        fresh_sandbox,
        "/2026-2027/export.aspx?type=CSV&report=districtsummary~11/30/2026~11/20/2026~2026-2027",
    )
    get(fresh_sandbox, "/export.aspx?type=CSV&report=bogus")
    requests.get(fresh_sandbox.url + "/_sandbox/health", timeout=10)
    stats = requests.get(fresh_sandbox.url + "/_sandbox/stats", timeout=10).json()
    assert stats["exportRequests"] == 4
    assert stats["byReport"] == {"clubperformance": 1, "districtsummary": 2, "invalid": 1}
    assert stats["byStatus"] == {"200": 2, "500": 1, "400": 1}
    assert stats["byKey"]["clubperformance|2025-03-20|42"] == 1
    log = requests.get(fresh_sandbox.url + "/_sandbox/requests?limit=2", timeout=10).json()
    entries = log["requests"]
    assert len(entries) == 2 and entries[0]["status"] == 500 and entries[1]["status"] == 400
    assert entries[0]["report"] == "districtsummary" and entries[0]["asOf"] == "2026-11-20"
    assert entries[0]["district"] is None and entries[0]["path"].startswith("/2026-2027/")
    assert abs(entries[0]["t"] - time.time()) < 60
    r = requests.post(fresh_sandbox.url + "/_sandbox/stats/reset", timeout=10)
    assert r.json()["exportRequests"] == 0
    assert fresh_sandbox.requests() == [] and fresh_sandbox.stats()["byStatus"] == {}
    fresh_sandbox.reset_stats()
    assert fresh_sandbox.stats()["exportRequests"] == 0


def test_server_lifecycle():
    server = SandboxServer(today=TODAY)
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018 - the property raises before start
    url = server.start().url
    with requests.Session() as session:
        assert session.get(url + PATH, timeout=10).status_code == 200
        server.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(url + PATH, timeout=5)
    server.stop()  # idempotent


# -- the answers of the "Never lose a date" issue: redirects, slow and huge bodies ---------------


def test_redirect_fault(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "redirect", "times": 1}])
    r = requests.get(fresh_sandbox.url + PATH, timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/maintenance.aspx"
    fresh_sandbox.set_faults([{"kind": "redirect", "status": 301, "location": "https://example.org/x"}])
    r = requests.get(fresh_sandbox.url + PATH, timeout=10, allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"] == "https://example.org/x"
    assert fresh_sandbox.faults() == [
        {"kind": "redirect", "rate": 1.0, "status": 301, "location": "https://example.org/x"}
    ]


@pytest.mark.timeout(20)
def test_drip_fault_sends_the_whole_answer_slowly_on_a_live_connection(fresh_sandbox):
    clean = get(fresh_sandbox).content
    fresh_sandbox.set_faults([{"kind": "drip", "bytesPerSecond": 20_000, "times": 1}])
    with requests.Session() as session:
        started = time.monotonic()
        r = session.get(fresh_sandbox.url + PATH, timeout=(5, 0.3))  # no single wait reaches 0.3 s
        elapsed = time.monotonic() - started
        assert r.content == clean and len(clean) / 20_000 * 0.8 < elapsed < 3
        assert r.headers.get("Connection") != "close"
        assert session.get(fresh_sandbox.url + PATH, timeout=5).content == clean
    assert fresh_sandbox.stats()["byOutcome"]["full+drip"] == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("chunked", [False, True])
def test_huge_fault_streams_its_size(fresh_sandbox, chunked):
    fresh_sandbox.set_faults([{"kind": "huge", "sizeMb": 3, "chunked": chunked}])
    r = requests.get(fresh_sandbox.url + PATH, timeout=10, stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert ("Content-Length" in r.headers) is not chunked
    size = sum(len(chunk) for chunk in r.iter_content(64 * 1024))
    assert size == 3 * 1024 * 1024


def test_html_fault_may_claim_another_content_type(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "html", "contentType": "text/csv; charset=utf-8"}])
    r = get(fresh_sandbox)
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8" and r.text.startswith("<!DOCTYPE html>")


def test_error_fault_with_a_retry_after_of_any_form(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "error", "status": 503, "retryAfter": 30, "times": 1}])
    assert get(fresh_sandbox).headers["Retry-After"] == "30"
    fresh_sandbox.set_faults([{"kind": "429", "retryAfter": "Fri, 31 Dec 9999 23:59:59 GMT", "times": 1}])
    assert get(fresh_sandbox).headers["Retry-After"] == "Fri, 31 Dec 9999 23:59:59 GMT"
    fresh_sandbox.set_faults([{"kind": "error", "status": 503}])
    assert "Retry-After" not in get(fresh_sandbox).headers
    assert fresh_sandbox.faults() == [{"kind": "error", "rate": 1.0, "status": 503}]


def test_wrong_report_fault_answers_a_csv_without_the_key_column(fresh_sandbox):
    fresh_sandbox.set_faults([{"kind": "wrong_report"}])
    r = get(fresh_sandbox)
    header = r.content.split(b"\r\n")[0]
    assert r.status_code == 200 and b'"Club Number"' not in header and b'"Club"' in header
    assert r.content.rstrip().endswith(b"As of 03/20/2025")


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"kind": "redirect", "status": 500}, "3xx"),
        ({"kind": "redirect", "location": ""}, "location"),
        ({"kind": "redirect", "location": "/x\r\nSet-Cookie: a=b"}, "location"),
        ({"kind": "drip", "bytesPerSecond": 0}, "bytesPerSecond"),
        ({"kind": "drip", "bytesPerSecond": 1.5}, "bytesPerSecond"),
        ({"kind": "drip", "bytesPerSecond": True}, "bytesPerSecond"),
        ({"kind": "huge", "sizeMb": 0}, "sizeMb"),
        ({"kind": "huge", "sizeMb": 1e9}, "sizeMb"),
        ({"kind": "huge", "sizeMb": "10"}, "sizeMb"),
        ({"kind": "huge", "chunked": "yes"}, "chunked"),
        ({"kind": "429", "retryAfter": -1}, "retryAfter"),
        ({"kind": "429", "retryAfter": "٣"}, "Latin-1"),
        ({"kind": "429", "retryAfter": "1\n"}, "control"),
        ({"kind": "html", "contentType": 5}, "contentType"),
    ],
)
def test_bad_new_fault_rules_are_refused_naming_the_field(rule, named):
    with pytest.raises(ValueError, match=named):
        FaultRule.from_dict(rule)
