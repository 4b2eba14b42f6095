"""A class sharing one server: N browser sessions press Start on the Train page at once.

    python -m benchmarks.classroom [--sessions 6] [--per-class 100] [--epochs 5] [--screenshots DIR]
                                   [--out benchmarks/results/classroom-cpu.txt] [--no-solo] [--cluster-nodes N]
                                   [--repeats 8] [--latency-every 20] [--measure-for S] [--class-nice 19]

Starts `streamlit run streamlit_app.py` on a loopback port with a temporary FTCORE_CACHE (so its runs folder
starts empty) and FTCORE_DATA at the shared hot-dog photos, and drives it with Debian's Chromium through
Playwright. It measures the page latency idle in rounds, one every --latency-every seconds: a rerun of a Train
page kept open (the learning-rate slider moved one notch, timed in the page from the key press to the frame that
shows the new rate), then a fresh page of Home and of Train (timed in the page from the navigation's start to the
first frame that shows its title, and to the first that shows its late element: Start on Train, the last page link
on Home; and, before the title, when the page's scripts had loaded, its socket opened and the server's first
message came). Then it opens `--sessions` browser contexts (separate Streamlit sessions) on Train, chooses From
scratch and `--per-class` images per class and split in each (every other setting keeps its default), and presses
Start in all of them in a tight loop. While the scheduler trains the runs ($FTCORE_MAX_RUNS at a time, the rest
queued) it samples the machine's used memory every 0.2 s, reads every run's events.jsonl, and measures the same
rounds at the same pace under load. Once the runs have ended it measures the idle rounds again: the idle figures
are the medians of the rounds before and after the class, so that a shared machine drifting over the minutes does
not lean on one side. Afterwards one more session trains alone (unless --no-solo) for the one-run-alone speed.
With --cluster-nodes N the runs go to a Ray cluster of N nodes started on this machine on loopback
(benchmarks.ray_cluster, 2 CPUs each) through FTCORE_RAY_ADDRESS, with the runs folder as FTCORE_RUNS_DIR, instead
of the server's child processes. With --class-nice N the class's sessions run in a second Chromium at niceness N,
so that their rendering takes only CPU time the probe's pages leave, as it would on the students' own computers.
Prints a report, writes it to --out and the raw numbers beside it as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.sync_api import Locator
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.app_server import app_server
from ftcore.data.download import find_data
from ftcore.devices.machine import machine_description
from ftcore.records import ENDED, Status
from ftcore.runs.folder import REQUEST_FILE, read_events
from ftcore.runs.local import SLOTS_ENV, default_slots

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCRATCH = "From scratch (random weights)"  # ui.MODE_LABELS["scratch"]
LIMIT_LABEL = "Images per class and split (0 = all)"
PAGES = {"Home": ("/", "Fine-tuning lab"), "Train": ("/train", "Train")}  # name -> (URL path, its title)
GOAL_RATIO = 1.3  # page latency during training over idle
ENDED_WORDS = tuple(status.value for status in ENDED)
STATUS_WORDS = tuple(status.value for status in Status if status != Status.NEW)
SETTLE_SECONDS = 15.0  # after the last run ends, how long the pages get to show it (3 polls of a queued tab)
TARGET_LINE = "Target model output layer"  # the Train line that names the output layer's lr
WAIT_MS = 120_000  # generous: a page under load may take long to render


# --------------------------------------------------------------------------------------------------
# The server


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
        return time.monotonic() - self.origin

    def reset_peak(self) -> int:
        """Start a new peak from the memory used now; returns that."""
        used = used_memory_bytes()
        with self.lock:
            self.peak = used
        return used

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
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
# The browser side


def settle(page, timeout: float = 120.0) -> None:
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


def title(page, name: str) -> Locator:
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


def open_timed(context, url: str, name: str) -> dict:
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


def rerun_timed(page, step: int) -> dict:
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


def status_line(page) -> str | None:
    """The Train page's status line (the progress bar's text), or None when it shows none."""
    bar = page.get_by_test_id("stProgress")
    try:
        if bar.count() == 0:
            return None
        text = " ".join(bar.first.inner_text(timeout=2_000).split())
    except Exception:  # the fragment redraws it every second; try again next time
        return None
    return text if text.startswith(STATUS_WORDS) else None


@dataclass
class Session:
    """One browser context (one Streamlit session) on the Train page."""

    number: int
    context: object = field(repr=False)
    page: object = field(repr=False)
    clicked: float | None = None  # watcher time of its Start click
    first_status: str | None = None
    statuses: list[tuple[float, str]] = field(default_factory=list)  # (time, status word) when it changed
    last_line: str | None = None
    run_id: str | None = None
    mapped_by: str = ""


def prepare(page, url: str, per_class: int, epochs: int) -> None:
    """Train page, From scratch, `per_class` images per class and split, `epochs` if not the default."""
    page.goto(url + "/train", timeout=WAIT_MS)
    title(page, "Train").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Start").wait_for(timeout=WAIT_MS)
    settle(page)
    page.get_by_text(SCRATCH, exact=True).click()
    page.get_by_text("Defaults for resnet18 from scratch").wait_for(timeout=WAIT_MS)
    settle(page)
    page.get_by_text("More settings", exact=True).click()
    limit = page.get_by_label(LIMIT_LABEL)
    limit.fill(str(per_class))
    limit.press("Enter")
    settle(page)
    box = page.get_by_label("Epochs", exact=True)
    if int(box.input_value()) != epochs:
        box.fill(str(epochs))
        box.press("Enter")
        settle(page)
    if limit.input_value() != str(per_class) or int(box.input_value()) != epochs:
        raise SystemExit(f"the Train page did not keep the settings: {LIMIT_LABEL} {limit.input_value()}, "
                         f"Epochs {box.input_value()}")
    if not page.get_by_role("button", name="Start").is_enabled():
        raise SystemExit("Start is disabled on the Train page (no data found?)")


def stop_run(page) -> None:
    """Press the Train page's Stop (or, while queued, Cancel) button."""
    for name in ("Stop", "Cancel"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count() and button.first.is_enabled():
            button.first.click()
            return


def watch_status(session: Session, now: float) -> None:
    line = status_line(session.page)
    if line is None:
        return
    session.last_line = line
    session.first_status = session.first_status or line
    word = line.split(":", 1)[0].split()[0]
    if not session.statuses or session.statuses[-1][1] != word:
        session.statuses.append((round(now, 1), word))


def settle_statuses(sessions: list[Session], watcher, seconds: float) -> None:
    """Read every session's status line again until each shows how its run ended, or `seconds` pass: a page
    learns of the end at its next poll, up to a poll interval after the run's folder says so."""
    deadline = time.monotonic() + seconds
    while True:
        for session in sessions:
            watch_status(session, watcher.now())
        if all((s.last_line or "").startswith(ENDED_WORDS) for s in sessions) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def run_id_from_download(page, problems: list[str], tries: int = 3) -> str | None:
    """The run id of the session's (first) finished run: the file name its "Checkpoint #1" button offers."""
    button = page.get_by_role("button", name="Checkpoint #1")
    for _ in range(tries):
        try:
            settle(page, timeout=30)
            button.wait_for(timeout=60_000)
            with page.expect_download(timeout=60_000) as info:
                button.click()
            download = info.value
            name = download.suggested_filename
            download.delete()
            return name[:-3] if name.endswith(".pt") else name
        except Exception as e:  # no model (a failed run), or the page did not offer it yet
            problem = str(e).splitlines()[0][:160]
    problems.append(problem)
    return None


def map_sessions(sessions: list[Session], runs: list[RunSeen], notes: list[str], shots: Path | None) -> None:
    """Each session's run: exactly by its checkpoint's file name, else by the order the runs started in."""
    ids = {run.id for run in runs}
    for session in sessions:
        if (session.last_line or "").startswith(Status.CANCELLED.value):
            continue  # cancelled while queued: no run, no checkpoint to ask its page for
        problems: list[str] = []
        run_id = run_id_from_download(session.page, problems)
        if run_id in ids:
            session.run_id, session.mapped_by = run_id, "checkpoint"
        else:
            notes.append(f"session {session.number}: no run id from its Checkpoint #1 button ({run_id or problems}); "
                         f"its status line: {status_line(session.page)}")
            if shots is not None:
                session.page.set_viewport_size({"width": 1400, "height": 2400})
                session.page.screenshot(path=shots / f"classroom-session-{session.number}-unmatched.png")
    taken = {s.run_id for s in sessions}
    left = sorted((r for r in runs if r.id not in taken), key=lambda r: (r.started is None, r.started or 0,
                                                                         r.submitted_ns))

    def began(s: Session) -> float:
        return next((t for t, word in s.statuses if word != "queued"), float("inf"))

    for session, run in zip(sorted((s for s in sessions if s.run_id is None), key=began), left, strict=False):
        session.run_id, session.mapped_by = run.id, "order"


# --------------------------------------------------------------------------------------------------
# The report


def server_tracebacks(log: str, keep: int = 40) -> list[str]:
    """Each traceback in the server's output with the lines that follow it (at most `keep`)."""
    lines = log.splitlines()
    return ["\n".join(lines[i:i + keep]) for i, line in enumerate(lines) if line.startswith("Traceback")]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def latency_summary(samples: list[dict]) -> dict:
    out = {}
    for name in PAGES:
        mine = [s for s in samples if s["page"] == name]
        out[name] = {"n": len(mine), "title_s": median([s["title_s"] for s in mine]),
                     "ready_s": median([s["ready_s"] for s in mine]),
                     "phases": {f"{key}_s": median([s["phases"][f"{key}_s"] for s in mine
                                                    if f"{key}_s" in s.get("phases", {})]) for key in OPEN_PHASES},
                     "timed_out": sum(bool(s.get("timed_out")) for s in mine)}
    return out


def ratio(during: float | None, idle: float | None) -> float | None:
    return during / idle if during is not None and idle else None


def write_report(text: str, result: dict, out: Path) -> None:
    """Print the report, write it to `out` and the raw numbers beside it as JSON."""
    print(text, end="")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"# wrote {out} and {out.with_suffix('.json')}")


