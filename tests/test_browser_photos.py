"""Your own photos, end to end in a real browser: Chromium's fake webcam and uploads through Playwright.

Builds a two-class dataset on the Dataset explorer from uploaded hot-dog photos plus one webcam shot, saves it and
trains on the saved folder; then classifies a webcam shot on Predict with a run saved before the app started.
Uses the helpers of test_browser.py (Debian's Chromium through Playwright's sync API; skipped locally and failed in
CI when either is missing). Screenshots are taken only where $FTCORE_SCREENSHOT_DIR names a folder.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import pytest
from test_browser import (
    CHROMIUM,
    FLAGS,
    browser_or_skip,
    no_exception,
    open_page,
    screenshots_dir,
    shot,
)

from benchmarks.harness.app_server import app_server

pytestmark = pytest.mark.slow

CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
WAIT = 90_000  # ms: Streamlit reruns are asynchronous, and two shared cores are slow
SHOT_WAIT = 15_000  # ms: a shot that has not appeared by then is likely lost; the camera is clicked again
VERDICT = re.compile(r"(hotdog|not-hotdog) \((\d+\.\d)%\)")
# The explorer's metrics as label -> value, read in one pass of the page.
METRICS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')].map(m => [
    m.querySelector('[data-testid="stMetricLabel"]').innerText,
    m.querySelector('[data-testid="stMetricValue"]').innerText]))"""


@pytest.fixture
def playwright_api():
    """Playwright's entry point, checked before any server starts."""
    return browser_or_skip()


@contextmanager
def camera_page(api, url: str, viewport: dict | None = None):
    """A Chromium page on `url` whose camera is the fake one (a moving test pattern), permission granted."""
    with api() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS + CAMERA_FLAGS)
        try:
            context = browser.new_context(viewport=viewport or {"width": 1400, "height": 2000})
            context.grant_permissions(["camera"], origin=url)
            page = context.new_page()
            page.goto(url)
            page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=WAIT)
            yield page
        finally:
            browser.close()


def take_photo(page, scope) -> None:
    """Click the camera widget's Take Photo once the fake stream shows frames, and wait for the shot; click again
    if it never comes."""
    from playwright.sync_api import expect

    camera = scope.get_by_test_id("stCameraInput")
    button = camera.get_by_role("button", name="Take Photo")
    taken = camera.get_by_role("button", name="Clear photo")
    deadline = time.monotonic() + WAIT / 1000
    while True:
        expect(button.or_(taken)).to_be_visible(timeout=WAIT)
        if taken.is_visible():  # a slow shot from the click before
            return
        expect(button).to_be_enabled(timeout=WAIT)  # enabled as the stream opens, before its first frames
        # The fake camera's first frames are black: wait until it has played a moment.
        page.wait_for_function("v => v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 1",
                               arg=camera.locator("video").element_handle(), timeout=WAIT)
        button.click()
        try:  # a rerun that redraws the camera as it is clicked loses the shot under load
            expect(taken).to_be_visible(timeout=SHOT_WAIT)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def class_card(page, name: str):
    """The bordered card of class `name` in the builder (the innermost block holding its uploader's label)."""
    return page.get_by_test_id("stVerticalBlock").filter(has=page.get_by_text(f"Photos of {name}", exact=True)).last


def card_counts(page, labels) -> list[int]:
    """The photo count each class card shows now."""
    return [int(class_card(page, label).get_by_test_id("stMetricValue").inner_text()) for label in labels]


def save_button(page, photos: int):
    return page.get_by_role("button", name=f"Save {photos} photo(s)", exact=True)


def add_class(page, name: str) -> None:
    page.get_by_label("Class name").fill(name)
    page.get_by_role("button", name="Add class").click()
    page.get_by_text(f"Photos of {name}", exact=True).wait_for(timeout=WAIT)


