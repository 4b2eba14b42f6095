"""Everyone in the class: axe-core's WCAG 2.1 A and AA rules on every page in each state a person reaches, the lab
by keyboard alone with its focus always visible, and every page at a phone's width without scrolling sideways.

Uses the helpers of test_browser.py (Debian's Chromium through Playwright's sync API; skipped locally and failed in
CI when either is missing) and axe-core from axe-playwright-python.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_browser import CHROMIUM, FLAGS, browser_or_skip, no_exception, open_page

from app.widgets import ANNOUNCE_SECONDS  # the status line changes at most this often
from benchmarks.a11y.axe_pages import PAGES, violations
from benchmarks.harness.app_server import app_server

pytestmark = pytest.mark.slow

WAIT = 180_000  # ms: a lesson of two runs on two shared cores
TAB_STOPS = 400  # Tab presses before a control counts as out of the keyboard's reach
PHONE = {"width": 390, "height": 844}  # a phone's viewport in CSS pixels (WCAG 1.4.10 asks for 320 at 400 % zoom)
ADDRESSES = ["", "explore", "check", "train", "experiments", "predict", "evaluate"]  # PAGES' paths in the URL

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  window.__ftcoreFocused = e;
  const box = e.getBoundingClientRect();
  // a control drawn by another element (a hidden input) shows its focus on the widget around it
  const around = box.width > 16 && box.height > 16 ? e : (e.parentElement.closest('[data-testid^="st"]') || e);
  const r = around.getBoundingClientRect();
  return {tag: e.tagName, role: e.getAttribute('role') || '', type: e.getAttribute('type') || '',
          // a control's words, without the name of its Material icon on the line above them
          text: (e.innerText || e.getAttribute('aria-label') || e.getAttribute('aria-valuetext') || '').trim()
                .split('\\n').filter(line => line.trim()).pop() || '',
          within: (e.closest('[data-testid]') || {dataset: {}}).dataset.testid || '',
          label: (e.closest('[data-testid=stFileUploader], [data-testid=stSlider], [data-testid=stTextInput], '
                  + '[data-testid=stRadio]') || {innerText: ''}).innerText.split('\\n')[0],
          box: {x: Math.max(r.x - 6, 0), y: Math.max(r.y - 6, 0),
                width: Math.min(r.right + 6, innerWidth) - Math.max(r.x - 6, 0),
                height: Math.min(r.bottom + 6, innerHeight) - Math.max(r.y - 6, 0)}};
}"""
SIDEWAYS = """() => {
  const main = document.querySelector('[data-testid=stMain]') || document.documentElement;
  const root = document.scrollingElement;
  return {page: root.scrollWidth - root.clientWidth, main: main.scrollWidth - main.clientWidth};
}"""


def settle(page, most_ms: int = 3000) -> None:
    """Wait until the app has not been running its script for two looks in a row (Streamlit shows its status widget
    while it runs), or `most_ms` on a page that keeps polling."""
    quiet = 0
    for _ in range(most_ms // 250):
        page.wait_for_timeout(250)
        quiet = quiet + 1 if page.get_by_test_id("stStatusWidget").count() == 0 else 0
        if quiet == 2:
            return


STILL_FOCUSED = "() => window.__ftcoreFocused.isConnected && document.activeElement === window.__ftcoreFocused"


def focus_shows(page, info: dict, tries: int = 5) -> bool | None:
    """Whether the focused control looks different from the same control unfocused (its focus is visible); asked
    again after a moment where they look the same, as a toolbar may still be fading in. None where the page redrew
    the control meanwhile (a polling page), which leaves nothing to compare."""
    clip = {k: float(v) for k, v in info["box"].items()}
    if clip["width"] < 1 or clip["height"] < 1:
        return False
    for _ in range(tries):
        page.wait_for_timeout(100)
        if not page.evaluate(STILL_FOCUSED):
            return None
        focused = page.screenshot(clip=clip, animations="disabled", caret="hide")
        page.evaluate("() => window.__ftcoreFocused.blur()")
        page.wait_for_timeout(100)
        blurred = page.screenshot(clip=clip, animations="disabled", caret="hide")
        page.evaluate("() => window.__ftcoreFocused.focus({focusVisible: true})")
        if focused != blurred and page.evaluate(STILL_FOCUSED):
            return True
    return None if not page.evaluate(STILL_FOCUSED) else False


CHECKED: set[tuple] = set()  # the kinds of control whose focus was seen, per page: one of each kind is looked at


def tab_to(page, wanted, what: str, backwards: bool = False) -> dict:
    """Press Tab (Shift+Tab when `backwards`) until the focused control is `wanted(info)`, checking on the way that
    the focus is visible on each kind of control of each page; returns the control's description."""
    seen = []
    settle(page)  # a page that just changed draws its last elements first
    for _ in range(TAB_STOPS):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        info = page.evaluate(FOCUSED)
        if info is None:
            continue
        seen.append(info["text"][:40] or info["label"][:40] or info["tag"])
        kind = (page.url.split("?")[0], info["within"], info["tag"], info["role"], info["type"])
        if kind not in CHECKED:
            shows = focus_shows(page, info)
            assert shows is not False, f"the keyboard's focus is not visible on {info}"
            if shows:  # else the page redrew it: the next control of its kind is looked at instead
                CHECKED.add(kind)
        if wanted(info):
            return info
    raise AssertionError(f"{what} is out of the keyboard's reach; the stops were: {seen[-60:]}")


def key_to_page(page, name: str, heading: str) -> None:
    """Open a page of the sidebar's navigation by keyboard."""
    tab_to(page, lambda i: i["tag"] == "A" and i["within"] == "stSidebarNavLink" and i["text"] == name,
           f"the navigation's link to {name}")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=heading).wait_for(timeout=WAIT)


