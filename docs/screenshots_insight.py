"""Screenshots of Evaluate & explain, a Grad-CAM prediction and the feature map, for the README.

    python docs/screenshots_insight.py [--out docs]

Starts the app on a loopback port with its own cache folder, fine-tunes mobilenet_v2 (the ImageNet weights
in ../shared/weights) for three epochs on 200 shared hot-dog photos per class at 160 px through the Train page,
then drives Evaluate & explain (clicking a confusion-matrix cell) and Predict in Debian's Chromium with
Playwright. Photos are blurred, as in tests/test_browser.py: the development photo set may be used here but
not redistributed. Needs ../shared (data and weights), Playwright and /usr/bin/chromium; takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
SHARED_HOTDOG = REPO.parent / "shared" / "data" / "hotdog"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
BLUR = "[data-testid='stImage'] img { filter: blur(7px); }"
# True when the "Photos in the cell" selectbox shows `words` (its value is drawn in an input or a div).
CHOSEN_CELL = """(words) => [...document.querySelectorAll('[data-testid=stSelectbox]')]
    .filter(e => e.innerText.includes('Photos in the cell'))
    .some(e => (e.innerText + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')).includes(words))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(cache: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false"],
                            cwd=REPO, env={**os.environ, "FTCORE_CACHE": str(cache)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not start")


def shot(page, path: Path, height: int) -> None:
    page.set_viewport_size({"width": 1400, "height": height})
    page.add_style_tag(content=BLUR)
    page.wait_for_timeout(800)
    page.screenshot(path=path)
    print(f"wrote {path}")


def open_page(page, name: str, heading: str) -> None:
    page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)


def choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def fill(page, label: str, value: str) -> None:
    field = page.get_by_label(label, exact=True)  # "Epochs", not "Output-layer epochs"
    field.fill(value)
    field.press("Enter")


def train(page) -> None:
    open_page(page, "Train", "Train")
    choose(page, "Architecture", "mobilenet_v2")
    fill(page, "Epochs", "3")
    choose(page, "Batch size", "32")
    slider = page.get_by_test_id("stSlider").filter(has_text="Image size").get_by_role("slider")
    slider.press("Home")
    slider.press("ArrowRight")
    slider.press("ArrowRight")
    slider.press("ArrowRight")  # 160 px
    page.get_by_text("More settings", exact=True).click()
    fill(page, "Images per class and split (0 = all)", "200")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("finished: epoch").wait_for(timeout=900_000)
    page.get_by_role("heading", name="Runs in this tab").wait_for(timeout=60_000)


def evaluate(page, out: Path) -> None:
    open_page(page, "Evaluate & explain", "Evaluate & explain")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 1", timeout=300_000)
    # Clicking a cell selects it (the default is the largest mistake cell): first the right answers at the top
    # left, then the not-hot-dogs taken for hot dogs at the bottom left.
    box = page.locator(".js-plotly-plot").first.locator(".nsewdrag").first.bounding_box()
    for (fx, fy), words in (((0.25, 0.25), "true hotdog, predicted hotdog ("),
                            ((0.25, 0.75), "true not-hotdog, predicted hotdog (")):
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.wait_for_function(CHOSEN_CELL, arg=words, timeout=60_000)
    page.wait_for_timeout(1500)
    shot(page, out / "evaluate.png", 1900)
    page.get_by_role("tab", name="Explain").click()
    page.get_by_text("Compute the feature map").click()
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => "
                           "(g.layout.title.text || '').includes('Penultimate'))", timeout=600_000)
    shot(page, out / "explain.png", 2000)


def predict(page, out: Path) -> None:
    open_page(page, "Predict", "Predict")
    photos = [SHARED_HOTDOG / "test" / "hotdog" / "0003.jpg", SHARED_HOTDOG / "test" / "not-hotdog" / "0010.jpg"]
    page.locator("input[type=file]").last.set_input_files([str(p) for p in photos])
    page.get_by_text("Grad-CAM heatmaps").click()
    page.get_by_text("Grad-CAM of").nth(1).wait_for(timeout=120_000)
    shot(page, out / "gradcam.png", 1100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder for the PNGs (default: docs/)")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as cache:
        proc, url = start_app(Path(cache))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(url)
                page.get_by_role("heading", name="Fine-tuning lab").wait_for(timeout=60_000)
                train(page)
                evaluate(page, out)
                predict(page, out)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