def test_build_a_two_class_dataset_from_uploads_and_the_webcam(playwright_api, tmp_path, shared_hotdog,
                                                               shared_mobilenet):
    from playwright.sync_api import expect

    from ftcore.config import recipe
    from ftcore.train.loop import fit

    cache, name = tmp_path / "cache", "my-hotdogs"
    photos = {label: sorted((shared_hotdog / "train" / label).glob("*.jpg"))[:6] for label in ("hotdog", "not-hotdog")}
    shots = screenshots_dir(tmp_path)
    with app_server(cache, tmp_path / "streamlit.log") as url, camera_page(playwright_api, url) as page:
        open_page(page, "Dataset explorer", "Dataset explorer")
        page.get_by_test_id("stRadio").get_by_text("Your own photos", exact=True).click()
        page.get_by_text("Build a dataset").wait_for(timeout=WAIT)
        page.get_by_label("Dataset name").fill(name)
        page.get_by_label("Dataset name").press("Enter")
        for label in photos:
            add_class(page, label)
        shown, total = [], 0  # each card's count after each addition, read once the rerun drew the Save button
        for label, files in photos.items():
            class_card(page, label).locator("input[type=file]").set_input_files([str(f) for f in files])
            total += len(files)
            expect(save_button(page, total)).to_be_visible(timeout=WAIT)
            shown.append(card_counts(page, photos))
        hotdog = class_card(page, "hotdog")
        hotdog.get_by_text("Webcam", exact=True).click()
        take_photo(page, hotdog)
        total += 1
        expect(save_button(page, total)).to_be_visible(timeout=WAIT)
        shown.append(card_counts(page, photos))
        no_exception(page)
        shot(page, shots / "builder.png", 1300)

        save = save_button(page, 13)
        expect(save).to_be_enabled(timeout=WAIT)
        save.click()
        folder = cache / "datasets" / name
        page.get_by_text("Layout: class folders").wait_for(timeout=WAIT)
        page.get_by_text(f"Using {folder}: classes hotdog, not-hotdog.").wait_for(timeout=WAIT)
        expect(page.get_by_role("table").first).to_be_visible(timeout=WAIT)  # the counts
        # read in one go: the explorer's photo check redraws its metrics while it runs
        page.wait_for_function(f"() => ({METRICS})()['Val images'] !== undefined", timeout=WAIT)
        metrics = page.evaluate(METRICS)
        assert metrics["Classes"] == "2", metrics
        assert int(metrics["Train images"]) + int(metrics["Val images"]) == 13, metrics
        no_exception(page)
        shot(page, shots / "builder-saved.png", 2100)

    assert len(list((folder / "hotdog").iterdir())) == 7
    assert len(list((folder / "not-hotdog").iterdir())) == 6
    result = fit(recipe("finetune", "mobilenet_v2", "quick", data=str(folder),
                                 weights=str(shared_mobilenet), image_size=64, head_epochs=2))
    assert result.history.heldout == "val"
    assert result.history.final().val_acc is not None
    # Checked last so that a wrong count does not hide the rest: each card should count what it holds so far.
    assert shown == [[6, 0], [6, 6], [7, 6]], f"class cards showed {shown} after each addition"


def test_a_webcam_photo_on_predict_gives_class_probabilities(playwright_api, tmp_path, shared_hotdog,
                                                            shared_mobilenet):
    from ftcore.config import recipe
    from ftcore.runs.saved import save_run
    from ftcore.train.loop import fit

    cache = tmp_path / "cache"
    result = fit(recipe("finetune", "mobilenet_v2", "quick", data=str(shared_hotdog),
                        weights=str(shared_mobilenet), image_size=64, head_epochs=2, limit=20))
    run = cache / "runs" / "tiny-mobilenet"
    save_run(result, run)
    shots = screenshots_dir(tmp_path)
    # a run saved by the command line has no owner: a server that shares runs offers it to every tab
    # at a phone's width (390 px), where the camera is most used
    with app_server(cache, tmp_path / "streamlit.log", {"FTCORE_SHARE_RUNS": "1"}) as url, \
            camera_page(playwright_api, url, {"width": 390, "height": 1400}) as page:
        page.goto(f"{url}/predict")
        page.get_by_role("heading", name="Predict").wait_for(timeout=WAIT)
        page.get_by_text(str(run), exact=True).wait_for(timeout=WAIT)  # the caption of the chosen saved run
        page.get_by_text("Webcam", exact=True).click()
        take_photo(page, page)
        verdict = page.get_by_text("%)").first
        problems = page.get_by_test_id("stException").or_(page.get_by_test_id("stAlert"))
        verdict.or_(problems).first.wait_for(timeout=WAIT)
        assert verdict.count(), f"Predict shows no result but: {problems.all_inner_texts()}"
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=WAIT)
        bars = page.evaluate("() => document.querySelector('.js-plotly-plot').data[0].x")
        assert len(bars) == 2 and abs(sum(bars) - 1) < 1e-3, bars
        label, percent = VERDICT.fullmatch(verdict.inner_text().strip()).groups()
        assert float(percent) == pytest.approx(100 * max(bars), abs=0.06)
        no_exception(page)
        shot(page, shots / "predict-webcam.png", 1350)