def key_button(page, name: str) -> None:
    """Press the button named `name` by keyboard."""
    tab_to(page, lambda i: i["tag"] == "BUTTON" and i["text"] == name, f"the button {name!r}")
    page.keyboard.press("Enter")


def open_file_dialog(page, tries: int = 3):
    """Tab to Predict's photo uploader and open its file dialog with Enter (again where the page redrew the button
    under the key press); returns Playwright's file chooser."""
    from playwright.sync_api import TimeoutError as NoDialog

    for _ in range(tries):
        tab_to(page, lambda i: i["tag"] == "BUTTON" and i["text"] == "Upload" and "photo" in i["label"].lower(),
               "the photo uploader")
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press("Enter")
            return chooser.value
        except NoDialog:
            continue
    raise AssertionError("Enter on the photo uploader opens no file dialog")


def no_violations(axe, page, state: str) -> None:
    """axe-core finds no WCAG 2.1 A or AA violation on the page now."""
    found = violations(axe, page)
    assert not found, f"{state}: " + "; ".join(f"{v['rule']} ({v['impact']}) on {v['elements'][:5]}" for v in found)


def small_hotdog(source: Path, out: Path, train: int = 60, test: int = 20) -> Path:
    """The first photos of each class of the hot-dog set, in its layout: a lesson that ends in seconds."""
    for split, count in (("train", train), ("test", test)):
        for folder in sorted((source / split).iterdir()):
            (out / split / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[:count]:
                shutil.copy(photo, out / split / folder.name / photo.name)
    return out


def test_the_lab_by_keyboard_alone_with_no_wcag_violation_during_and_after_the_lesson(
        tmp_path, shared_hotdog, shared_mobilenet):
    """Choose a dataset, run the lesson, move the learning rate while a run trains, upload a photo on Predict and
    read its prediction, with key presses only; axe-core checks each state on the way."""
    from axe_playwright_python.sync_playwright import Axe  # here: the browser tests alone need axe

    api = browser_or_skip()
    data = small_hotdog(shared_hotdog, tmp_path / "hotdog-small")
    photo = shared_hotdog / "test" / "hotdog" / "0000.jpg"
    axe = Axe()
    with app_server(tmp_path / "cache", tmp_path / "streamlit.log") as url, api() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(url)
        page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=WAIT)

        # choose a dataset: a folder typed in
        key_to_page(page, "Dataset explorer", "Dataset explorer")
        tab_to(page, lambda i: i["type"] == "radio", "the data source")
        page.keyboard.press("ArrowRight")  # the radio group's next source: a local folder
        tab_to(page, lambda i: i["tag"] == "INPUT" and i["label"] == "Dataset folder", "the folder's path")
        page.keyboard.type(str(data))
        page.keyboard.press("Enter")
        key_button(page, "Use this folder")
        page.get_by_text(f"Using {data}").wait_for(timeout=WAIT)

        # the lesson, by keyboard: axe while it trains and after; the status line is a polite live region
        key_to_page(page, "Train", "Train")
        key_button(page, "Fine-tune vs scratch")
        page.get_by_role("button", name="Stop the lesson").wait_for(timeout=WAIT)
        status = page.locator("[role=status][aria-live=polite]").first
        status.wait_for(timeout=WAIT)
        no_violations(axe, page, "Train while the lesson trains")
        changes, last, started = [], status.inner_text(), page.evaluate("performance.now()")
        while page.get_by_role("button", name="Stop the lesson").count() and len(changes) < 3:
            page.wait_for_timeout(250)
            if status.count() and status.inner_text() != last:
                last = status.inner_text()
                changes.append(page.evaluate("performance.now()") - started)
        gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
        assert all(gap >= 1000 * ANNOUNCE_SECONDS - 1500 for gap in gaps), f"the status line changed after {gaps} ms"
        page.get_by_role("heading", name="Runs in this tab").wait_for(timeout=WAIT)
        no_exception(page)
        no_violations(axe, page, "Train after the lesson")
        chart = page.locator("[data-testid=stPlotlyChart]").filter(has=page.locator(".js-plotly-plot")).first
        assert re.match(r"(test|val) accuracy: .+ over \d+ epochs?", chart.get_attribute("aria-label") or
                        page.locator("[aria-label*='accuracy:']").first.get_attribute("aria-label"))

        # a run steered by the slider, moved with the arrow keys while it trains
        key_button(page, "Steer a run")
        page.get_by_role("button", name="Freeze the copied layers").wait_for(timeout=WAIT)
        tab_to(page, lambda i: i["tag"] != "BUTTON" and "Learning rate of the copied layers" in i["text"] + i["label"],
               "the learning-rate slider", backwards=True)  # up from the button, as the slider sits above it
        page.keyboard.press("ArrowRight")
        page.get_by_text("Steered at epoch").first.wait_for(timeout=WAIT)
        marked = """() => [...document.querySelectorAll('.js-plotly-plot')].some(g =>
            (g.layout.title && g.layout.title.text || '').includes('Per batch') &&
            (g.layout.annotations || []).some(a => a.text.startsWith('lr ')))"""
        page.wait_for_function(marked, timeout=WAIT)  # the mark on the chart, and in words for a screen reader:
        page.locator("[aria-label*='; steered at epoch']").first.wait_for(timeout=WAIT)
        no_violations(axe, page, "Train while a steered run trains")
        key_button(page, "Stop")
        page.get_by_text("stopped: epoch").first.wait_for(timeout=WAIT)

        # Predict: a photo chosen through the file dialog the keyboard opens, and its prediction read
        key_to_page(page, "Predict", "Predict")
        chooser = open_file_dialog(page)
        chooser.set_files(str(photo))
        verdict = page.get_by_text(re.compile(r"^(hotdog|not-hotdog) \(\d+\.\d%\)$")).first
        verdict.wait_for(timeout=WAIT)
        label, percent = re.fullmatch(r"(\S+) \((\S+)%\)", verdict.inner_text().strip()).groups()
        alt = page.locator(f"img[alt*='{label}']").first.get_attribute("alt")
        assert percent in alt or f"{float(percent) / 100:.3f}" in alt or f"{float(percent):.0f}" in alt, alt
        no_violations(axe, page, "Predict with a photo")

        key_to_page(page, "Evaluate & explain", "Evaluate & explain")
        page.get_by_text("Confusion matrix").first.wait_for(timeout=WAIT)
        settle(page)
        no_exception(page)
        no_violations(axe, page, "Evaluate after the lesson")
        key_to_page(page, "Experiments", "Experiments")
        no_violations(axe, page, "Experiments after the lesson")
        browser.close()


