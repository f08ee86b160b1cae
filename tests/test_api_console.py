"""The console's server side (issue 12; Dagster faked: fast lane): its page and files, the sign-in
that turns the token into an HttpOnly, SameSite=Strict cookie that then authenticates like the
token, and the coverage matrix its heatmap paints."""

from __future__ import annotations

import pytest
from api_stack import EXPOSED, LOOPBACK, TOKEN, api_client, fake_service
from conftest import AS_OF, REFRESH, a_summary
from console_world import DAY_3, DISTRICTS, EXPECTED, every_state

from backfill_pipeline.api.app import create_app
from backfill_pipeline.api.graphql import DagsterUnreachable
from backfill_pipeline.api.security import Security
from backfill_pipeline.api.session import COOKIE, cookie_value
from backfill_pipeline.planning.matrix import CODES
from backfill_pipeline.snapshots import PerDistrictFileSnapshotStore

pytest_plugins = ["api_stack"]
DRY_RUN = {"startDate": "2025-04-14", "targetDistricts": ["42"], "dryRun": True}


def browser(api, security: Security = LOOPBACK, host: str = "127.0.0.1"):
    """A client with no token, as a browser before sign-in."""
    return api.client_with(security, headers={}, host=host)


# -- the page ---------------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served_with_a_strict_policy(api):
    client = browser(api, EXPOSED)  # public even where reads need the token: they hold no data
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/console/console.js">' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for name, kind in [("console.js", "text/javascript"), ("console.css", "text/css")]:
        r = client.get(f"/console/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert "https://" not in r.text
    for name in ["__init__.py", "index.html", "..%2fapp.py", "nope.js"]:
        assert client.get(f"/console/{name}").status_code == 404


# -- signing in -------------------------------------------------------------------------------------


def test_signing_in_sets_an_httponly_strict_cookie_that_authenticates_writes(api):
    client = browser(api)
    assert client.get("/api/session").json() == {"signedIn": False}
    assert client.post("/api/backfills", json=DRY_RUN).status_code == 401
    r = client.post("/api/session", json={"token": TOKEN})
    assert r.status_code == 200 and r.json() == {"signedIn": True}
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={cookie_value(TOKEN)};")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
        assert flag in cookie
    assert TOKEN not in cookie  # the token itself never sits in the browser
    assert client.get("/api/session").json() == {"signedIn": True}
    assert client.post("/api/backfills", json=DRY_RUN).status_code == 200
    # Signing out clears it.
    out = client.delete("/api/session")
    assert out.status_code == 200 and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.clear()
    assert client.post("/api/backfills", json=DRY_RUN).status_code == 401
    assert api.dagster.launches == []


@pytest.mark.parametrize(
    ("body", "status"),
    [({"token": TOKEN + "x"}, 401), ({"token": ""}, 400), ({}, 400), (["x"], 400), ({"token": 5}, 400)],
)
def test_a_wrong_or_malformed_sign_in_sets_no_cookie(api, body, status):
    r = browser(api).post("/api/session", json=body)
    assert r.status_code == status and "set-cookie" not in r.headers
    assert r.json()["error"]["message"]


def test_signing_in_takes_json_only(api):
    r = browser(api).post("/api/session", content=f"token={TOKEN}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "set-cookie" not in r.headers


def test_a_forged_or_stale_cookie_is_refused(api):
    client = browser(api)
    for value in ["0" * 64, cookie_value("another-token"), "x;y", ""]:
        client.cookies.set(COOKIE, value)
        r = client.post("/api/backfills", json=DRY_RUN)
        assert r.status_code == 401, value
    assert api.dagster.launches == []


def test_a_cookie_write_from_another_origin_is_refused(api):
    client = browser(api)
    client.cookies.set(COOKIE, cookie_value(TOKEN))
    r = client.post("/api/backfills", json=DRY_RUN, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross-origin"
    same = client.post("/api/backfills", json=DRY_RUN, headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 200


def test_off_loopback_the_cookie_reads_too(api):
    client = browser(api, EXPOSED, host="api.example.org")
    assert client.get("/api/session").json() == {"signedIn": False}  # the page asks before sign-in
    assert client.get("/api/coverage/matrix?start=2025-04-14").status_code == 401
    client.cookies.set(COOKIE, cookie_value(TOKEN))
    assert client.get("/api/coverage/matrix?start=2025-04-14").status_code == 200


# -- the matrix -------------------------------------------------------------------------------------


def test_the_matrix_holds_every_cell_of_the_range_with_its_state_and_cause(tmp_path):
    root = tmp_path / "data"
    every_state(root)
    from api_stack import FakeDagster

    app = create_app(lambda: fake_service(root, FakeDagster()), security=LOOPBACK)
    with api_client(app) as client:
        r = client.get(f"/api/coverage/matrix?start={AS_OF}&end={DAY_3}&districts={','.join(DISTRICTS)}")
    assert r.status_code == 200
    m = r.json()
    assert m["districts"] == DISTRICTS and m["dates"][0] == AS_OF.isoformat() and len(m["dates"]) == 3
    assert all(len(row) == len(DISTRICTS) for row in m["rows"])
    for (date, district), state in EXPECTED.items():
        code = m["rows"][m["dates"].index(date.isoformat())][DISTRICTS.index(district)]
        assert code == CODES[state], (date, district, state, code)
    assert sum(m["totals"].values()) == 3 * len(DISTRICTS)
    assert m["byDistrict"]["42"] == {"detailed": 1, "unavailable-pending": 1, "failed-transient": 1}
    transient = m["details"][f"{AS_OF}|09"]
    assert transient["state"] == "failed-transient" and transient["attempts"] == 1
    assert transient["lastError"]["class"] and transient["lastError"]["retryable"] is True
    assert m["details"][f"{AS_OF}|10"]["lastError"]["retryable"] is False
    assert f"{AS_OF}|42" not in m["details"]  # complete cells carry no details
    assert m["dagsterUrl"].startswith("http")


def test_the_api_process_loads_pandas_only_for_a_matrix():
    """pandas 3 brings pyarrow (about 70 MB): the API's other work must not carry it."""
    import subprocess
    import sys

    code = "import sys, backfill_pipeline.api.app; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_cells_a_run_is_collecting_are_shown_in_progress(tmp_path):
    root = tmp_path / "data"
    every_state(root)
    from api_stack import FakeDagster

    dagster = FakeDagster()
    dagster.materializing["district_snapshot"] = {f"{AS_OF}|13", "2020-01-01|13", f"{AS_OF}|nope"}
    dagster.materializing["all_districts_summary"] = {DAY_3.isoformat()}
    app = create_app(lambda: fake_service(root, dagster), security=LOOPBACK)
    query = f"/api/coverage/matrix?start={AS_OF}&end={DAY_3}&districts={','.join(DISTRICTS)}"
    with api_client(app) as client:
        m = client.get(query).json()
        assert m["inProgressKnown"] is True and m["inProgress"] == 1 + len(DISTRICTS)
        assert m["rows"][0][DISTRICTS.index("13")] == CODES["in-progress"]
        assert set(m["rows"][2]) == {CODES["in-progress"]}  # the summary's date: every district
        assert m["byDistrict"]["13"]["in-progress"] == 2
        # Asked for the store's states alone (the console's first paint): Dagster is not asked.
        dagster.error = AssertionError("Dagster was asked")
        m = client.get(query + "&inProgress=false").json()
        assert m["inProgressKnown"] is False and m["inProgress"] == 0
        assert m["rows"][0][DISTRICTS.index("13")] == CODES["missing"]
        r = client.get(query + "&inProgress=perhaps")
        assert r.status_code == 400 and "inProgress" in r.json()["error"]["message"]
        # Dagster down: the store's states alone, and the answer says so.
        dagster.error = DagsterUnreachable("down")
        m = client.get(query).json()
        assert m["inProgressKnown"] is False and m["inProgress"] == 0
        assert CODES["in-progress"] not in "".join(m["rows"])


def test_the_list_carries_each_backfills_progress(api):
    failed_one = api.launch({"startDate": "2025-04-14", "endDate": "2025-04-15", "targetDistricts": ["42"]})
    api.dagster.finish(failed_one, ["2025-04-14|42"])
    running = api.launch({"startDate": "2025-04-16", "targetDistricts": ["61"]})
    listed = {b["id"]: b for b in api.client.get("/api/backfills").json()["backfills"]}
    ended = listed[failed_one]["progress"]
    assert ended["failed"] == 1 and ended["materialized"] == ended["targeted"] - 1 > 0
    assert listed[running]["progress"]["materialized"] == 0 < listed[running]["progress"]["targeted"]


def test_the_matrix_names_a_bad_parameter(api):
    r = api.client.get("/api/coverage/matrix?start=2025-13-01")
    assert r.status_code == 400 and "start" in r.json()["error"]["message"]
    # The matrix shows every state: a state filter (GET /api/coverage's) is refused, not ignored.
    r = api.client.get("/api/coverage/matrix?state=missing")
    assert r.status_code == 400 and "state" in r.json()["error"]["message"]


def test_a_kept_matrix_is_answered_only_for_the_same_range_and_store(tmp_path):
    """The API keeps the last matrices it sent; two empty ranges of equal length, or a write to
    a date, must never get an answer built for something else."""
    root = tmp_path / "data"
    every_state(root)
    from api_stack import FakeDagster

    app = create_app(lambda: fake_service(root, FakeDagster()), security=LOOPBACK)
    districts = ",".join(DISTRICTS)
    with api_client(app) as client:
        one = client.get(f"/api/coverage/matrix?start=2025-01-01&end=2025-01-03&districts={districts}").json()
        two = client.get(f"/api/coverage/matrix?start=2025-02-01&end=2025-02-03&districts={districts}").json()
        assert one["dates"][0] == "2025-01-01" and two["dates"][0] == "2025-02-01"
        query = f"/api/coverage/matrix?start={AS_OF}&end={DAY_3}&districts={districts}&inProgress=false"
        before = client.get(query).json()
        assert before["rows"][0][DISTRICTS.index("13")] == CODES["missing"]
        store = PerDistrictFileSnapshotStore(root)
        store.write_districts(AS_OF, [a_summary("13")], context=REFRESH)
        after = client.get(query).json()
        assert after["rows"][0][DISTRICTS.index("13")] == CODES["summary"]
