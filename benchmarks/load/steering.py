"""How fast a running run answers the learning-rate slider: from the slider's release in the browser to the first
batch trained at the new rate.

    python -m benchmarks.load.steering [--data DIR] [--rounds 8] [--cpu-isa native|avx2]
                                       [--out benchmarks/results/steering-cpu.txt]

Starts the app on a loopback port, opens the Train page in Chromium and presses "Steer a run" (the lesson's
fine-tuning for 10 epochs). Once it trains, each round moves the slider one notch with the keyboard (up, then back
down, alternately) and times, from the key press: when the run applied the change (its `steer` line in the run's
events.jsonl: the first batch at the new rate starts), and when that batch ended (the next `batch` line). The run's
own batches are timed the same way (the gaps between `batch` lines), so the goal, at most one batch plus 1 s until
the new rate trains, is read against this run's own batches. `--cpu-isa avx2` caps the server's and the run's
kernels at AVX2 (no AVX-512, no native bf16), as on a laptop.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from playwright.sync_api import sync_playwright

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, RESULTS, arg_parser, data_dir, fmt, write_report
from benchmarks.harness.app_server import app_server
from ftcore.devices.machine import ISA_CAPS, kernels_description, machine_description

WAIT_MS = 300_000
T = TypeVar("T")
SETTLE_BATCHES = 3  # batches between two rounds, so that each change lands in a run training steadily


class EventClock:
    """Watches a run's events.jsonl and stamps each new line with the time it appeared (a poll every 10 ms)."""

    def __init__(self, runs: Path) -> None:
        self.runs, self.lines = runs, []  # (seconds, event)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        offset, path = 0, None
        while not self._stop.is_set():
            path = path or next(iter(self.runs.glob("*/events.jsonl")), None)
            if path is not None:
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                whole = chunk[:chunk.rfind(b"\n") + 1]
                offset += len(whole)
                now = time.time()
                self.lines += [(now, json.loads(line)) for line in whole.splitlines()]
            time.sleep(0.01)

    def after(self, since: float, kind: str) -> list[tuple[float, dict]]:
        """The lines of `kind` that appeared after `since`."""
        return [(t, e) for t, e in list(self.lines) if t > since and e.get("type") == kind]

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join()


def wait_for(condition: Callable[[], T], timeout: float = WAIT_MS / 1000) -> T:
    """`condition()` once it is true (polled every 10 ms); TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not answer")
        time.sleep(0.01)
    return value


def steering_rounds(data: str, rounds: int) -> dict:
    """Steer a fresh run `rounds` times from the Train page; every round's timings and the run's batch times."""
    with tempfile.TemporaryDirectory() as tmp, app_server(Path(tmp) / "cache", Path(tmp) / "streamlit.log",
                                                          env={"FTCORE_DATA": data}) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(url + "/train")
        page.get_by_role("button", name="Steer a run").click(timeout=WAIT_MS)
        page.get_by_role("button", name="Freeze the copied layers").wait_for(timeout=WAIT_MS)
        clock = EventClock(Path(tmp) / "cache" / "runs")
        wait_for(lambda: len(clock.after(0, "batch")) >= SETTLE_BATCHES)
        slider = page.get_by_test_id("stSlider").filter(has_text="Learning rate of the copied layers")
        results = []
        for round_ in range(rounds):
            pressed = time.time()
            slider.get_by_role("slider").press("ArrowRight" if round_ % 2 == 0 else "ArrowLeft")
            applied, change = wait_for(lambda since=pressed: next(iter(clock.after(since, "steer")), None))
            ended, _ = wait_for(lambda since=applied: next(iter(clock.after(since, "batch")), None))
            results.append({"applied": round(applied - pressed, 3), "first_batch_ended": round(ended - pressed, 3),
                            "lr": change["record"]["lr"], "epoch": change["record"]["epoch"]})
            print(f"round {round_ + 1}: lr {change['record']['lr']:g} applied {applied - pressed:.2f} s after the "
                  f"release, its first batch ended at {ended - pressed:.2f} s", flush=True)
            wait_for(lambda since=ended: len(clock.after(since, "batch")) >= SETTLE_BATCHES)
        times = [t for t, _ in clock.after(0, "batch")]
        page.get_by_role("button", name="Stop").click()
        clock.stop()
        browser.close()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b - a < 30]  # not across an evaluation
    return {"rounds": results, "batch_seconds": round(statistics.median(gaps), 3)}


def report(result: dict, data: str, kernels: str) -> str:
    """The rounds, their medians and worst, against the goal of one batch plus 1 s."""
    batch = result["batch_seconds"]
    applied = [r["applied"] for r in result["rounds"]]
    ended = [r["first_batch_ended"] for r in result["rounds"]]
    lines = [f"# {machine_description()}; data {data}; the Train page's \"Steer a run\" (mobilenet_v2, 96 px, "
             "batch 32)",
             f"# {kernels}",
             f"# a batch of this run: {batch:.2f} s (median of the gaps between its batches); goal: the new rate "
             f"trains within one batch plus 1 s of the slider's release ({batch + 1:.2f} s)",
             f"{'round':>5} {'lr':>8} {'applied (s)':>12} {'its batch ended (s)':>20}"]
    lines += [f"{i + 1:5d} {r['lr']:8.0e} {r['applied']:12.2f} {r['first_batch_ended']:20.2f}"
              for i, r in enumerate(result["rounds"])]
    lines.append(f"median: applied {fmt(statistics.median(applied), '.2f')} s, its batch ended "
                 f"{fmt(statistics.median(ended), '.2f')} s; worst: applied {max(applied):.2f} s "
                 f"({max(applied) / (batch + 1):.2f} of the goal), its batch ended {max(ended):.2f} s")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the rounds and write the report."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", help="the photos (default: the hot-dog set ftcore finds)")
    parser.add_argument("--rounds", type=int, default=8, help="slider moves (default 8)")
    parser.add_argument("--cpu-isa", choices=list(ISA_CAPS), default="native")
    parser.add_argument("--out", default=str(RESULTS / "steering-cpu.txt"), help="where the report goes")
    args = parser.parse_args()
    os.environ.update(ISA_CAPS[args.cpu_isa])  # the server and its runs inherit the caps
    data, kernels = data_dir(args.data), kernels_description(args.cpu_isa)
    result = steering_rounds(data, args.rounds)
    write_report(report(result, data, kernels), {"machine": machine_description(), "kernels": kernels, "data": data,
                                                 **result}, Path(args.out))


if __name__ == "__main__":
    main()
