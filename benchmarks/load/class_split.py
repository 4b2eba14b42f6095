"""What slows the pages during a class: the class's polling tabs, or the run training beside the server.

    python -m benchmarks.load.class_split [--sessions 6] [--rounds 5] [--cycles 3] [--synthetic]
                                          [--out benchmarks/results/class-split-cpu.txt]

Starts the app as benchmarks.load.classroom does, opens `--sessions` Train pages that press Start at once (all photos,
from scratch: one run trains, the rest wait in the queue), and then measures the classroom's latency rounds (a
rerun of an open Train page, timed in the page, then a fresh Home and Train) under four conditions, taken in turn
`--cycles` times so that a machine drifting over the minutes weighs on all four alike:

- tabs + run: the class as it is;
- run only: the class's pages navigated away (their sessions end; the run goes on);
- neither: the run paused as well (SIGSTOP to its processes, which are this machine's only SCHED_IDLE ones);
- tabs only: the pages back (the same URLs, so each finds its run again), the run still paused.

With --synthetic it then stops the runs and takes the same rounds beside load of its own at SCHED_IDLE, as a run
is: none, two busy loops (CPU alone), and two loops streaming through 64 MiB arrays (memory traffic). Prints
medians per condition, writes them to --out and the raw numbers beside it as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import BrowserContext, Page

from benchmarks.common import CHROMIUM, arg_parser, data_dir, median, ratio, write_report
from benchmarks.harness.app_server import app_server
from benchmarks.load.classroom.driver import FLAGS, prepare, status_line, stop_run
from benchmarks.load.classroom.measure import latency_rounds, open_rerun_page
from ftcore.devices.machine import machine_description

GAP_SECONDS = 5.0  # from the start of one latency round to the next
SETTLE_SECONDS = 3.0  # after changing a condition, before its first round
IDLE_PRELUDE = "from ftcore.devices.priority import yield_cpu\nyield_cpu(idle=True)\n"  # as a run lowers itself
SYNTHETIC = {  # name -> the Python programs that make it, each started as its own process
    "none": [],
    "CPU only": [IDLE_PRELUDE + "while True: pass"] * 2,
    "memory traffic": [IDLE_PRELUDE + "import numpy as np\na = np.ones(64 * 2**20 // 8)\nwhile True: a *= 1.0000001"]
    * 2,
}


def idle_policy_pids() -> list[int]:
    """This machine's processes at SCHED_IDLE: a training run's (the worker lowers itself and its children)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.sched_getscheduler(int(name)) == os.SCHED_IDLE:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


def signal_all(pids: list[int], sig: int) -> None:
    """Send `sig` to each of `pids`, skipping those that have ended."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def rounds(context: BrowserContext, url: str, rerun_page: Page, n: int, into: dict[str, list[float]],
           notches: itertools.count) -> None:
    """`n` of the classroom's latency rounds, one every GAP_SECONDS, their times appended to `into` by page."""
    visits, reruns = latency_rounds(context, url, n, GAP_SECONDS, rerun_page, notches, when="")
    for sample in visits + reruns:
        into.setdefault(sample["page"], []).append(sample["title_s"])


