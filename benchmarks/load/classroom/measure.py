"""The classroom benchmark's measurements: what is timed, and how.

- page latency, timed inside the page as the student sees it (no driver round trips in the figures): a fresh visit
  of Home or Train until the first frame that shows its title and its late element (`open_timed`), and a rerun of
  an open Train page from the key press until the first frame that shows the new rate (`rerun_timed`);
- latency rounds (a rerun, then a visit of each page), the same idle and under load (`latency_rounds`), and their
  medians per page (`latency_summary`);
- the machine's used memory and every run's events, read from a thread (`Watcher`).

Run through the driver: python -m benchmarks.load.classroom [--repeats 8] [--latency-every 20] ...
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.sync_api import BrowserContext, Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.common import median
from ftcore.records import Status
from ftcore.runs.folder import REQUEST_FILE, read_events

PAGES = {"Home": ("/", "Fine-tuning lab"), "Train": ("/train", "Train")}  # name -> (URL path, its title)
TARGET_LINE = "Target model output layer"  # the Train line that names the output layer's lr
WAIT_MS = 120_000  # generous: a page under load may take long to render


# --------------------------------------------------------------------------------------------------
# Memory and the runs' events, watched from a thread


def used_memory_bytes() -> int:
    """MemTotal - MemAvailable from /proc/meminfo."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, rest = line.split(":", 1)
            values[name] = int(rest.split()[0]) * 1024
    return values["MemTotal"] - values["MemAvailable"]


@dataclass
class RunSeen:
    """One run folder as the watcher saw it; times in seconds since the watcher's origin."""

    id: str
    submitted_ns: int  # request.json's mtime: the order the server queued the runs in
    appeared: float
    started: float | None = None
    first_batch: float | None = None
    ended: float | None = None
    status: str | None = None
    error: str | None = None
    examples: int = 0
    epochs: int = 0
    examples_per_sec: float = 0.0  # the run's own figure: training compute only, as the book reports
    config: dict = field(default_factory=dict)
    offset: int = 0


