"""Check the photos, end to end in a real browser: a noisy copy of the hot-dog photos is checked, a suspect is fixed
with the keyboard and undone, a leak is excluded, the map shows a photo on hover and selects it on a click, and the
photo folder is byte for byte what it was.

Uses the helpers of test_browser.py (Debian's Chromium through Playwright's sync API; skipped locally and failed in
CI when either is missing).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_browser import CHROMIUM, FLAGS, browser_or_skip, no_exception, open_page
from test_browser_a11y import no_violations

from benchmarks.clean.noise import noisy_copy
from benchmarks.harness.app_server import app_server

pytestmark = pytest.mark.slow

WAIT = 120_000  # ms: the check reads every photo with a network on two shared cores
TOOLTIP_IMAGE = "#vg-tooltip-element img"  # vega-tooltip draws the map's hovered photo here


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under `folder` -> the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hover_until_photo(page, chart) -> tuple[float, float] | None:
    """Move the mouse over the chart on a grid until a dot's tooltip shows its photo; where it did, or None."""
    box = chart.bounding_box()
    for row in range(4, 60, 3):
        for col in range(4, 60, 3):
            x, y = box["x"] + box["width"] * col / 64, box["y"] + box["height"] * row / 64
            page.mouse.move(x, y)
            if page.locator(TOOLTIP_IMAGE).count() and page.locator(TOOLTIP_IMAGE).first.is_visible():
                return x, y
    return None


def test_check_fix_undo_exclude_and_map_in_chromium(tmp_path, shared_hotdog, shared_mobilenet):
    """The page finds the leak and the flips, fixes by keyboard, and never writes in the photo folder."""
    from axe_playwright_python.sync_playwright import Axe  # here: the browser tests alone need axe

    api = browser_or_skip()
    made = noisy_copy(shared_hotdog, tmp_path / "noisy", {"train": 30, "test": 15}, 0.1, 2, 1, seed=1)
    before = fingerprint(made.root)
    with app_server(tmp_path / "cache", tmp_path / "streamlit.log") as url, api() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=WAIT)
        open_page(page, "Dataset explorer", "Dataset explorer")
        page.get_by_text("Local folder", exact=True).click()
        page.get_by_label("Dataset folder", exact=True).fill(str(made.root))
        page.get_by_label("Dataset folder", exact=True).press("Enter")
        page.get_by_role("button", name="Use this folder").click()
        page.get_by_text(f"Using {made.root}").wait_for(timeout=WAIT)

        open_page(page, "Check the photos", "Check the photos")
        page.get_by_role("button", name="Check the photos").click()
        page.get_by_role("heading", name="Labels that look wrong").wait_for(timeout=WAIT)
        no_exception(page)
        assert page.get_by_text("2 leak(s) between splits").count() == 1
        page.get_by_test_id("stVegaLiteChart").first.locator("canvas, svg").first.wait_for(timeout=WAIT)
        no_violations(Axe(), page, "Check the photos with its findings")  # WCAG 2.1 AA, as on every page

        relabel = page.get_by_role("button", name="Relabel as").first
        relabel.focus()
        page.keyboard.press("Enter")  # one key press, no mouse
        page.get_by_text("1 relabeled").wait_for(timeout=WAIT)
        page.get_by_role("button", name="Undo").focus()
        page.keyboard.press("Enter")
        page.get_by_text("0 relabeled").wait_for(timeout=WAIT)
        page.get_by_text("All 2 edits").wait_for(timeout=WAIT)  # the undo is in the log too

        copy_in_train = made.leaks[0][1]  # the leaked test photo's copy in train, shown beside it
        page.get_by_test_id("stColumn").filter(has_text=f"train: {copy_in_train}").get_by_role(
            "button", name="Exclude").click()
        page.get_by_text("1 excluded").wait_for(timeout=WAIT)

        chart = page.get_by_test_id("stVegaLiteChart").first
        chart.scroll_into_view_if_needed()
        chart.locator("canvas, svg").first.wait_for(timeout=WAIT)
        spot = hover_until_photo(page, chart)
        assert spot is not None, "no dot of the map showed its photo on hover"
        assert page.locator(TOOLTIP_IMAGE).first.get_attribute("src").startswith("data:image/jpeg;base64,")
        page.mouse.click(*spot)
        page.get_by_text("Selected:").wait_for(timeout=WAIT)
        no_exception(page)
        browser.close()
    assert fingerprint(made.root) == before