def idle_split(lat: dict) -> str | None:
    """The idle medians of the rounds before the class and of those after it, side by side (None without both)."""
    visits, reruns = lat["idle_samples"], lat.get("idle_reruns", [])
    if not any(v.get("when") == "after" for v in visits):
        return None
    parts = []
    for name in PAGES:
        pair = [median([v["title_s"] for v in visits if v["page"] == name and v.get("when") == when])
                for when in ("before", "after")]
        parts.append(f"{name} {fmt(pair[0], '.2f')} / {fmt(pair[1], '.2f')} s")
    pair = [median([r["title_s"] for r in reruns if r.get("when") == when]) for when in ("before", "after")]
    parts.append(f"Train rerun {fmt(pair[0], '.2f')} / {fmt(pair[1], '.2f')} s")
    return ", ".join(parts)


def report(result: dict) -> str:
    s, c = result["settings"], result["class"]
    photos = f"{s['per_class']} images per class and split" if s["per_class"] else "all photos (the page's default)"
    lines = [f"Classroom benchmark: {s['sessions']} browser sessions press Start on Train at once, one server",
             f"machine: {result['machine']}",
             f"settings: {s['arch']} from scratch, the book's recipe, {s['epochs']} epochs, batch {s['batch_size']}, "
             f"image size {s['image_size']}, precision {s['precision']}; {photos}",
             *(["  (deviates from the page default 0 = all photos, to keep the benchmark minutes long instead of "
                "an hour)"] if s["per_class"] else []),
             *([f"measured for the first {result['stopped_at_s']:.0f} s of training, then Stop pressed on every "
                "page"] if result.get("stopped_at_s") else []),
             (f"cluster: {s['cluster_nodes']} Ray nodes on this machine, one run each at a time, the rest queued "
              "in the server first in first out; the browsers run on this machine too" if s.get("cluster_nodes") else
              f"server: {SLOTS_ENV}={s['slots']} run(s) trained at once, the rest queued first in first out; the "
              "browsers run on this machine too"),
             *([f"the class's sessions in a second browser at nice {s['class_nice']}; the latency probe's at nice 0"]
               if s.get("class_nice") else []),
             f"Start clicks: {s['sessions']} within {c['click_spread_s']:.2f} s", ""]
    header = (f"{'session':>7s}  {'run id':26s} {'wait to 1st batch':>17s} {'run time':>8s} {'examples':>8s} "
              f"{'run img/s':>9s}  {'status':9s} first status line shown after Start")
    lines += [header, "-" * len(header)]
    for row in c["sessions"]:
        run_id = (row["run_id"] or "?") + ("*" if row["mapped_by"] == "order" else "")
        lines.append(f"{row['session']:>7d}  {run_id:26s} {fmt(row['wait_to_first_batch_s'], '.1f', ' s'):>17s} "
                     f"{fmt(row['run_time_s'], '.1f', ' s'):>8s}"
                     f" {row['examples']:>8d} {fmt(row['examples_per_sec'], '.1f'):>9s}  {row['status'] or '-':9s} "
                     f"{row['first_status'] or '-'}")
    lines.append("wait to 1st batch: from the session's Start click to its first training step's end; run time: "
                 "from the run's start (data and model ready) to its end; run img/s: the run's own examples/sec "
                 "(training compute, as the book reports)")
    if any(row["mapped_by"] == "order" for row in c["sessions"]):
        lines.append("* matched to the session by start order (no checkpoint to read its id from)")
    lines.append("")
    lines.append(f"total images/sec: {fmt(c['images_per_sec'], '.2f')} ({c['examples']} training examples over "
                 f"{fmt(c['span_s'], '.1f', ' s')}, first Start click to last end)")
    solo = result.get("solo")
    if solo:
        lines.append(f"one run alone: {fmt(solo['images_per_sec'], '.2f')} images/sec ({solo['examples']} examples "
                     f"over {fmt(solo['span_s'], '.1f', ' s')}, Start click to end, of one more session started "
                     f"alone after the class; {fmt(solo['training_images_per_sec'], '.2f')} from its start; "
                     f"its wait to 1st batch {fmt(solo['wait_to_first_batch_s'], '.1f', ' s')})")
        if c["images_per_sec"] and solo["images_per_sec"]:
            lines.append(f"  class total / alone: {c['images_per_sec'] / solo['images_per_sec']:.2f}x")
    first = c.get("first_run_alone")
    if first:
        lines.append(f"first run of the class, start to end: {fmt(first['images_per_sec'], '.2f')} images/sec"
                     f" ({first['examples']} examples over {fmt(first['span_s'], '.1f', ' s')})")
    m = result["memory"]
    lines.append(f"memory used (MemTotal - MemAvailable): {gib(m['before'])} before the clicks (server and "
                 f"{s['sessions']} + 1 browser contexts up), peak {gib(m['peak'])} while training "
                 f"(+{gib(m['peak'] - m['before'])}); {gib(m['total'])} total")
    lat = result["latency"]
    lines.append("")
    lines.append("page latency, fresh page, timed in the page from the navigation's start: until a frame shows the "
                 "title (h1) [until one shows Start / the last Home link]")
    lines.append(f"{'page':6s} {'idle':>16s} {'during training':>18s} {'ratio':>14s}")
    for name in PAGES:
        idle, busy = lat["idle"][name], lat["during"][name]
        r_title, r_ready = ratio(busy["title_s"], idle["title_s"]), ratio(busy["ready_s"], idle["ready_s"])
        lines.append(f"{name:6s} {fmt(idle['title_s'], '.2f')} [{fmt(idle['ready_s'], '.2f')}] s"
                     f"{'':>3s}{fmt(busy['title_s'], '.2f')} [{fmt(busy['ready_s'], '.2f')}] s"
                     f"{'':>3s}{fmt(r_title, '.2f', 'x')} [{fmt(r_ready, '.2f', 'x')}]"
                     f"   medians of {idle['n']} / {busy['n']}")
    for name in PAGES:
        idle, busy = lat["idle"][name].get("phases", {}), lat["during"][name].get("phases", {})
        if idle:
            lines.append(f"  {name} before its title, idle -> during: " + "; ".join(
                f"{words} at {fmt(idle[f'{key}_s'], '.2f')} -> {fmt(busy.get(f'{key}_s'), '.2f')} s"
                for key, words in OPEN_PHASES.items()))
    rerun = lat.get("rerun")
    ratios = [ratio(lat["during"][n][key], lat["idle"][n][key]) for n in PAGES for key in ("title_s", "ready_s")]
    if rerun:
        r_rerun = ratio(rerun["during"], rerun["idle"])
        lines.append(f"{'Train rerun':12s} {fmt(rerun['idle'], '.2f')} s{'':>8s}{fmt(rerun['during'], '.2f')} s"
                     f"{'':>8s}{fmt(r_rerun, '.2f', 'x')}   medians of {rerun['n'][0]} / {rerun['n'][1]} "
                     "(the lr slider moved one notch on an open Train page, until a frame shows the new rate)")
        ratios.append(r_rerun)
    split = idle_split(lat)
    if split:
        lines.append(f"idle rounds before the class / after it: {split}")
    if all(r is not None for r in ratios):
        verdict = "met" if max(ratios) <= GOAL_RATIO else "not met"
        lines.append(f"goal: page open (title and late element) and rerun during training within {GOAL_RATIO}x of "
                     f"idle: {verdict} "
                     f"(worst {max(ratios):.3f}x)")
    if lat.get("warmup"):
        lines.append("first visits (not counted): " + ", ".join(f"{w['page']} {w['title_s']:.2f} s"
                                                                for w in lat["warmup"]))
    if result.get("notes"):
        lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The benchmark