def split(args: argparse.Namespace) -> dict:
    """Measure the latency rounds under each condition in turn, `--cycles` times; the raw samples by condition."""
    from playwright.sync_api import sync_playwright  # the browsers start here, within the server's lifetime

    data = data_dir()
    results: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="class-split-") as tmp, \
            app_server(Path(tmp) / "cache", Path(tmp) / "streamlit.log", {"FTCORE_DATA": str(data)}) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        probe = browser.new_context(viewport={"width": 1400, "height": 1000})
        rerun_page = open_rerun_page(probe, url)
        notches = itertools.count()
        rounds(probe, url, rerun_page, 2, {}, notches)  # warm-up: the server's first visits import and cache
        pages = []
        for _ in range(args.sessions):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            prepare(page, url, 0, 5)
            pages.append(page)
        for page in pages:
            page.get_by_role("button", name="Start").click()
        time.sleep(30)  # the first run loads its photos and model, the rest are queued
        urls = [page.url for page in pages]
        print(f"# pages: {[(status_line(page) or '?')[:24] for page in pages]}", flush=True)
        run = idle_policy_pids()
        if not run:
            raise SystemExit("no SCHED_IDLE process found: is the run training?")
        shown = True
        conditions = [("tabs + run", True, True), ("run only", False, True), ("neither", False, False),
                      ("tabs only", True, False)]
        try:
            for cycle in range(args.cycles):
                for name, tabs, training in conditions:
                    if tabs != shown:
                        for page, address in zip(pages, urls, strict=True):
                            page.goto(address if tabs else "about:blank")
                        shown = tabs
                    signal_all(idle_policy_pids() or run, signal.SIGCONT if training else signal.SIGSTOP)
                    time.sleep(SETTLE_SECONDS)
                    rounds(probe, url, rerun_page, args.rounds, results.setdefault(name, {}), notches)
                    medians = {k: round(statistics.median(v[-args.rounds:]), 3) for k, v in results[name].items()}
                    print(f"# cycle {cycle + 1} {name}: {medians}", flush=True)
        finally:  # never leave a run paused
            signal_all(idle_policy_pids(), signal.SIGCONT)
        lines = [(status_line(page) or "") for page in pages]
        if not any(line.startswith("running") for line in lines):
            notes.append(f"no page showed a running run at the end: {lines}")
        for page in pages:
            stop_run(page)
        if args.synthetic:
            deadline = time.monotonic() + 120
            while idle_policy_pids() and time.monotonic() < deadline:
                time.sleep(1)
            for page in pages:
                page.context.close()
            for cycle in range(args.cycles):
                for name, programs in SYNTHETIC.items():
                    procs = [subprocess.Popen([sys.executable, "-c", code]) for code in programs]
                    try:
                        time.sleep(SETTLE_SECONDS)
                        rounds(probe, url, rerun_page, args.rounds, results.setdefault(f"synthetic: {name}", {}),
                               notches)
                    finally:
                        for proc in procs:
                            proc.kill()
                            proc.wait()
                    print(f"# cycle {cycle + 1} synthetic {name}", flush=True)
        browser.close()
    return {"machine": machine_description(), "sessions": args.sessions, "rounds": args.rounds,
            "cycles": args.cycles, "samples": results, "notes": notes}


def report(result: dict) -> str:
    """The report's text: per condition, each page's median and its ratio to the reference condition."""
    samples = result["samples"]
    lines = [f"What slows the pages during a class: {result['sessions']} Train pages pressed Start (all photos, "
             "from scratch), one run trains",
             f"machine: {result['machine']}",
             f"{result['rounds']} latency rounds per condition and cycle, {result['cycles']} cycles, conditions in "
             "turn; seconds, medians (a rerun timed in the page; a fresh page until its title)", ""]
    base = samples.get("neither", {})
    header = f"{'condition':26s} {'Home':>13s} {'Train':>13s} {'Train rerun':>13s}"
    lines += [header, "-" * len(header)]
    for name, by_page in samples.items():
        reference = samples.get("synthetic: none", {}) if name.startswith("synthetic") else base
        cells = []
        for page in ("Home", "Train", "Train rerun"):
            value, ref = median(by_page.get(page) or []), median(reference.get(page) or [])
            cells.append(f"{value:.3f} ({ratio(value, ref):.2f}x)" if value and ref else "-")
        lines.append(f"{name:26s} " + " ".join(f"{c:>13s}" for c in cells))
    lines.append("ratios against 'neither' (the run paused, the class's pages away); synthetic loads against "
                 "'synthetic: none'")
    if result["notes"]:
        lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure, print, and write the report and its JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=6, help="Train pages pressing Start")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds per condition and cycle")
    parser.add_argument("--cycles", type=int, default=3, help="times the conditions are taken in turn")
    parser.add_argument("--synthetic", action="store_true",
                        help="also measure beside synthetic SCHED_IDLE load: none, CPU only, memory traffic")
    parser.add_argument("--out", default="benchmarks/results/class-split-cpu.txt")
    args = parser.parse_args()
    if sys.platform != "linux":
        raise SystemExit("needs Linux: it finds the run by its SCHED_IDLE policy")
    result = split(args)
    write_report(report(result), result, Path(args.out))


if __name__ == "__main__":
    main()
