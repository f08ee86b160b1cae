"""What the browser tests share: Debian's Chromium driven by Playwright, and where screenshots go.
Where Chromium is missing the tests fail (scripts/setup-system installs it); they never skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A fresh page in a fresh headless Chromium (its own cookies)."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/setup-system"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()


def shots(tmp_path: Path) -> Path:
    """The screenshots' folder: $CONSOLE_SCREENSHOTS when set (the README's come from there)."""
    out = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def heatmap_margins(page: Page) -> tuple[float, float]:
    """The heatmap's label margins (left, top) in CSS pixels, as the page painted them."""
    left, top = page.evaluate(
        "[document.getElementById('heatmap').dataset.left, document.getElementById('heatmap').dataset.top]"
    )
    return float(left), float(top)


def move_cursor(page: Page, row: int, col: int) -> None:
    """Move the heatmap's cursor to (district row, date column) with the keyboard only."""
    canvas = page.locator("#heatmap")
    canvas.focus()
    page.keyboard.press("Control+Home")  # the first cell
    for _ in range(col):
        page.keyboard.press("ArrowRight")
    for _ in range(row):
        page.keyboard.press("ArrowDown")