def latency_round(context, url: str, rerun_page, index: int) -> tuple[list[dict], dict]:
    """One round of the latency probe, the same with or without load: a rerun of the open Train page (the slider
    right on even rounds, back left on odd ones), then a fresh visit of each page once that rerun has finished. The
    rerun comes first, after the quiet gap between rounds, and the visits after its whole script run (it shows the
    new rate early on), so that no measurement waits on the end of another's."""
    rerun = rerun_timed(rerun_page, 1 if index % 2 == 0 else -1)
    settle(rerun_page)
    return [open_timed(context, url, name) for name in PAGES], rerun


def latency_rounds(context, url: str, repeats: int, every: float, rerun_page, notches: itertools.count,
                 when: str) -> tuple[list[dict], list[dict]]:
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


def open_rerun_page(context, url: str):
    """A Train page kept open for the widget reruns, its first draw done."""
    page = context.new_page()
    page.goto(url + "/train", timeout=WAIT_MS)
    page.get_by_role("button", name="Start").wait_for(timeout=WAIT_MS)
    settle(page)
    return page


def run_solo(browser, url: str, watcher: Watcher, args, timeout: float) -> dict | None:
    """One more session, alone on the server: its run's speed without anything queued beside it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    prepare(page, url, args.per_class, args.epochs)
    known = {r.id for r in watcher.snapshot()}
    watcher.reset_peak()
    clicked = watcher.now()
    page.get_by_role("button", name="Start").click()
    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        run = next((r for r in watcher.snapshot() if r.id not in known), None)
        if run is not None and run.ended is not None:
            break
        time.sleep(0.5)
    context.close()
    if run is None or run.ended is None:
        return None
    span = run.ended - clicked
    training = run.ended - run.started if run.started is not None else None
    return {"run_id": run.id, "status": run.status, "examples": run.examples, "span_s": span,
            "images_per_sec": run.examples / span if span > 0 else None,
            "training_images_per_sec": run.examples / training if training else None, "run_time_s": training,
            "wait_to_first_batch_s": run.first_batch - clicked if run.first_batch is not None else None,
            "run_examples_per_sec": run.examples_per_sec, "peak_memory": watcher.peak}


def niced(executable: str, niceness: int, folder: Path) -> str:
    """A script in `folder` that runs `executable` with its arguments at `niceness` (its child processes too)."""
    script = folder / f"chromium-nice-{niceness}"
    script.write_text(f'#!/bin/sh\nexec nice -n {niceness} "{executable}" "$@"\n')
    script.chmod(0o755)
    return str(script)


def classroom(args) -> dict:
    from playwright.sync_api import sync_playwright

    data = find_data()
    if data is None:
        raise SystemExit("no hot-dog photos found (ftcore.data.find_data()); set FTCORE_DATA")
    slots = default_slots()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="classroom-") as tmp:
        cache = Path(tmp) / "cache"
        log = Path(tmp) / "streamlit.log"
        runs_dir = cache / "runs"
        env = {"FTCORE_DATA": str(data)}
        shots = Path(args.screenshots) if args.screenshots else None
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
        stack = contextlib.ExitStack()
        if args.cluster_nodes:
            from benchmarks.ray_cluster import LocalRayCluster

            cluster = LocalRayCluster(cpus=2).start()
            stack.callback(cluster.stop)
            for _ in range(args.cluster_nodes - 1):
                cluster.add_node()
            env.update({"FTCORE_RAY_ADDRESS": cluster.address, "FTCORE_RUNS_DIR": str(runs_dir)})
            notes.append(f"runs on a Ray cluster of {args.cluster_nodes} nodes on this machine (2 CPUs each, one "
                         "run each), not the server's child processes")
        with stack, app_server(cache, log, env) as url, sync_playwright() as p:
            print(f"# server at {url}, data {data}, cache {cache}", flush=True)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            probe = browser.new_context(viewport={"width": 1400, "height": 1000})
            students = browser
            if args.class_nice:  # the class's tabs in a browser of their own, yielding the CPU to the probe's
                students = p.chromium.launch(executable_path=niced(CHROMIUM, args.class_nice, Path(tmp)),
                                             args=FLAGS)
            rerun_page = open_rerun_page(probe, url)
            warmup = [open_timed(probe, url, name) for name in PAGES]  # the server's first visit imports and caches
            notches = itertools.count()
            idle, idle_reruns = latency_rounds(probe, url, args.repeats, args.latency_every, rerun_page, notches,
                                             "before")
            print(f"# idle latency: {latency_summary(idle)}; reruns {median([r['title_s'] for r in idle_reruns])}",
                  flush=True)

            sessions = []
            for i in range(args.sessions):
                context = students.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                prepare(page, url, args.per_class, args.epochs)
                sessions.append(Session(i + 1, context, page))
                print(f"# session {i + 1} ready", flush=True)

            watcher = Watcher(runs_dir)
            watcher.start()
            time.sleep(1.0)
            before = watcher.reset_peak()
            buttons = [s.page.get_by_role("button", name="Start") for s in sessions]
            for session, button in zip(sessions, buttons, strict=True):
                session.clicked = watcher.now()
                button.click()
            clicks_done = watcher.now()
            first_click = sessions[0].clicked
            print(f"# {len(sessions)} Start clicks in {clicks_done - first_click:.2f} s", flush=True)
            settled = time.monotonic() + 30  # each page's first status line after its Start (queued: ...)
            while time.monotonic() < settled and any(s.first_status is None for s in sessions):
                for session in sessions:
                    if session.first_status is None:
                        watch_status(session, watcher.now())
                time.sleep(0.2)

            during: list[dict] = []
            during_reruns: list[dict] = []
            stopped_at = None  # with --measure-for: when the benchmark pressed Stop on every page
            deadline = time.monotonic() + args.timeout
            next_latency = time.monotonic() + 2.0
            next_status = 0.0
            last_new, count = time.monotonic(), 0
            shot_taken = shots is None
            while time.monotonic() < deadline:
                runs = watcher.snapshot()
                if len(runs) != count:
                    last_new, count = time.monotonic(), len(runs)
                ended = runs and all(r.ended is not None for r in runs)
                if ended and (len(runs) >= len(sessions) or time.monotonic() - last_new > 120):
                    break
                if not runs and time.monotonic() - last_new > 120:
                    notes.append("no run folder appeared within 120 s of the Start clicks")
                    break
                if time.monotonic() >= next_status:
                    for session in sessions:
                        watch_status(session, watcher.now())
                    next_status = time.monotonic() + args.status_every
                if not shot_taken:
                    queued = next((s for s in reversed(sessions) if (s.last_line or "").startswith("queued:")), None)
                    if queued is not None:
                        queued.page.set_viewport_size({"width": 1400, "height": 1600})
                        queued.page.wait_for_timeout(300)
                        queued.page.screenshot(path=shots / "classroom-queued.png")
                        queued.page.set_viewport_size({"width": 1400, "height": 1000})
                        notes.append(f"screenshot: {shots / 'classroom-queued.png'} (session {queued.number}: "
                                     f"{queued.last_line})")
                        shot_taken = True
                if stopped_at is None and args.measure_for and watcher.now() - first_click >= args.measure_for:
                    stopped_at = watcher.now() - first_click
                    for session in sessions:
                        stop_run(session.page)
                    print(f"# t={stopped_at:.0f} s: measured for {args.measure_for:.0f} s; Stop pressed on every "
                          "page", flush=True)
                if stopped_at is None and time.monotonic() >= next_latency:
                    at = round(watcher.now() - first_click, 1)
                    visits, rerun = latency_round(probe, url, rerun_page, next(notches))
                    during += [{**visit, "at_s": at} for visit in visits]
                    during_reruns.append({**rerun, "at_s": at})
                    print(f"# t={watcher.now() - first_click:.0f} s latency {during[-2:]} rerun "
                          f"{during_reruns[-1]['title_s']} s; runs ended "
                          f"{sum(r.ended is not None for r in runs)}/{len(runs)}", flush=True)
                    next_latency = time.monotonic() + args.latency_every
                time.sleep(0.2)
            else:
                notes.append(f"timed out after {args.timeout:.0f} s with runs still training")
            settle_statuses(sessions, watcher, SETTLE_SECONDS)
            peak = watcher.peak
            runs = watcher.snapshot()
            last_end = max((r.ended for r in runs if r.ended is not None), default=None)
            # only samples taken while runs trained count as "during training"
            during = [d for d in during if last_end is None or d["at_s"] + first_click <= last_end]
            during_reruns = [d for d in during_reruns if last_end is None or d["at_s"] + first_click <= last_end]
            if not shot_taken:
                notes.append("no screenshot: no session showed 'queued: ...' when its status was read")
            map_sessions(sessions, runs, notes, shots)
            for session in sessions:
                session.context.close()
            if all(r.ended is not None for r in watcher.snapshot()):  # idle again: the same rounds after the class
                print("# idle latency again, after the class", flush=True)
                after, after_reruns = latency_rounds(probe, url, args.repeats, args.latency_every, rerun_page,
                                                   notches, "after")
                idle += after
                idle_reruns += after_reruns
            else:
                notes.append("no idle rounds after the class: a run was still training")

            solo = None
            if args.solo:
                print("# one more session, alone", flush=True)
                solo = run_solo(browser, url, watcher, args, args.timeout)
                if solo is None:
                    notes.append("the run alone did not end in time")
            watcher.stop()
            probe.close()
            if students is not browser:
                students.close()
            browser.close()
        tracebacks = server_tracebacks(log.read_text())
        if tracebacks:
            notes.append(f"server log had {len(tracebacks)} traceback(s); the first:\n{tracebacks[0]}")

    by_id = {r.id: r for r in runs}
    rows = []
    for session in sessions:
        run = by_id.get(session.run_id)
        clicked = session.clicked
        rows.append({
            "session": session.number, "run_id": session.run_id, "mapped_by": session.mapped_by,
            "clicked_s": round(clicked - first_click, 3),
            "queued_s": None if run is None else round(run.appeared - first_click, 2),
            "started_s": None if run is None or run.started is None else round(run.started - first_click, 2),
            "wait_to_first_batch_s": None if run is None or run.first_batch is None else run.first_batch - clicked,
            "ended_s": None if run is None or run.ended is None else round(run.ended - first_click, 2),
            "run_time_s": None if run is None or run.started is None or run.ended is None
            else run.ended - run.started,
            "examples": 0 if run is None else run.examples, "epochs": 0 if run is None else run.epochs,
            "examples_per_sec": None if run is None else run.examples_per_sec,
            "status": None if run is None else run.status, "error": None if run is None else run.error,
            "first_status": session.first_status, "statuses": session.statuses, "last_line": session.last_line})
    for row in rows:
        shown = (row["last_line"] or "").split(":", 1)[0].split()[0] if row["last_line"] else ""
        if row["status"] and shown and shown != row["status"]:
            notes.append(f"session {row['session']}: its page still shows \"{row['last_line']}\" although its run "
                         f"ended {row['status']} (it had {SETTLE_SECONDS:.0f} s more to show it: the page stopped "
                         "refreshing)")
    examples = sum(r.examples for r in runs)
    span = last_end - first_click if last_end is not None else None
    first_run = min((r for r in runs if r.started is not None), key=lambda r: r.started, default=None)
    first_alone = None
    if first_run is not None and first_run.ended is not None:
        own = first_run.ended - first_run.started
        first_alone = {"run_id": first_run.id, "examples": first_run.examples, "span_s": own,
                       "images_per_sec": first_run.examples / own if own > 0 else None}
    config = runs[0].config if runs else {}
    result = {
        "machine": machine_description(),
        "settings": {"sessions": args.sessions, "per_class": args.per_class, "epochs": args.epochs, "slots": slots,
                     "cluster_nodes": args.cluster_nodes, "class_nice": args.class_nice,
                     "arch": config.get("arch"), "batch_size": config.get("batch_size"),
                     "image_size": config.get("image_size"), "precision": config.get("precision"),
                     "mode": config.get("mode"), "data": str(data), "repeats": args.repeats,
                     "latency_every_s": args.latency_every, "config": config},
        "class": {"click_spread_s": clicks_done - first_click, "sessions": rows, "examples": examples,
                  "span_s": span, "images_per_sec": examples / span if span else None,
                  "first_run_alone": first_alone, "runs_seen": len(runs)},
        "runs": [{k: (round(v - first_click, 2) if k in ("appeared", "started", "first_batch", "ended")
                      and v is not None else v) for k, v in asdict(r).items() if k not in ("offset", "config")}
                 for r in runs],  # times in seconds since the first Start click
        "solo": solo,
        "memory": {"before": before, "peak": peak, "total": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                   "series": watcher.series},
        "latency": {"warmup": warmup, "idle": latency_summary(idle), "during": latency_summary(during),
                    "idle_samples": idle, "during_samples": during,
                    "rerun": {"idle": median([r["title_s"] for r in idle_reruns]),
                              "during": median([r["title_s"] for r in during_reruns]),
                              "n": [len(idle_reruns), len(during_reruns)]},
                    "idle_reruns": idle_reruns, "during_reruns": during_reruns},
        "stopped_at_s": stopped_at,
        "notes": notes,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6, help="browser sessions pressing Start at once")
    parser.add_argument("--per-class", type=int, default=100, help="Images per class and split (page default: all)")
    parser.add_argument("--epochs", type=int, default=5, help="set on the page only when it differs from 5")
    parser.add_argument("--out", default="benchmarks/results/classroom-cpu.txt")
    parser.add_argument("--screenshots", default=None, help="folder for a screenshot of a queued session's page")
    parser.add_argument("--repeats", type=int, default=8,
                        help="latency rounds idle (a Train rerun, then a visit of each page), as under load")
    parser.add_argument("--latency-every", type=float, default=20.0,
                        help="seconds between latency rounds, idle and under load")
    parser.add_argument("--status-every", type=float, default=2.0, help="seconds between reads of the status lines")
    parser.add_argument("--measure-for", type=float, default=0.0,
                        help="seconds of load to measure, then press Stop on every page (0: until the runs end)")
    parser.add_argument("--timeout", type=float, default=60 * 60, help="seconds to wait for the runs to end")
    parser.add_argument("--cluster-nodes", type=int, default=0,
                        help="train on a Ray cluster of this many nodes started on this machine (0: child processes)")
    parser.add_argument("--class-nice", type=int, default=0,
                        help="run the class's sessions in a second Chromium at this niceness, so that their pages "
                             "take only CPU time the probe's pages leave, as on the students' own computers "
                             "(0: one browser for all)")
    parser.add_argument("--no-solo", dest="solo", action="store_false",
                        help="skip the extra run alone after the class")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    result = classroom(args)
    write_report(report(result), result, Path(args.out))


if __name__ == "__main__":
    main()