class Watcher(threading.Thread):
    """Every `period` s: samples the used memory (keeping the peak) and reads new events of every run."""

    def __init__(self, runs: Path, period: float = 0.2):
        super().__init__(name="classroom-watcher", daemon=True)
        self.runs_dir, self.period = runs, period
        self.origin = time.monotonic()
        self.lock = threading.Lock()
        self.runs: dict[str, RunSeen] = {}
        self.peak = 0
        self.series: list[tuple[float, int]] = []  # (time, used bytes), one a second
        self._halt = threading.Event()

    def now(self) -> float:
        """Seconds since the watcher's origin."""
        return time.monotonic() - self.origin

    def reset_peak(self) -> int:
        """Start a new peak from the memory used now; returns that."""
        used = used_memory_bytes()
        with self.lock:
            self.peak = used
        return used

    def stop(self) -> None:
        """End the thread (within a period) and wait for it."""
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        """The thread: sample and read until stopped."""
        last_series = -1.0
        while not self._halt.is_set():
            now, used = self.now(), used_memory_bytes()
            with self.lock:
                self.peak = max(self.peak, used)
                if now - last_series >= 1.0:
                    self.series.append((round(now, 1), used))
                    last_series = now
            self._scan(now)
            self._halt.wait(self.period)

    def _scan(self, now: float) -> None:
        try:
            folders = [e for e in os.scandir(self.runs_dir) if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            return
        names = {entry.name for entry in folders}
        with self.lock:  # a run cancelled while queued takes its folder with it
            for run in self.runs.values():
                if run.ended is None and run.id not in names:
                    run.ended, run.status = now, Status.CANCELLED.value
        for entry in folders:
            with self.lock:
                run = self.runs.get(entry.name)
            if run is None:
                request = Path(entry.path) / REQUEST_FILE
                try:
                    submitted = request.stat().st_mtime_ns
                    config = json.loads(request.read_text())["config"]
                except (OSError, ValueError, KeyError):
                    continue  # being written: next time
                run = RunSeen(entry.name, submitted, now, config=config)
                with self.lock:
                    self.runs[entry.name] = run
            if run.ended is not None:
                continue
            events, run.offset = read_events(Path(entry.path), run.offset)
            with self.lock:
                for event in events:
                    kind = event.get("type")
                    if kind == "started" and run.started is None:
                        run.started = now
                    elif kind == "batch" and run.first_batch is None:
                        run.first_batch = now
                    elif kind == "epoch":
                        run.examples += int(event["record"]["examples"])
                        run.epochs += 1
                        run.examples_per_sec = float(event.get("examples_per_sec") or 0.0)
                    elif kind == "end":
                        run.ended, run.status, run.error = now, event.get("status"), event.get("error")

    def snapshot(self) -> list[RunSeen]:
        """The runs seen so far, in the order the server queued them."""
        with self.lock:
            return sorted((RunSeen(**asdict(r)) for r in self.runs.values()), key=lambda r: (r.submitted_ns, r.id))


# --------------------------------------------------------------------------------------------------
# In the page: a fresh visit, a rerun


def settle(page: Page, timeout: float = 120.0) -> None:
    """Wait until Streamlit has finished rerunning the page (no running icon for half a second)."""
    icon = page.get_by_test_id("stStatusWidgetRunningIcon")
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        if icon.count() == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 0.5:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(100)


def title(page: Page, name: str) -> Locator:
    """The page's title (h1), by its text."""
    return page.locator("h1").filter(has_text=re.compile(rf"^\s*{re.escape(PAGES[name][1])}\s*$")).first


PAGES_READY = {"Home": "Classify your own photos", "Train": "Start"}  # a late element's text: a page link, a button

# Times a fresh page inside the page, as the student sees it: from the navigation's start to the first frame that
# shows the title, and to the first that shows a late element (PAGES_READY), which the student waits for before they
# can act. Run before any of the page's own scripts; the driver's round trips, which a busy machine lengthens, are
# not in the figures.
OPEN_WATCH_JS = """((title, late) => {
  const timing = (window.__openTiming = {title: null, ready: null});
  const NativeWebSocket = window.WebSocket;  // the phases before the title: the socket's opening, its first message
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { timing.socket ??= performance.now(); });
      this.addEventListener("message", () => { timing.message ??= performance.now(); });
    }
  };
  const shown = (el) => { const box = el?.getBoundingClientRect(); return !!box && box.width > 0 && box.height > 0; };
  const find = {
    title: () => [...document.querySelectorAll("h1 [data-heading-text]")].find((e) => e.textContent.trim() === title),
    ready: () => [...document.querySelectorAll("p")].find((e) => e.textContent.trim() === late),
  };
  const seen = new Set();
  const look = () => {
    for (const key of ["title", "ready"]) {
      if (!seen.has(key) && shown(find[key]())) {
        seen.add(key);
        requestAnimationFrame(() => { timing[key] = performance.now(); });
      }
    }
    if (seen.size === 2) observer.disconnect();
  };
  const observer = new MutationObserver(look);
  observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
})"""

OPEN_PHASES = {"dom": "the page's scripts loaded", "socket": "its socket open",
               "message": "the server's first message"}  # in the order they happen, before the title
OPEN_DONE_JS = "() => { const t = window.__openTiming; return !!t && t.title !== null && t.ready !== null; }"


def open_timed(context: BrowserContext, url: str, name: str) -> dict:
    """Open `name` in a fresh page: seconds, timed in the page from the navigation's start, until the first frame
    that shows its title and until the first that shows its late element."""
    page = context.new_page()
    page.add_init_script(f"{OPEN_WATCH_JS}({json.dumps(PAGES[name][1])}, {json.dumps(PAGES_READY[name])})")
    start = time.perf_counter()
    try:
        page.goto(url + PAGES[name][0], wait_until="commit", timeout=WAIT_MS)
        page.wait_for_function(OPEN_DONE_JS, timeout=WAIT_MS)
        timing = page.evaluate("() => ({...window.__openTiming, "
                               "dom: performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd})")
        return {"page": name, **{f"{key}_s": round(timing[key] / 1000, 3) for key in ("title", "ready")},
                "phases": {f"{key}_s": round(timing[key] / 1000, 3) for key in OPEN_PHASES if timing.get(key)}}
    except PlaywrightTimeout:  # a page that never showed counts as the wait it took, marked
        waited = round(time.perf_counter() - start, 3)
        return {"page": name, "title_s": waited, "ready_s": waited, "timed_out": True}
    finally:
        page.close()


# Times a rerun inside the page, as the student sees it: from the key press to the first frame that shows the new
# learning rate. Watching the page from here instead would add the driver's round trips, which a busy machine
# lengthens, to what is measured.
RERUN_WATCH_JS = """(label) => {
  const shown = () => [...document.querySelectorAll("p")].find((p) => p.textContent.includes(label))?.textContent;
  const before = shown();
  const timing = (window.__rerunTiming = {start: null, end: null});
  document.addEventListener("keydown", () => { timing.start ??= performance.now(); }, {once: true, capture: true});
  const observer = new MutationObserver(() => {
    if (timing.start !== null && shown() !== before) {
      observer.disconnect();
      requestAnimationFrame(() => { timing.end = performance.now(); });
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def rerun_timed(page: Page, step: int) -> dict:
    """On an open Train page, move the learning-rate slider one notch (`step` +1 right, -1 left): seconds, timed in
    the page, from the key press until the first frame that shows the new rate (the output layer's lr in the
    "Target model output layer" line)."""
    slider = page.get_by_role("slider").first
    page.locator("p", has_text=TARGET_LINE).first.wait_for(timeout=WAIT_MS)
    slider.focus()
    page.evaluate(RERUN_WATCH_JS, TARGET_LINE)
    started = time.perf_counter()
    slider.press("ArrowRight" if step > 0 else "ArrowLeft")
    try:
        page.wait_for_function("() => window.__rerunTiming.end !== null", timeout=WAIT_MS)
    except PlaywrightTimeout:
        return {"page": "Train rerun", "title_s": round(time.perf_counter() - started, 3), "timed_out": True}
    timing = page.evaluate("() => window.__rerunTiming")
    return {"page": "Train rerun", "title_s": round((timing["end"] - timing["start"]) / 1000, 3)}


# --------------------------------------------------------------------------------------------------
# Latency rounds


def latency_round(context: BrowserContext, url: str, rerun_page: Page, index: int) -> tuple[list[dict], dict]:
    """One round of the latency probe, the same with or without load: a rerun of the open Train page (the slider
    right on even rounds, back left on odd ones), then a fresh visit of each page once that rerun has finished. The
    rerun comes first, after the quiet gap between rounds, and the visits after its whole script run (it shows the
    new rate early on), so that no measurement waits on the end of another's."""
    rerun = rerun_timed(rerun_page, 1 if index % 2 == 0 else -1)
    settle(rerun_page)
    return [open_timed(context, url, name) for name in PAGES], rerun


def latency_rounds(context: BrowserContext, url: str, repeats: int, every: float, rerun_page: Page,
                   notches: itertools.count, when: str) -> tuple[list[dict], list[dict]]:
    """`repeats` latency rounds, one every `every` seconds (the pace of the rounds under load): (visits, reruns),
    each marked `when` (idle "before" the class or "after" it). `notches` numbers the reruns of the whole benchmark, so
    that the slider goes right and left in turn and never drifts toward its end."""
    samples, reruns = [], []
    for i in range(repeats):
        began = time.monotonic()
        visits, rerun = latency_round(context, url, rerun_page, next(notches))
        samples += [{**visit, "when": when} for visit in visits]
        reruns.append({**rerun, "when": when})
        if i < repeats - 1:
            time.sleep(max(0.0, every - (time.monotonic() - began)))
    return samples, reruns


def open_rerun_page(context: BrowserContext, url: str) -> Page:
    """A Train page kept open for the widget reruns, its first draw done."""
    page = context.new_page()
    page.goto(url + "/train", timeout=WAIT_MS)
    page.get_by_role("button", name="Start").wait_for(timeout=WAIT_MS)
    settle(page)
    return page


def latency_summary(samples: list[dict]) -> dict:
    """Per page: how many visits, the medians of their title, late element and phases, and how many timed out."""
    out = {}
    for name in PAGES:
        mine = [s for s in samples if s["page"] == name]
        out[name] = {"n": len(mine), "title_s": median([s["title_s"] for s in mine]),
                     "ready_s": median([s["ready_s"] for s in mine]),
                     "phases": {f"{key}_s": median([s["phases"][f"{key}_s"] for s in mine
                                                    if f"{key}_s" in s.get("phases", {})]) for key in OPEN_PHASES},
                     "timed_out": sum(bool(s.get("timed_out")) for s in mine)}
    return out
