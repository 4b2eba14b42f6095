"""A newcomer's first minute: how long a cold server takes to make the Train page and the Dataset explorer usable.

    python -m benchmarks.load.cold_start [--data DIR] [--repeats 2] [--out benchmarks/results/cold-start-cpu.txt]
                                         [--against DIR]

Each repeat starts `streamlit run streamlit_app.py` on a loopback port with an empty cache (no photo check on
disk), then opens, in a fresh Chromium page each:

1. /train: seconds until the learning-rate slider is visible, then the device choice, the Start button, and the
   last section ("No run yet");
2. /explore: seconds until the per-class counts table is visible, then the book's grid of photos, then the
   findings of the background photo check (the aspect ratios replace "checking..."), then its charts (the sizes
   chart, which comes once the check has ended);
3. /train again, on the warm server.

Then the server restarts on the same cache (the photo check now on disk) and /explore is timed once more.

Each round also times Streamlit alone, the same way: a one-line app on a fresh server, until its line is visible.
That floor (the browser loading Streamlit's frontend and opening a session) is part of every page's time, and on a
shared machine it moves from hour to hour, so the report gives it beside the pages.

With `--against DIR` (another checkout, e.g. `git worktree add /tmp/before HEAD~1`), each round first times a cold
/train, then /explore, served from DIR, so that the two versions are compared in the same minutes on a machine
whose speed moves.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, arg_parser, data_dir, write_report
from benchmarks.harness.app_server import app_server
from ftcore.devices.machine import machine_description

WAIT_MS = 180_000


def timed(context: BrowserContext, url: str, marks: dict[str, callable]) -> dict[str, float]:
    """Open `url` in a fresh page; seconds from goto until each mark (name -> page -> locator) is visible."""
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=WAIT_MS)
    seconds = {}
    for name, locate in marks.items():
        locate(page).wait_for(state="visible", timeout=WAIT_MS)
        seconds[name] = round(time.perf_counter() - start, 2)
    page.close()
    return seconds


TRAIN = {"slider": lambda page: page.get_by_text("Learning rate of the copied layers").first,
         "device": lambda page: page.get_by_text("Device", exact=True).first,
         "start": lambda page: page.get_by_role("button", name=re.compile(r"Start$")).first,
         "whole page": lambda page: page.get_by_text("No run yet").first}
EXPLORE = {"counts": lambda page: page.get_by_role("table").first,
           "grid": lambda page: page.get_by_test_id("stImage").first,
           "findings": lambda page: page.get_by_test_id("stMetric").filter(has_text="Aspect ratios").filter(
               has_text=re.compile(r"\d\.\d\d-\d")).first,
           "check ended": lambda page: page.get_by_text("Image width vs height").first}


FLOOR_TEXT = "Streamlit alone"
FLOOR = {"its line": lambda page: page.get_by_text(FLOOR_TEXT).first}


def one_round(data: str, folder: Path, browser: Browser, against: Path | None = None) -> dict:
    """Streamlit alone; a cold server: Train, Explorer, Train again; then a restart on the same cache: Explorer.
    With `against` (another checkout of the lab), first a cold Train page and Explorer served from it."""
    cache, env = folder / "cache", {"FTCORE_DATA": data}
    result = {}
    if against is not None:
        with app_server(folder / "against-cache", folder / "against.log", env,
                        script=against / "streamlit_app.py") as url:
            context = browser.new_context()
            result["train_cold_against"] = timed(context, url + "/train", TRAIN)
            result["explore_cold_against"] = timed(context, url + "/explore", EXPLORE)
            context.close()
    floor = folder / "floor" / "app.py"
    floor.parent.mkdir()
    floor.write_text(f"import streamlit as st\n\nst.write({FLOOR_TEXT!r})\n")
    with app_server(cache, folder / "floor.log", script=floor) as url:
        context = browser.new_context()
        result["streamlit_alone"] = timed(context, url, FLOOR)
        context.close()
    with app_server(cache, folder / "server.log", env) as url:
        context = browser.new_context()
        result["train_cold"] = timed(context, url + "/train", TRAIN)
        result["explore_cold"] = timed(context, url + "/explore", EXPLORE)
        result["train_warm"] = timed(context, url + "/train", TRAIN)
        context.close()
    with app_server(cache, folder / "server2.log", env) as url:
        context = browser.new_context()
        result["explore_restarted"] = timed(context, url + "/explore", EXPLORE)
        context.close()
    return result


def checkout_commit(folder: Path) -> str:
    """The commit a checkout is at, for the report."""
    done = subprocess.run(["git", "-C", str(folder), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return done.stdout.strip()[:80] or "not a git checkout"


def main() -> None:
    """Measure, print, and write the report and its JSON."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/cold-start-cpu.txt")
    parser.add_argument("--against", type=Path, default=None, help="another checkout of the lab (e.g. a git "
                        "worktree of an older commit): each round also times its cold Train page and Explorer")
    args = parser.parse_args()
    data = data_dir(args.data)
    rounds = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                rounds.append(one_round(data, Path(folder), browser, args.against))
                print(json.dumps(rounds[-1]), flush=True)
        browser.close()
    lines = [f"Cold start: seconds from opening a page until it is usable, median of {args.repeats} fresh servers",
             f"machine: {machine_description()}", f"data: {data}",
             *([f"train_cold_against: {args.against} ({checkout_commit(args.against)})"] if args.against else []), ""]
    for key in rounds[0]:
        for mark in rounds[0][key]:
            lines.append(f"{key:18s} {mark:12s} {statistics.median(r[key][mark] for r in rounds):6.2f} s "
                         f"({', '.join(f'{r[key][mark]:.2f}' for r in rounds)})")
    write_report("\n".join(lines) + "\n", {"data": data, "rounds": rounds}, Path(args.out), json_end="",
                 announce=False)


if __name__ == "__main__":
    main()