def test_every_page_cold_in_both_schemes_and_at_a_phones_width(tmp_path, shared_hotdog, shared_mobilenet):
    """axe-core finds nothing on any page cold, in the light and the dark scheme, and at 390 px no page scrolls
    sideways."""
    from axe_playwright_python.sync_playwright import Axe  # here: as above

    api = browser_or_skip()
    axe = Axe()
    with app_server(tmp_path / "cache", tmp_path / "streamlit.log") as url, api() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for scheme, viewport in (("light", {"width": 1400, "height": 1000}), ("dark", PHONE)):
            page = browser.new_page(viewport=viewport, color_scheme=scheme)
            page.goto(url)
            page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=WAIT)
            for name, address in zip(PAGES, ADDRESSES, strict=True):
                if viewport is PHONE:  # the sidebar folds away on a phone: each page by its address
                    page.goto(f"{url}/{address}")
                    page.get_by_role("heading", name=name if name != "Home" else "Fine-tuning lab").wait_for(
                        timeout=WAIT)
                else:
                    open_page(page, name, name if name != "Home" else "Fine-tuning lab")
                settle(page)  # what a page draws once its background work answers
                no_exception(page)
                no_violations(axe, page, f"{name}, cold, {scheme}, {viewport['width']} px")
                if viewport is PHONE:
                    sideways = page.evaluate(SIDEWAYS)
                    assert max(sideways.values()) <= 1, f"{name} scrolls sideways at 390 px: {sideways}"
            page.close()
        browser.close()
