"""A class sharing one server: N browser sessions press Start on the Train page at once.

    python -m benchmarks.load.classroom [--sessions 6] [--per-class 100] [--epochs 5] [--screenshots DIR]
                                        [--out benchmarks/results/classroom-cpu.txt] [--no-solo] [--cluster-nodes N]
                                        [--repeats 8] [--latency-every 20] [--measure-for S] [--class-nice 19]

The driver: starts the server (and, with --cluster-nodes, a Ray cluster), opens the probe's and the class's
browser sessions, prepares their Train pages, presses Start, reads their status lines, matches each session to
its run, and runs the solo session; the package's docstring says what the benchmark measures, `measure` how,
and `report` what it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, arg_parser, data_dir, median, write_report
from benchmarks.harness.app_server import app_server
from benchmarks.load.classroom.measure import (
    PAGES,
    WAIT_MS,
    RunSeen,
    Watcher,
    latency_round,
    latency_rounds,
    latency_summary,
    open_rerun_page,
    open_timed,
    settle,
    title,
)
from benchmarks.load.classroom.report import report, server_tracebacks
from ftcore.devices.machine import machine_description
from ftcore.records import ENDED, Status
from ftcore.runs.local import default_slots

FLAGS = [*CHROMIUM_FLAGS, "--disable-component-update", "--disable-sync"]
SCRATCH = "From scratch (random weights)"  # ui.MODE_LABELS["scratch"]
LIMIT_LABEL = "Images per class and split (0 = all)"
ENDED_WORDS = tuple(status.value for status in ENDED)
STATUS_WORDS = tuple(status.value for status in Status if status != Status.NEW)
SETTLE_SECONDS = 15.0  # after the last run ends, how long the pages get to show it (3 polls of a queued tab)


def status_line(page: Page) -> str | None:
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


def prepare(page: Page, url: str, per_class: int, epochs: int) -> None:
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


def stop_run(page: Page) -> None:
    """Press the Train page's Stop (or, while queued, Cancel) button."""
    for name in ("Stop", "Cancel"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count() and button.first.is_enabled():
            button.first.click()
            return


def watch_status(session: Session, now: float) -> None:
    """Read the session's status line; keep its first and last, and each change of its status word."""
    line = status_line(session.page)
    if line is None:
        return
    session.last_line = line
    session.first_status = session.first_status or line
    word = line.split(":", 1)[0].split()[0]
    if not session.statuses or session.statuses[-1][1] != word:
        session.statuses.append((round(now, 1), word))


def settle_statuses(sessions: list[Session], watcher: Watcher, seconds: float) -> None:
    """Read every session's status line again until each shows how its run ended, or `seconds` pass: a page
    learns of the end at its next poll, up to a poll interval after the run's folder says so."""
    deadline = time.monotonic() + seconds
    while True:
        for session in sessions:
            watch_status(session, watcher.now())
        if all((s.last_line or "").startswith(ENDED_WORDS) for s in sessions) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def run_id_from_download(page: Page, problems: list[str], tries: int = 3) -> str | None:
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


def run_solo(browser: Browser, url: str, watcher: Watcher, args: argparse.Namespace, timeout: float) -> dict | None:
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


def classroom(args: argparse.Namespace) -> dict:
    """Run the whole benchmark (idle rounds, the class, idle rounds again, the run alone); its raw results."""
    from playwright.sync_api import sync_playwright  # the browsers start here, within the server's lifetime

    data = data_dir()
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
            from benchmarks.harness.ray_cluster import LocalRayCluster  # Ray: only with --cluster-nodes

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
    """Run the classroom with the command line's settings, then print and write the report."""
    parser = arg_parser(__doc__)
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
