"""The console in a real browser (issue 12): Debian's Chromium driven by Playwright against a real
`backfill-pipeline api` process over a data root holding a cell of every state. Where Chromium is
missing the test fails (scripts/setup-system installs it); it never skips.

Screenshots go to tmp_path, or to $CONSOLE_SCREENSHOTS when set (the README's come from there)."""

from __future__ import annotations

import pytest
from api_process import running_api
from browser import chromium_page, heatmap_margins, move_cursor, shots
from conftest import AS_OF, TODAY
from console_world import DAY_2, DAY_3, DISTRICTS, EXPECTED, every_state
from playwright.sync_api import expect

from backfill_pipeline.devstack import free_port

pytestmark = pytest.mark.slow
TOKEN = "console-test-token-0123456789"
LABELS = {
    "detailed": "Detailed",
    "summary": "Summary only",
    "unavailable-final": "Unavailable (final)",
    "unavailable-pending": "Unavailable (pending)",
    "failed-transient": "Failed (transient)",
    "failed-permanent": "Failed (permanent)",
    "missing": "Missing",
}


@pytest.fixture
def console(tmp_path):
    """The API process over the every-state world; Dagster's URL is a closed port."""
    root = tmp_path / "data"
    every_state(root)
    closed = f"http://127.0.0.1:{free_port()}"
    with running_api(root, token=TOKEN, dagster_url=closed, today=TODAY.isoformat()) as url:
        yield url


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def show_range(page) -> None:
    page.fill("#cov-start", AS_OF.isoformat())
    page.fill("#cov-end", DAY_3.isoformat())
    page.fill("#cov-districts", ",".join(DISTRICTS))
    page.click("#coverage-form button[type=submit]")
    expect(page.locator("#legend li[data-state=detailed]")).to_have_text("Detailed: 1")


def test_the_heatmap_tells_every_known_cell_by_keyboard_and_pointer(console, page, tmp_path):
    page.goto(console + "/")
    expect(page.locator("#session-state")).to_have_text("Not signed in: reading only")
    show_range(page)
    assert page.evaluate("document.body.dataset.heatmapPainted") is not None
    readout = page.locator("#cell-readout")
    for (date, district), state in EXPECTED.items():
        col = (date - AS_OF).days
        move_cursor(page, DISTRICTS.index(district), col)
        expect(readout).to_have_attribute("data-state", state)
        text = readout.inner_text()
        assert text.startswith(f"{date.isoformat()}, district {district}: {LABELS[state]}"), text
        if state.startswith("failed"):
            assert "Last error" in text and (
                "transient" in text if state.endswith("transient") else "permanent" in text
            )
        link = readout.locator("a")
        assert f"partition={date.isoformat()}%7C{district}" in link.get_attribute("href")
    # The pointer tells the same as the keyboard.
    box = page.locator("#heatmap").bounding_box()
    left, top = heatmap_margins(page)  # the district labels' and the month labels' room
    row_height = (box["height"] - top) / len(DISTRICTS)
    page.mouse.move(box["x"] + left + 2, box["y"] + top + (DISTRICTS.index("10") + 0.5) * row_height)
    expect(page.locator("#tooltip")).to_be_visible()
    expect(page.locator("#tooltip")).to_contain_text(f"{AS_OF.isoformat()}, district 10: Failed (permanent)")
    # The text equivalent of the whole picture.
    page.click("#by-district summary")
    expect(page.locator("#by-district-rows tr").first).to_contain_text("09")
    page.screenshot(path=str(shots(tmp_path) / "console-coverage.png"), full_page=True)


def test_signing_in_sets_an_httponly_cookie_and_a_selection_is_planned(console, page, tmp_path):
    page.goto(console + "/")
    page.fill("#token", "not-the-token")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("Sign-in refused: that is not this API's token")
    page.fill("#token", TOKEN)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#session-state")).to_have_text("Signed in")
    expect(page.locator("#sign-in")).to_be_hidden()
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
    assert page.evaluate("document.cookie") == ""  # out of reach of the page's scripts
    assert page.locator("#token").input_value() == ""
    # A range of cells selected with the keyboard is offered for collection, with its plan first.
    show_range(page)
    move_cursor(page, DISTRICTS.index("09"), 0)
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#selection-text")).to_have_text(
        f"Selected 4 cells: {AS_OF.isoformat()} to {DAY_2.isoformat()}, districts 09, 10"
    )
    page.click("#collect-preview")
    # Dagster is not running here: the plan is refused with the API's reason, nothing launched.
    expect(page.locator("#collect-result")).to_contain_text("The plan was refused:")
    expect(page.locator("#collect-result")).to_contain_text("Dagster")
    page.screenshot(path=str(shots(tmp_path) / "console-signed-in.png"), full_page=True)
    # Signing out leaves the page reading only.
    page.click("#sign-out")
    expect(page.locator("#session-state")).to_have_text("Not signed in: reading only")
